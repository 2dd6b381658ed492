import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { fixture, kilnOk, tempDir } from '../support/env.js';
import { Store } from '../../src/store/store.js';
import type { Manifest } from '../../src/oci/types.js';
import { keyHint, readPrivateKey } from '../../src/sign/keys.js';
import { BundleV03, parseBundle, verifyBundleWithKey } from '../../src/sign/bundle.js';
import { makeBundle } from '../../src/sign/bundle.js';
import { signEnvelope, InTotoPayloadType } from '../../src/sign/dsse.js';
import { SignatureInvalid } from '../../src/sign/errors.js';

// The Sigstore project's own verifier (@sigstore/verify, @sigstore/bundle) as a second oracle:
// every bundle kiln writes verifies with it, by public key (a trust material holding only kiln's
// key, no transparency log or timestamp required, as for cosign's --tlog-upload=false), and what
// kiln refuses it refuses too.

/** @sigstore/verify's verdict on a bundle's JSON with `key` trusted under its hint. */
function sigstoreVerifies(json: unknown, key: KeyObject): boolean {
  try {
    const bundle = bundleFromJSON(json);
    const trust = toTrustMaterial({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }, (hint: string) => {
      if (hint !== keyHint(key)) throw new Error(`unknown key ${hint}`);
      return { publicKey: key, validFor: () => true };
    });
    new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle));
    return true;
  } catch {
    return false;
  }
}

function kilnVerifies(json: unknown, key: KeyObject): boolean {
  try {
    return verifyBundleWithKey(parseBundle(Buffer.from(JSON.stringify(json)), 'bundle'), key, 'bundle');
  } catch (e) {
    if (e instanceof SignatureInvalid) return false;
    throw e;
  }
}

test('the bundle kiln sign stores verifies with @sigstore/verify, and tampered copies are refused by both', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  await kilnOk(root, ['key', 'generate', '-o', join(dir, 'k')], { env: { KILN_PASSWORD: 'pw' } });
  await kilnOk(root, ['sign', '--key', join(dir, 'k.key'), 'busybox', '-a', 'env=prod'], { env: { KILN_PASSWORD: 'pw' } });
  const key = createPublicKey(await readPrivateKey(readFileSync(join(dir, 'k.key'), 'utf8'), 'k.key', async () => 'pw'));

  const store = await Store.open(root);
  const image = await store.resolveImage('busybox');
  const [ref] = await store.referrers(image.manifestDescriptor.digest, BundleV03);
  const manifest = await store.content.readJSON<Manifest>(ref!.digest);
  assert.equal(manifest.artifactType, BundleV03);
  assert.equal(manifest.subject?.digest, image.manifestDescriptor.digest);
  assert.equal(manifest.layers.length, 1);
  const json = await store.content.readJSON<Record<string, any>>(manifest.layers[0]!.digest);
  assert.equal(json.mediaType, BundleV03);
  assert.equal(json.verificationMaterial.publicKey.hint, keyHint(key));
  const statement = JSON.parse(Buffer.from(json.dsseEnvelope.payload, 'base64').toString());
  assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
  assert.equal(statement.predicateType, 'https://sigstore.dev/cosign/sign/v1');
  assert.deepEqual(statement.subject[0].digest, { sha256: image.manifestDescriptor.digest.slice(7) });
  assert.deepEqual(statement.subject[0].annotations, { env: 'prod' });
  assert.deepEqual(statement.predicate, { env: 'prod' });

  assert.ok(sigstoreVerifies(json, key), '@sigstore/verify accepts kiln\'s bundle');
  assert.ok(kilnVerifies(json, key));

  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  assert.ok(!sigstoreVerifies(json, other) && !kilnVerifies(json, other), 'another key: both refuse');

  const payload = Buffer.from(json.dsseEnvelope.payload, 'base64');
  payload[payload.length - 3] ^= 1;
  const tampered = structuredClone(json);
  tampered.dsseEnvelope.payload = payload.toString('base64');
  assert.ok(!sigstoreVerifies(tampered, key) && !kilnVerifies(tampered, key), 'a tampered payload: both refuse');

  const retyped = structuredClone(json);
  retyped.dsseEnvelope.payloadType = 'application/json';
  assert.ok(!sigstoreVerifies(retyped, key) && !kilnVerifies(retyped, key), 'another payloadType (PAE covers it): both refuse');

  // @sigstore/bundle takes any v<d>.<d> media type; kiln refuses versions it does not know (0.9).
  for (const mediaType of ['application/vnd.dev.sigstore.bundle.v0.9+json', 'application/vnd.example+json']) {
    const unknown = { ...structuredClone(json), mediaType };
    assert.ok(!kilnVerifies(unknown, key), `${mediaType}: kiln refuses`);
    if (!mediaType.includes('v0.9')) assert.ok(!sigstoreVerifies(unknown, key), `${mediaType}: @sigstore/verify refuses`);
    assert.throws(() => parseBundle(Buffer.from(JSON.stringify(unknown)), 'sig.json'), new RegExp(`sig\\.json: mediaType "${mediaType.replace(/[.+]/g, '\\$&')}" is not a Sigstore bundle version`));
  }
});

// P-384 is left out: kiln signs with SHA-384 as cosign does (sigstore's LoadDefaultSignerVerifier),
// and @sigstore/verify, given a key without its PublicKeyDetails, verifies with SHA-256.
test('bundles kiln makes with RSA and Ed25519 keys verify with @sigstore/verify', () => {
  const keys = [
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    generateKeyPairSync('ed25519').privateKey,
  ];
  for (const k of keys) {
    const bundle = makeBundle(signEnvelope(k, InTotoPayloadType, Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}')), k);
    assert.ok(sigstoreVerifies(JSON.parse(JSON.stringify(bundle)), createPublicKey(k)), k.asymmetricKeyType);
  }
});
