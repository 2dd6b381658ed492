import type { LayerChange, LayerReport } from '../inspect/index.js';

// The image's file tree as of one layer, for the layer explorer: the layers' changes (as the analysis
// computed them) applied in order up to that layer, with what that layer itself did marked. Files
// the layer removed stay in the tree, marked removed, with the size they had below it.

export type Mark = 'added' | 'changed' | 'removed';

export interface FileNode {
  name: string;
  path: string;
  dir: boolean;
  /** A file's bytes; a directory's is the sum of the files below it. */
  size: number;
  /** What the selected layer did here; a directory is changed when anything below it is marked. */
  mark?: Mark;
  /** Sorted by name; directories only. */
  children: FileNode[];
}

interface Present {
  dir: boolean;
  size: number;
}

/** The tree of the image as of layer `index` (0-based); layers must carry their `changes`. */
export function treeAt(layers: readonly LayerReport[], index: number): FileNode {
  return layerTrees(layers)(index);
}

/**
 * treeAt for one image, remembering the image's state below the last layer asked for: moving to the
 * next layer applies one layer, not all of them again.
 */
export function layerTrees(layers: readonly LayerReport[]): (index: number) => FileNode {
  let below = new Map<string, Present>();
  let applied = 0;
  return (index) => {
    if (index < applied) {
      below = new Map();
      applied = 0;
    }
    for (; applied < index; applied++) apply(below, layers[applied]!.changes ?? []);
    return treeOver(new Map(below), layers[index]?.changes ?? []);
  };
}

function treeOver(state: Map<string, Present>, changes: readonly LayerChange[]): FileNode {
  const marks = new Map<string, Mark>();
  // What the layer's removals hide: the paths and, for directories, everything below them.
  const removed = new Map<string, Present>();
  for (const p of removedBy(state, changes)) removed.set(p, state.get(p)!);
  apply(state, changes);
  for (const c of changes) if (c.kind !== 'removed') marks.set(c.path, c.kind);
  for (const [p, s] of removed) {
    // Removed, then written again by the same layer (an opaque directory): changed.
    if (state.has(p)) marks.set(p, 'changed');
    else {
      state.set(p, s);
      marks.set(p, 'removed');
    }
  }
  return build(state, marks);
}

/** Paths of `state` that the removals among `changes` delete: one pass, each path's ancestors looked up. */
function removedBy(state: Map<string, Present>, changes: readonly LayerChange[]): string[] {
  const gone = new Set(changes.filter((c) => c.kind === 'removed').map((c) => c.path));
  if (gone.size === 0) return [];
  // Only a removed directory has anything below it to look for.
  if (![...gone].some((p) => state.get(p)?.dir)) return [...gone].filter((p) => state.has(p));
  const hit: string[] = [];
  for (const p of state.keys()) {
    for (let q = p; ; ) {
      if (gone.has(q)) {
        hit.push(p);
        break;
      }
      const slash = q.lastIndexOf('/');
      if (slash <= 0) break;
      q = q.slice(0, slash);
    }
  }
  return hit;
}

/** A layer over the state: its removals first (an opaque directory keeps what the layer itself writes), then what it writes. */
function apply(state: Map<string, Present>, changes: readonly LayerChange[]): void {
  for (const p of removedBy(state, changes)) state.delete(p);
  for (const c of changes) if (c.kind !== 'removed') state.set(c.path, { dir: c.dir, size: c.dir ? 0 : c.size });
}

function build(state: Map<string, Present>, marks: Map<string, Mark>): FileNode {
  const root: FileNode = { name: '/', path: '/', dir: true, size: 0, children: [] };
  const dirs = new Map<string, FileNode>([['/', root]]);
  const dirOf = (path: string): FileNode => {
    const known = dirs.get(path);
    if (known) return known;
    // A parent no layer recorded (tar streams may leave directories out) is still a directory.
    const slash = path.lastIndexOf('/');
    const parent = dirOf(slash <= 0 ? '/' : path.slice(0, slash));
    const node: FileNode = { name: path.slice(slash + 1), path, dir: true, size: 0, children: [] };
    parent.children.push(node);
    dirs.set(path, node);
    return node;
  };
  for (const [path, s] of [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (path === '/') continue;
    if (s.dir) {
      dirOf(path);
      continue;
    }
    const slash = path.lastIndexOf('/');
    dirOf(slash <= 0 ? '/' : path.slice(0, slash)).children.push({ name: path.slice(slash + 1), path, dir: false, size: s.size, children: [] });
  }
  finish(root, marks);
  return root;
}

/** Sizes and marks of directories from what is below them; children sorted by name. */
function finish(node: FileNode, marks: Map<string, Mark>): void {
  const own = marks.get(node.path);
  if (own) node.mark = own;
  if (!node.dir) return;
  node.children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let size = 0;
  let touched = false;
  for (const c of node.children) {
    finish(c, marks);
    size += c.size;
    if (c.mark) touched = true;
  }
  node.size = size;
  if (!node.mark && touched) node.mark = 'changed';
}

export interface TreeRow {
  node: FileNode;
  /** Tree drawing before the name: "│   ├── ". */
  prefix: string;
  collapsed: boolean;
}

/**
 * The rows a tree shows: directories in `collapsed` without their contents; with `changedOnly`, only
 * what the layer marked (and the directories leading to it).
 */
export function visibleRows(root: FileNode, collapsed: ReadonlySet<string>, changedOnly: boolean): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (node: FileNode, indent: string) => {
    const kids = changedOnly ? node.children.filter((c) => c.mark) : node.children;
    kids.forEach((c, i) => {
      const last = i === kids.length - 1;
      const isCollapsed = c.dir && collapsed.has(c.path);
      rows.push({ node: c, prefix: indent + (last ? '└── ' : '├── '), collapsed: isCollapsed });
      if (c.dir && !isCollapsed) walk(c, indent + (last ? '    ' : '│   '));
    });
  };
  walk(root, '');
  return rows;
}
