import { lstatSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { readXattr } from '../archive/xattr.js';
import { resolveInRoot } from '../sandbox/rootpath.js';

// Mount points the sandbox creates in a container's filesystem while it runs. The sandbox removes
// them when the run ends (sandbox/mountpoints.ts); while the container runs they sit in its upper
// directory, and a run that was killed may leave them behind. They are not the container's changes
// (docker keeps /etc/hosts and friends in a separate init layer), so diff, commit and export leave
// them out as long as they are what the sandbox made: an empty file or a directory holding nothing
// else of the container's.

/** The destinations every sandbox mounts on, besides the run's own mounts. */
export const standardMountpoints = ['/proc', '/dev', '/sys', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname'];

/** Paths (relative, parents first) among `destinations` and their parents that `rootfs` does not have. */
export async function missingMountpoints(rootfs: string, destinations: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const dest of destinations) {
    const parts = await resolveInRoot(rootfs, dest);
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (missing.includes(rel)) continue;
      if (!(await lstat(path.join(rootfs, rel)).catch(() => undefined))) missing.push(rel);
    }
  }
  return missing;
}

/** Whether an upper directory is opaque: it replaced the image's directory instead of merging with it. */
export function isOpaque(p: string): boolean {
  for (const name of ['trusted.overlay.opaque', 'user.overlay.opaque']) {
    try {
      if (readXattr(p, name)?.toString() === 'y') return true;
    } catch {
      // no xattr support: not opaque
    }
  }
  return false;
}

/**
 * A predicate for paths of an upper directory `root` that are the sandbox's, not the container's:
 * - a listed placeholder that is still an empty file, or a directory holding only such paths;
 * - with `image` (the image's filesystem), a directory the overlay copied up only to hold
 *   placeholders (/etc for /etc/hosts): not opaque, owner and mode as in the image, nothing else in it.
 */
export function placeholderFilter(root: string, placeholders: readonly string[] | undefined, image?: string): (rel: string) => boolean {
  const listed = new Set(placeholders ?? []);
  const parents = new Set<string>();
  if (image !== undefined) {
    for (const p of listed) {
      for (let d = path.posix.dirname(p); d !== '.' && !listed.has(d); d = path.posix.dirname(d)) parents.add(d);
    }
  }
  const memo = new Map<string, boolean>();
  const onlyIgnored = (rel: string) => readdirSync(path.join(root, rel)).every((n) => check(`${rel}/${n}`));
  const check = (rel: string): boolean => {
    if (!listed.has(rel) && !parents.has(rel)) return false;
    let known = memo.get(rel);
    if (known !== undefined) return known;
    known = false;
    try {
      const st = lstatSync(path.join(root, rel));
      if (listed.has(rel)) {
        if (st.isFile()) known = st.size === 0;
        else if (st.isDirectory()) known = onlyIgnored(rel);
      } else if (st.isDirectory() && !isOpaque(path.join(root, rel))) {
        const before = lstatSync(path.join(image!, rel));
        known = before.isDirectory() && before.mode === st.mode && before.uid === st.uid && before.gid === st.gid && onlyIgnored(rel);
      }
    } catch {
      known = false;
    }
    memo.set(rel, known);
    return known;
  };
  return check;
}

/**
 * Delete from an unmounted upper directory what the sandbox left there: placeholders of a killed run,
 * and directories copied up only to hold them (with `image`). Children first; anything with the
 * container's own content stays.
 */
export function removePlaceholders(root: string, placeholders: readonly string[] | undefined, image?: string): void {
  const ignored = placeholderFilter(root, placeholders, image);
  const candidates = new Set<string>();
  for (const p of placeholders ?? []) for (let d = p; d !== '.'; d = path.posix.dirname(d)) candidates.add(d);
  const doomed = [...candidates].filter(ignored);
  for (const rel of doomed.sort((a, b) => b.split('/').length - a.split('/').length)) {
    try {
      const st = lstatSync(path.join(root, rel));
      if (st.isDirectory()) rmdirSync(path.join(root, rel));
      else unlinkSync(path.join(root, rel));
    } catch {
      // already gone, or not empty after all
    }
  }
}

/** Whether any of the placeholders or their parents is in `root` (so cleaning it needs a look at the image). */
export function hasPlaceholders(root: string, placeholders: readonly string[] | undefined): boolean {
  return (placeholders ?? []).some((p) => {
    for (let d = p; d !== '.'; d = path.posix.dirname(d)) {
      try {
        lstatSync(path.join(root, d));
        return true;
      } catch {
        // not there
      }
    }
    return false;
  });
}
