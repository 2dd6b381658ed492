import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Serialise read-modify-write cycles of the store's index between processes. proper-lockfile uses an
 * atomic mkdir and refreshes the lock's mtime while held, so a lock left by a killed process goes stale
 * and is taken over instead of blocking the store forever.
 */
export async function withStoreLock<T>(root: string, name: string, fn: () => Promise<T>): Promise<T> {
  const release = (await acquireStoreLock(root, name, 'bounded'))!;
  try {
    return await fn();
  } finally {
    await release();
  }
}

/**
 * Take the store lock `name` and hold it until the returned function is called. `bounded` gives up
 * after about a minute (index updates are short), `forever` waits as long as the holder works (a
 * locked cache mount is held for a whole RUN), `try` returns undefined at once when it is held.
 */
export async function acquireStoreLock(root: string, name: string, wait: 'bounded' | 'forever' | 'try'): Promise<(() => Promise<void>) | undefined> {
  const dir = join(root, 'locks');
  await mkdir(dir, { recursive: true });
  const retries =
    wait === 'bounded' ? { retries: 600, minTimeout: 10, maxTimeout: 100, factor: 1.3 } : wait === 'forever' ? { forever: true, minTimeout: 20, maxTimeout: 500, factor: 1.3 } : 0;
  // Loaded on first use: with graceful-fs, which it patches fs with, some 20 ms of start-up that a
  // command taking no lock (a fully cached build, kiln images) need not pay.
  const { default: lockfile } = await import('proper-lockfile');
  try {
    return await lockfile.lock(dir, { lockfilePath: join(dir, `${name}.lock`), stale: 10_000, retries, realpath: false });
  } catch (e) {
    if (wait === 'try' && (e as NodeJS.ErrnoException).code === 'ELOCKED') return undefined;
    throw e;
  }
}
