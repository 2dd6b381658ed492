import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';

// Signatures of images in the local store: kept as the image's referrers, so they go wherever the
// image goes (kiln save and load here; kiln push in registry.test.ts).

test('a signature made in the store survives kiln save --format oci and kiln load into another store', async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_PASSWORD: 'pw' };
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  await kilnOk(a, ['load', '-i', fixture('busybox')]);
  await kilnOk(a, ['key', 'generate', '-o', join(dir, 'k')], { env });
  await kilnOk(a, ['sign', '--key', join(dir, 'k.key'), 'busybox', '-a', 'team=core'], { env });
  await kilnOk(a, ['sign', '--key', join(dir, 'k.key'), 'busybox', '--format', 'legacy'], { env });
  await kilnOk(a, ['save', '--format', 'oci', '-o', join(dir, 'busybox.tar'), 'busybox']);

  const unsigned = await kiln(b, ['load', '-i', fixture('busybox')]).then(() => kiln(b, ['verify', '--key', join(dir, 'k.pub'), 'busybox']));
  assert.equal(unsigned.code, 1);
  assert.match(unsigned.stderr, /Error: docker\.io\/library\/busybox@sha256:[0-9a-f]{64} has no signatures/);

  await kilnOk(b, ['load', '-i', join(dir, 'busybox.tar')]);
  const v = await kilnOk(b, ['verify', '--key', join(dir, 'k.pub'), 'busybox', '-a', 'team=core']);
  assert.match(v, /^Verified: sigstore-bundle signature of docker\.io\/library\/busybox@sha256:[0-9a-f]{64} by key sha256:\S+ \(store, /m);
  // the legacy payload carries no annotation, so with -a only the bundle counts
  assert.doesNotMatch(v, /simplesigning/);
  assert.match(await kilnOk(b, ['verify', '--key', join(dir, 'k.pub'), 'busybox']), /^Verified: simplesigning signature/m);
  // the artifacts are referrers, not images
  assert.doesNotMatch(await kilnOk(b, ['images', '-q']), /\n.*\n/);
});

test('kiln verify with a key that did not sign fails and says so; without --key or --certificate it is a usage error', async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_PASSWORD: 'pw' };
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  await kilnOk(root, ['key', 'generate', '-o', join(dir, 'signer')], { env });
  await kilnOk(root, ['key', 'generate', '-o', join(dir, 'other')], { env });
  await kilnOk(root, ['sign', '--key', join(dir, 'signer.key'), 'busybox'], { env });
  const r = await kiln(root, ['verify', '--key', join(dir, 'other.pub'), 'busybox']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not verified: signature sha256:[0-9a-f]{64} \(store\): the bundle's signature does not verify with the given key/);
  const u = await kiln(root, ['verify', 'busybox']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /give --key, --certificate or --certificate-identity with --certificate-oidc-issuer/);
  const bad = await kiln(root, ['sign', '--key', join(dir, 'signer.key'), 'busybox', '-a', 'novalue'], { env });
  assert.match(bad.stderr, /invalid annotation "novalue": expected key=value/);
});

test('two keys sign one stored image: both signatures are kept and each key verifies its own', async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_PASSWORD: 'pw' };
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  for (const k of ['a', 'b']) {
    await kilnOk(root, ['key', 'generate', '-o', join(dir, k)], { env });
    await kilnOk(root, ['sign', '--key', join(dir, `${k}.key`), 'busybox'], { env });
  }
  for (const k of ['a', 'b']) {
    const r = await kiln(root, ['verify', '--key', join(dir, `${k}.pub`), 'busybox']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/^Verified: /gm)?.length, 1);
    assert.equal(r.stderr.match(/^not verified: /gm)?.length, 1);
  }
});
