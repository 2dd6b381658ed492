import { lstat, readlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { LayerEntry, PackEntriesOptions } from '../archive/index.js';

/** A layer of an image as the snapshotter needs it: the blob to extract and the diffID that names it. */
export interface LayerRef {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
}

/** A writable root filesystem on top of layers; commit turns the changes into a new layer blob. */
export interface ActiveSnapshot {
  readonly rootfs: string;
  /**
   * Stop writing and capture the changes as a layer in the content store. `exclude` lists paths
   * (relative, no leading slash) that exist only as mount points and must not be committed.
   * Returns undefined when nothing changed. The snapshot is released afterwards.
   */
  commit(opts: CommitOptions): Promise<LayerRef | undefined>;
  /** Throw the changes away. Safe to call twice and after commit. */
  release(): Promise<void>;
}

export interface CommitOptions {
  exclude: string[];
  /** Clamp file mtimes to this (SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
}

/** A read-only view of layers, for COPY --from and bind mounts. */
export interface View {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Makes root filesystems out of layers and layers out of changes. Implementations: overlayfs (layers
 * extracted once each and stacked as lower dirs) and a portable copy-and-compare fallback.
 */
export interface Snapshotter {
  readonly name: string;
  prepare(layers: readonly LayerRef[], id: string): Promise<ActiveSnapshot>;
  view(layers: readonly LayerRef[], id: string): Promise<View>;
  /** Metadata of a path in the merged view of `layers`, without following a final symlink. */
  lookup(layers: readonly LayerRef[], path: string): Promise<PathInfo | undefined>;
  /**
   * Extract a layer while it is being written (`tar`: its uncompressed tar stream), so that a later
   * prepare() finds it ready instead of decompressing and extracting the stored blob. Resolves to the
   * diffID that was extracted, or undefined when extraction failed (the blob is then extracted on
   * first use as usual); never rejects, and keeps reading `tar` to its end either way. Optional:
   * snapshotters without a per-layer form have nothing to keep.
   */
  extractWhileWriting?(tar: Readable): Promise<string | undefined>;
  /**
   * The same for a big layer known as its entries (a COPY's), made apart from the writing on a thread
   * of its own, so the two run on two cores. `diffId` is what the writer's packing of the entries
   * arrives at (undefined if it failed); the extraction is named by it only if it is sure to hold the
   * same files. Resolves like extractWhileWriting.
   */
  extractEntries?(entries: LayerEntry[], opts: PackEntriesOptions, diffId: Promise<string | undefined>): Promise<string | undefined>;
}

export interface PathInfo {
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  linkTarget?: string;
}

/** PathInfo of a path on disk, without following a final symlink; undefined when it does not exist. */
export async function pathInfo(p: string): Promise<PathInfo | undefined> {
  const st = await lstat(p).catch(() => undefined);
  if (!st) return undefined;
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
  return {
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtimeMs: st.mtimeMs,
    ...(type === 'symlink' ? { linkTarget: await readlink(p) } : {}),
  };
}

export type OpenBlob = (digest: string) => Readable;
