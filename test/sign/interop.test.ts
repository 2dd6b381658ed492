import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { interopDir } from '../support/env.js';
import { readPrivateKey, keyKind, signData, verifyData } from '../../src/sign/keys.js';
import { WrongPassword } from '../../src/sign/errors.js';
import { bundlePayload, parseBundle, verifyBundleWithRoot, type TrustedRoot } from '../../src/sign/bundle.js';
import { parseStatement } from '../../src/sign/statement.js';
import { verifyNotation } from '../../src/sign/notation.js';

// Ground truth made by the real cosign and Notation (../shared/interop, see its README): kiln must
// read and verify what they write.

const interop = interopDir;
const read = (f: string) => readFileSync(join(interop, f));

for (const file of ['cosign-encrypted-sigstore.key', 'cosign-encrypted-cosign-ec.key']) {
  test(`cosign's encrypted key ${file} opens with its password and signs`, async () => {
    const key = await readPrivateKey(read(file).toString(), file, async () => 'hello');
    assert.equal(keyKind(key, file), 'ecdsa-p256');
    const data = Buffer.from('payload');
    assert.ok(verifyData(key, data, signData(key, data)));
  });

  test(`cosign's encrypted key ${file} refuses a wrong password, naming the file`, async () => {
    await assert.rejects(readPrivateKey(read(file).toString(), file, async () => 'hell0'), (e: Error) => e instanceof WrongPassword && e.message.includes(file) && /wrong password/.test(e.message));
  });
}

test("cosign's bundle verifies offline against its trusted root", () => {
  // Checked: the bundle's media type and shape; the Rekor entry with the root's Rekor key (signed
  // entry timestamp, the logged payload hash, signature and certificate, the inclusion proof up to
  // its root hash, the checkpoint's signature over that root); the Fulcio leaf valid at the
  // integrated time and chaining to the root's Fulcio CA valid then; the DSSE signature (PAE) with
  // the leaf's key; the in-toto payload. Not checked: SCTs, the certificate's identity (SAN, issuer).
  const where = 'cosign-oci-attestation.sigstore.json';
  const bundle = parseBundle(read(where), where);
  const root = JSON.parse(read('cosign-trusted_root_pgi.json').toString()) as TrustedRoot;
  const v = verifyBundleWithRoot(bundle, root, where);
  assert.match(v.anchor.subject, /sigstore/);
  assert.equal(v.signedAt.toISOString(), '2025-02-28T19:18:11.000Z');
  const { payloadType, payload } = bundlePayload(bundle, where);
  assert.equal(payloadType, 'application/vnd.in-toto+json');
  const statement = parseStatement(payload, where);
  assert.ok(statement.subject[0]!.digest.sha256);
});

test("cosign's bundle with one byte of its payload changed is refused", () => {
  const where = 'tampered.sigstore.json';
  const doc = JSON.parse(read('cosign-oci-attestation.sigstore.json').toString());
  const payload = Buffer.from(doc.dsseEnvelope.payload, 'base64');
  payload[payload.length - 2] ^= 1;
  doc.dsseEnvelope.payload = payload.toString('base64');
  const root = JSON.parse(read('cosign-trusted_root_pgi.json').toString()) as TrustedRoot;
  // the log recorded the payload's hash: the changed payload is caught there, before the signature
  assert.throws(() => verifyBundleWithRoot(parseBundle(Buffer.from(JSON.stringify(doc)), where), root, where), /tampered\.sigstore\.json: tlogEntries\[0\] logs another payload \(payloadHash\)/);
});

test("cosign's bundle with a changed inclusion proof, checkpoint or signed entry timestamp is refused", () => {
  const root = JSON.parse(read('cosign-trusted_root_pgi.json').toString()) as TrustedRoot;
  const edits: [string, (e: any) => void, RegExp][] = [
    ['proof', (e) => (e.inclusionProof.hashes[2] = Buffer.alloc(32).toString('base64')), /inclusionProof does not lead to rootHash/],
    ['checkpoint', (e) => (e.inclusionProof.checkpoint.envelope = e.inclusionProof.checkpoint.envelope.replace('\n53604735\n', '\n53604736\n')), /checkpoint names tree 53604736/],
    ['time', (e) => (e.integratedTime = String(Number(e.integratedTime) + 1)), /signedEntryTimestamp does not verify/],
  ];
  for (const [what, edit, error] of edits) {
    const doc = JSON.parse(read('cosign-oci-attestation.sigstore.json').toString());
    edit(doc.verificationMaterial.tlogEntries[0]);
    assert.throws(() => verifyBundleWithRoot(parseBundle(Buffer.from(JSON.stringify(doc)), what), root, what), error, what);
  }
});

test("cosign's bundle is refused against a trusted root without its Fulcio CA", () => {
  const where = 'cosign-oci-attestation.sigstore.json';
  const root = JSON.parse(read('cosign-trusted_root_pgi.json').toString()) as TrustedRoot;
  root.certificateAuthorities = [];
  assert.throws(() => verifyBundleWithRoot(parseBundle(read(where), where), root, where), /no certificate authority/);
});

test("Notation's JWS envelope verifies with its certificate and names its target artifact", () => {
  const where = 'notation-jws-signature.json';
  const jws = JSON.parse(read(where).toString());
  const chain = (jws.header.x5c as string[]).map((c) => new X509Certificate(Buffer.from(c, 'base64')));
  // trusted as the leaf itself, and as the chain's last certificate (the root)
  for (const trusted of [chain[0]!, chain[chain.length - 1]!]) {
    const v = verifyNotation(read(where), [trusted], where);
    assert.equal(v.targetArtifact.digest, 'sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0');
    assert.equal(v.targetArtifact.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(v.targetArtifact.size, 481);
  }
});

test("Notation's JWS envelope is refused with a tampered payload or an unrelated certificate", () => {
  const where = 'notation-jws-signature.json';
  const jws = JSON.parse(read(where).toString());
  const leaf = new X509Certificate(Buffer.from(jws.header.x5c[0], 'base64'));
  const tampered = { ...jws, payload: Buffer.from(Buffer.from(jws.payload, 'base64url').toString().replace('481', '482')).toString('base64url') };
  assert.throws(() => verifyNotation(Buffer.from(JSON.stringify(tampered)), [leaf], where), /notation-jws-signature\.json: the JWS signature does not verify/);
  const fulcio = JSON.parse(read('cosign-trusted_root_pgi.json').toString()).certificateAuthorities[0].certChain.certificates[0].rawBytes;
  assert.throws(() => verifyNotation(read(where), [new X509Certificate(Buffer.from(fulcio, 'base64'))], where), /not issued by a trusted certificate/);
});
