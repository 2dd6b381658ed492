import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
// @sigstore/verify's own dependency, for its trusted root type (JSON to protobuf message).
import { TrustedRoot as TrustedRootMessage } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { fixture, interopDir, kiln, kilnOk, tempDir } from '../support/env.js';
import { hostOf, testEnv } from '../registry/client/support.js';
import { startRegistry } from '../registry/server/support.js';
import { Store } from '../../src/store/store.js';
import { bundleArtifact } from '../../src/sign/artifact.js';
import { BundleV03, parseBundle, parseTrustedRoot, verifyBundleWithRoot, type TrustedRoot } from '../../src/sign/bundle.js';
import { InTotoPayloadType, signEnvelope } from '../../src/sign/dsse.js';
import { certificateSigner, matchIdentity } from '../../src/sign/identity.js';
import { admitStored } from '../../src/sign/admit.js';
import { parseImagePolicy } from '../../src/sign/policy.js';
import { loadArchiveFile } from '../../src/store/load.js';
import { signStatement, type Statement } from '../../src/sign/statement.js';
import { attestationStatement, verifyAttestations } from '../../src/sign/attest.js';
import { verifySignatures } from '../../src/sign/verify.js';
import { storeSource } from '../../src/sign/stored.js';

// Keyless (Fulcio certificate) signatures: the certificate chains to the trusted root's CA valid at
// the Rekor entry's integrated time, and its SAN and OIDC issuer extension name the identity asked
// for (cosign verify --certificate-identity / --certificate-oidc-issuer; policy.yaml keyless). The
// ground truth is cosign's own bundle (../shared/interop), with @sigstore/verify as a second
// oracle; for whole images, a test Fulcio CA and Rekor key made here sign busybox's digest.

const read = (f: string) => readFileSync(join(interopDir, f));
const cosignRoot = () => JSON.parse(read('cosign-trusted_root_pgi.json').toString()) as TrustedRoot;

/** @sigstore/verify's verdict on a bundle for an identity (its SAN and issuer are exact matches). */
function sigstoreVerifies(bundle: unknown, root: unknown, identity: { san: string; issuer: string }, ctlogs = 1): boolean {
  try {
    const v = new Verifier(toTrustMaterial(TrustedRootMessage.fromJSON(root)), { tlogThreshold: 1, ctlogThreshold: ctlogs, timestampThreshold: 0 });
    v.verify(toSignedEntity(bundleFromJSON(bundle)), { subjectAlternativeName: identity.san, extensions: { issuer: identity.issuer } });
    return true;
  } catch {
    return false;
  }
}

