import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { humanSize } from '../../src/ui/format.js';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { assertOneLineError, assertUnchanged, fileDir, indexSnapshot, makeTar, tags } from '../store/support.js';

// The output of the image commands, shaped as docker's: columns, -q, --digests, --format json,
// inspect's keys, history's rows, rmi's refusals and prune's report.

const root = fileDir('kiln-cli-images-');
const work = fileDir('kiln-cli-work-');
let busyboxId: string;
let busyboxDigest: string;

const hex12 = /^[0-9a-f]{12}$/;

before(async () => {
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
  const inspect = JSON.parse(await kilnOk(root, ['inspect', 'busybox'])) as { Id: string; Digest: string }[];
  busyboxId = inspect[0]!.Id;
  busyboxDigest = inspect[0]!.Digest;
});

/** The cells of a table as docker prints it: columns separated by at least two spaces (three here). */
function table(out: string): string[][] {
  return out.trimEnd().split('\n').map((l) => l.split(/ {2,}/));
}

test('images prints REPOSITORY, TAG, IMAGE ID, CREATED and SIZE with the short ID', async () => {
  const rows = table(await kilnOk(root, ['images']));
  assert.deepEqual(rows[0], ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']);
  const bb = rows.find((r) => r[0] === 'busybox')!;
  assert.equal(bb[1], 'latest');
  assert.equal(bb[2], busyboxId.slice(7, 19));
  assert.match(bb[3]!, / ago$/);
  assert.match(bb[4]!, /^\d+(\.\d+)?(B|kB|MB)$/);
});

test('images -q prints only short IDs, one per image', async () => {
  await kilnOk(root, ['tag', 'busybox', 'quiet:1']);
  const lines = (await kilnOk(root, ['images', '-q'])).trimEnd().split('\n');
  for (const l of lines) assert.match(l, hex12);
  assert.equal(new Set(lines).size, lines.length, 'an image with two names is listed once');
  assert.ok(lines.includes(busyboxId.slice(7, 19)));
  await kilnOk(root, ['rmi', 'quiet:1']);
});

test('images --digests adds a DIGEST column with the manifest digest', async () => {
  const rows = table(await kilnOk(root, ['images', '--digests']));
  assert.deepEqual(rows[0], ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE']);
  assert.equal(rows.find((r) => r[0] === 'busybox')![2], busyboxDigest);
});

test('images --format json prints one object per line with docker\'s keys', async () => {
  const lines = (await kilnOk(root, ['images', '--format', 'json'])).trimEnd().split('\n');
  const bb = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.Repository === 'busybox')!;
  for (const key of ['Repository', 'Tag', 'Digest', 'ID', 'CreatedAt', 'Size']) assert.ok(key in bb, `missing ${key}`);
  assert.equal(bb.Tag, 'latest');
  assert.equal(bb.Digest, busyboxDigest);
  assert.equal(bb.ID, busyboxId);
});

test('tag gives an image a second name with the same ID; rmi of that name only untags', async () => {
  await kilnOk(root, ['tag', 'busybox', 'localhost:5000/tools/bb:v1']);
  const t = await tags(root);
  assert.equal(t.get('localhost:5000/tools/bb:v1'), busyboxId);
  assert.equal(t.get('busybox:latest'), busyboxId);
  assert.equal(await kilnOk(root, ['rmi', 'localhost:5000/tools/bb:v1']), 'Untagged: localhost:5000/tools/bb:v1\n');
  assert.equal((await tags(root)).get('busybox:latest'), busyboxId);
});

test('rmi by ID of an image with two names fails without -f and deletes both names with it', async () => {
  await kilnOk(root, ['tag', 'busybox', 'second:1']);
  const before = indexSnapshot(root);
  const r = await kiln(root, ['rmi', busyboxId.slice(7, 19)]);
  assertOneLineError(r, new RegExp(`unable to delete ${busyboxId.slice(7, 19)} \\(must be forced\\) - image is referenced in multiple repositories`));
  await assertUnchanged(root, before);

  const out = await kilnOk(root, ['rmi', '-f', busyboxId.slice(7, 19)]);
  assert.deepEqual(out.trimEnd().split('\n').sort(), ['Deleted: ' + busyboxId, 'Untagged: busybox:latest', 'Untagged: second:1'].sort());
  assert.equal((await tags(root)).size, 0);
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
});

test('inspect prints a JSON array shaped like docker image inspect', async () => {
  const [doc] = JSON.parse(await kilnOk(root, ['inspect', 'busybox'])) as Record<string, unknown>[];
  for (const key of ['Id', 'RepoTags', 'RepoDigests', 'Created', 'Config', 'Architecture', 'Os', 'Size', 'RootFS', 'History']) assert.ok(key in doc!, `missing ${key}`);
  assert.equal(doc!.Id, busyboxId);
  assert.deepEqual(doc!.RepoTags, ['busybox:latest']);
  assert.deepEqual((doc!.Config as { Cmd: string[] }).Cmd, ['sh']);
  const rootfs = doc!.RootFS as { Type: string; Layers: string[] };
  assert.equal(rootfs.Type, 'layers');
  assert.equal(rootfs.Layers.length, 1);
  assert.equal(await kilnOk(root, ['inspect', '-f', '{{.Os}}/{{json .Config.Cmd}}', 'busybox']), 'linux/["sh"]\n');
});

test('history shows newest first, the image ID on top, <missing> below and 0B for empty layers', async () => {
  const rows = table(await kilnOk(root, ['history', 'busybox']));
  assert.deepEqual(rows[0], ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT']);
  assert.equal(rows.length, 3);
  assert.equal(rows[1]![0], busyboxId.slice(7, 19));
  assert.equal(rows[1]![2], 'CMD ["sh"]');
  assert.equal(rows[1]![3], '0B');
  assert.equal(rows[2]![0], '<missing>');
  assert.match(rows[2]![3]!, /^\d+(\.\d+)?MB$/);
  const full = table(await kilnOk(root, ['history', '--no-trunc', 'busybox']));
  assert.equal(full[1]![0], busyboxId);
});

test('prune removes dangling images and unreferenced blobs and reports the space reclaimed', async () => {
  const tarball = join(work, 'dangling.tar');
  writeFileSync(tarball, makeTar([{ header: { path: 'data', type: 'file' }, content: randomBytes(50_000) }]));
  const id = (await kilnOk(root, ['import', tarball])).trim();
  const dangling = table(await kilnOk(root, ['images'])).find((r) => r[0] === '<none>');
  assert.deepEqual(dangling?.slice(0, 3), ['<none>', '<none>', id.slice(7, 19)]);

  const blobs = join(root, 'blobs', 'sha256');
  const sizes = new Map(readdirSync(blobs).map((b) => [b, statSync(join(blobs, b)).size]));
  const out = await kilnOk(root, ['prune']);
  const left = new Set(readdirSync(blobs));
  const reclaimed = [...sizes].filter(([b]) => !left.has(b)).reduce((sum, [, size]) => sum + size, 0);
  assert.ok(reclaimed > 50_000, 'the layer, config and manifest of the dangling image went');
  assert.deepEqual(out.trimEnd().split('\n'), ['Deleted Images:', `deleted: ${id}`, '', `Total reclaimed space: ${humanSize(reclaimed)}`]);
  assert.ok(!table(await kilnOk(root, ['images'])).some((r) => r[0] === '<none>'));
  assert.equal((await tags(root)).get('busybox:latest'), busyboxId, 'prune keeps named images');
  assert.equal(await kilnOk(root, ['prune']), 'Total reclaimed space: 0B\n');
});
