// RUN --mount=type=cache directories: kept in the store across builds and processes, never part of a
// layer or a cache key. BuildKit's sharing modes (frontend reference, "RUN --mount=type=cache"):
// shared users use the directory at once; locked users wait for each other; a private user gets
// the directory when no other private or locked user has it, else a fresh directory of its own that
// is thrown away after the step.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { MountSharing } from '../dockerfile/mounts.js';
import { copyPath } from '../snapshot/cp.js';
import { acquireStoreLock } from '../store/lock.js';

export interface CacheMountSpec {
  /** The cache id (default: the target, as BuildKit). */
  id: string;
  sharing: MountSharing;
  /** Owner and mode of the directory when it is created (BuildKit: uid/gid 0, mode 0755). */
  uid?: number;
  gid?: number;
  mode?: number;
}

export interface OpenedCacheMount {
  dir: string;
  release: () => Promise<void>;
}

/** The directory of cache id `id` in the store: the one other tools (cache export) look for. */
export function cacheMountDir(storeRoot: string, id: string): string {
  return join(storeRoot, 'cachemounts', createHash('sha256').update(id).digest('hex').slice(0, 32));
}

/**
 * Open the cache directory for one RUN. `seed`, when given, is the directory whose contents a new
 * cache starts with (`from=` and `source=`); an existing cache keeps its contents.
 */
export async function openCacheMount(storeRoot: string, spec: CacheMountSpec, seed?: string): Promise<OpenedCacheMount> {
  const shared = cacheMountDir(storeRoot, spec.id);
  await createCacheDir(shared, spec, seed);
  if (spec.sharing === 'shared') return { dir: shared, release: async () => {} };
  const lockName = `cachemount-${basename(shared)}`;
  const held = await acquireStoreLock(storeRoot, lockName, spec.sharing === 'locked' ? 'forever' : 'try');
  if (held) return { dir: shared, release: held };
  // private, and another private or locked user has the directory: one of its own, for this step.
  const privateRoot = join(storeRoot, 'cachemounts', 'private');
  await mkdir(privateRoot, { recursive: true });
  const own = join(await mkdtemp(join(privateRoot, `${basename(shared)}-`)), 'cache');
  await createCacheDir(own, spec, seed);
  return { dir: own, release: () => rm(join(own, '..'), { recursive: true, force: true }) };
}

/** Throw away the contents of cache id `id`: the next open makes it anew. Renamed first, so a reader never sees it half removed. */
export async function emptyCacheMount(storeRoot: string, id: string): Promise<void> {
  const dir = cacheMountDir(storeRoot, id);
  if (!existsSync(dir)) return;
  const gone = await mkdtemp(join(dir, '..', `.old-${basename(dir)}-`));
  await rename(dir, join(gone, 'dir'));
  await rm(gone, { recursive: true, force: true });
}

/** Make `dir` complete or not at all: filled beside it, then renamed into place. */
async function createCacheDir(dir: string, spec: CacheMountSpec, seed: string | undefined): Promise<void> {
  if (existsSync(dir)) return;
  const parent = join(dir, '..');
  await mkdir(parent, { recursive: true });
  const tmp = await mkdtemp(join(parent, `.new-${basename(dir)}-`));
  try {
    const fresh = join(tmp, 'dir');
    if (seed) await copyPath(seed, fresh);
    else await mkdir(fresh);
    await chown(fresh, spec.uid ?? 0, spec.gid ?? 0);
    await chmod(fresh, spec.mode ?? 0o755);
    await rename(fresh, dir).catch((e: NodeJS.ErrnoException) => {
      // Someone else made it first (or it was there already): theirs stays.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
