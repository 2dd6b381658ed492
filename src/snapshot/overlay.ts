import { chmod, mkdir, mkdtemp, readFile, rename, rm, rmdir, lstat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { applyLayer, packDirectory, compress } from '../archive/index.js';
import { applyEntriesInWorker, materializeInWorker } from '../archive/apply-thread.js';
import { canMaterialize, sourcesUnchanged, type Donor } from '../archive/materialize.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { ApplyOptions, LayerEntry, PackEntriesOptions } from '../archive/index.js';
import { DigestingStream, encodedOf, sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Store } from '../store/store.js';
import { mount, unmount } from './mount.js';
import { lowerdirOption } from './lowerdir.js';
import { pruneUnchangedDirs } from './unchanged.js';
import { inUserNamespace } from '../sandbox/userns.js';
import { pathInfo } from './snapshotter.js';
import type { ActiveSnapshot, CommitOptions, LayerRef, PathInfo, Snapshotter, View } from './snapshotter.js';
import { byCodeUnits } from '../order.js';

/**
 * Overlayfs snapshots. Every layer is extracted once, alone, into snapshots/layers/<diffID> with its
 * whiteouts in overlay form (char 0/0 devices, opaque xattrs), and shared by every image and build
 * that uses it; a root filesystem is those directories stacked as lower dirs under a fresh upper dir,
 * and the upper dir after a RUN is exactly the new layer's changes.
 */
export class OverlaySnapshotter implements Snapshotter {
  readonly name = 'overlay';
  private readonly layersDir: string;
  private readonly tmpDir: string;
  private readonly emptyDir: string;
  /** What each materialized COPY extraction holds, by donorKey: the files a later one may link. */
  private readonly donorsDir: string;
  private extracting = new Map<string, Promise<string>>();

  /** In a user namespace (rootless) overlay keeps its markers in user.* xattrs (mount option userxattr). */
  private readonly userxattr = inUserNamespace();

  constructor(private readonly store: Store) {
    const base = join(store.root, 'snapshots');
    this.layersDir = join(base, this.userxattr ? 'layers-userxattr' : 'layers');
    this.tmpDir = join(base, 'tmp');
    this.emptyDir = join(base, 'empty');
    this.donorsDir = `${this.layersDir}.donors`;
  }

  /** Directory holding `layer` extracted in overlay form; extracts it on first use. */
  async ensureExtracted(layer: LayerRef): Promise<string> {
    const final = join(this.layersDir, encodedOf(layer.diffId));
    if (existsSync(final)) return final;
    let pending = this.extracting.get(layer.diffId);
    if (!pending) {
      pending = (async () => {
        await mkdir(this.layersDir, { recursive: true });
        await mkdir(this.tmpDir, { recursive: true });
        const tmp = await extractionDir(this.tmpDir);
        try {
          const { diffId } = await applyLayer(this.store.content.open(layer.digest), tmp, { whiteouts: 'overlay', overlayXattrNamespace: this.userxattr ? 'user' : 'trusted' });
          if (diffId !== layer.diffId) throw new Error(`layer ${layer.digest}: diffID ${diffId} does not match ${layer.diffId}`);
          await renameIntoPlace(tmp, final);
          return final;
        } catch (e) {
          await rm(tmp, { recursive: true, force: true });
          throw e;
        }
      })().finally(() => this.extracting.delete(layer.diffId));
      this.extracting.set(layer.diffId, pending);
    }
    return pending;
  }

  extractWhileWriting(tar: Readable): Promise<string | undefined> {
    return this.extractInto((dir, opts) => applyLayer(tar, dir, opts)).finally(() => {
      if (!tar.destroyed) tar.resume();
    });
  }

  /**
   * Entries that materializeEntries can make are made from their sources, linking what the last
   * extraction of the same COPY (by donorKey) holds unchanged; others are packed and applied as a tar
   * on the thread. A materialized directory takes the writer's diffID once every source is found
   * unchanged since its entry was made, so both reads saw the same bytes.
   */
  async extractEntries(entries: LayerEntry[], opts: PackEntriesOptions, diffId: Promise<string | undefined>): Promise<string | undefined> {
    if (!canMaterialize(entries)) return this.extractInto((dir, apply) => applyEntriesInWorker(entries, opts, dir, apply));
    const key = donorKey(entries);
    const donor = await this.readDonor(key);
    let ids: Record<string, string> | undefined;
    // A layer that will not be written (a failed or cancelled COPY) stops the thread at once.
    const stop = new AbortController();
    void diffId.then((d) => d === undefined && stop.abort());
    const extracted = await this.extractInto(async (dir, apply) => {
      const made = await materializeInWorker(entries, opts, dir, apply, donor, stop.signal);
      const d = await diffId;
      if (d === undefined || !sourcesUnchanged(entries)) throw new Error('the layer was not written, or a source changed meanwhile');
      ids = made.ids;
      return { diffId: d };
    });
    if (extracted && ids) await writeFileAtomic(join(this.donorsDir, `${key}.json`), JSON.stringify({ diffId: extracted, ids })).catch(() => {});
    return extracted;
  }

  /** The last extraction recorded under `key`, if its directory is still there. */
  private async readDonor(key: string): Promise<Donor | undefined> {
    try {
      const rec = JSON.parse(await readFile(join(this.donorsDir, `${key}.json`), 'utf8')) as { diffId: string; ids: Record<string, string> };
      const dir = join(this.layersDir, encodedOf(rec.diffId));
      return existsSync(dir) ? { dir, ids: rec.ids } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Extract into a fresh directory, then move it into place under the diffID of what was extracted. */
  private async extractInto(extract: (dir: string, opts: ApplyOptions) => Promise<{ diffId: string }>): Promise<string | undefined> {
    let tmp: string | undefined;
    try {
      await mkdir(this.layersDir, { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
      tmp = await extractionDir(this.tmpDir);
      const { diffId } = await extract(tmp, { whiteouts: 'overlay', overlayXattrNamespace: this.userxattr ? 'user' : 'trusted' });
      await renameIntoPlace(tmp, join(this.layersDir, encodedOf(diffId)));
      return diffId;
    } catch {
      // Not fatal: the layer is extracted from its blob when a snapshot first needs it.
      if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
      return undefined;
    }
  }

  /**
   * lowerdir= value, top layer first, relative to layersDir (the mounts' working directory), over an
   * empty directory: overlayfs needs a lower dir even for an image with no layers (FROM scratch).
   */
  private async lowerdirs(layers: readonly LayerRef[]): Promise<string> {
    return lowerdirOption(this.layersDir, await this.lowerStack(layers));
  }

  /** The extracted layers' directories, top first, over the empty directory. */
  private async lowerStack(layers: readonly LayerRef[]): Promise<string[]> {
    // Both made here: in a new store a FROM scratch step has extracted nothing yet.
    await mkdir(this.layersDir, { recursive: true });
    await mkdir(this.emptyDir, { recursive: true });
    const dirs = await Promise.all(layers.map((l) => this.ensureExtracted(l)));
    return [...dirs.reverse(), this.emptyDir];
  }

  async prepare(layers: readonly LayerRef[], id: string): Promise<ActiveSnapshot> {
    const stack = await this.lowerStack(layers);
    const lower = lowerdirOption(this.layersDir, stack);
    await mkdir(this.tmpDir, { recursive: true });
    const dir = await mkdtemp(join(this.tmpDir, `${id.replace(/[^\w.-]/g, '_').slice(0, 40)}-`));
    const upper = join(dir, 'upper');
    const work = join(dir, 'work');
    const merged = join(dir, 'merged');
    await Promise.all([mkdir(upper), mkdir(work), mkdir(merged)]);
    // redirect_dir and metacopy off: every change must be real content in the upper dir, or the layer
    // built from it would miss data. (With userxattr the kernel keeps both off itself and refuses them.)
    await mount('overlay', `lowerdir=${lower},upperdir=${upper},workdir=${work},${this.userxattr ? 'userxattr,index=off' : 'redirect_dir=off,metacopy=off,index=off'}`, merged, this.layersDir);
    return new OverlayActive(this, dir, merged, upper, stack);
  }

  async view(layers: readonly LayerRef[], id: string): Promise<View> {
    if (layers.length === 0) {
      await mkdir(this.emptyDir, { recursive: true });
      return { path: this.emptyDir, release: async () => {} };
    }
    const lower = await this.lowerdirs(layers);
    await mkdir(this.tmpDir, { recursive: true });
    const dir = await mkdtemp(join(this.tmpDir, `v-${id.replace(/[^\w.-]/g, '_').slice(0, 30)}-`));
    const merged = join(dir, 'merged');
    await mkdir(merged);
    await mount('overlay', `lowerdir=${lower},ro${this.userxattr ? ',userxattr' : ''}`, merged, this.layersDir);
    let released = false;
    return {
      path: merged,
      release: async () => {
        if (released) return;
        released = true;
        await unmount(merged);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  async lookup(layers: readonly LayerRef[], path: string): Promise<PathInfo | undefined> {
    const v = await this.view(layers, 'lookup');
    try {
      return await pathInfo(join(v.path, path));
    } finally {
      await v.release();
    }
  }

  /** Called by a committed snapshot: its upper dir becomes the extracted form of the new layer. */
  async adopt(upper: string, diffId: string): Promise<void> {
    await mkdir(this.layersDir, { recursive: true });
    await renameIntoPlace(upper, join(this.layersDir, encodedOf(diffId)));
  }

  /** The xattr namespace of overlay's markers in this snapshotter's directories. */
  get xattrNamespace(): 'trusted' | 'user' {
    return this.userxattr ? 'user' : 'trusted';
  }

  get storeRef(): Store {
    return this.store;
  }
}

class OverlayActive implements ActiveSnapshot {
  private mounted = true;
  private released = false;

  constructor(
    private readonly owner: OverlaySnapshotter,
    private readonly dir: string,
    readonly rootfs: string,
    private readonly upper: string,
    /** The lower directories, top first: what the upper dir's entries are compared with. */
    private readonly lowers: readonly string[],
  ) {}

  async commit(opts: CommitOptions): Promise<LayerRef | undefined> {
    try {
      await this.unmount();
      await removeMountpoints(this.upper, opts.exclude);
      if ((await pruneUnchangedDirs(this.upper, this.lowers, this.owner.xattrNamespace)) === 0) return undefined;
      const layer = await writeLayerFromDir(this.owner.storeRef, this.upper, { overlayWhiteouts: true, sourceDateEpoch: opts.sourceDateEpoch });
      await this.owner.adopt(this.upper, layer.diffId);
      return layer;
    } finally {
      await this.release();
    }
  }

  private async unmount(): Promise<void> {
    if (!this.mounted) return;
    this.mounted = false;
    await unmount(this.rootfs);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.unmount();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Mount points the sandbox had to create (an /etc/hosts the image lacks, say) are placeholders:
 * remove them, deepest first, keeping any directory the process filled with real content.
 */
async function removeMountpoints(upper: string, paths: readonly string[]): Promise<void> {
  const sorted = [...paths].sort((a, b) => b.split('/').length - a.split('/').length || byCodeUnits(b, a));
  for (const rel of sorted) {
    const p = join(upper, rel);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) await rmdir(p).catch(() => {});
    else if (st.isFile() && st.size === 0) await rm(p, { force: true });
  }
}

/** Pack a directory into a gzip layer blob in the store, hashing the diffID on the way. */
export async function writeLayerFromDir(
  store: Store,
  dir: string,
  opts: { overlayWhiteouts?: boolean; sourceDateEpoch?: number },
): Promise<LayerRef> {
  const diff = new DigestingStream();
  const tar = packDirectory(dir, { overlayWhiteouts: opts.overlayWhiteouts, sourceDateEpoch: opts.sourceDateEpoch });
  const hashed = tar.pipe(diff);
  tar.on('error', (e) => hashed.destroy(e));
  const info = await store.content.put(compress(hashed, 'gzip'));
  await store.setLayerInfo(info.digest, { diffId: diff.digest, size: diff.size });
  return { digest: info.digest, size: info.size, diffId: diff.digest, mediaType: MediaType.OciLayerGzip };
}

/**
 * Which earlier extraction a COPY's entries may link from: the one made from the same source
 * directory into the same layer directory (the same COPY of an edited context, typically).
 */
function donorKey(entries: readonly LayerEntry[]): string {
  const common = (paths: string[]) => {
    if (paths.length === 0) return '';
    let parts = paths[0]!.split('/').slice(0, -1);
    for (const p of paths) {
      const q = p.split('/');
      let i = 0;
      while (i < parts.length && i < q.length - 1 && parts[i] === q[i]) i++;
      parts = parts.slice(0, i);
    }
    return parts.join('/');
  };
  const sources = entries.flatMap((e) => (e.sourcePath !== undefined ? [e.sourcePath] : []));
  return sha256(`${common(sources)}\0${common(entries.map((e) => e.path))}`).slice(7, 39);
}

/**
 * A fresh directory to extract a layer into, mode 0755: it is the root of a read-only view when
 * its layer is the top one, and layer application leaves the root's own metadata alone (mkdtemp
 * makes it 0700, which `kiln test` saw as the image's / ).
 */
async function extractionDir(tmpDir: string): Promise<string> {
  const dir = await mkdtemp(join(tmpDir, 'x-'));
  await chmod(dir, 0o755);
  return dir;
}

async function renameIntoPlace(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Another build extracted the same layer first: theirs is identical, keep it.
    if (code === 'ENOTEMPTY' || code === 'EEXIST') await rm(from, { recursive: true, force: true });
    else throw e;
  }
}
