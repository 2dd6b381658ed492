import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeHeader, tarHeader } from '../../src/archive/index.js';
import { ContentStore } from '../../src/store/content.js';
import { humanSize } from '../../src/ui/format.js';
import { fixture, kiln, kilnMain, kilnOk, tempDir } from '../support/env.js';
import { assertBlobsIntact, assertIndexComplete, blobNames, makeTar, sha256hex, tags } from './support.js';

// The store shared by several kiln processes: index.json is only replaced whole under a lock, blobs
// appear only once complete, and garbage collection spares what tags and live processes still need.

/** Run kiln commands all at once; every one must succeed. */
async function together(root: string, commands: string[][]): Promise<void> {
  const results = await Promise.all(commands.map((args) => kiln(root, args)));
  results.forEach((r, i) => assert.equal(r.code, 0, `kiln ${commands[i]!.join(' ')} failed: ${r.stderr}`));
}

function assertStoreWhole(root: string): void {
  JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assertIndexComplete(root);
  assertBlobsIntact(root);
  assert.deepEqual(readdirSync(join(root, 'leases')), [], 'processes that exited left a lease');
}

test('eight kiln processes tagging, loading and removing at once leave index.json whole and as expected', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
  const id = (await tags(root)).get('busybox:latest')!;
  await together(root, [['tag', 'busybox', 'base:1'], ['tag', 'busybox', 'old:1'], ['tag', 'busybox', 'old:2'], ['tag', 'busybox', 'old:3']]);

  // Round 1: four tags, three removals and a load that moves busybox:latest to another manifest.
  await together(root, [
    ['tag', 'base:1', 'app:1'],
    ['tag', 'base:1', 'app:2'],
    ['tag', 'base:1', 'app:3'],
    ['tag', 'base:1', 'app:4'],
    ['rmi', 'old:1'],
    ['rmi', 'old:2'],
    ['rmi', 'old:3'],
    ['load', '-i', fixture('busybox', 'docker')],
  ]);
  assertStoreWhole(root);
  const names1 = ['app:1', 'app:2', 'app:3', 'app:4', 'base:1', 'busybox:latest'];
  assert.deepEqual([...(await tags(root))].sort(), names1.map((n) => [n, id]));

  // Round 2: the other way round.
  await together(root, [
    ['rmi', 'app:1'],
    ['rmi', 'app:2'],
    ['rmi', 'app:3'],
    ['rmi', 'app:4'],
    ['tag', 'base:1', 'new:1'],
    ['tag', 'base:1', 'new:2'],
    ['tag', 'base:1', 'new:3'],
    ['load', '-i', fixture('busybox', 'oci')],
  ]);
  assertStoreWhole(root);
  const names2 = ['base:1', 'busybox:latest', 'new:1', 'new:2', 'new:3'];
  assert.deepEqual([...(await tags(root))].sort(), names2.map((n) => [n, id]));

  // Round 3: tagging an image while its last name is removed (and its blobs collected). Either may
  // win; a tag may fail for want of its image, but never names an image whose blobs are gone.
  const tarball = join(await tempDir(t), 'x.tar');
  writeFileSync(tarball, makeTar([{ header: { path: 'x', type: 'file' }, content: 'x' }]));
  await kilnOk(root, ['import', tarball, 'x:1']);
  const results = await Promise.all([kiln(root, ['tag', 'x:1', 'y:1']), kiln(root, ['rmi', 'x:1']), kiln(root, ['tag', 'x:1', 'z:1'])]);
  assert.equal(results[1]!.code, 0, results[1]!.stderr);
  for (const r of [results[0]!, results[2]!]) if (r.code !== 0) assert.match(r.stderr, /not found|not in the store/);
  assertStoreWhole(root);
  const after = await tags(root);
  assert.ok(!after.has('x:1'));
  for (const n of names2) assert.equal(after.get(n), id);
});

/**
 * A docker-archive whose one layer holds a file of `size` zero bytes, as a generator of chunks, so
 * that it can be fed to a process piece by piece. The archive is valid: loaded whole, it becomes big:1.
 */
