import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kiln, kilnOk } from '../support/env.js';
import { hostOf, testEnv } from '../registry/client/support.js';
import { pushBlob, pushImage, randomImage, startRegistry } from '../registry/server/support.js';
import { attestationStatement, PredicateTypes } from '../../src/sign/attest.js';
import { makeBundle } from '../../src/sign/bundle.js';
import { InTotoPayloadType, signEnvelope } from '../../src/sign/dsse.js';
import { bundleArtifact } from '../../src/sign/artifact.js';

// kiln attest and kiln verify-attestation (cosign attest v3's form: an in-toto statement in a DSSE
// envelope in a Sigstore bundle, as a referrer): through the store, kiln push, and the registry.

test('an attestation made in the store verifies there, travels with kiln push and verifies in the registry; it is no signature; a tampered one is refused', { timeout: 60_000 }, async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const e = await testEnv(t);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const [key, pub, predicateFile] = ['k.key', 'k.pub', 'provenance.json'].map((f) => join(e.dir, f)) as [string, string, string];
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  const predicate = { buildDefinition: { buildType: 'https://example.com/build/v1', externalParameters: { ref: 'main' } }, runDetails: { builder: { id: 'https://example.com/ci' } } };
  writeFileSync(predicateFile, JSON.stringify(predicate));
  const name = `${hostOf(reg.url)}/lib/app:1`;
  const image = randomImage();
  assert.equal((await pushImage(c, 'lib/app', '1', image)).status, 201);
  await kilnOk(e.root, ['pull', name], { env: e.env });

  const attested = await kilnOk(e.root, ['attest', '--key', key, '--predicate', predicateFile, '--type', 'slsaprovenance1', name], { env: e.env });
  assert.match(attested, /Attested .*lib\/app@sha256:[0-9a-f]{64} \(https:\/\/slsa\.dev\/provenance\/v1\): stored as referrer/);
  const digest = /@(sha256:[0-9a-f]{64})/.exec(attested)![1]!;
  const local = await kilnOk(e.root, ['verify-attestation', '--key', pub, '--type', 'slsaprovenance1', name], { env: e.env });
  assert.match(local, /^Verified: https:\/\/slsa\.dev\/provenance\/v1 attestation of .* \(store, sha256:/m);
  assert.match(local, /"buildType": "https:\/\/example\.com\/build\/v1"/);

  await kilnOk(e.root, ['push', name], { env: e.env });
  const remote = JSON.parse(await kilnOk(e.root, ['verify-attestation', '--remote', '--key', pub, name, '--output', 'json'], { env: e.env }));
  assert.equal(remote.digest, digest, 'the attested digest is the pushed one');
  assert.equal(remote.verified, true);
  assert.deepEqual(remote.attestations.map((a: { predicateType: string; from: string; predicate: unknown }) => [a.predicateType, a.from, a.predicate]), [[PredicateTypes.slsaprovenance1, 'referrers API', predicate]]);
  const sig = await kiln(e.root, ['verify', '--remote', '--key', pub, name], { env: e.env });
  assert.match(sig.stderr, /has no signatures/, 'an attestation is not a signature');

  // Another image whose one attestation was changed after signing.
  const other = randomImage();
  assert.equal((await pushImage(c, 'lib/app', '2', other)).status, 201);
  const statement = attestationStatement('lib/app', other.digest, PredicateTypes.slsaprovenance1!, predicate);
  const bundle: any = makeBundle(signEnvelope(privateKey, InTotoPayloadType, Buffer.from(JSON.stringify(statement))), privateKey);
  bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify({ ...statement, predicate: { ...predicate, runDetails: { builder: { id: 'https://evil.example' } } } })).toString('base64');
  const tampered = bundleArtifact({ mediaType: other.mediaType, digest: other.digest, size: other.manifest.length }, Buffer.from(JSON.stringify(bundle)), new Date(), PredicateTypes.slsaprovenance1);
  for (const b of tampered.blobs) await pushBlob(c, 'lib/app', b.bytes);
  assert.equal((await c.req('PUT', `/v2/lib/app/manifests/${tampered.descriptor.digest}`, { body: tampered.bytes, headers: { 'content-type': tampered.descriptor.mediaType } })).status, 201);
  const refused = await kiln(e.root, ['verify-attestation', '--remote', '--key', pub, `${hostOf(reg.url)}/lib/app:2`], { env: e.env });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not verified: attestation sha256:[0-9a-f]{64} \(referrers API\): the bundle's signature does not verify with the given key/);
  assert.match(refused.stderr, /no attestation of .* verifies \(1 found, none valid\)/);
});
