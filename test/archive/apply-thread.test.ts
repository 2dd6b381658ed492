import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyLayer, packEntries, type LayerEntry } from '../../src/archive/index.js';
import { applyEntriesInWorker } from '../../src/archive/apply-thread.js';
import { describeTree, tempDir } from './fixtures.js';

// A layer's entries packed and applied on a worker thread must give what packing and applying them
// here gives: the same tree and the same diffID; and a failure there is an error here.

function entriesIn(dir: string): LayerEntry[] {
  const big = join(dir, 'big.bin');
  writeFileSync(big, randomBytes(3 << 20));
  const out: LayerEntry[] = [
    { path: 'app', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_700_000_000 },
    { path: 'app/big.bin', type: 'file', sourcePath: big, size: 3 << 20, mtime: 1_700_000_000, xattrs: { 'user.note': Buffer.from('kept') } },
    { path: 'app/link', type: 'symlink', linkname: 'big.bin', mtime: 1_700_000_000 },
    { path: 'app/hard', type: 'hardlink', linkname: 'app/big.bin' },
  ];
  for (let i = 0; i < 300; i++) out.push({ path: `app/f${String(i).padStart(3, '0')}`, type: 'file', content: `file ${i}\n`, mode: i % 2 ? 0o600 : 0o644, mtime: 1_700_000_000 + i });
  return out;
}

test('on a thread: the same tree and diffID as packing and applying the entries here', async (t) => {
  const src = tempDir();
  const a = tempDir();
  const b = tempDir();
  t.after(() => (src.cleanup(), a.cleanup(), b.cleanup()));
  const entries = entriesIn(src.dir);
  const opts = { sourceDateEpoch: 1_700_000_100 };
  const here = await applyLayer(packEntries(entries, opts), a.dir, { whiteouts: 'overlay' });
  const there = await applyEntriesInWorker(entries, opts, b.dir, { whiteouts: 'overlay' });
  assert.deepEqual(there, here);
  assert.deepEqual(describeTree(b.dir), describeTree(a.dir));
  assert.equal(describeTree(b.dir)['app/f299']?.mtime, 1_700_000_100, 'SOURCE_DATE_EPOCH reached the thread');
});

test('on a thread: an entry leaving the root, or a source file that is gone, is an error here', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  await assert.rejects(applyEntriesInWorker([{ path: 'ok', type: 'file', content: 'x' }, { path: 'a/../../escape', type: 'file', content: 'no' }], {}, join(d.dir, 'root'), { whiteouts: 'overlay' }), /\.\./);
  await assert.rejects(applyEntriesInWorker([{ path: 'gone', type: 'file', sourcePath: join(d.dir, 'missing') }], {}, join(d.dir, 'root2'), { whiteouts: 'overlay' }), /ENOENT|missing/);
  assert.deepEqual(Object.keys(describeTree(d.dir)).filter((p) => p.includes('escape')), []);
});
