import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, kiln, kilnOk } from '../../support/env.js';
import { Store } from '../../../src/store/store.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import { pull, pullImage, pushImage, type TransferEvent } from '../../../src/registry/client/index.js';
import { randomBytes } from 'node:crypto';
import { fastRetry, hostOf, sha256, makeImage, seedImage, startProxy, startRegistry, storeImage, testEnv } from './support.js';

// kiln push and kiln pull against kiln's own registry (no auth): docker's output, digests kept
// exactly, HEAD-skip, cross-repository mounts, --all-tags, digest references, compression of
// uncompressed layers once, chunked uploads.

test('push prints a line per layer and "<tag>: digest: sha256:… size: N"; pull into an empty store gets the same digest', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  await kilnOk(e.root, ['tag', 'busybox', `${host}/lib/busybox:1.0`], { env: e.env });
  const local = JSON.parse(await kilnOk(e.root, ['inspect', `${host}/lib/busybox:1.0`], { env: e.env }))[0];
  const pushed = await kilnOk(e.root, ['push', `${host}/lib/busybox:1.0`], { env: e.env });
  assert.match(pushed, new RegExp(`^The push refers to repository \\[${host}/lib/busybox\\]$`, 'm'));
  assert.match(pushed, /^[0-9a-f]{12}: Pushed [\d.]+[kM]?B in [\d.]+s/m);
  const m = /^1\.0: digest: (sha256:[0-9a-f]{64}) size: (\d+)$/m.exec(pushed);
  assert.ok(m, pushed);
  assert.equal(m[1], local.Digest, 'layers already compressed: the pushed manifest is the stored one, byte for byte');

  const other = `${e.dir}/other`;
  const pulled = await kilnOk(other, ['pull', `${host}/lib/busybox:1.0`], { env: e.env });
  assert.match(pulled, /^1\.0: Pulling from lib\/busybox$/m);
  assert.match(pulled, /^[0-9a-f]{12}: Pull complete/m);
  assert.match(pulled, new RegExp(`^Digest: ${m[1]}$`, 'm'));
  assert.match(pulled, /^Status: Downloaded newer image for/m);
  const back = JSON.parse(await kilnOk(other, ['inspect', `${host}/lib/busybox:1.0`], { env: e.env }))[0];
  assert.equal(back.Digest, m[1]);
  assert.equal(back.Id, local.Id);

  const again = await kilnOk(other, ['pull', `${host}/lib/busybox:1.0`], { env: e.env });
  assert.match(again, /: Already exists$/m);
  assert.match(again, /^Status: Image is up to date for/m);
  // kiln rmi then pull again downloads it anew
  await kilnOk(other, ['rmi', `${host}/lib/busybox:1.0`], { env: e.env });
  assert.match(await kilnOk(other, ['pull', '-q', `${host}/lib/busybox:1.0`], { env: e.env }), new RegExp(`^${host}/lib/busybox:1.0\\n$`));
});

test('a second push skips blobs the registry has (HEAD) and uploads nothing', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  const img = makeImage({ layers: 3 });
  const store = await storeImage(e.root, img, `${proxy.host}/team/app:1`);
  await pushImage(store, `${proxy.host}/team/app:1`, undefined, { env: e.env });
  const uploadsBefore = proxy.log.filter((l) => l.method === 'PUT' && l.path.includes('/blobs/uploads/')).length;
  assert.equal(uploadsBefore, 4);
  proxy.log.length = 0;
  const events: TransferEvent[] = [];
  await pushImage(store, `${proxy.host}/team/app:1`, undefined, { env: e.env, onProgress: (ev) => events.push(ev) });
  assert.deepEqual(
    proxy.log.filter((l) => l.path.includes('/blobs/')).map((l) => l.method),
    ['HEAD', 'HEAD', 'HEAD', 'HEAD'],
  );
  assert.equal(events.filter((ev) => ev.type === 'blob' && ev.state === 'exists').length, 4);
  const out = await kilnOk(e.root, ['push', `${proxy.host}/team/app:1`], { env: e.env });
  assert.equal((out.match(/: Layer already exists$/gm) ?? []).length, 3);
});

