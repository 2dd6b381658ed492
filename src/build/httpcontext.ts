// An http(s) URL as the build context, as `docker build URL` reads it: a tar archive (plain or
// compressed) is the context, unpacked into a temporary directory; anything else is the Dockerfile
// itself, with an empty context (BuildKit dockerui: DetectContextType, testDockerfileFromHTTP and
// testHTTPDockerfile).

import { mkdtemp, rm, readFile } from 'node:fs/promises';
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
export async function fetchHTTPContext(url: string): Promise<{ dir: string; dockerfile?: string; cleanup: () => Promise<void> }> {
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
    const file = join(tmp, 'download');
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(file));
    const kind = await archiveKind(file);
    if (kind) {
      const unpacked = await unpackArchive(file, kind);
      cleanups.push(unpacked.cleanup);
      return { dir: unpacked.tree.root, cleanup };
    }
    const dockerfile = await readFile(file, 'utf8');
    await rm(file);
    return { dir: tmp, dockerfile, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