function bigArchive(size: number): { chunks: () => Generator<Buffer>; layerDigest: string; total: number } {
  const zeros = Buffer.alloc(1 << 20);
  const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
  const fileHeader = encodeHeader(tarHeader({ path: 'big', type: 'file', size }));
  const layerSize = fileHeader.length + size + pad(size).length + 1024;
  const hash = createHash('sha256').update(fileHeader);
  for (let left = size; left > 0; left -= zeros.length) hash.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
  hash.update(pad(size)).update(Buffer.alloc(1024));
  const layerDigest = `sha256:${hash.digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] }, config: {} }));
  const manifest = Buffer.from(JSON.stringify([{ Config: 'config.json', RepoTags: ['big:1'], Layers: ['layer.tar'] }]));
  const entry = (name: string, body: Buffer) => [encodeHeader(tarHeader({ path: name, type: 'file', size: body.length })), body, pad(body.length)];
  function* chunks(): Generator<Buffer> {
    yield Buffer.concat([...entry('config.json', config), ...entry('manifest.json', manifest)]);
    yield encodeHeader(tarHeader({ path: 'layer.tar', type: 'file', size: layerSize }));
    yield fileHeader;
    for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    yield Buffer.concat([pad(size), Buffer.alloc(1024), pad(layerSize), Buffer.alloc(1024)]);
  }
  return { chunks, layerDigest, total: layerSize };
}

function ingestFiles(root: string): { name: string; size: number }[] {
  const dir = join(root, 'ingest');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((name) => ({ name, size: statSync(join(dir, name)).size }));
}

test('a kiln load killed mid-blob leaves no tag, no partial blob, and a store that still works', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
  const indexBefore = readFileSync(join(root, 'index.json'));
  const big = bigArchive(64 << 20);

  const child = spawn(process.execPath, [kilnMain, 'load'], { env: { ...process.env, KILN_ROOT: root }, stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.on('error', () => {}); // EPIPE once it is killed
  const exited = once(child, 'exit');
  let fed = 0;
  for (const c of big.chunks()) {
    if (!child.stdin.write(c)) await once(child.stdin, 'drain');
    fed += c.length;
    if (fed > 24 << 20) break; // a third of the layer, then stop feeding: the load waits mid-blob
  }
  // Kill it once the layer is being written to ingest/, well before it is complete.
  for (let i = 0; i < 1000 && !ingestFiles(root).some((f) => f.size >= 8 << 20); i++) await sleep(10);
  const partial = ingestFiles(root).find((f) => f.size >= 8 << 20);
  assert.ok(partial && partial.size < big.total, 'the load was caught mid-blob');
  child.kill('SIGKILL');
  const [code, signal] = await exited;
  assert.equal(signal, 'SIGKILL', `kiln load ended by itself (exit ${code}) before it was killed`);

  assert.ok(readFileSync(join(root, 'index.json')).equals(indexBefore), 'index.json changed');
  assert.ok(!(await tags(root)).has('big:1'));
  assert.match(await kilnOk(root, ['images']), /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbusybox +latest /);
  assertBlobsIntact(root);
  assert.ok(!blobNames(root).includes(big.layerDigest.slice(7)), 'the unfinished layer is not a blob');

  // The dead writer's leftovers go with the next gc; then the same archive loads whole.
  await kilnOk(root, ['prune']);
  assert.deepEqual(ingestFiles(root), []);
  const archive = join(await tempDir(t), 'big.tar');
  writeFileSync(archive, Buffer.concat([...big.chunks()]));
  assert.equal(await kilnOk(root, ['load', '-i', archive]), 'Loaded image: big:1\n');
  assertStoreWhole(root);
});

test('gc removes only unreferenced blobs and keeps those a live process has leased', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
  const referenced = blobNames(root);
  const stray = (text: string) => {
    const data = Buffer.from(text);
    writeFileSync(join(root, 'blobs', 'sha256', sha256hex(data)), data);
    return { hex: sha256hex(data), size: data.length };
  };
  const unreferenced = stray('nobody needs this blob '.repeat(100));
  const leased = stray('an operation in progress needs this one '.repeat(10));
  const orphaned = stray('the process that leased this one is gone');

  // A lease names the digests a running process wrote and has not recorded in index.json yet.
  const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => holder.kill());
  const dead = spawn('true');
  await once(dead, 'exit');
  mkdirSync(join(root, 'leases'), { recursive: true });
  // The holder also leased the manifest of the tagged image, as a process loading that image again
  // does: the image's layers are still reachable from index.json and must stay.
  const manifest = (JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest;
  writeFileSync(join(root, 'leases', `${holder.pid}-test`), `sha256:${leased.hex}\n${manifest}\n`);
  writeFileSync(join(root, 'leases', `${dead.pid}-test`), `sha256:${orphaned.hex}\n`);

  const out = await kilnOk(root, ['prune']);
  assert.equal(out, `Total reclaimed space: ${humanSize(unreferenced.size + orphaned.size)}\n`);
  assert.deepEqual(blobNames(root), [...referenced, leased.hex].sort());
  assert.deepEqual(readdirSync(join(root, 'leases')), [`${holder.pid}-test`], "a dead process's lease is dropped");

  holder.kill();
  await once(holder, 'exit');
  await kilnOk(root, ['prune']);
  assert.deepEqual(blobNames(root), referenced, 'once its process is gone the leased blob goes too');
  assertStoreWhole(root);
  assert.equal((await tags(root)).size, 1);
});

test('a blob written or trusted after gc read the leases survives the sweep', async (t) => {
  // The interleaving that once lost a layer under load: gc reads leases, a writer leases and renames
  // a blob in, gc lists the blobs. Played in order here, the writer's blob must stay.
  const root = await tempDir(t);
  const content = new ContentStore(root);
  const early = await content.put('written before gc looked at the leases');
  const live = await content.leasedDigests();
  const written = await content.put('written after gc looked at the leases');
  assert.deepEqual(await content.sweep(live), { removed: 0, bytes: 0 });
  assert.ok((await content.has(written.digest)) && (await content.has(early.digest)));

  // A copy already present that a writer decides to reuse (no lease of its own yet) is kept too.
  await content.releaseLease();
  const before = await content.leasedDigests();
  assert.deepEqual(await content.put('written after gc looked at the leases', written), written);
  const stray = await new ContentStore(root).put('nobody leases this one for long');
  const result = await content.sweep(new Set([...before, early.digest]));
  assert.ok(await content.has(written.digest), 'the reused blob was swept');
  assert.ok(await content.has(stray.digest), 'a blob leased by a live process was swept');
  assert.deepEqual(result, { removed: 0, bytes: 0 });

  // Once nothing leases it, an unreferenced blob goes.
  await content.releaseLease();
  const idle = await content.leasedDigests();
  assert.deepEqual(await content.sweep(new Set([...idle, written.digest, stray.digest])), { removed: 1, bytes: early.size });
  assert.ok(!(await content.has(early.digest)));
  assert.deepEqual(readdirSync(join(root, 'ingest')), [], 'the set-aside directory is gone');
});

test('blobs a killed gc had set aside go back to the store when its leftovers are cleaned', async (t) => {
  const root = await tempDir(t);
  const content = new ContentStore(root);
  const kept = await content.put('set aside by a gc that was killed before it put it back');
  await content.releaseLease();
  // What a sweep leaves when killed between moving a candidate aside and reading the leases again.
  const dead = spawn('true');
  await once(dead, 'exit');
  const aside = join(root, 'ingest', `${dead.pid}-gc-0000`);
  mkdirSync(aside, { recursive: true });
  renameSync(content.blobPath(kept.digest), join(aside, kept.digest.replace(':', '-')));
  writeFileSync(join(aside, 'not-a-digest'), 'ignored');
  assert.ok(!(await content.has(kept.digest)));
  await content.cleanIngest();
  assert.equal((await content.read(kept.digest)).toString(), 'set aside by a gc that was killed before it put it back');
  assert.deepEqual(readdirSync(join(root, 'ingest')), []);
});