test('pushing to another repository of the same registry mounts the blobs instead of uploading them', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  const img = makeImage({ layers: 2 });
  await storeImage(e.root, img, `${proxy.host}/team/app:1`);
  await kilnOk(e.root, ['push', `${proxy.host}/team/app:1`], { env: e.env });
  proxy.log.length = 0;
  const out = await kilnOk(e.root, ['push', `${proxy.host}/team/app:1`, `${proxy.host}/other/copy:2`], { env: e.env });
  assert.equal((out.match(/: Mounted from team\/app$/gm) ?? []).length, 2, out);
  assert.ok(proxy.log.some((l) => l.method === 'POST' && l.path.includes('mount=') && l.path.includes('from=team%2Fapp')), 'a mount request');
  assert.ok(!proxy.log.some((l) => l.method === 'PUT' && l.path.includes('/blobs/uploads/')), 'no upload');
  // a blob pulled from one repository is mounted into another on push, too
  const e2 = await testEnv(t);
  await kilnOk(e2.root, ['pull', `${proxy.host}/other/copy:2`], { env: e2.env });
  const out2 = await kilnOk(e2.root, ['push', `${proxy.host}/other/copy:2`, `${proxy.host}/third/x:1`], { env: e2.env });
  assert.equal((out2.match(/: Mounted from other\/copy$/gm) ?? []).length, 2, out2);
});

test('pull --all-tags pulls every tag of the repository', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const c = reg.client();
  for (const tag of ['a', 'b', 'c']) await seedImage(c, 'team/many', tag, makeImage({ layers: 1 }));
  const out = await kilnOk(e.root, ['pull', '-a', `${hostOf(reg.url)}/team/many`], { env: e.env });
  assert.match(out, /Pulling 3 tags/);
  const names = (await kilnOk(e.root, ['images', '--format', 'json'], { env: e.env })).trim().split('\n').map((l) => JSON.parse(l).Tag).sort();
  assert.deepEqual(names, ['a', 'b', 'c']);
  const bad = await kiln(e.root, ['pull', '-a', `${hostOf(reg.url)}/team/many:a`], { env: e.env });
  assert.equal(bad.code, 2);
});

test('pull NAME@sha256:… records the image under that digest reference, and pullImage returns it for the build engine', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const img = makeImage();
  await seedImage(reg.client(), 'team/pinned', 'v1', img);
  const store = await Store.open(e.root);
  const ref = `${hostOf(reg.url)}/team/pinned@${img.digest}`;
  const stored = await pullImage(store, ref, { env: e.env });
  assert.equal(stored.manifestDescriptor.digest, img.digest);
  assert.equal(stored.id, JSON.parse(img.manifest.toString()).config.digest);
  assert.deepEqual(stored.names, [ref]);
  assert.equal((await store.resolveImage(ref)).manifestDescriptor.digest, img.digest);
  for (const l of img.layers) assert.deepEqual(await store.content.read(stored.manifest.layers[img.layers.indexOf(l)]!.digest), l);
});

test('an uncompressed layer is gzip-compressed for the push once; a second push does not compress again', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const store = await Store.open(e.root);
  const tar = Buffer.concat([randomBytes(10_000), Buffer.alloc(20_000)]);
  const info = await store.content.put(tar);
  const host = hostOf(reg.url);
  await store.writeImage({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [info.digest] } }, [{ mediaType: MediaType.OciLayer, digest: info.digest, size: info.size }], [`${host}/team/raw:1`]);
  const events: TransferEvent[] = [];
  const first = await pushImage(store, `${host}/team/raw:1`, undefined, { env: e.env, onProgress: (ev) => events.push(ev) });
  assert.equal(events.filter((ev) => ev.type === 'blob' && ev.state === 'compressing').length, 1);
  const manifest = JSON.parse((await reg.client().req('GET', `/v2/team/raw/manifests/1`, { headers: { accept: MediaType.OciManifest } })).text());
  assert.equal(manifest.layers[0].mediaType, MediaType.OciLayerGzip);
  assert.notEqual(manifest.layers[0].digest, info.digest);
  // the compressed image replaced the uncompressed one in the store: one digest, here and there
  assert.equal((await store.resolveImage(`${host}/team/raw:1`)).manifestDescriptor.digest, first.digest);
  events.length = 0;
  const second = await pushImage(store, `${host}/team/raw:1`, `${host}/team/raw:2`, { env: e.env, onProgress: (ev) => events.push(ev) });
  assert.equal(events.filter((ev) => ev.type === 'blob' && ev.state === 'compressing').length, 0, 'remembered from the first push');
  assert.equal(second.digest, first.digest);
  // the config still names the uncompressed layer: diffIDs do not change with compression
  const other = await Store.open(`${e.dir}/other`);
  const pulled = await pullImage(other, `${host}/team/raw:1`, { env: e.env });
  assert.deepEqual(pulled.config.rootfs.diff_ids, [info.digest]);
});

