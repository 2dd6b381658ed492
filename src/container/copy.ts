import { lstat, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { applyLayer, directoryEntries, packDirectory, packEntries, type LayerEntry } from '../archive/index.js';
import { resolveInRoot } from '../sandbox/rootpath.js';
import { isMounted, mountContainer, rootfsOf, unmountContainer, viewContainer } from '../snapshot/container.js';
import type { Store } from '../store/store.js';
import { ContainerStateError, CopyPathError } from './errors.js';
import { placeholderFilter } from './placeholders.js';
import { readState, withContainerLock, type Container, layerOf } from './record.js';

// Files in and out of a container: `export` (the whole flattened filesystem as a tar) and `cp` in both
// directions, with docker cp's rules for what lands where. Paths inside the container are confined to
// its root: ".." that climbs above it is refused, symlinks are followed inside it (never on the host),
// and everything written goes through the layer applier, which confines what it writes likewise.

/** The container's filesystem as one tar (docker container export), streamed to `out`. */
export async function exportContainer(store: Store, c: Container, out: Writable): Promise<void> {
  const state = await readState(c.dir);
  const view = await viewContainer(store, layerOf(c));
  try {
    const exclude = placeholderFilter(view.path, state.status === 'running' ? state.placeholders : undefined);
    await pipeline(packDirectory(view.path, { exclude }), out);
  } finally {
    await view.release();
  }
}

/** A container path made absolute and clean; "/." at the end means "the directory's contents". */
export interface ContainerPath {
  path: string;
  contents: boolean;
}

export function containerPath(p: string): ContainerPath {
  if (p === '') throw new CopyPathError('empty path in the container');
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length === 0) throw new CopyPathError(`"${p}" leads outside the container's root`);
      parts.pop();
    } else parts.push(seg);
  }
  return { path: '/' + parts.join('/'), contents: /\/\.$/.test(p) || p === '.' };
}

/** Entries for `source` (a host path) named `name` in the tar, or its contents when `name` is ''. */
async function* entriesOf(source: string, name: string, owner?: { uid: number; gid: number }): AsyncGenerator<LayerEntry> {
  const st = await lstat(source);
  const own = (e: LayerEntry): LayerEntry => (owner ? { ...e, ...owner } : e);
  const prefix = (p: string) => (name ? `${name}/${p}` : p);
  const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
  if (st.isDirectory()) {
    if (name) yield own({ ...base, path: name, type: 'directory' });
    for await (const e of directoryEntries(source)) {
      yield own({ ...e, path: prefix(e.path), ...(e.type === 'hardlink' ? { linkname: prefix(e.linkname!) } : {}) });
    }
  } else if (st.isSymbolicLink()) yield own({ ...base, path: name || path.basename(source), type: 'symlink', linkname: await readlink(source) });
  else if (st.isFile()) yield own({ ...base, path: name || path.basename(source), type: 'file', sourcePath: source, size: st.size });
  else throw new CopyPathError(`${source}: only files, directories and symlinks can be copied`);
}

interface Resolved {
  /** Host path of the entry (through the mounted or viewed root). */
  host: string;
  /** Clean container path. */
  path: string;
}

/** `p` inside `root`: parent directories resolved inside the root; the last component too when `follow`. */
async function resolveIn(root: string, p: ContainerPath, follow: boolean): Promise<Resolved> {
  if (p.path === '/') return { host: root, path: '/' };
  const parent = await resolveInRoot(root, path.posix.dirname(p.path));
  const leaf = path.posix.basename(p.path);
  let parts = [...parent, leaf];
  if (follow || p.contents) parts = await resolveInRoot(root, '/' + parts.join('/'));
  return { host: path.join(root, ...parts), path: p.path };
}

/**
 * `kiln cp CONTAINER:SRC DEST`: DEST '-' writes a tar to `stdout`; otherwise as docker cp: into DEST
 * when it is a directory, as DEST when it does not exist, over DEST when both are files.
 */
export async function copyFromContainer(store: Store, c: Container, src: string, dest: string, stdout: Writable, opts: { followLink: boolean }): Promise<void> {
  const from = containerPath(src);
  const view = await viewContainer(store, layerOf(c));
  try {
    const resolved = await resolveIn(view.path, from, opts.followLink);
    const st = await lstat(resolved.host).catch(() => undefined);
    if (!st) throw new CopyPathError(`Could not find the file ${from.path} in container ${c.record.name}`);
    if (from.contents && !st.isDirectory()) throw new CopyPathError(`${src}: not a directory`);
    const name = from.path === '/' ? '' : path.posix.basename(from.path);
    if (dest === '-') {
      await pipeline(packEntries(entriesOf(resolved.host, from.contents ? '' : name || '.')), stdout);
      return;
    }
    const target = await hostTarget(dest, st.isDirectory(), from.contents ? '' : name);
    await applyLayer(packEntries(entriesOf(resolved.host, target.name)), target.dir, { whiteouts: 'delete', sameOwner: false });
  } finally {
    await view.release();
  }
}

