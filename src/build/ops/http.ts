// HTTP sources: ADD <url> as a source of the build graph (BuildKit's http source op). A URL is
// downloaded once per build, however many steps add it, and keyed by itself: by the --checksum it
// must match (then the download waits for a step that runs), or else by the downloaded content's
// digest. The downloads are removed when the build ends.

import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CopyStep } from '../../dockerfile/index.js';
import { cacheKey } from '../cache.js';
import { contextDigest } from '../copy.js';
import { BuildStepError } from '../errors.js';
import { DirTree } from '../tree.js';
import type { FetchedFiles, Source } from './op.js';

export interface HttpSources {
  /** The source node of `url` as `step` adds it (its --checksum); one per URL and checksum. */
  node(url: string, step: CopyStep, file: string): Source;
  /** Remove what the build downloaded. */
  cleanup(): Promise<void>;
}

export function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

export function createHttpSources(): HttpSources {
  const nodes = new Map<string, Source>();
  const downloads: Promise<Download>[] = [];

  function node(url: string, step: CopyStep, file: string): Source {
    const id = `${step.checksum ?? ''}\0${url}`;
    let n = nodes.get(id);
    if (!n) {
      let download: Promise<Download> | undefined;
      const fetched = () => {
        if (!download) downloads.push((download = downloadSource(url, step, file)));
        return download;
      };
      const open = async () => {
        const d = await fetched();
        return { dir: d.dir, name: d.name };
      };
      n = {
        kind: 'source',
        inputs: [],
        async resolve() {
          let keyPart: unknown;
          if (step.checksum) keyPart = { url, checksum: step.checksum };
          else {
            const d = await fetched();
            const tree = new DirTree(d.dir);
            keyPart = { url, content: await contextDigest(tree, [{ file: (await tree.stat(d.name))!, target: '/' }], []) };
          }
          const files: FetchedFiles = { keyPart, open };
          return { key: cacheKey('', keyPart), layers: [], keys: [], files };
        },
      };
      nodes.set(id, n);
    }
    return n;
  }

  async function cleanup(): Promise<void> {
    for (const d of downloads) await (await d.catch(() => undefined))?.cleanup();
  }

  return { node, cleanup };
}

interface Download {
  dir: string;
  name: string;
  cleanup(): Promise<void>;
}

/** The file at `url` in a directory of its own, named as BuildKit names it, checked against --checksum. */
async function downloadSource(url: string, step: CopyStep, file: string): Promise<Download> {
  const fail = (m: string): never => {
    throw new BuildStepError(file, step.line, `ADD failed: ${m}`);
  };
  const dir = await mkdtemp(join(tmpdir(), 'kiln-add-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => fail(`cannot download ${url}: ${e.message}`));
    if (!res.ok || !res.body) fail(`cannot download ${url}: HTTP ${res.status}`);
    // BuildKit names the file after the URL path's last element, or __unnamed__ (convert_copy.go).
    const base = posix.basename(new URL(url).pathname);
    const name = base === '' || base === '/' || base === '.' ? '__unnamed__' : decodeURIComponent(base);
    const path = join(dir, name);
    // --checksum names its algorithm (sha256, sha384 or sha512; the frontend refused others).
    const algorithm = step.checksum ? step.checksum.slice(0, step.checksum.indexOf(':')) : 'sha256';
    const h = createHash(algorithm);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (c: Buffer) => h.update(c));
    await pipeline(body, createWriteStream(path, { mode: 0o600 }));
    const digest = `${algorithm}:${h.digest('hex')}`;
    if (step.checksum && step.checksum !== digest) fail(`checksum mismatch for ${url}: got ${digest}, expected ${step.checksum}`);
    const lm = res.headers.get('last-modified');
    const fh = await open(path, 'r+');
    const t = lm ? new Date(lm) : new Date(0);
    await fh.utimes(t, t);
    await fh.chmod(0o600);
    await fh.close();
    return { dir, name, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
