import { lstat, readdir, rmdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { readXattr } from '../archive/xattr.js';
import { opaqueXattr } from '../archive/whiteout.js';

// Directories that overlayfs copied up without a change of their own. Creating a name in a lower
// directory copies that directory up into the upper one, and so does removing the name again: a
// RUN that changes nothing still leaves /etc in the upper directory, copied up when the sandbox put
// its /etc/hosts mount point there (and took it away), with nothing but a new mtime. Packed as it
// is, that upper directory is a layer holding only etc/.
//
// BuildKit's overlay differ skips such a directory: an upper directory whose lower counterpart is a
// directory with the same mode, owner, group and device number (and the same security.capability)
// is "not modified" whatever its times (util/overlay/overlay_linux.go: Changes, "Avoid including
// directory that hasn't been modified", sameDirent and compareSysStat compare no mtime for
// directories). kiln removes those of them that hold nothing else, deepest first, so that a RUN
// which changed nothing leaves an empty upper directory and no layer. A directory with real changes
// below it stays: the layer needs it as the parent of what it holds.

/**
 * Removes from `upper` each directory that holds only such directories (recursively) and matches
 * the directory at the same path in `lowers` (top first) as BuildKit's differ does. Returns how many
 * entries `upper` holds at its top afterwards.
 */
export async function pruneUnchangedDirs(upper: string, lowers: readonly string[], xattrNamespace: 'trusted' | 'user'): Promise<number> {
  const opaque = opaqueXattr(xattrNamespace);
  /** Whether `rel` (a directory of the upper dir) was removed because nothing in it changed. */
  async function prune(rel: string, st: Stats): Promise<boolean> {
    const abs = join(upper, rel);
    let kept = 0;
    for (const name of await readdir(abs)) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const cst = await lstat(join(upper, child));
      if (!cst.isDirectory() || !(await prune(child, cst))) kept++;
    }
    if (rel === '' || kept > 0 || readXattr(abs, opaque)?.toString() === 'y') return false;
    const base = await lowerEntry(lowers, rel, opaque);
    if (!base || !base.st.isDirectory() || !sameDirectory(st, base.st) || !sameCapability(abs, base.path)) return false;
    await rmdir(abs);
    return true;
  }
  await prune('', await lstat(upper));
  return (await readdir(upper)).length;
}

function sameDirectory(a: Stats, b: Stats): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.rdev === b.rdev;
}

function sameCapability(a: string, b: string): boolean {
  const ca = readXattr(a, 'security.capability');
  const cb = readXattr(b, 'security.capability');
  return ca === null ? cb === null : cb !== null && ca.equals(cb);
}

/**
 * What the lower stack shows at `rel`, as overlayfs looks it up: from the top layer down, stopping
 * at a whiteout (a 0/0 character device), at a non-directory and below an opaque directory, each
 * also on the way to `rel`.
 */
async function lowerEntry(lowers: readonly string[], rel: string, opaque: string): Promise<{ path: string; st: Stats } | undefined> {
  const parts = rel.split('/');
  for (const layer of lowers) {
    let stop = false;
    for (let i = 1; i <= parts.length; i++) {
      const path = join(layer, ...parts.slice(0, i));
      const st = await lstat(path).catch(() => undefined);
      if (!st) break; // this layer has nothing here: look below it
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // whiteout
      if (i === parts.length) return { path, st };
      if (!st.isDirectory()) return undefined;
      if (readXattr(path, opaque)?.toString() === 'y') stop = true; // nothing below this layer shows through
    }
    if (stop) return undefined;
  }
  return undefined;
}
