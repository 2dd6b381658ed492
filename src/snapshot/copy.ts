import { mkdir, mkdtemp, rm, lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { applyLayer, packEntries, writeLayer, type LayerEntry } from '../archive/index.js';
import { MediaType } from '../oci/mediatypes.js';
import { encodedOf, chainId } from '../oci/digest.js';
import type { Store } from '../store/store.js';
import type { ActiveSnapshot, CommitOptions, LayerRef, PathInfo, Snapshotter, View } from './snapshotter.js';
import { copyTree } from './cp.js';
import { pathInfo } from './snapshotter.js';

const run = promisify(execFile);

/** What the compare step remembers of each path: enough to see any change to content or metadata. */
interface Seen {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  link?: string;
}

/**
 * The portable fallback for machines where overlay mounts are not allowed: a root filesystem is a
 * full copy of the flattened layers (kept per chain of diffIDs and copied with reflinks where the
 * filesystem has them), and commit compares the tree with what it was to find the changes.
 */
export class CopySnapshotter implements Snapshotter {
  readonly name = 'copy';
  private readonly chainsDir: string;
  private readonly tmpDir: string;

  constructor(private readonly store: Store) {
    this.chainsDir = join(store.root, 'snapshots', 'chains');
    this.tmpDir = join(store.root, 'snapshots', 'tmp');
  }

  /** The flattened tree of `layers`, made once per chain and never modified afterwards. */
  private async flattened(layers: readonly LayerRef[]): Promise<string> {
    await mkdir(this.chainsDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    if (layers.length === 0) {
      const empty = join(this.chainsDir, 'empty');
      await mkdir(empty, { recursive: true });
      return empty;
    }
    const id = chainName(layers);
    const final = join(this.chainsDir, id);
    if (await exists(final)) return final;
    const tmp = await mkdtemp(join(this.tmpDir, 'chain-'));
    try {
      const parent = await this.flattened(layers.slice(0, -1));
      await copyTree(parent, tmp);
      const top = layers[layers.length - 1]!;
      await applyLayer(this.store.content.open(top.digest), tmp, { whiteouts: 'delete' });
      await run('mv', ['-T', tmp, final]).catch(async () => rm(tmp, { recursive: true, force: true }));
      return final;
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  async prepare(layers: readonly LayerRef[], id: string): Promise<ActiveSnapshot> {
    const base = await this.flattened(layers);
    await mkdir(this.tmpDir, { recursive: true });
    const dir = await mkdtemp(join(this.tmpDir, `${id.replace(/[^\w.-]/g, '_').slice(0, 40)}-`));
    const rootfs = join(dir, 'rootfs');
    await copyTree(base, rootfs);
    const before = await scan(rootfs);
    return new CopyActive(this.store, dir, rootfs, before);
  }

  async view(layers: readonly LayerRef[]): Promise<View> {
    return { path: await this.flattened(layers), release: async () => {} };
  }

  async lookup(layers: readonly LayerRef[], path: string): Promise<PathInfo | undefined> {
    return pathInfo(join(await this.flattened(layers), path));
  }
}

class CopyActive implements ActiveSnapshot {
  private released = false;
  constructor(
    private readonly store: Store,
    private readonly dir: string,
    readonly rootfs: string,
    private readonly before: Map<string, Seen>,
  ) {}

  async commit(opts: CommitOptions): Promise<LayerRef | undefined> {
    try {
      const after = await scan(this.rootfs);
      const skip = new Set(opts.exclude);
      const entries: LayerEntry[] = [];
      // Directories whose only change is their times (a name created and removed again inside):
      // kept only as the parent of something the layer holds, as the overlay snapshotter does
      // (src/snapshot/unchanged.ts says why, after BuildKit's differ).
      const timesOnly: string[] = [];
      for (const [path, s] of after) {
        if (skip.has(path)) continue;
        const old = this.before.get(path);
        if (old && same(old, s)) continue;
        if (old && old.type === 'directory' && s.type === 'directory' && old.mode === s.mode && old.uid === s.uid && old.gid === s.gid) timesOnly.push(path);
        else entries.push(await entryFor(this.rootfs, path, s));
      }
      // OCI image-spec layer.md: a deleted path is a whiteout file beside where it was; nothing
      // below a deleted directory needs its own whiteout.
      const deleted = [...this.before.keys()].filter((p) => !after.has(p)).sort();
      const covered: string[] = [];
      for (const p of deleted) {
        if (covered.some((d) => p.startsWith(d + '/'))) continue;
        covered.push(p);
        const slash = p.lastIndexOf('/');
        const wh = slash < 0 ? `.wh.${p}` : `${p.slice(0, slash)}/.wh.${p.slice(slash + 1)}`;
        entries.push({ path: wh, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: '' });
      }
      for (const dir of timesOnly) {
        if (entries.some((e) => e.path.startsWith(dir + '/'))) entries.push(await entryFor(this.rootfs, dir, after.get(dir)!));
      }
      if (entries.length === 0) return undefined;
      entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      let stored: { digest: string } | undefined;
      const d = await writeLayer(packEntries(entries, { sourceDateEpoch: opts.sourceDateEpoch }), async (blob) => {
        stored = await this.store.content.put(blob);
      }, 'gzip');
      await this.store.setLayerInfo(stored!.digest, { diffId: d.diffId, size: d.uncompressedSize });
      return { digest: d.digest, size: d.size, diffId: d.diffId, mediaType: MediaType.OciLayerGzip };
    } finally {
      await this.release();
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await rm(this.dir, { recursive: true, force: true });
  }
}

function same(a: Seen, b: Seen): boolean {
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.link === b.link;
}

async function entryFor(root: string, path: string, s: Seen): Promise<LayerEntry> {
  const base = { path, mode: s.mode, uid: s.uid, gid: s.gid, mtime: Number(s.mtimeNs / 1_000_000_000n) };
  if (s.type === 'directory') return { ...base, type: 'directory' };
  if (s.type === 'symlink') return { ...base, type: 'symlink', linkname: s.link };
  return { ...base, type: 'file', sourcePath: join(root, path), size: s.size };
}

/** Every path under root (relative), with the metadata that reveals a change. */
async function scan(root: string): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const walk = async (rel: string) => {
    const names = await readdir(rel ? join(root, rel) : root);
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, p), { bigint: true });
      const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      if (type === 'other') continue;
      out.set(p, {
        type,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: Number(st.size),
        mtimeNs: st.mtimeNs,
        ctimeNs: st.ctimeNs,
        ...(type === 'symlink' ? { link: await readlink(join(root, p)) } : {}),
      });
      if (type === 'directory') await walk(p);
    }
  };
  await walk('');
  return out;
}

/** OCI image-spec config.md chain ID of the layers: names the flattened tree. */
function chainName(layers: readonly LayerRef[]): string {
  return encodedOf(chainId(layers.map((l) => l.diffId))!);
}

async function exists(p: string): Promise<boolean> {
  return !!(await lstat(p).catch(() => undefined));
}
