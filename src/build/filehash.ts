// Content hashes of files, many of them on a worker thread. A COPY's cache key needs the hash of
// every file it selects, and the first time a context is seen (a fresh checkout, an empty store)
// that means reading all of them: 20,000 small files and 200 MB take half a second of reads and
// sha256. On the main thread that half second queues behind everything else it does, and with
// --cache-from what it does meanwhile is downloading the very layer the key is about to find. A
// thread lets the two overlap.

import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { threadUrl } from '../thread.js';

export interface FileToHash {
  abs: string;
  size: number;
}

/**
 * sha256 of a file's content ("sha256:…"), read synchronously through `buf`: open, read, close, with
 * no fstat and no new buffer (readFileSync has both), which for 20,000 small files is 50 ms less.
 * A short read once `size` bytes (what lstat said) have come is taken as the end, which saves the
 * last read, the one that returns nothing. The thread reads every file this way; this thread only
 * the few it keeps (under ThreadBytes in all, so it is never held up for long).
 */
function fileDigest(abs: string, size: number, buf: Buffer): string {
  const h = createHash('sha256');
  const fd = openSync(abs, 'r');
  try {
    for (let n, total = 0; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) {
      h.update(buf.subarray(0, n));
      total += n;
      if (n < buf.length && total >= size) break;
    }
  } finally {
    closeSync(fd);
  }
  return 'sha256:' + h.digest('hex');
}

/** Until files reach either figure, they are hashed here: a thread's start-up (20–30 ms) would cost more. */
const ThreadFiles = 1000;
const ThreadBytes = 32 << 20;
/** With the thread started, files go to it in batches of about this many files or bytes. */
const BatchFiles = 256;
const BatchBytes = 8 << 20;

type FromWorker = { hashes: string[] } | { error: string; code?: string };

/**
 * Hashes the files added to it, in order. Few files are read here when done() is called; once there
 * are many, a worker thread reads them in batches as they are added, so that reading overlaps with
 * whatever finds them (the walk of a directory) and with the rest of this thread's work.
 */
export class FileHasher {
  private readonly files: FileToHash[] = [];
  private bytes = 0;
  private sent = 0;
  private unsentBytes = 0;
  private worker: Worker | undefined;
  private readonly batches: Promise<string[]>[] = [];
  private readonly waiting: { resolve: (h: string[]) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;

  /** Queue a file; its hash will be at the returned index of done()'s result. */
  add(file: FileToHash): number {
    this.files.push(file);
    this.bytes += file.size;
    if (!this.worker && (this.files.length >= ThreadFiles || this.bytes >= ThreadBytes)) this.start();
    this.unsentBytes += file.size;
    if (this.worker && (this.files.length - this.sent >= BatchFiles || this.unsentBytes >= BatchBytes)) this.flush();
    return this.files.length - 1;
  }

  /** Every added file's "sha256:…", in order. The thread, if any, is stopped either way. */
  async done(signal?: AbortSignal): Promise<string[]> {
    try {
      signal?.throwIfAborted();
      if (!this.worker) {
        const buf = Buffer.allocUnsafe(1 << 20);
        return this.files.map((f) => fileDigest(f.abs, f.size, buf));
      }
      this.flush();
      let onAbort = () => {};
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal!.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      try {
        return (await Promise.race([Promise.all(this.batches), aborted])).flat();
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    } finally {
      await this.close();
    }
  }

  /** Stop the thread, if there is one, whether or not its answers were awaited. */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.fail(new Error('hashing stopped'));
    await w.terminate();
  }

  private start(): void {
    const worker = new Worker(threadUrl(import.meta.url, 'filehash'), { workerData: { fileHasher: true } });
    worker.on('message', (m: FromWorker) => {
      const w = this.waiting.shift();
      if (!w) return;
      if ('hashes' in m) w.resolve(m.hashes);
      else w.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
    });
    worker.once('error', (e) => this.fail(e));
    worker.once('exit', (code) => this.fail(new Error(`hashing thread exited with code ${code}`)));
    this.worker = worker;
  }

  private flush(): void {
    if (this.sent === this.files.length) return;
    const batch = this.files.slice(this.sent);
    this.sent = this.files.length;
    this.unsentBytes = 0;
    const answer = new Promise<string[]>((resolve, reject) => {
      if (this.failure) reject(this.failure);
      else this.waiting.push({ resolve, reject });
    });
    answer.catch(() => {}); // awaited by done(); a batch nobody awaits must not be reported unhandled
    this.batches.push(answer);
    if (!this.failure) this.worker!.postMessage(batch);
  }

  /** Fail every batch still waiting for an answer. */
  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }
}

/** The thread's side: one batch, through one reused buffer; a failure is the batch's answer. */
function hashBatch(files: FileToHash[], buf: Buffer): FromWorker {
  try {
    return { hashes: files.map((f) => fileDigest(f.abs, f.size, buf)) };
  } catch (e) {
    return { error: (e as Error).message, code: (e as NodeJS.ErrnoException).code };
  }
}

if (!isMainThread && (workerData as { fileHasher?: boolean } | null)?.fileHasher) {
  const buf = Buffer.allocUnsafe(1 << 20);
  parentPort!.on('message', (files: FileToHash[]) => parentPort!.postMessage(hashBatch(files, buf)));
}