test('blobs above the monolithic limit go up in PATCH chunks; smaller ones in one PUT', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  const img = makeImage({ layers: 1, layerSize: 300_000 });
  const store = await storeImage(e.root, img, `${proxy.host}/team/big:1`);
  await pushImage(store, `${proxy.host}/team/big:1`, undefined, { env: e.env, monolithicMax: 100_000, chunkSize: 64 * 1024 });
  const patches = proxy.log.filter((l) => l.method === 'PATCH');
  assert.equal(patches.length, Math.ceil(img.layers[0]!.length / (64 * 1024)));
  const other = await Store.open(`${e.dir}/other`);
  const pulled = await pullImage(other, `${proxy.host}/team/big:1`, { env: e.env });
  assert.deepEqual(await other.content.read(pulled.manifest.layers[0]!.digest), img.layers[0]);
});

test('layers transfer in parallel, never more at once than the concurrency asked for', async (t) => {
  const reg = await startRegistry(t);
  const img = makeImage({ layers: 8, layerSize: 4096 });
  await seedImage(reg.client(), 'team/wide', '1', img);
  const proxy = await startProxy(t, reg.url, (req) => (req.method === 'GET' && req.url!.includes('/blobs/') ? { delayMs: 60 } : 'pass'));
  const e = await testEnv(t);
  const store = await Store.open(e.root);
  await pull(store, `${proxy.host}/team/wide:1`, { env: e.env, concurrency: 3 });
  assert.equal(proxy.maxInFlight(), 3);
  assert.equal(proxy.log.filter((l) => l.method === 'GET' && l.path.includes('/blobs/')).length, 9);
});

test('5xx answers are retried with backoff, and a download cut off mid-way resumes with a Range request', async (t) => {
  const reg = await startRegistry(t);
  const img = makeImage({ layers: 1, layerSize: 200_000 });
  await seedImage(reg.client(), 'team/flaky', '1', img);
  const layerPath = `/v2/team/flaky/blobs/${sha256(img.layers[0]!)}`;
  let manifestTries = 0;
  let cut = false;
  const proxy = await startProxy(t, reg.url, (req) => {
    if (req.url!.includes('/manifests/') && manifestTries++ < 2) return { status: 503, body: 'busy' };
    if (req.url === layerPath && !cut) {
      cut = true;
      return { cutAfter: 50_000 };
    }
    return 'pass';
  });
  const e = await testEnv(t);
  const store = await Store.open(e.root);
  const events: TransferEvent[] = [];
  const r = await pull(store, `${proxy.host}/team/flaky:1`, { env: e.env, retry: fastRetry, onProgress: (ev) => events.push(ev) });
  assert.equal(r.digest, img.digest);
  const layerGets = proxy.log.filter((l) => l.path === layerPath);
  assert.equal(layerGets.length, 2);
  assert.match(layerGets[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/=(\d+)-/.exec(layerGets[1]!.range!)![1]) > 0);
  assert.ok(events.some((ev) => ev.type === 'retry' && /resuming at byte/.test(ev.why)));
  assert.deepEqual(await store.content.read(sha256(img.layers[0]!)), img.layers[0]);
});

test('kiln push of an image ID needs a destination name', async (t) => {
  const e = await testEnv(t);
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  const id = (await kilnOk(e.root, ['images', '-q'], { env: e.env })).trim();
  const r = await kiln(e.root, ['push', id], { env: e.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give the name to push to/);
});

