// What one layer does to the files of the layers below it: which paths it adds, changes and
// removes (OCI image-spec layer.md, "Changesets": additions and modifications are entries, removals
// are whiteouts, and an opaque whiteout empties a directory of what lower layers put there).
// `kiln analyze` and the registry's layer file tree (registry/server/layer-tree.ts) both apply
// layers through here, so they count alike.

import { isWithin, type LayerEntry } from './layers.js';

export interface LayerChange {
  path: string;
  kind: 'added' | 'changed' | 'removed';
  dir: boolean;
  size: number;
}

/** A path as the layers applied so far left it. */
export interface StackedPath {
  size: number;
  dir: boolean;
  /** The layer that last wrote it. */
  layer: number;
}

export interface AppliedChanges {
  /** Files (not directories) the layer adds, rewrites and removes. */
  added: number;
  changed: number;
  removed: number;
  /** Bytes of file content in the layer. */
  size: number;
  changes: LayerChange[];
}

/** Apply layer `index`'s entries to `stacked` (the paths of the layers below it, updated in place). */
export function applyLayerEntries(stacked: Map<string, StackedPath>, entries: readonly LayerEntry[], index: number): AppliedChanges {
  let added = 0;
  let changed = 0;
  let removed = 0;
  let size = 0;
  const changes: LayerChange[] = [];
  for (const e of entries) {
    if (e.whiteout === 'file') {
      const was = stacked.get(e.path);
      if (was) changes.push({ path: e.path, kind: 'removed', dir: was.dir, size: 0 });
      for (const p of [...stacked.keys()]) {
        if (isWithin(p, e.path)) {
          if (!stacked.get(p)!.dir) removed++;
          stacked.delete(p);
        }
      }
      continue;
    }
    if (e.whiteout === 'opaque') {
      for (const [p, s] of [...stacked]) {
        if (p !== e.path && isWithin(p, e.path) && s.layer < index) {
          if (!s.dir) removed++;
          changes.push({ path: p, kind: 'removed', dir: s.dir, size: 0 });
          stacked.delete(p);
        }
      }
      continue;
    }
    size += e.size;
    const dir = e.type === 'directory';
    const before = stacked.get(e.path);
    if (!dir) {
      if (before && before.layer < index) changed++;
      else if (!before) added++;
    }
    changes.push({ path: e.path, kind: before ? 'changed' : 'added', dir, size: e.size });
    stacked.set(e.path, { size: e.size, dir, layer: index });
  }
  return { added, changed, removed, size, changes };
}
