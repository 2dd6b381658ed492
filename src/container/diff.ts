import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { upperOf, viewImage } from '../snapshot/container.js';
import type { Store } from '../store/store.js';
import { isOpaque, placeholderFilter } from './placeholders.js';
import { readState, type Container, layerOf } from './record.js';

// `docker container diff`: what the container changed, read off its overlay upper directory and
// compared with the image it came from. docker (daemon/graphdriver overlay2, pkg/archive changes.go)
// walks the upper directory in lexical order and reports
//   A  a path the image does not have,
//   C  a path the image has (a directory is there because something below it changed, so every
//      directory in the upper directory that the image also has shows as C),
//   D  a whiteout: the image's path was deleted (nothing below it is listed).
// An opaque directory (deleted and made again) is reported as changed, with the image's entries it
// no longer has as deletions — containerd's answer, where docker's overlay2 walk says D and then A.

export type ChangeKind = 'A' | 'C' | 'D';

export interface Change {
  kind: ChangeKind;
  /** Absolute path inside the container. */
  path: string;
}

/** Go's sort.Strings order (bytes), which docker's walk uses; JS's order differs only past U+FFFF. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * The changes in `upper` against the image mounted at `image`, in docker's order. `ignore(rel)` names
 * paths that are not the container's own (mount points the sandbox made); they and everything below
 * them are left out.
 */
export function containerChanges(upper: string, image: string, ignore: (rel: string) => boolean = () => false): Change[] {
  const out: Change[] = [];
  const walk = (rel: string, imageHidden: boolean) => {
    const dir = rel ? `${upper}/${rel}` : upper;
    const names = readdirSync(dir).sort(byteOrder);
    // Under an opaque directory the image's entries are gone unless the upper directory has them again.
    const gone = imageHidden ? (readdirOrEmpty(rel ? `${image}/${rel}` : image).filter((n) => !names.includes(n))) : [];
    for (const name of [...names, ...gone].sort(byteOrder)) {
      const child = rel ? `${rel}/${name}` : name;
      if (ignore(child)) continue;
      const path = `/${child}`;
      if (gone.includes(name)) {
        out.push({ kind: 'D', path });
        continue;
      }
      const st = lstatSync(`${upper}/${child}`);
      const before = lstatOrUndefined(`${image}/${child}`);
      if (isWhiteout(st)) {
        if (before) out.push({ kind: 'D', path });
        continue;
      }
      out.push({ kind: before ? 'C' : 'A', path });
      if (st.isDirectory()) {
        const opaque = before !== undefined && before.isDirectory() && isOpaque(`${upper}/${child}`);
        walk(child, opaque || imageHidden);
      }
    }
  };
  walk('', false);
  return out;
}

function readdirOrEmpty(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function formatChange(c: Change): string {
  return `${c.kind} ${c.path}`;
}

/** `kiln diff`: the container's changes, leaving out the mount points a running sandbox made. */
export async function changesOf(store: Store, c: Container): Promise<Change[]> {
  const state = await readState(c.dir);
  const upper = upperOf(layerOf(c));
  const view = await viewImage(store, layerOf(c));
  try {
    return containerChanges(upper, view.path, placeholderFilter(upper, state.placeholders, view.path));
  } finally {
    await view.release();
  }
}
