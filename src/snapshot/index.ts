import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { mount, unmount } from './mount.js';
import type { ActiveSnapshot, LayerRef, PathInfo, Snapshotter, View } from './snapshotter.js';
import type { Readable } from 'node:stream';
import type { LayerEntry, PackEntriesOptions } from '../archive/index.js';
import { inUserNamespace } from '../sandbox/userns.js';

export type { Snapshotter, ActiveSnapshot, View, LayerRef, PathInfo, CommitOptions } from './snapshotter.js';

// The two implementations (and the layer packing and extraction they use) are imported when one is
// first needed: a build whose every step is cached needs neither.
const overlay = () => import('./overlay.js').then((m) => m.OverlaySnapshotter);
const copy = () => import('./copy.js').then((m) => m.CopySnapshotter);

let overlayAllowed: Promise<boolean> | undefined;

/** Whether this process may mount overlayfs here: tried once with a throwaway mount. */
async function probeOverlay(root: string): Promise<boolean> {
  const base = join(root, 'snapshots', 'tmp');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'probe-'));
  try {
    for (const d of ['l', 'u', 'w', 'm']) await mkdir(join(dir, d));
    const userxattr = inUserNamespace() ? ',userxattr' : '';
    await mount('overlay', `lowerdir=${join(dir, 'l')},upperdir=${join(dir, 'u')},workdir=${join(dir, 'w')}${userxattr}`, join(dir, 'm'));
    await unmount(join(dir, 'm'));
    return true;
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The snapshotter for this machine: overlayfs when mounts are allowed, else the copy fallback.
 * KILN_SNAPSHOTTER=overlay|copy forces one. The choice, and the loading of the implementation, wait
 * for first use: a build whose every step is cached pays for neither the probe's mount and unmount
 * nor the layer code.
 */
export async function createSnapshotter(store: Store, env: NodeJS.ProcessEnv = process.env): Promise<Snapshotter> {
  const forced = env.KILN_SNAPSHOTTER;
  if (forced && forced !== 'overlay' && forced !== 'copy') throw new Error(`KILN_SNAPSHOTTER="${forced}": expected overlay or copy`);
  return new ChoosingSnapshotter(async () => {
    const useOverlay = forced ? forced === 'overlay' : await (overlayAllowed ??= probeOverlay(store.root));
    return useOverlay ? new (await overlay())(store) : new (await copy())(store);
  });
}

/**
 * Forwards to the snapshotter `choose` gives, called once, when first needed. The optional methods
 * are always present: with a chosen snapshotter that lacks one, they do what its absence means
 * (nothing is kept, and the stream is still read to its end).
 */
class ChoosingSnapshotter implements Snapshotter {
  private chosen: Promise<Snapshotter> | undefined;

  constructor(private readonly choose: () => Promise<Snapshotter>) {}

  private get inner(): Promise<Snapshotter> {
    return (this.chosen ??= this.choose());
  }

  get name(): string {
    return 'auto';
  }

  async prepare(layers: readonly LayerRef[], id: string): Promise<ActiveSnapshot> {
    return (await this.inner).prepare(layers, id);
  }

  async view(layers: readonly LayerRef[], id: string): Promise<View> {
    return (await this.inner).view(layers, id);
  }

  async lookup(layers: readonly LayerRef[], path: string): Promise<PathInfo | undefined> {
    return (await this.inner).lookup(layers, path);
  }

  async extractWhileWriting(tar: Readable): Promise<string | undefined> {
    const inner = await this.inner;
    if (inner.extractWhileWriting) return inner.extractWhileWriting(tar);
    tar.resume();
    return undefined;
  }

  async extractEntries(entries: LayerEntry[], opts: PackEntriesOptions, diffId: Promise<string | undefined>): Promise<string | undefined> {
    const inner = await this.inner;
    return inner.extractEntries ? inner.extractEntries(entries, opts, diffId) : undefined;
  }
}
