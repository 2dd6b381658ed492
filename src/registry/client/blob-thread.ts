// A large blob downloaded on a worker thread, straight into a file. Used where the main thread has
// other work at the same time: a --cache-from build downloads a COPY's 220 MB layer while it walks
// and hashes the context for that COPY's key, and on one thread the two took turns (HTTP parsing
// and sha256 of the download, lstat of 20,000 files); on two they overlap. Only the plain case is
// handled here, one GET answered 200; anything else fails, and the caller falls back to the main
// thread's download, which retries, resumes and reports.

import { closeSync, openSync, writeSync } from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runOnThread, threadUrl } from '../../thread.js';
import { Digester } from '../../oci/digest.js';
import { EarlyFlush } from '../../store/early-flush.js';
import { discard, send } from './http.js';

export interface BlobFetch {
  url: string;
  headers: Record<string, string>;
  digest: string;
  size: number;
  /** The file to create (it must not exist). */
  path: string;
  /** Names the blob in errors. */
  what: string;
}

type FromWorker = { done: true } | { error: string };

/** Download `job.url` into `job.path` on a thread, verifying digest and size as it is written. */
export async function fetchBlobInThread(job: BlobFetch): Promise<void> {
  await runOnThread<FromWorker>(threadUrl(import.meta.url, 'download'), { blobFetch: job }, { name: 'download thread' });
}

async function fetchToFile(job: BlobFetch): Promise<void> {
  const res = await send({ method: 'GET', url: new URL(job.url), headers: job.headers });
  if (res.status !== 200) {
    discard(res);
    throw new Error(`${job.what}: GET answered ${res.status}`);
  }
  const digester = new Digester({ digest: job.digest, size: job.size, what: job.what });
  const fd = openSync(job.path, 'wx', 0o644);
  const flush = new EarlyFlush();
  try {
    for await (const chunk of res.body) {
      digester.update(chunk as Buffer);
      writeSync(fd, chunk as Buffer);
      flush.wrote(fd, (chunk as Buffer).length);
    }
    if (!res.body.complete) throw new Error(`${job.what}: connection closed early`);
    digester.finish();
  } finally {
    await flush.idle();
    closeSync(fd);
  }
}

if (!isMainThread && (workerData as { blobFetch?: BlobFetch } | null)?.blobFetch) {
  fetchToFile((workerData as { blobFetch: BlobFetch }).blobFetch).then(
    () => parentPort!.postMessage({ done: true } satisfies FromWorker),
    (e: Error) => parentPort!.postMessage({ error: e.message } satisfies FromWorker),
  );
}