test("cosign's keyless bundle names cody@soyland.com from GitHub's issuer: that identity verifies, another identity or issuer is refused, as @sigstore/verify decides", () => {
  const where = 'cosign-oci-attestation.sigstore.json';
  const json = JSON.parse(read(where).toString());
  const root = cosignRoot();
  const v = verifyBundleWithRoot(parseBundle(read(where), where), root, where);
  const signer = certificateSigner(v.leaf, where);
  assert.deepEqual(signer, { identities: ['cody@soyland.com'], issuer: 'https://github.com/login/oauth' });
  const cases: [{ identity: string; issuer: string }, RegExp | undefined][] = [
    [{ identity: 'cody@soyland.com', issuer: 'https://github.com/login/oauth' }, undefined],
    [{ identity: 'mallory@soyland.com', issuer: 'https://github.com/login/oauth' }, /names identity "cody@soyland\.com" from issuer "https:\/\/github\.com\/login\/oauth", not identity "mallory@soyland\.com"/],
    [{ identity: 'cody@soyland.com', issuer: 'https://accounts.google.com' }, /not identity "cody@soyland\.com" from issuer "https:\/\/accounts\.google\.com"/],
  ];
  for (const [want, refused] of cases) {
    const kilnSays = () => matchIdentity(signer, [want], where);
    if (refused) assert.throws(kilnSays, refused);
    else kilnSays();
    assert.equal(sigstoreVerifies(json, root, { san: want.identity, issuer: want.issuer }), !refused, `@sigstore/verify on ${JSON.stringify(want)}`);
  }
  // Regular expressions match anywhere, as cosign's (Go's MatchString); ^…$ anchors them.
  matchIdentity(signer, [{ identityRegexp: /@soyland\.com$/, issuerRegexp: /^https:\/\/github\.com\// }], where);
  assert.throws(() => matchIdentity(signer, [{ identityRegexp: /^soyland/, issuer: 'https://github.com/login/oauth' }], where), /not identity matching \/\^soyland\//);
});

test('a trusted root file with a wrong shape is refused naming the file and field', () => {
  assert.throws(() => parseTrustedRoot('{', 'root.json'), /root\.json: the trusted root is not JSON/);
  assert.throws(() => parseTrustedRoot('{"mediaType":"application/json","certificateAuthorities":[]}', 'root.json'), /root\.json: mediaType "application\/json" is not a Sigstore trusted root/);
  assert.throws(() => parseTrustedRoot(JSON.stringify({ ...cosignRoot(), certificateAuthorities: [] }), 'root.json'), /root\.json: certificateAuthorities is empty/);
  assert.throws(() => parseTrustedRoot(JSON.stringify({ ...cosignRoot(), tlogs: [{ logId: {} }] }), 'root.json'), /root\.json: tlogs\[0\]: expected publicKey\.rawBytes and logId\.keyId/);
});

/** A test Sigstore: a Fulcio-like CA (made with openssl, which can write Fulcio's extensions) and a Rekor log key. */
function testSigstore(dir: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
  const ca = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(dir, 'ca.key'), pem(ca.privateKey));
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/O=kiln-test/CN=test-fulcio', '-days', '2', '-out', 'ca.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  const caCert = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
  const log = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const logDer = log.publicKey.export({ type: 'spki', format: 'der' });
  const logId = createHash('sha256').update(logDer).digest();
  const past = '2020-01-01T00:00:00Z';
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{ baseUrl: 'https://rekor.test', hashAlgorithm: 'SHA2_256', publicKey: { rawBytes: logDer.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: past } }, logId: { keyId: logId.toString('base64') } }],
    certificateAuthorities: [{ subject: { organization: 'kiln-test', commonName: 'test-fulcio' }, uri: 'https://fulcio.test', certChain: { certificates: [{ rawBytes: caCert.raw.toString('base64') }] }, validFor: { start: past } }],
    ctlogs: [],
    timestampAuthorities: [],
  };
  writeFileSync(join(dir, 'root.json'), JSON.stringify(root));

  /** A bundle signing `statement` (cosign sign v3's, say) with a fresh leaf for `email` from `issuer`, logged now. */
  const signStatementAs = (statement: Statement, email: string, issuerExtension: string) => {
    const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(join(dir, 'leaf.key'), pem(leaf.privateKey));
    writeFileSync(join(dir, 'leaf.ext'), `subjectAltName=critical,email:${email}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n${issuerExtension}\n`);
    ssl('req', '-new', '-key', 'leaf.key', '-subj', '/O=kiln-test', '-out', 'leaf.csr');
    ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(Date.now()), '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.pem');
    const cert = new X509Certificate(readFileSync(join(dir, 'leaf.pem')));
    const envelope = signEnvelope(leaf.privateKey, InTotoPayloadType, Buffer.from(JSON.stringify(statement)));
    // Rekor's dsse 0.0.1 entry, in a tree of one (the entry is the root) with a checkpoint and a signed entry timestamp.
    const body = Buffer.from(
      JSON.stringify({
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(Buffer.from(envelope.payload, 'base64')).digest('hex') },
          signatures: [{ signature: envelope.signatures[0]!.sig, verifier: Buffer.from(cert.toString()).toString('base64') }],
        },
      }),
    );
    const integratedTime = Math.floor(Date.now() / 1000);
    const rootHash = createHash('sha256').update(Buffer.concat([Buffer.from([0]), body])).digest('base64');
    const note = `rekor.test - 1\n1\n${rootHash}\n`;
    const noteSig = Buffer.concat([logId.subarray(0, 4), sign('sha256', Buffer.from(note), log.privateKey)]).toString('base64');
    const set = sign('sha256', Buffer.from(`{"body":${JSON.stringify(body.toString('base64'))},"integratedTime":${integratedTime},"logID":"${logId.toString('hex')}","logIndex":0}`), log.privateKey);
    return {
      mediaType: BundleV03,
      verificationMaterial: {
        certificate: { rawBytes: cert.raw.toString('base64') },
        tlogEntries: [
          {
            logIndex: '0',
            logId: { keyId: logId.toString('base64') },
            kindVersion: { kind: 'dsse', version: '0.0.1' },
            integratedTime: String(integratedTime),
            inclusionPromise: { signedEntryTimestamp: set.toString('base64') },
            inclusionProof: { logIndex: '0', rootHash, treeSize: '1', hashes: [], checkpoint: { envelope: `${note}\n— rekor.test ${noteSig}\n` } },
            canonicalizedBody: body.toString('base64'),
          },
        ],
      },
      dsseEnvelope: envelope,
    };
  };
  const signDigest = (name: string, digest: string, email: string, issuerExtension: string) => signStatementAs(signStatement(name, digest, {}), email, issuerExtension);
  return { root, rootFile: join(dir, 'root.json'), signDigest, signStatementAs };
}