/** Where a copy lands on the host: the directory to apply into and the name to give the copy there ('' = contents). */
async function hostTarget(dest: string, sourceIsDir: boolean, name: string): Promise<{ dir: string; name: string }> {
  const st = await stat(dest).catch(() => undefined);
  if (st?.isDirectory()) return { dir: dest, name };
  if (st) {
    if (sourceIsDir) throw new CopyPathError(`cannot copy a directory to a file: ${dest}`);
    return { dir: path.dirname(path.resolve(dest)), name: path.basename(dest) };
  }
  if (dest.endsWith('/') && !sourceIsDir) throw new CopyPathError(`destination directory ${dest} does not exist`);
  const parent = await stat(path.dirname(path.resolve(dest))).catch(() => undefined);
  if (!parent?.isDirectory()) throw new CopyPathError(`destination directory ${path.dirname(dest)} does not exist`);
  return { dir: path.dirname(path.resolve(dest)), name: path.basename(dest) };
}

/**
 * The container's filesystem, writable, for `fn`: the running container's own mount when this process
 * can see it, else the container mounted for the time of `fn` (it must not start meanwhile).
 */
async function withWritableRoot<T>(store: Store, c: Container, fn: (root: string) => Promise<T>): Promise<T> {
  const state = await readState(c.dir);
  if (state.status === 'running') {
    if (!isMounted(rootfsOf(layerOf(c)))) throw new ContainerStateError(`cannot copy into running container ${c.record.name}: its filesystem is mounted in another namespace (rootless); stop it first`);
    return fn(rootfsOf(layerOf(c)));
  }
  return withContainerLock(store, c.record.id, async () => {
    if ((await readState(c.dir)).status === 'running') throw new ContainerStateError(`container ${c.record.name} started meanwhile`);
    const root = await mountContainer(store, layerOf(c));
    try {
      return await fn(root);
    } finally {
      await unmountContainer(layerOf(c));
    }
  });
}

/**
 * `kiln cp SRC CONTAINER:DEST`: SRC '-' reads a tar from `stdin` and unpacks it into DEST (a directory).
 * Copied files belong to root in the container unless `archive` keeps their owners (docker cp -a).
 */
export async function copyToContainer(store: Store, c: Container, src: string, dest: string, stdin: Readable, opts: { archive: boolean }): Promise<void> {
  const to = containerPath(dest);
  let source: { path: string; isDir: boolean; contents: boolean } | undefined;
  if (src !== '-') {
    const st = await lstat(src).catch(() => undefined);
    if (!st) throw new CopyPathError(`no such file or directory: ${src}`);
    source = { path: src, isDir: st.isDirectory(), contents: /\/\.$/.test(src) };
  }
  const owner = opts.archive ? undefined : { uid: 0, gid: 0 };
  await withWritableRoot(store, c, async (root) => {
    const target = await resolveIn(root, to, true);
    const st = await lstat(target.host).catch(() => undefined);
    if (!source) {
      if (!st?.isDirectory()) throw new CopyPathError(`destination "${to.path}" must be a directory when the source is a tar on stdin`);
      await applyLayer(stdin, target.host, { whiteouts: 'delete', sameOwner: true });
      return;
    }
    let dir: string;
    let name: string;
    if (st?.isDirectory()) {
      dir = target.host;
      name = source.contents ? '' : path.basename(path.resolve(source.path));
    } else {
      if (st && source.isDir) throw new CopyPathError(`cannot copy a directory to a file: ${to.path}`);
      if (!st && dest.endsWith('/')) throw new CopyPathError(`destination directory ${to.path} does not exist in the container`);
      dir = path.dirname(target.host);
      const parent = await lstat(dir).catch(() => undefined);
      if (!parent?.isDirectory()) throw new CopyPathError(`destination directory ${path.posix.dirname(to.path)} does not exist in the container`);
      name = path.basename(target.host);
    }
    await applyLayer(packEntries(entriesOf(source.path, name, owner)), dir, { whiteouts: 'delete', sameOwner: true });
  });
}
