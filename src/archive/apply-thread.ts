// Extracting a layer made of entries (a COPY's) on a worker thread. A build's COPY both packs a layer
// (reading the files, hashing, compressing) and extracts it into the snapshot the next step mounts;
// on one thread the two share one CPU, and extracting 20,000 files costs as much as packing them.
// The worker is handed the entries, not the bytes: it packs the same tar itself (packEntries is
// deterministic, and the files are in the page cache by then) and applies it with the same
// applyLayer. Posting the bytes across instead would copy every one of them and keep a second heap
// full of them; reading the files twice costs less than that.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { applyLayer, type AppliedLayer, type ApplyOptions } from './apply.js';
import { packEntries, type LayerEntry, type PackEntriesOptions } from './pack.js';

interface Job {
  entries: LayerEntry[];
  pack: PackEntriesOptions;
  dest: string;
  apply: ApplyOptions;
}

type FromWorker = { done: AppliedLayer } | { error: string };

/**
 * Pack `entries` and apply the tar to `dest`, both on a worker thread. Resolves with the diffID of
 * the tar it made, which is what the caller must name the result by: a file that changed between
 * the two reads makes another tar than the layer's, and then names no layer of the build.
 */
export async function applyEntriesInWorker(entries: LayerEntry[], pack: PackEntriesOptions, dest: string, apply: ApplyOptions): Promise<AppliedLayer> {
  // A small young generation: the thread's garbage is mostly file buffers, and collecting them
  // often keeps a 200 MiB COPY's peak memory some 50 MiB lower at no cost in time.
  const worker = new Worker(new URL(import.meta.url), { workerData: { entries, pack, dest, apply } satisfies Job, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
  try {
    return await new Promise<AppliedLayer>((resolve, reject) => {
      worker.once('message', (m: FromWorker) => ('done' in m ? resolve(m.done) : reject(new Error(m.error))));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`extraction thread exited with code ${code}`)));
    });
  } finally {
    await worker.terminate();
  }
}

function serve(job: Job): void {
  // Buffers arrive as plain Uint8Arrays (structured clone); the tar writer wants Buffers for xattrs.
  for (const e of job.entries) {
    if (e.xattrs) for (const [k, v] of Object.entries(e.xattrs)) e.xattrs[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  applyLayer(packEntries(job.entries, job.pack), job.dest, job.apply).then(
    (done) => parentPort!.postMessage({ done } satisfies FromWorker),
    (e: Error) => parentPort!.postMessage({ error: e.message } satisfies FromWorker),
  );
}

if (!isMainThread && (workerData as Partial<Job> | null)?.entries !== undefined) serve(workerData as Job);
