import { Worker, type ResourceLimits } from 'node:worker_threads';

// One job on a worker thread: the module at `url` is started with `workerData`, answers with one
// message, and the thread is stopped. A message with an `error` field is a failure (errors cross
// threads as their message only).

declare const __kilnThreadsDir: string | undefined;

/**
 * The file a worker thread runs to serve the module at `moduleUrl`: that module's own file, except
 * in the CLI bundle, where every module's file is the 1 MB bundle (some 70 ms of compiling for each
 * thread): there each thread module also has a small bundle of its own, dist/bin/kiln-thread-NAME.cjs
 * (scripts/bundle.mjs), and the thread runs that.
 */
export function threadUrl(moduleUrl: string, name: 'filehash' | 'extract' | 'download'): URL {
  return typeof __kilnThreadsDir === 'string' ? new URL(`kiln-thread-${name}.cjs`, __kilnThreadsDir) : new URL(moduleUrl);
}

export interface OneShotOptions {
  /** Names the thread in errors ("extraction thread exited with code 1"). */
  name: string;
  resourceLimits?: ResourceLimits;
  /** Stops the thread; the job rejects with `stopped`. */
  signal?: AbortSignal;
  stopped?: () => Error;
}

export async function runOnThread<M extends object>(url: URL, workerData: unknown, opts: OneShotOptions): Promise<Exclude<M, { error: string }>> {
  opts.signal?.throwIfAborted();
  const worker = new Worker(url, { workerData, ...(opts.resourceLimits ? { resourceLimits: opts.resourceLimits } : {}) });
  let onAbort = () => {};
  try {
    return await new Promise((resolve, reject) => {
      onAbort = () => reject(opts.stopped?.() ?? new Error(`${opts.name} stopped`));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      worker.once('message', (m: M) => ('error' in m ? reject(new Error(String(m.error))) : resolve(m as Exclude<M, { error: string }>)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`${opts.name} exited with code ${code}`)));
    });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}
