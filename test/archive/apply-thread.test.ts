import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { applyLayer } from '../../src/archive/index.js';
import { applyLayerInWorker } from '../../src/archive/apply-thread.js';
import { bufferStream, craftTar, describeTree, sha256hex, tempDir, type Crafted } from './fixtures.js';

// applyLayer on a worker thread must be applyLayer: the same tree, the same diffID, the same
// refusals; and whatever happens on the thread, the stream it was given is read to its end.

/** Yields `buf` in pieces of `size` bytes, counting what was taken. */
function pieces(buf: Buffer, size: number): { stream: Readable; taken: () => number } {
  let taken = 0;
  const stream = Readable.from(
    (function* () {
      for (let off = 0; off < buf.length; off += size) {
        const p = buf.subarray(off, off + size);
        taken += p.length;
        yield p;
      }
    })(),
  );
  return { stream, taken: () => taken };
}

test('on a thread: the same tree and diffID as in-process, over a layer larger than the flow-control window', async (t) => {
  const entries: Crafted[] = [{ name: 'dir/', type: 'directory', mode: 0o750 }, { name: 'dir/link', type: 'symlink', linkname: '../big' }, { name: 'empty', content: '' }];
  for (let i = 0; i < 300; i++) entries.push({ name: `dir/f${i}`, content: `file ${i}\n`, mode: i % 2 ? 0o600 : 0o644 });
  entries.push({ name: 'big', content: randomBytes(12 << 20) }, { name: 'dir/.wh.gone' }, { name: 'other/', type: 'directory' }, { name: 'other/.wh..wh..opq' });
  const tar = await craftTar(entries);
  const a = tempDir();
  const b = tempDir();
  t.after(() => (a.cleanup(), b.cleanup()));
  const inProcess = await applyLayer(bufferStream(tar), a.dir, { whiteouts: 'overlay' });
  const src = pieces(tar, 64 << 10);
  const onThread = await applyLayerInWorker(src.stream, b.dir, { whiteouts: 'overlay' });
  assert.deepEqual(onThread, inProcess);
  assert.equal(onThread.diffId, `sha256:${sha256hex(tar)}`);
  assert.equal(src.taken(), tar.length);
  assert.deepEqual(comparable(b.dir), comparable(a.dir));
});

/** The tree with every mtime but the whiteouts' (devices made now, whatever the archive says). */
function comparable(root: string): Record<string, unknown> {
  const tree = describeTree(root) as Record<string, { rdev?: string; mtime?: number }>;
  for (const d of Object.values(tree)) if (d.rdev === '0:0') delete d.mtime;
  return tree;
}

test('on a thread: an entry leaving the root is refused, nothing lands outside, and the stream is still read to its end', async (t) => {
  const tar = await craftTar([{ name: 'ok', content: 'fine' }, { name: '../escape', content: 'no' }, { name: 'after', content: randomBytes(1 << 20) }]);
  const d = tempDir();
  t.after(() => d.cleanup());
  const src = pieces(tar, 4096);
  await assert.rejects(applyLayerInWorker(src.stream, `${d.dir}/root`, { whiteouts: 'overlay' }), /escape|outside|not allowed/);
  assert.equal(src.taken(), tar.length);
  assert.deepEqual(Object.keys(describeTree(d.dir)).sort(), ['root', 'root/ok']);
});

test('on a thread: a truncated layer is an error, not a tree that looks whole', async (t) => {
  const tar = await craftTar([{ name: 'a', content: randomBytes(100_000) }]);
  const d = tempDir();
  t.after(() => d.cleanup());
  await assert.rejects(applyLayerInWorker(bufferStream(tar.subarray(0, 50_000)), d.dir, { whiteouts: 'delete' }), /truncated|unexpected end|incomplete/i);
});

test('on a thread: a source stream that fails rejects with its error and stops the thread', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const failing = new Readable({
    read() {
      this.destroy(new Error('the disk went away'));
    },
  });
  await assert.rejects(applyLayerInWorker(failing, d.dir, { whiteouts: 'delete' }), /the disk went away/);
});
