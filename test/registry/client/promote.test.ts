import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kiln, kilnOk } from '../../support/env.js';
import { promoteRemote } from '../../../src/registry/client/index.js';
import { hostPlatform } from '../../../src/store/store.js';
import { client, hostOf, makeImage, seedImage, seedIndex, sha256, startProxy, startRegistry, storeImage, testEnv, type Client } from './support.js';

// kiln promote between registry references: SRC resolved to its manifest digest first, exactly those
// manifest bytes put under DEST — the PUT alone in the same repository, cross-repository mounts in
// another repository of the same registry, blobs streamed across to another registry.

const manifestDigest = async (c: Client, repo: string, ref: string) => {
  const r = await c.req('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
  return r.status === 200 ? sha256(r.body) : `HTTP ${r.status}`;
};

test('promote in a registry: same repository is one manifest PUT of the bytes SRC names; SRC not in the store is found by its registry host', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  const img = makeImage({ layers: 2 });
  await storeImage(e.root, img, `${proxy.host}/team/app:staging`);
  await kilnOk(e.root, ['push', '-q', `${proxy.host}/team/app:staging`], { env: e.env });
  proxy.log.length = 0;

  // An empty store: SRC is not there, and it names a registry host, so the registry is asked.
  const empty = `${e.dir}/empty`;
  const printed = await kilnOk(empty, ['promote', `${proxy.host}/team/app:staging`, `${proxy.host}/team/app:prod`], { env: e.env });
  assert.equal(printed, `${proxy.host}/team/app:prod -> ${img.digest}\n`);
  assert.equal(await manifestDigest(reg.client(), 'team/app', 'prod'), img.digest);
  const writes = proxy.log.filter((l) => l.method !== 'GET' && l.method !== 'HEAD');
  assert.deepEqual(writes.map((l) => `${l.method} ${l.path}`), ['PUT /v2/team/app/manifests/prod'], 'no blob is touched within one repository');
});

test('promote --remote to another repository of the same registry mounts the blobs, never uploads them', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  const img = makeImage({ layers: 3 });
  await storeImage(e.root, img, `${proxy.host}/team/app:staging`);
  await kilnOk(e.root, ['push', '-q', `${proxy.host}/team/app:staging`], { env: e.env });
  proxy.log.length = 0;
  // --remote: the registry, although the store has SRC.
  const printed = await kilnOk(e.root, ['promote', '--remote', `${proxy.host}/team/app:staging`, `${proxy.host}/prod/app:1`], { env: e.env });
  assert.equal(printed, `${proxy.host}/prod/app:1 -> ${img.digest}\n`);
  assert.equal(await manifestDigest(reg.client(), 'prod/app', '1'), img.digest);
  const mounts = proxy.log.filter((l) => l.method === 'POST' && l.path.includes('mount='));
  assert.equal(mounts.length, 4, 'config and three layers mounted');
  assert.ok(mounts.every((l) => l.path.includes('from=team%2Fapp') || l.path.includes('from=team/app')), mounts.map((l) => l.path).join('\n'));
  assert.equal(proxy.log.filter((l) => l.method === 'PATCH' || (l.method === 'PUT' && l.path.includes('/blobs/'))).length, 0);
  // The store was not asked to tag anything.
  const local = await kiln(e.root, ['inspect', `${proxy.host}/prod/app:1`], { env: e.env });
  assert.notEqual(local.code, 0);
});

test('promote to another registry streams the blobs across; an index brings its manifests along', async (t) => {
  const a = await startRegistry(t);
  const b = await startRegistry(t);
  const e = await testEnv(t);
  const img = makeImage({ layers: 2, layerSize: 300_000 });
  await storeImage(e.root, img, `${hostOf(a.url)}/team/app:rc`);
  await kilnOk(e.root, ['push', '-q', `${hostOf(a.url)}/team/app:rc`], { env: e.env });
  const printed = await kilnOk(`${e.dir}/empty`, ['promote', `${hostOf(a.url)}/team/app:rc`, `${hostOf(b.url)}/release/app:1.0`], { env: e.env });
  assert.equal(printed, `${hostOf(b.url)}/release/app:1.0 -> ${img.digest}\n`);
  assert.equal(await manifestDigest(b.client(), 'release/app', '1.0'), img.digest);
  for (const blob of [img.config, ...img.layers]) {
    const r = await b.client().req('GET', `/v2/release/app/blobs/${sha256(blob)}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(blob));
  }

  const other = { os: 'linux', architecture: hostPlatform().architecture === 'arm64' ? 'amd64' : 'arm64' };
  const x = makeImage();
  const y = makeImage({ platform: other });
  const indexDigest = await seedIndex(client(a.url), 'team/multi', 'v2', [
    { image: x, platform: hostPlatform() },
    { image: y, platform: other },
  ]);
  const r = await promoteRemote(`${hostOf(a.url)}/team/multi:v2`, `${hostOf(b.url)}/release/multi:v2`, { env: e.env });
  assert.equal(r.digest, indexDigest);
  assert.equal(await manifestDigest(b.client(), 'release/multi', 'v2'), indexDigest);
  assert.equal(await manifestDigest(b.client(), 'release/multi', y.digest), y.digest, "each platform's manifest is there by digest");
  assert.equal(r.blobs.copied, 6, "two configs and four layers");
});

test('DEST gets the digest SRC had when promote started, even if SRC moves meanwhile', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  const first = makeImage();
  const second = makeImage();
  await storeImage(e.root, first, `${host}/team/app:staging`);
  await kilnOk(e.root, ['push', '-q', `${host}/team/app:staging`], { env: e.env });
  const r = await promoteRemote(`${host}/team/app:staging`, `${host}/team/app:prod`, {
    env: e.env,
    // staging moves on between the resolution and the PUT
    onResolved: () => seedImage(reg.client(), 'team/app', 'staging', second),
  });
  assert.equal(r.digest, first.digest);
  assert.equal(await manifestDigest(reg.client(), 'team/app', 'staging'), second.digest);
  assert.equal(await manifestDigest(reg.client(), 'team/app', 'prod'), first.digest);
});

test('promote of an unknown SRC in a registry is a clear error and tags nothing', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  const img = makeImage();
  await storeImage(e.root, img, `${host}/team/app:staging`);
  await kilnOk(e.root, ['push', '-q', `${host}/team/app:staging`], { env: e.env });
  for (const [args, dest] of [
    [['promote', '--remote', `${host}/team/app:nope`, `${host}/team/app:prod`], 'team/app'],
    [['promote', `${host}/team/gone:1`, `${host}/other/app:prod`], 'other/app'],
  ] as const) {
    const r = await kiln(`${e.dir}/empty`, [...args], { env: e.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${host}/team/(app:nope|gone:1): manifest unknown`));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(await manifestDigest(reg.client(), dest, 'prod'), 'HTTP 404');
  }
  // A bare name not in the store stays the store's error: no registry is guessed for it.
  const local = await kiln(`${e.dir}/empty`, ['promote', 'web:nope', 'web:prod'], { env: e.env });
  assert.equal(local.code, 1);
  assert.match(local.stderr, /image "web:nope" not found in the store/);
});