test('kiln verify --certificate-identity --certificate-oidc-issuer --trusted-root: a keyless signature of the image verifies; a wrong identity, a wrong issuer or another root is refused; verify-attestation and policy.yaml keyless rules take the same identities', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const sig = testSigstore(dir);
  // In-process where the CLI adds nothing (a CLI start costs half a second).
  const store = await Store.open(root);
  await loadArchiveFile(store, fixture('busybox'));
  const image = await store.resolveImage('busybox');
  const bundle = sig.signDigest('docker.io/library/busybox', image.manifestDescriptor.digest, 'dev@example.com', '1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.example');
  assert.ok(sigstoreVerifies(bundle, sig.root, { san: 'dev@example.com', issuer: 'https://issuer.example' }, 0), 'the test bundle is one @sigstore/verify accepts');
  await storeSource(store, image).put(bundleArtifact(image.manifestDescriptor, Buffer.from(JSON.stringify(bundle))), 'bundle');

  const keyless = (identity: string, issuer: string, rootFile = sig.rootFile) => ['verify', '--certificate-identity', identity, '--certificate-oidc-issuer', issuer, '--trusted-root', rootFile, 'busybox'];
  const ok = await kilnOk(root, keyless('dev@example.com', 'https://issuer.example'));
  assert.match(ok, /Verified: sigstore-bundle signature of docker\.io\/library\/busybox@sha256:[0-9a-f]{64} by identity "dev@example\.com" from issuer "https:\/\/issuer\.example" \(store, sha256:/);

  const wrongIdentity = await kiln(root, keyless('ops@example.com', 'https://issuer.example'));
  assert.notEqual(wrongIdentity.code, 0);
  assert.match(wrongIdentity.stderr, /the certificate names identity "dev@example\.com" from issuer "https:\/\/issuer\.example", not identity "ops@example\.com"/);
  // The same checks in-process: regular expressions, a wrong issuer, a root without the test log or the test CA.
  const verified = async (issuer: string | RegExp, trustedRoot: TrustedRoot, identity: string | RegExp = 'dev@example.com') => {
    const wanted = { ...(typeof identity === 'string' ? { identity } : { identityRegexp: identity }), ...(typeof issuer === 'string' ? { issuer } : { issuerRegexp: issuer }) };
    const [r] = await verifySignatures(storeSource(store, image), { keys: [], certificates: [], keyless: { identities: [wanted], root: trustedRoot }, annotations: {} });
    return r!;
  };
  const byRegexp = await verified(/^https:\/\/issuer\./, sig.root, /@example\.com$/);
  assert.equal(byRegexp.verified, true);
  assert.deepEqual(byRegexp.identity, { identities: ['dev@example.com'], issuer: 'https://issuer.example' });
  assert.match((await verified('https://accounts.google.com', sig.root)).error!, /not identity "dev@example\.com" from issuer "https:\/\/accounts\.google\.com"/);
  assert.match((await verified('https://issuer.example', cosignRoot())).error!, /tlogEntries\[0\]\.logId \S+ is not a log of the trusted root/);
  assert.match((await verified('https://issuer.example', { ...sig.root, certificateAuthorities: cosignRoot().certificateAuthorities })).error!, /is not issued by a trusted certificate|no certificate authority/);
  // Keyless attestations: kiln verify-attestation takes the same flags.
  const slsa = 'https://slsa.dev/provenance/v1';
  const attestation = sig.signStatementAs(attestationStatement('busybox', image.manifestDescriptor.digest, slsa, { buildDefinition: { buildType: 'test' } }), 'dev@example.com', '1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.example');
  await storeSource(store, image).put(bundleArtifact(image.manifestDescriptor, Buffer.from(JSON.stringify(attestation)), new Date(), slsa), 'bundle');
  const attested = await kilnOk(root, ['verify-attestation', '--certificate-identity', 'dev@example.com', '--certificate-oidc-issuer', 'https://issuer.example', '--trusted-root', sig.rootFile, '--type', 'slsaprovenance1', 'busybox']);
  assert.match(attested, /Verified: https:\/\/slsa\.dev\/provenance\/v1 attestation of docker\.io\/library\/busybox@sha256:[0-9a-f]{64} by identity "dev@example\.com" from issuer "https:\/\/issuer\.example"/);
  const [other] = await verifyAttestations(storeSource(store, image), { keys: [], keyless: { identities: [{ identity: 'ops@example.com', issuer: 'https://issuer.example' }], root: sig.root } }, slsa);
  assert.match(other!.error!, /not identity "ops@example\.com"/);

  const half = await kiln(root, ['verify', '--certificate-identity', 'dev@example.com', '--trusted-root', sig.rootFile, 'busybox']);
  assert.notEqual(half.code, 0);
  assert.match(half.stderr, /keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp/);
  // The deprecated issuer extension (…57264.1.1, the bare string) is read when the current one is absent.
  const hex = Buffer.from('https://old.example').toString('hex').replace(/(..)(?!$)/g, '$1:');
  const legacy = sig.signDigest('busybox', image.manifestDescriptor.digest, 'old@example.com', `1.3.6.1.4.1.57264.1.1=DER:${hex}`);
  const legacyLeaf = new X509Certificate(Buffer.from(legacy.verificationMaterial.certificate.rawBytes, 'base64'));
  assert.deepEqual(certificateSigner(legacyLeaf, 'legacy'), { identities: ['old@example.com'], issuer: 'https://old.example' });

  // policy.yaml: keyless identities with a trusted root (kiln build and kiln run apply policies as policy-enforce.test.ts shows).
  const policy = join(dir, 'policy.yaml');
  // Named in a registry that lacks it, so that the store's signature decides without going to docker.io.
  const host = hostOf((await startRegistry(t)).url);
  await store.tag('busybox', `${host}/lib/busybox:1`);
  const tagged = await store.resolveImage(`${host}/lib/busybox:1`);
  const env = { ...process.env, ...(await testEnv(t)).env };
  const rule = (identity: string) => `rules:\n  - match: ${host}/lib/*\n    require:\n      keyless:\n        - issuer: https://issuer.example\n          identity: ${identity}\n      trustedRoot: root.json\n`;
  await admitStored(await parseImagePolicy(rule('dev@example.com'), policy), store, tagged, `${host}/lib/busybox:1`, env);
  await assert.rejects(
    admitStored(await parseImagePolicy(rule('ops@example.com'), policy), store, tagged, `${host}/lib/busybox:1`, env),
    /refused by \S*policy\.yaml:2: rule 1 \(match "127\.0\.0\.1:\d+\/lib\/\*"\): a signature by identity "ops@example\.com" from issuer "https:\/\/issuer\.example" is required; none of its 1 signatures verifies/,
  );
  await assert.rejects(parseImagePolicy('rules:\n  - match: "**"\n    require:\n      keyless:\n        - issuer: https://issuer.example\n', policy), /policy\.yaml:5: rules\[0\]\.require\.keyless: needs trustedRoot: FILE/);
  await assert.rejects(
    parseImagePolicy('rules:\n  - match: "**"\n    require:\n      keyless:\n        - issuer: https://issuer.example\n      trustedRoot: root.json\n', policy),
    /policy\.yaml:5: rules\[0\]\.require\.keyless\[0\]: give exactly one of identity and identityRegexp/,
  );
  await assert.rejects(
    parseImagePolicy('rules:\n  - match: "**"\n    require:\n      keyless:\n        - issuer: https://issuer.example\n          identityRegexp: "(["\n      trustedRoot: root.json\n', policy),
    /policy\.yaml:6: rules\[0\]\.require\.keyless\[0\]\.identityRegexp: not a regular expression/,
  );
  await assert.rejects(parseImagePolicy('rules:\n  - match: "**"\n    require:\n      keyless:\n        - issuer: https://issuer.example\n          identity: a\n      trustedRoot: missing.json\n', policy), /policy\.yaml:7: rules\[0\]\.require\.trustedRoot: \S+missing\.json: ENOENT/);
});
