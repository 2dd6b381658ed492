// Layers and overlayfs, with real mounts: an upper directory packs into OCI whiteouts, and layers
// applied in overlay mode stack into the right view when mounted as lowerdirs.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { applyLayer, packDirectory, type TarHeader, readTar } from '../../src/archive/index.js';
import { readXattr } from '../../src/archive/xattr.js';
import { bufferStream, collect, craftTar, describeTree, tempDir, type Crafted } from './fixtures.js';

function overlaySupported(): boolean {
  if (process.getuid?.() !== 0) return false;
  const t = tempDir();
  try {
    for (const d of ['l1', 'l2', 'm']) mkdirSync(join(t.dir, d));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${t.dir}/l2:${t.dir}/l1`, `${t.dir}/m`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    t.cleanup();
  }
}

const skip = overlaySupported() ? false : 'needs root and overlayfs';

function mountLowers(mnt: string, lowers: string[]): void {
  mkdirSync(mnt, { recursive: true });
  // overlayfs lowerdir lists the top layer first.
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...lowers].reverse().join(':')}`, mnt]);
}

function view(root: string): string[] {
  return Object.entries(describeTree(root, { mtimes: false })).map(([p, d]) => `${d.type === 'dir' ? p + '/' : p}`);
}

async function headers(tar: Buffer): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const e of readTar(bufferStream(tar))) out.push(e.header);
  return out;
}

describe('overlayfs', { skip }, () => {
  test('an overlay upper directory packs into OCI whiteouts and opaque markers', async () => {
    const t = tempDir();
    try {
      const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(t.dir, d));
      for (const d of [lower, upper, work, merged]) mkdirSync(d);
      writeFileSync(join(lower, 'a'), 'a');
      mkdirSync(join(lower, 'd'));
      writeFileSync(join(lower, 'd/x'), 'x');
      writeFileSync(join(lower, 'kept'), 'k');
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
      // As a RUN step would: rm a; rm -rf d && mkdir d && touch d/y
      rmSync(join(merged, 'a'));
      rmSync(join(merged, 'd'), { recursive: true });
      mkdirSync(join(merged, 'd'));
      writeFileSync(join(merged, 'd/y'), '');
      const mergedView = view(merged);
      execFileSync('umount', [merged]);
      assert.ok(lstatSync(join(upper, 'a')).isCharacterDevice()); // the kernel's whiteout

      const layer = await collect(packDirectory(upper, { overlayWhiteouts: true }));
      const hs = await headers(layer);
      assert.deepEqual(
        hs.map((h) => `${h.type} ${h.path}`),
        ['file .wh.a', 'directory d', 'file d/.wh..wh..opq', 'file d/y'],
      );
      assert.ok(hs.every((h) => Object.keys(h.xattrs).every((k) => !k.includes('overlay'))), 'no overlay xattrs leak into the layer');
      assert.ok(hs.every((h) => h.size === 0));

      // Round trip: both layers applied in overlay mode and mounted show what the container saw.
      const base = await collect(packDirectory(lower));
      const l1 = join(t.dir, 'l1');
      const l2 = join(t.dir, 'l2');
      await applyLayer(bufferStream(base), l1, { whiteouts: 'overlay' });
      await applyLayer(bufferStream(layer), l2, { whiteouts: 'overlay' });
      mountLowers(join(t.dir, 'view'), [l1, l2]);
      assert.deepEqual(view(join(t.dir, 'view')), mergedView);
      assert.deepEqual(mergedView, ['d/', 'd/y', 'kept']);
    } finally {
      t.cleanup();
    }
  });

  test('overlay mode writes char 0/0 whiteouts and the opaque xattr, and the mounted stack matches delete mode', async () => {
    const t = tempDir();
    try {
      const layers: Crafted[][] = [
        [
          { name: 'a', content: 'a' },
          { name: 'd/', type: 'directory' },
          { name: 'd/x', content: 'x' },
          { name: 'd/sub/', type: 'directory' },
          { name: 'd/sub/deep', content: 'deep' },
          { name: 'e/', type: 'directory' },
          { name: 'e/keep', content: 'k' },
          { name: 'e/gone', content: 'g' },
        ],
        [
          { name: '.wh.a' },
          { name: 'd/', type: 'directory' },
          { name: 'd/.wh..wh..opq' },
          { name: 'd/y', content: 'y' },
          { name: 'e/.wh.gone' },
        ],
        [{ name: 'a', content: 'back again' }],
      ];
      const dirs: string[] = [];
      const flat = join(t.dir, 'flat');
      for (const [i, l] of layers.entries()) {
        const tar = await craftTar(l);
        dirs.push(join(t.dir, `layer${i}`));
        await applyLayer(bufferStream(tar), dirs[i], { whiteouts: 'overlay' });
        await applyLayer(bufferStream(tar), flat, { whiteouts: 'delete' });
      }
      const wh = lstatSync(join(dirs[1], 'a'));
      assert.ok(wh.isCharacterDevice());
      assert.equal(wh.rdev, 0);
      assert.ok(lstatSync(join(dirs[1], 'e/gone')).isCharacterDevice());
      assert.equal(readXattr(join(dirs[1], 'd'), 'trusted.overlay.opaque')?.toString(), 'y');

      mountLowers(join(t.dir, 'view'), dirs);
      const mounted = view(join(t.dir, 'view'));
      assert.deepEqual(mounted, ['a', 'd/', 'd/y', 'e/', 'e/keep']);
      assert.deepEqual(view(flat), mounted);
    } finally {
      t.cleanup();
    }
  });
});
