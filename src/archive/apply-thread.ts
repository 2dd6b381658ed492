// applyLayer on a worker thread. A build's COPY both packs a layer (reading the files, hashing,
// compressing) and extracts it into the snapshot the next step mounts; on one thread the two share
// one CPU, and extracting 20,000 files costs as much as packing them. Here the extraction gets a
// thread of its own: the tar's bytes are posted to it with flow control, so at most `window` bytes
// are ever in flight, and the worker runs the very same applyLayer.

import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { applyLayer, type AppliedLayer, type ApplyOptions } from './apply.js';

/** Bytes posted to the worker and not yet taken by its tar reader. */
const window = 8 << 20;

type ToWorker = { chunk: Uint8Array } | { end: true } | { abort: true };
type FromWorker = { ack: number } | { done: AppliedLayer } | { error: string };

/**
 * Apply `layer` to `dest` on a worker thread. Resolves as applyLayer does; on failure rejects with
 * an Error carrying the worker's message, after `layer` has been read to its end, so that another
 * reader of the same stream (a tee) is never stalled by the extraction failing.
 */
export async function applyLayerInWorker(layer: Readable, dest: string, opts: ApplyOptions): Promise<AppliedLayer> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { dest, opts } });
  let inFlight = 0;
  let waiting: (() => void) | undefined;
  let failed = false;
  const result = new Promise<AppliedLayer>((resolve, reject) => {
    worker.on('message', (m: FromWorker) => {
      if ('ack' in m) {
        inFlight -= m.ack;
        if (waiting && inFlight < window) {
          const go = waiting;
          waiting = undefined;
          go();
        }
      } else if ('done' in m) resolve(m.done);
      else {
        failed = true;
        reject(new Error(m.error));
      }
    });
    worker.on('error', (e) => {
      failed = true;
      reject(e);
    });
    worker.on('exit', (code) => {
      failed = true;
      reject(new Error(`extraction thread exited with code ${code}`));
    });
  });
  result.catch(() => {
    // Unblock the writer: from now on its bytes are dropped.
    waiting?.();
    waiting = undefined;
  });
  const toWorker = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (failed) return cb();
      // A copy of its own, so that it can be transferred: chunks are often views of pooled buffers.
      const own = new Uint8Array(chunk);
      inFlight += own.length;
      worker.postMessage({ chunk: own } satisfies ToWorker, [own.buffer]);
      if (inFlight < window) cb();
      else waiting = () => cb();
    },
    final(cb) {
      if (!failed) worker.postMessage({ end: true } satisfies ToWorker);
      cb();
    },
  });
  try {
    await pipeline(layer, toWorker);
  } catch (e) {
    worker.postMessage({ abort: true } satisfies ToWorker);
    await result.catch(() => {});
    await worker.terminate();
    throw e;
  }
  try {
    return await result;
  } finally {
    await worker.terminate();
  }
}

/** The worker's side: a Readable that takes chunks as the tar reader asks for them, acking each. */
function serve(): void {
  const port = parentPort!;
  const { dest, opts } = workerData as { dest: string; opts: ApplyOptions };
  const queue: Buffer[] = [];
  let ended = false;
  let wanted = false;
  const input = new Readable({
    read() {
      wanted = true;
      feed();
    },
  });
  function feed(): void {
    while (wanted && queue.length) {
      const b = queue.shift()!;
      port.postMessage({ ack: b.length } satisfies FromWorker);
      wanted = input.push(b);
    }
    if (wanted && ended && queue.length === 0) {
      wanted = false;
      input.push(null);
    }
  }
  port.on('message', (m: ToWorker) => {
    if ('chunk' in m) queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
    else if ('end' in m) ended = true;
    else input.destroy(new Error('the layer stream failed'));
    feed();
  });
  applyLayer(input, dest, opts).then(
    (done) => port.postMessage({ done } satisfies FromWorker),
    (e: Error) => port.postMessage({ error: e.message } satisfies FromWorker),
  );
}

if (!isMainThread && (workerData as { dest?: unknown } | null)?.dest !== undefined) serve();
