// A layer repeated in one stack (two RUNs that change nothing, two identical COPYs, an image that
// lists a digest twice): overlayfs refuses the same lower directory twice, so every lowerdir list
// keeps each layer once, at its topmost place (src/snapshot/lowerdir.ts argues why that is the same
// tree). Here every kind of mount is compared, file by file, with the layers applied in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyLayer, packEntries, writeLayer, type LayerEntry } from '../../src/archive/index.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { CopySnapshotter } from '../../src/snapshot/copy.js';
import { mountContainer, unmountContainer, viewContainer, viewImage } from '../../src/snapshot/container.js';
import { lowerdirOption } from '../../src/snapshot/lowerdir.js';
import { OverlaySnapshotter } from '../../src/snapshot/overlay.js';
import type { LayerRef } from '../../src/snapshot/snapshotter.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../support/env.js';

const dir = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755, mtime: 1000 });
const file = (path: string, content: string, mode = 0o644): LayerEntry => ({ path, type: 'file', mode, content, mtime: 2000 });
const link = (path: string, target: string): LayerEntry => ({ path, type: 'symlink', linkname: target, mtime: 3000 });

// base: what A and B change. A: deletes /gone, makes /o opaque, adds /d/a and /top. B: deletes /d/a
// again, brings /gone back, makes /w opaque, turns /top into a directory. Stacked A B A, the second A
// must undo all of B that it touches; A A B, B must win; and so on.
const BASE = [dir('d'), file('d/old', 'base'), file('gone', 'base'), dir('o'), file('o/old', 'base'), dir('w'), file('w/f', 'base'), link('ln', 'd/old')];
const A = [
  dir('d'), file('d/a', 'A'), file('d/shared', 'A', 0o600), file('.wh.gone', ''),
  dir('o'), file('o/.wh..wh..opq', ''), file('o/fromA', 'A'),
  file('top', 'A'), link('ln', 'd/a'),
];
const B = [
  dir('d'), file('d/.wh.a', ''), file('d/b', 'B'), file('d/shared', 'B', 0o755),
  file('gone', 'B'), dir('o'), file('o/fromB', 'B'),
  dir('top'), file('top/inside', 'B'),
  dir('w'), file('w/.wh..wh..opq', ''), file('w/g', 'B'),
];

async function storeLayer(store: Store, entries: LayerEntry[]): Promise<LayerRef> {
  let stored = '';
  const d = await writeLayer(packEntries(entries), async (blob) => {
    stored = (await store.content.put(blob)).digest;
  }, 'gzip');
  await store.setLayerInfo(stored, { diffId: d.diffId, size: d.uncompressedSize });
  return { digest: d.digest, size: d.size, diffId: d.diffId, mediaType: MediaType.OciLayerGzip };
}

/** Every path under root with what a layer can set: type, mode, owner, content or target, and a file's mtime. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const full = join(root, p);
      const st = lstatSync(full);
      const owner = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      // A directory's mtime is left out: applying a layer into it changes it, while overlayfs shows the topmost one's.
      if (st.isDirectory()) {
        out[p] = `dir ${owner}`;
        walk(p);
      } else if (st.isSymbolicLink()) out[p] = `symlink -> ${readlinkSync(full)}`;
      else out[p] = `file ${owner} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(full)).digest('hex').slice(0, 12)}`;
    }
  };
  walk('');
  return out;
}

/** The layers applied one after another, whiteouts deleting: what an image's filesystem is by definition. */
async function appliedInOrder(store: Store, layers: LayerRef[], dest: string): Promise<Record<string, string>> {
  await mkdir(dest);
  for (const l of layers) await applyLayer(store.content.open(l.digest), dest, { whiteouts: 'delete' });
  return tree(dest);
}

test('lowerdir keeps each directory once, at its topmost place, relative to the mount\'s directory', () => {
  assert.equal(lowerdirOption('/s/layers', ['/s/layers/a', '/s/layers/b', '/s/layers/a', '/s/empty']), 'a:b:../empty');
  assert.equal(lowerdirOption('/s/layers', ['/s/layers/a', '/s/layers/a', '/s/layers/b']), 'a:b');
});

