import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { packEntries, writeLayer, type LayerEntry } from '../../src/archive/index.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { Store, hostPlatform } from '../../src/store/store.js';
import { kiln, kilnOk, kilnMain } from '../support/env.js';
import { assertOneLineError, fileDir, run, sha256hex, treeOfDir, treeOfTar, type Node } from './support.js';

// kiln export flattens an image's layers into one tar by streaming them top-down: whiteouts, opaque
// directories and replaced files resolved, each path once, hardlinks kept. umoci, which applies the
// layers one by one on disk, is the independent judge of what the result must be.

const root = fileDir('kiln-export-root-');
const work = fileDir('kiln-export-work-');

const f = (path: string, content: string, more: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'file', content, mode: 0o644, ...more });
const d = (path: string, more: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'directory', mode: 0o755, ...more });

const layers: LayerEntry[][] = [
  [
    d('bin'),
    f('bin/tool', 'tool', { mode: 0o755, uid: 1000, gid: 1000 }),
    { path: 'bin/alias', type: 'hardlink', linkname: 'bin/tool', mode: 0o755, uid: 1000, gid: 1000 },
    d('data'),
    f('data/d1', 'd1'),
    d('etc'),
    f('etc/a', 'a1'),
    f('etc/b', 'b1'),
    d('lib'),
    f('lib/f', 'orig'),
    { path: 'lib/hl', type: 'hardlink', linkname: 'lib/f', mode: 0o644 },
    { path: 'link', type: 'symlink', linkname: '/etc/b' },
    d('opt'),
    d('opt/x'),
    f('opt/x/old', 'old'),
    d('opt/x/sub'),
    f('opt/x/sub/deep', 'deep'),
    d('swap'),
    f('swap/x', 'x'),
    d('var'),
    f('var/keep', 'keep', { mode: 0o600 }),
  ],
  [
    f('data', 'now a file'), // a file over a directory hides what was below it
    d('etc', { mode: 0o700 }),
    f('etc/.wh.a', ''), // OCI whiteout
    d('lib'),
    f('lib/f', 'replaced'), // lib/hl keeps the content it had
    d('opt'),
    d('opt/x'),
    f('opt/x/.wh..wh..opq', ''), // opaque: old and sub go, new stays
    f('opt/x/new', 'new'),
    f('swap', 'a file now'), // hides swap/x, though an upper layer makes swap a directory again
    d('var'),
    f('var/keep', 'keep2', { mode: 0o640 }),
  ],
  [
    d('etc', { mode: 0o750 }),
    f('etc/a', 'a3'), // back after its whiteout
    f('.wh.link', ''),
    d('swap'),
    f('swap/z', 'z'),
    f('top', 'top'),
  ],
];

const file = (content: string, mode = '644', owner = 0): Node => ({ type: 'file', mode, uid: owner, gid: owner, size: content.length, sha: sha256hex(Buffer.from(content)) });
const dir = (mode = '755'): Node => ({ type: 'directory', mode, uid: 0, gid: 0 });
const expected: Record<string, Node> = {
  bin: dir(),
  'bin/tool': file('tool', '755', 1000),
  'bin/alias': file('tool', '755', 1000),
  data: file('now a file'),
  etc: dir('750'),
  'etc/a': file('a3'),
  'etc/b': file('b1'),
  lib: dir(),
  'lib/f': file('replaced'),
  'lib/hl': file('orig'),
  opt: dir(),
  'opt/x': dir(),
  'opt/x/new': file('new'),
  swap: dir(),
  'swap/z': file('z'),
  top: file('top'),
  var: dir(),
  'var/keep': file('keep2', '640'),
};

before(async () => {
  const store = await Store.open(root);
  const descriptors = [];
  const diffIds = [];
  for (const entries of layers) {
    const l = await writeLayer(packEntries(entries), async (blob) => void (await store.content.put(blob)), 'gzip');
    await store.setLayerInfo(l.digest, { diffId: l.diffId, size: l.uncompressedSize });
    descriptors.push({ mediaType: MediaType.OciLayerGzip, digest: l.digest, size: l.size });
    diffIds.push(l.diffId);
  }
  const p = hostPlatform();
  await store.writeImage({ architecture: p.architecture, os: p.os, rootfs: { type: 'layers', diff_ids: diffIds } }, descriptors, ['layered:1']);
  await store.content.releaseLease();
});

test('export resolves whiteouts, opaque directories and replacements, and emits each path once', async () => {
  const out = join(work, 'layered.tar');
  assert.equal(await kilnOk(root, ['export', '-o', out, 'layered:1']), '');
  const listing = await treeOfTar(readFileSync(out));
  assert.deepEqual(listing.tree, expected);
  assert.equal(new Set(listing.order).size, listing.order.length, 'a path appears twice');
  // A hardlink whose target survives stays a hardlink; one whose target was replaced carries its old content.
  assert.deepEqual(listing.hardlinks, { 'bin/alias': 'bin/tool' });
});

test('export to stdout writes the same tar as export -o', async () => {
  const out = join(work, 'again.tar');
  await kilnOk(root, ['export', '-o', out, 'layered:1']);
  const piped = run('bash', ['-c', `KILN_ROOT='${root}' '${process.execPath}' '${kilnMain}' export layered:1 | sha256sum`]);
  assert.equal(piped.split(' ')[0], sha256hex(readFileSync(out)));
});

test('umoci unpack of the image kiln saves gives the same file tree as kiln export', async () => {
  const archive = join(work, 'layered.oci.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'layered:1']);
  run('skopeo', ['copy', '-q', `oci-archive:${archive}`, `oci:${work}/layout:layered`]);
  run('umoci', ['unpack', '--image', `${work}/layout:layered`, `${work}/bundle`]);
  const unpacked = treeOfDir(join(work, 'bundle', 'rootfs'));
  await kilnOk(root, ['export', '-o', join(work, 'judged.tar'), 'layered:1']);
  const exported = await treeOfTar(readFileSync(join(work, 'judged.tar')));
  assert.deepEqual(exported.tree, unpacked);
});

test('a failed export leaves no file behind and says why in one line', async () => {
  const out = join(work, 'failed.tar');
  const unknown = await kiln(root, ['export', '-o', out, 'no-such:1']);
  assertOneLineError(unknown, /image "no-such:1" not found/);

  // An image whose top layer blob went missing (a store damaged from outside).
  const store = await Store.open(root);
  const l = await writeLayer(packEntries([f('only-here', 'x')]), async (blob) => void (await store.content.put(blob)), 'gzip');
  const base = (await store.resolveImage('layered:1')).manifest.layers;
  const img = await store.writeImage(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } },
    [...base, { mediaType: MediaType.OciLayerGzip, digest: l.digest, size: l.size }],
    ['broken:1'],
  );
  await store.content.releaseLease();
  rmSync(store.content.blobPath(l.digest));
  const before = readdirSync(work).sort();
  assertOneLineError(await kiln(root, ['export', '-o', out, img.id]), new RegExp(`blob ${l.digest} not found`));
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(work).sort(), before, 'no temporary file is left');
});
