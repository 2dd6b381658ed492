// An http(s) URL as the build context, as `docker build URL` reads it: a tar archive (plain or
// compressed) is the context, unpacked into a temporary directory; anything else is the Dockerfile
// itself, with an empty context (BuildKit dockerui: DetectContextType, testDockerfileFromHTTP and
// testHTTPDockerfile).

import { mkdtemp, rm, readFile, readdir, lstat } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnError } from '../errors.js';
import { archiveKind, unpackArchive } from './copy.js';

export class HTTPContextFailed extends KilnError {}

/** Whether a build context argument is an http(s) URL (git repositories are told apart first). */
export function isHTTPContext(arg: string): boolean {
  return /^https?:\/\//.test(arg);
}

/** Download the URL: `dir` is the context; `dockerfile` is set when the URL was the Dockerfile. */
export async function fetchHTTPContext(url: string): Promise<{ dir: string; dockerfile?: string; lastModified?: number; cleanup: () => Promise<void> }> {
  const tmp = await mkdtemp(join(tmpdir(), 'kiln-http-context-'));
  const cleanups = [() => rm(tmp, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => {
      throw new HTTPContextFailed(`build context ${url}: ${e.message}`);
    });
    if (!res.ok || !res.body) throw new HTTPContextFailed(`build context ${url}: HTTP ${res.status}`);
    // The response's Last-Modified, in seconds: what SOURCE_DATE_EPOCH=context dates the context by.
    const lm = Date.parse(res.headers.get('last-modified') ?? '');
    const lastModified = Number.isNaN(lm) ? undefined : Math.floor(lm / 1000);
    const file = join(tmp, 'download');
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(file));
    const kind = await archiveKind(file);
    if (kind) {
      const unpacked = await unpackArchive(file, kind);
      cleanups.push(unpacked.cleanup);
      return { dir: unpacked.tree.root, ...(lastModified !== undefined ? { lastModified } : {}), cleanup };
    }
    const dockerfile = await readFile(file, 'utf8');
    await rm(file);
    return { dir: tmp, dockerfile, ...(lastModified !== undefined ? { lastModified } : {}), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * The newest mtime (seconds) of the regular files below `dir`: an unpacked archive's date. BuildKit
 * skips every other kind of entry (dockerfile2llb/epoch.go:373, archiveMaxTimeFromRef).
 */
export async function newestMtime(dir: string): Promise<number | undefined> {
  let newest: number | undefined;
  for (const e of await readdir(dir, { recursive: true })) {
    const st = await lstat(join(dir, e));
    if (!st.isFile()) continue;
    const m = Math.floor(st.mtimeMs / 1000);
    if (newest === undefined || m > newest) newest = m;
  }
  return newest;
}