test('a stack that repeats layers (A B A, A A B, B A B, A A A, A B A B A) mounts as the tree of its layers applied in order, in every kind of overlay mount and in the copy fallback', async (t) => {
  const work = await tempDir(t, 'kiln-repeated-');
  const store = await Store.open(join(work, 'store'));
  const base = await storeLayer(store, BASE);
  const a = await storeLayer(store, A);
  const b = await storeLayer(store, B);
  const stacks: Record<string, LayerRef[]> = {
    'A B A': [base, a, b, a],
    'A A B': [base, a, a, b],
    'B A B': [base, b, a, b],
    'A A A': [base, a, a, a],
    'A B A B A (no base)': [a, b, a, b, a],
  };
  const overlay = new OverlaySnapshotter(store);
  const copy = new CopySnapshotter(store);
  let n = 0;
  for (const [name, layers] of Object.entries(stacks)) {
    const expected = await appliedInOrder(store, layers, join(work, `applied-${n}`));
    const view = await overlay.view(layers, `view-${n}`);
    try {
      assert.deepEqual(tree(view.path), expected, `${name}: overlay view`);
    } finally {
      await view.release();
    }
    const active = await overlay.prepare(layers, `prepare-${n}`);
    try {
      assert.deepEqual(tree(active.rootfs), expected, `${name}: overlay snapshot`);
    } finally {
      await active.release();
    }
    // A working container: its rootfs mounted read-write, a view with its upper dir, and the image view.
    const container = { dir: join(work, `container-${n}`), layers };
    await mkdir(container.dir);
    const rootfs = await mountContainer(store, container);
    try {
      assert.deepEqual(tree(rootfs), expected, `${name}: container rootfs`);
      await writeFile(join(rootfs, 'added'), 'by the container');
    } finally {
      await unmountContainer(container);
    }
    const seen = await viewContainer(store, container);
    try {
      const withChange = tree(seen.path);
      assert.match(withChange.added ?? '', /^file /, `${name}: container view shows the container's change`);
      delete withChange.added;
      assert.deepEqual(withChange, expected, `${name}: container view`);
    } finally {
      await seen.release();
    }
    const image = await viewImage(store, container);
    try {
      assert.deepEqual(tree(image.path), expected, `${name}: image view of a container`);
    } finally {
      await image.release();
    }
    const copied = await copy.view(layers);
    assert.deepEqual(tree(copied.path), expected, `${name}: copy snapshotter`);
    n++;
  }
  // What the stacks are meant to show, so that a change to the layers above cannot make them vacuous.
  const abA = tree(join(work, 'applied-0'));
  const aaB = tree(join(work, 'applied-1'));
  assert.ok(abA['d/a'] && !aaB['d/a'], 'A B A: the second A brings back what B deleted');
  assert.match(abA.top!, /^file /);
  assert.equal(aaB.top, 'dir 755 0:0');
  assert.ok(!abA['o/old'] && !abA['o/fromB'] && abA['o/fromA'], 'A B A: the opaque /o of the second A hides what B added below it');
  assert.ok(aaB['o/fromB'] && aaB['o/fromA'] && !aaB['o/old'], 'A A B: B adds to the opaque /o of A');
  assert.ok(!aaB['w/f'] && aaB['w/g'], 'B\'s opaque /w hides the base');
  assert.ok(abA.gone === undefined && aaB.gone !== undefined);
});

test('a build step on no layers (FROM scratch) mounts in a store that has extracted nothing yet', async (t) => {
  const work = await tempDir(t, 'kiln-scratch-');
  const store = await Store.open(join(work, 'store'));
  const overlay = new OverlaySnapshotter(store);
  const active = await overlay.prepare([], 'scratch');
  try {
    assert.deepEqual(readdirSync(active.rootfs), []);
    await mkdir(join(active.rootfs, 'foo'));
  } finally {
    await active.release();
  }
  const view = await overlay.view([], 'scratch-view');
  assert.deepEqual(readdirSync(view.path), []);
  await view.release();
});

test('a read-only view of an image whose top layer has no root entry shows / as 0755, not the 0700 of a temporary directory', async (t) => {
  const work = await tempDir(t, 'kiln-view-root-');
  const store = await Store.open(join(work, 'store'));
  const overlay = new OverlaySnapshotter(store);
  const only = await storeLayer(store, [file('f', 'x')]);
  const view = await overlay.view([only], 'root-mode');
  try {
    assert.equal((lstatSync(view.path).mode & 0o7777).toString(8), '755');
  } finally {
    await view.release();
  }
});
