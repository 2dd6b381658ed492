import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { CopySnapshotter } from './copy.js';
import { OverlaySnapshotter } from './overlay.js';
import { mount, unmount } from './mount.js';
import type { Snapshotter } from './snapshotter.js';
import { inUserNamespace } from '../sandbox/userns.js';

export type { Snapshotter, ActiveSnapshot, View, LayerRef, PathInfo, CommitOptions } from './snapshotter.js';
export { OverlaySnapshotter } from './overlay.js';
export { CopySnapshotter, copyPath } from './copy.js';

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
 * KILN_SNAPSHOTTER=overlay|copy forces one.
 */
export async function createSnapshotter(store: Store, env: NodeJS.ProcessEnv = process.env): Promise<Snapshotter> {
  const forced = env.KILN_SNAPSHOTTER;
  if (forced === 'copy') return new CopySnapshotter(store);
  if (forced === 'overlay') return new OverlaySnapshotter(store);
  if (forced) throw new Error(`KILN_SNAPSHOTTER="${forced}": expected overlay or copy`);
  overlayAllowed ??= probeOverlay(store.root);
  return (await overlayAllowed) ? new OverlaySnapshotter(store) : new CopySnapshotter(store);
}
