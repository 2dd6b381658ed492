import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kiln, kilnOk } from '../../support/env.js';
import { Store, hostPlatform } from '../../../src/store/store.js';
import { has, makeImage, seedIndex, startDistribution, storeImage, testEnv, client } from './support.js';

// Against Debian's docker-registry (CNCF Distribution 2.8) with htpasswd basic auth: login, push,
// pull, cross-repository mount, and an index of two platforms of which the host's is chosen.

const skip = !has('docker-registry') && 'docker-registry not installed';

test('docker-registry with htpasswd: login, push, mount into a second repository, pull', { skip, timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t, { user: 'ci', password: 'ci-password' });
  const e = await testEnv(t);
  const img = makeImage({ layers: 3, layerSize: 100_000 });
  await storeImage(e.root, img, `${reg.host}/team/app:1`);
  const anonymous = await kiln(e.root, ['push', `${reg.host}/team/app:1`], { env: e.env });
  assert.notEqual(anonymous.code, 0);
  assert.match(anonymous.stderr, /unauthorized/);
  const bad = await kiln(e.root, ['login', reg.host, '-u', 'ci', '--password-stdin'], { env: e.env, input: 'nope-nope' });
  assert.match(bad.stderr, /incorrect username or password/);
  await kilnOk(e.root, ['login', reg.host, '-u', 'ci', '--password-stdin'], { env: e.env, input: 'ci-password\n' });
  const pushed = await kilnOk(e.root, ['push', `${reg.host}/team/app:1`], { env: e.env });
  assert.match(pushed, new RegExp(`^1: digest: ${img.digest} size: ${img.manifest.length}$`, 'm'));
  const mounted = await kilnOk(e.root, ['push', `${reg.host}/team/app:1`, `${reg.host}/other/app:2`], { env: e.env });
  assert.equal((mounted.match(/Mounted from team\/app/g) ?? []).length, 3, mounted);
  const other = `${e.dir}/other`;
  await kilnOk(other, ['pull', `${reg.host}/other/app:2`], { env: e.env });
  const store = await Store.open(other);
  const got = await store.resolveImage(`${reg.host}/other/app:2`);
  assert.equal(got.manifestDescriptor.digest, img.digest);
});

test("docker-registry: from an index of two platforms the host's entry is pulled", { skip, timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t);
  const host = hostPlatform();
  const foreign = { os: 'linux', architecture: host.architecture === 'arm64' ? 'amd64' : 'arm64' };
  const mine = makeImage({ platform: host });
  const theirs = makeImage({ platform: foreign });
  const indexDigest = await seedIndex(client(reg.url), 'team/multi', 'latest', [
    { image: theirs, platform: foreign },
    { image: mine, platform: host },
  ]);
  const e = await testEnv(t);
  const out = await kilnOk(e.root, ['pull', `${reg.host}/team/multi`], { env: e.env });
  assert.match(out, new RegExp(`^Digest: ${indexDigest}$`, 'm'), 'docker prints the digest of the index');
  const store = await Store.open(e.root);
  const img = await store.resolveImage(`${reg.host}/team/multi:latest`);
  assert.equal(img.manifestDescriptor.digest, mine.digest);
  assert.equal(img.config.architecture, host.architecture);
  assert.equal(await store.content.has(theirs.digest), false, "the other platform's content is not downloaded");
  // and an explicit --platform picks the other entry
  const o2 = `${e.dir}/o2`;
  await kilnOk(o2, ['pull', '--platform', `${foreign.os}/${foreign.architecture}`, `${reg.host}/team/multi`], { env: e.env });
  const img2 = await (await Store.open(o2)).resolveImage(`${reg.host}/team/multi:latest`);
  assert.equal(img2.manifestDescriptor.digest, theirs.digest);
  assert.equal(img2.config.architecture, foreign.architecture);
});
