import { chown, lstat, mkdir, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SandboxFailed } from './errors.js';
import type { Mount, ProcessUser } from './executor.js';
import { isMissing, resolveInRoot } from './rootpath.js';

// Mount points in a rootfs that is about to become an image layer. Left to itself a runtime creates
// /proc, /etc/hosts, … inside the rootfs (an overlay upper directory) and they would end up in the
// layer. So kiln creates the missing ones itself before the run — knowing exactly what it created —
// and removes them again afterwards, unless the process put something of its own inside (a created
// /etc that now holds an /etc/passwd written by the process belongs to the layer).
//
// Destinations are resolved inside the rootfs (symlinks never lead out of it) and the resolved path is
// what the runtime mounts on, so what is created here is exactly where the mount lands.

export type MountpointKind = 'file' | 'dir';

export interface MountTarget {
  destination: string;
  kind: MountpointKind;
}

export interface PreparedMountpoints {
  /** Per target, the destination to hand to the runtime: absolute, symlinks resolved inside the rootfs. */
  destinations: string[];
  /** Paths created in the rootfs, relative, parents before children. */
  created: string[];
}

export async function prepareMountpoints(rootfs: string, targets: MountTarget[]): Promise<PreparedMountpoints> {
  const destinations: string[] = [];
  const created: string[] = [];
  try {
    for (const target of targets) {
      const lexical = path.posix.normalize(path.posix.join('/', target.destination));
      // Nested in an earlier mount (/dev/pts in the /dev tmpfs, /cache/x in a cache mount): not in the rootfs.
      if (destinations.some((d) => isWithin(lexical, d))) {
        destinations.push(lexical);
        continue;
      }
      const parts = await resolveInRoot(rootfs, lexical);
      const resolved = '/' + parts.join('/');
      if (parts.length > 0 && !destinations.some((d) => isWithin(resolved, d))) {
        await createMissing(rootfs, parts, target, created);
      }
      destinations.push(resolved);
    }
  } catch (err) {
    await removeMountpoints(rootfs, created);
    throw err;
  }
  return { destinations, created };
}

async function createMissing(rootfs: string, parts: string[], target: MountTarget, created: string[]): Promise<void> {
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    const onHost = path.join(rootfs, rel);
    const last = i === parts.length;
    const st = await lstatOrUndefined(onHost);
    if (st) {
      if (!last && !st.isDirectory()) throw new SandboxFailed(`cannot mount on ${target.destination}: /${rel} in the rootfs is not a directory`);
      continue;
    }
    if (last && target.kind === 'file') await writeFile(onHost, '', { flag: 'wx', mode: 0o644 });
    else await mkdir(onHost, { mode: 0o755 });
    created.push(rel);
  }
}

/**
 * Removes created mount points that are still what kiln made (an empty file, an empty directory),
 * children first. Returns the removed ones, parents first; anything the process filled is kept.
 */
export async function removeMountpoints(rootfs: string, created: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const rel of [...created].reverse()) {
    const onHost = path.join(rootfs, rel);
    const st = await lstatOrUndefined(onHost);
    if (!st) continue;
    try {
      if (st.isDirectory()) await rmdir(onHost);
      else if (st.isFile() && st.size === 0) await unlink(onHost);
      else continue;
      removed.unshift(rel);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EBUSY') throw err;
    }
  }
  return removed;
}

/** Whether a mount needs a file or a directory to land on: a bind of a non-directory needs a file. */
export async function mountpointKind(mount: Mount): Promise<MountpointKind> {
  if (!isBind(mount)) return 'dir';
  try {
    return (await stat(mount.source)).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'dir';
  }
}

export function isBind(mount: Mount): boolean {
  return mount.type === 'bind' || mount.options.includes('bind') || mount.options.includes('rbind');
}

/**
 * Creates the working directory when the rootfs lacks it, owned by the process user — as BuildKit
 * does for RUN, so this is layer content, not a mount point. Skipped when cwd lies in a mount.
 */
export async function ensureWorkingDir(rootfs: string, cwd: string, user: ProcessUser, mountDestinations: string[]): Promise<void> {
  const lexical = path.posix.normalize(path.posix.join('/', cwd));
  if (mountDestinations.some((d) => isWithin(lexical, d))) return;
  const parts = await resolveInRoot(rootfs, lexical);
  if (mountDestinations.some((d) => isWithin('/' + parts.join('/'), d))) return;
  for (let i = 1; i <= parts.length; i++) {
    const onHost = path.join(rootfs, ...parts.slice(0, i));
    if (await lstatOrUndefined(onHost)) continue;
    await mkdir(onHost, { mode: 0o755 });
    await chown(onHost, user.uid, user.gid);
  }
}

function isWithin(p: string, base: string): boolean {
  return p === base || p.startsWith(base === '/' ? '/' : base + '/');
}

async function lstatOrUndefined(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}
