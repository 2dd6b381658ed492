import lockfile from 'proper-lockfile';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Serialise read-modify-write cycles of the store's index between processes. proper-lockfile uses an
 * atomic mkdir and refreshes the lock's mtime while held, so a lock left by a killed process goes stale
 * and is taken over instead of blocking the store forever.
 */
export async function withStoreLock<T>(root: string, name: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(root, 'locks');
  await mkdir(dir, { recursive: true });
  const release = await lockfile.lock(dir, {
    lockfilePath: join(dir, `${name}.lock`),
    stale: 10_000,
    retries: { retries: 600, minTimeout: 10, maxTimeout: 100, factor: 1.3 },
    realpath: false,
  });
  try {
    return await fn();
  } finally {
    await release();
  }
}
