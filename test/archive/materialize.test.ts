import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, lstatSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyLayer, packEntries, type LayerEntry } from '../../src/archive/index.js';
import { canMaterialize, materializeEntries, sourcesUnchanged } from '../../src/archive/materialize.js';
import { sourceIdentity } from '../../src/archive/identity.js';
import { materializeInWorker } from '../../src/archive/apply-thread.js';
import { describeTree, tempDir } from './fixtures.js';

// A COPY's entries made straight from their sources must be what applying their tar makes; files an
// earlier extraction holds unchanged are linked from it, anything else is copied, and a source that
// changed is noticed.

/** Source files in `dir` and entries copying them, as the build context makes them (with identities). */
function sources(dir: string): LayerEntry[] {
  mkdirSync(join(dir, 'src'), { recursive: true });
  const entries: LayerEntry[] = [
    { path: 'app', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_700_000_000 },
    { path: 'app/inline', type: 'file', content: 'heredoc\n', mode: 0o644, mtime: 1_700_000_000 },
    { path: 'app/link', type: 'symlink', linkname: 'f000', mtime: 1_700_000_000 },
  ];
  for (let i = 0; i < 40; i++) {
    const name = `f${String(i).padStart(3, '0')}`;
    const path = join(dir, 'src', name);
    writeFileSync(path, i === 7 ? randomBytes(300_000) : `file ${i}\n`);
    entries.push(entry(path, `app/${name}`, i === 3 ? 0o4755 : 0o644));
  }
  entries.push({ path: 'app/hard', type: 'hardlink', linkname: 'app/f001' });
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function entry(source: string, path: string, mode = 0o644): LayerEntry {
  const st = lstatSync(source);
  return { path, type: 'file', sourcePath: source, size: st.size, sourceId: sourceIdentity(st), mode, uid: 1000, gid: 1000, mtime: Math.floor(st.mtimeMs / 1000) };
}

test('materialized entries are the tree their tar applies to, SOURCE_DATE_EPOCH included', async (t) => {
  const src = tempDir();
  const a = tempDir();
  const b = tempDir();
  t.after(() => (src.cleanup(), a.cleanup(), b.cleanup()));
  const entries = sources(src.dir);
  assert.ok(canMaterialize(entries));
  const opts = { sourceDateEpoch: 1_700_000_100 };
  await applyLayer(packEntries(entries, opts), a.dir, { whiteouts: 'overlay' });
  const made = await materializeInWorker(entries, opts, b.dir, { whiteouts: 'overlay' });
  assert.deepEqual(describeTree(b.dir), describeTree(a.dir));
  assert.equal(describeTree(b.dir)['app/f003']?.mode, '4755', 'setuid survives the chown');
  assert.equal(made.linked, 0);
  assert.equal(Object.keys(made.ids).length, 40, 'every file from a source has an identity');
});

test('with a donor, unchanged files are linked from it and changed ones copied; the donor keeps its content', async (t) => {
  const src = tempDir();
  const first = tempDir();
  const second = tempDir();
  const expected = tempDir();
  t.after(() => (src.cleanup(), first.cleanup(), second.cleanup(), expected.cleanup()));
  const before = sources(src.dir);
  const done = await materializeEntries(before, first.dir, {}, { whiteouts: 'overlay' });
  appendFileSync(join(src.dir, 'src', 'f005'), 'edited\n');
  assert.equal(sourcesUnchanged(before), false, 'the edit is seen');
  const after = before.map((e) => (e.sourcePath?.endsWith('f005') ? entry(e.sourcePath, e.path, e.mode) : e.path === 'app/f009' ? { ...e, mode: 0o600 } : e));
  assert.ok(sourcesUnchanged(after));
  const again = await materializeEntries(after, second.dir, {}, { whiteouts: 'overlay' }, { dir: first.dir, ids: done.ids });
  await applyLayer(packEntries(after), expected.dir, { whiteouts: 'overlay' });
  assert.deepEqual(describeTree(second.dir), describeTree(expected.dir));
  assert.equal(again.linked, 38, 'all but the edited file and the one whose mode changed');
  assert.equal(lstatSync(join(second.dir, 'app/f000')).ino, lstatSync(join(first.dir, 'app/f000')).ino);
  assert.notEqual(lstatSync(join(second.dir, 'app/f005')).ino, lstatSync(join(first.dir, 'app/f005')).ino);
  assert.equal(readFileSync(join(first.dir, 'app/f005'), 'utf8'), 'file 5\n', 'the donor is not written through');
  assert.equal(readFileSync(join(second.dir, 'app/f005'), 'utf8'), 'file 5\nedited\n');
  assert.equal((lstatSync(join(first.dir, 'app/f009')).mode & 0o777).toString(8), '644');
});

test('a donor file whose metadata is not what the entry wants is copied, not linked', async (t) => {
  const src = tempDir();
  const donor = tempDir();
  const out = tempDir();
  t.after(() => (src.cleanup(), donor.cleanup(), out.cleanup()));
  const entries = sources(src.dir);
  const { ids } = await materializeEntries(entries, donor.dir, {}, { whiteouts: 'overlay' });
  // The record says f002 and f004 are there as the entries want them; their mtime and mode say otherwise.
  writeFileSync(join(donor.dir, 'app/f002'), 'FILE 2\n');
  utimesSync(join(donor.dir, 'app/f002'), 1_600_000_000, 1_600_000_000);
  chmodSync(join(donor.dir, 'app/f004'), 0o600);
  const made = await materializeEntries(entries, out.dir, {}, { whiteouts: 'overlay' }, { dir: donor.dir, ids });
  assert.equal(readFileSync(join(out.dir, 'app/f002'), 'utf8'), 'file 2\n');
  assert.equal((lstatSync(join(out.dir, 'app/f004')).mode & 0o777).toString(8), '644');
  assert.equal(made.linked, 38);
});

test('entries with xattrs, device nodes, or sources without an identity are left to the tar path', () => {
  assert.equal(canMaterialize([{ path: 'a', type: 'file', content: 'x', xattrs: { 'user.a': Buffer.from('1') } }]), false);
  assert.equal(canMaterialize([{ path: 'dev', type: 'char', devmajor: 1, devminor: 3 }]), false);
  assert.equal(canMaterialize([{ path: 'a', type: 'file', sourcePath: '/etc/hostname' }]), false);
  assert.equal(canMaterialize([{ path: 'a', type: 'file', content: 'x' }, { path: 'd', type: 'directory' }]), true);
});

test('an entry leaving the root is refused, as by the tar path', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  await assert.rejects(materializeEntries([{ path: 'a/../../escape', type: 'file', content: 'no' }], join(d.dir, 'root'), {}, { whiteouts: 'overlay' }), /\.\./);
  assert.deepEqual(Object.keys(describeTree(d.dir)).filter((p) => p.includes('escape')), []);
});
