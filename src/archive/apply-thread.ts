// Extracting a layer made of entries (a COPY's) on a worker thread. A build's COPY both packs a layer
// (reading the files, hashing, compressing) and extracts it into the snapshot the next step mounts;
// on one thread the two share one CPU, and extracting 20,000 files costs as much as packing them.
// The worker is handed the entries, not the bytes (posting the bytes across would copy every one of
// them and keep a second heap full of them). It either makes the files from their sources
// (materializeEntries: kernel copies, links from an earlier extraction) or, for entries that cannot
// be made that way, packs the same deterministic tar itself and applies it with applyLayer.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runOnThread, threadUrl } from '../thread.js';
import { applyLayer, type AppliedLayer, type ApplyOptions } from './apply.js';
import { materializeEntries, type Donor, type Materialized } from './materialize.js';
import { packEntries, type LayerEntry, type PackEntriesOptions } from './pack.js';

interface Job {
  entries: LayerEntry[];
  pack: PackEntriesOptions;
  dest: string;
  apply: ApplyOptions;
  /** Make the files from their sources (materializeEntries) instead of packing and applying a tar. */
  materialize?: { donor?: Donor };
}

type FromWorker = { done: AppliedLayer } | { materialized: Materialized } | { error: string };

/**
 * Pack `entries` and apply the tar to `dest`, both on a worker thread. Resolves with the diffID of
 * the tar it made, which is what the caller must name the result by: a file that changed between
 * the two reads makes another tar than the layer's, and then names no layer of the build.
 */
export async function applyEntriesInWorker(entries: LayerEntry[], pack: PackEntriesOptions, dest: string, apply: ApplyOptions): Promise<AppliedLayer> {
  const m = await runJob({ entries, pack, dest, apply });
  if (!('done' in m)) throw new Error('extraction thread answered out of turn');
  return m.done;
}

/** materializeEntries on a worker thread, stopped (and rejected) when `signal` aborts. */
export async function materializeInWorker(entries: LayerEntry[], pack: PackEntriesOptions, dest: string, apply: ApplyOptions, donor?: Donor, signal?: AbortSignal): Promise<Materialized> {
  const m = await runJob({ entries, pack, dest, apply, materialize: donor ? { donor } : {} }, signal);
  if (!('materialized' in m)) throw new Error('extraction thread answered out of turn');
  return m.materialized;
}

function runJob(job: Job, signal?: AbortSignal): Promise<Exclude<FromWorker, { error: string }>> {
  // A small young generation: the thread's garbage is mostly file buffers, and collecting them
  // often keeps a 200 MiB COPY's peak memory some 50 MiB lower at no cost in time.
  return runOnThread<FromWorker>(threadUrl(import.meta.url, 'extract'), job, { name: 'extraction thread', resourceLimits: { maxYoungGenerationSizeMb: 4 }, signal, stopped: () => new Error('extraction stopped') });
}

function serve(job: Job): void {
  // Buffers arrive as plain Uint8Arrays (structured clone); the tar writer wants Buffers for xattrs.
  for (const e of job.entries) {
    if (e.xattrs) for (const [k, v] of Object.entries(e.xattrs)) e.xattrs[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  const fail = (e: Error) => parentPort!.postMessage({ error: e.message } satisfies FromWorker);
  if (job.materialize) {
    materializeEntries(job.entries, job.dest, job.pack, job.apply, job.materialize.donor).then((materialized) => parentPort!.postMessage({ materialized } satisfies FromWorker), fail);
    return;
  }
  applyLayer(packEntries(job.entries, job.pack), job.dest, job.apply).then((done) => parentPort!.postMessage({ done } satisfies FromWorker), fail);
}

if (!isMainThread && (workerData as Partial<Job> | null)?.entries !== undefined) serve(workerData as Job);
