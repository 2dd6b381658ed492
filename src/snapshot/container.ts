import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Store } from '../store/store.js';
import { mount, unmount } from './mount.js';
import { lowerdirOption } from './lowerdir.js';
import { OverlaySnapshotter } from './overlay.js';
import type { LayerRef, View } from './snapshotter.js';

// The writable layer of a long-lived (working) container. The build engine's ActiveSnapshot lives in
// snapshots/tmp and is gone after one step; a container keeps its upper and work directories in its
// own directory and mounts them over the image's layers each time it starts, so its changes outlive
// every run. The lower directories are the overlay snapshotter's extracted layers, shared with builds.
//
// A container's filesystem can also be looked at without being started: its upper directory then
// serves as the topmost *lower* directory of a read-only mount (overlayfs applies the whiteouts and
// opaque markers of lower directories exactly as of an upper one).

export interface ContainerLayer {
  /** The container's directory holding upper/, work/ and rootfs/. */
  dir: string;
  layers: readonly LayerRef[];
}

export const upperOf = (c: ContainerLayer) => join(c.dir, 'upper');
export const rootfsOf = (c: ContainerLayer) => join(c.dir, 'rootfs');

/**
 * In a user namespace (rootless) overlayfs keeps whiteout and opaque markers in user.* xattrs and
 * needs the userxattr option; the overlay snapshotter extracts layers accordingly.
 */
function rootless(): boolean {
  try {
    const map = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return !(map[0] === '0' && map[1] === '0' && map[2] === '4294967295');
  } catch {
    return false;
  }
}

/** The extracted directories of the image's layers, top first, plus an empty one (overlayfs needs at least one lower). */
async function imageLowerdirs(store: Store, c: ContainerLayer): Promise<{ cwd: string; dirs: string[] }> {
  const snapshotter = new OverlaySnapshotter(store);
  const dirs = await Promise.all(c.layers.map((l) => snapshotter.ensureExtracted(l)));
  const empty = join(c.dir, 'empty');
  await mkdir(empty, { recursive: true });
  const cwd = dirs.length > 0 ? dirname(dirs[0]!) : c.dir;
  return { cwd, dirs: [...dirs.reverse(), empty] };
}

/** Whether something is mounted on `path` in this process's mount namespace. */
export function isMounted(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4]?.replace(/\\040/g, ' ') === path);
  } catch {
    return false;
  }
}

/** Mount the container's filesystem read-write on rootfs/ and return that path. */
export async function mountContainer(store: Store, c: ContainerLayer): Promise<string> {
  const target = rootfsOf(c);
  await mkdir(target, { recursive: true });
  if (isMounted(target)) await unmount(target); // left by a run that was killed
  const upper = upperOf(c);
  const work = join(c.dir, 'work');
  await mkdir(upper, { recursive: true });
  await mkdir(work, { recursive: true });
  const { cwd, dirs } = await imageLowerdirs(store, c);
  // As in the build engine: redirect_dir and metacopy off, so every change is real content in the
  // upper directory (commit packs it); with userxattr the kernel keeps both off itself and refuses them.
  const options = rootless() ? 'userxattr,index=off' : 'redirect_dir=off,metacopy=off,index=off';
  await mount('overlay', `lowerdir=${lowerdirOption(cwd, dirs)},upperdir=${upper},workdir=${work},${options}`, target, cwd);
  return target;
}

export async function unmountContainer(c: ContainerLayer): Promise<void> {
  const target = rootfsOf(c);
  if (isMounted(target)) await unmount(target);
}

/**
 * A read-only view of the container's filesystem as it is now: the upper directory over the image's
 * layers. Works while the container runs (the kernel warns that the upper directory is in use by
 * another mount; reading through both is what a paused commit or an export does).
 */
export async function viewContainer(store: Store, c: ContainerLayer): Promise<View> {
  const { cwd, dirs } = await imageLowerdirs(store, c);
  const base = join(c.dir, 'views');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'v-'));
  const merged = join(dir, 'merged');
  await mkdir(merged);
  try {
    await mount('overlay', `lowerdir=${lowerdirOption(cwd, [upperOf(c), ...dirs])},ro${rootless() ? ',userxattr' : ''}`, merged, cwd);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
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

/** A read-only view of the image the container was created from (what `diff` compares against). */
export async function viewImage(store: Store, c: ContainerLayer): Promise<View> {
  return new OverlaySnapshotter(store).view(c.layers, 'container-image');
}
