import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fixture, interopDir, kiln, kilnOk } from '../support/env.js';
import { client, has, hostOf, sha256, startDistribution, startProxy, startRegistry, testEnv, type Client, type TestEnv } from '../registry/client/support.js';
import { pushBlob } from '../registry/server/support.js';
import { readPrivateKey } from '../../src/sign/keys.js';
import { makeBundle, BundleV03 } from '../../src/sign/bundle.js';
import { InTotoPayloadType, signEnvelope } from '../../src/sign/dsse.js';
import { signStatement } from '../../src/sign/statement.js';
import { bundleArtifact, blob, type Artifact } from '../../src/sign/artifact.js';
import type { Descriptor, Index } from '../../src/oci/types.js';

// kiln sign and kiln verify against real registries on loopback: kiln's own (referrers API) and
// Debian's docker-registry (Distribution 2.8: no referrers API, so the sha256-<hex> fallback tag).

const distribution = has('docker-registry') ? false : 'docker-registry missing (Debian package docker-registry)';

async function setUp(t: Parameters<typeof testEnv>[0]): Promise<TestEnv & { key: string; pub: string; env: NodeJS.ProcessEnv }> {
  const e = await testEnv(t);
  e.env.KILN_PASSWORD = 'pw';
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  await kilnOk(e.root, ['key', 'generate', '-o', join(e.dir, 'k')], { env: e.env });
  return { ...e, key: join(e.dir, 'k.key'), pub: join(e.dir, 'k.pub') };
}

const digestOf = (out: string) => /digest: (sha256:[0-9a-f]{64}) size/.exec(out)![1]!;

test("kiln's registry: a signature made in the store travels with kiln push; kiln sign --remote adds a bundle referrer and a legacy .sig; kiln verify finds all three", async (t) => {
  const reg = await startRegistry(t);
  const e = await setUp(t);
  const name = `${hostOf(reg.url)}/lib/busybox:1`;
  await kilnOk(e.root, ['tag', 'busybox', name], { env: e.env });
  const local = await kilnOk(e.root, ['sign', '--key', e.key, name, '-a', 'stage=built'], { env: e.env });
  assert.match(local, /stored as referrer/);
  await kilnOk(e.root, ['sign', '--key', e.key, name, '--format', 'legacy'], { env: e.env });
  const pushed = await kilnOk(e.root, ['push', name], { env: e.env });
  assert.match(pushed, /^referrer: digest: sha256:/m);
  const digest = digestOf(pushed);
  assert.ok(local.includes(digest), 'the store signed the digest that was pushed');

  assert.match(await kilnOk(e.root, ['sign', '--remote', '--key', e.key, name, '-a', 'stage=tested'], { env: e.env }), /pushed referrer .*@sha256:/);
  assert.match(await kilnOk(e.root, ['sign', '--remote', '--format', 'legacy', '--key', e.key, name], { env: e.env }), new RegExp(`pushed .*:sha256-${digest.slice(7)}\\.sig`));
  const out = JSON.parse(await kilnOk(e.root, ['verify', '--remote', '--key', e.pub, name, '--output', 'json'], { env: e.env }));
  assert.equal(out.digest, digest);
  assert.equal(out.verified, true);
  const seen = out.signatures.map((s: { format: string; from: string; verified: boolean; annotations: Record<string, string> }) => `${s.format} ${s.from} ${s.verified} ${s.annotations?.stage ?? '-'}`).sort();
  assert.deepEqual(seen, ['sigstore-bundle referrers API true built', 'sigstore-bundle referrers API true tested', 'simplesigning referrers API true -', 'simplesigning sig tag true -']);

  // -a narrows the signatures that count; none carries stage=released
  const r = await kiln(e.root, ['verify', '--remote', '--key', e.pub, name, '-a', 'stage=released'], { env: e.env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /annotation stage is "built", not "released"/);
  assert.match(r.stderr, /has no annotation stage \(asked stage=released\)/);
  assert.match(r.stderr, /Error: no signature of .*lib\/busybox@sha256:[0-9a-f]{64} verifies \(4 found, none valid\)/);
});

test('docker-registry without the referrers API: kiln sign writes the sha256-<hex> fallback tag, a pushed store signature goes there too, and kiln verify finds them', { skip: distribution, timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t);
  const e = await setUp(t);
  const name = `${reg.host}/lib/busybox:1`;
  await kilnOk(e.root, ['tag', 'busybox', name], { env: e.env });
  await kilnOk(e.root, ['sign', '--key', e.key, name], { env: e.env });
  const digest = digestOf(await kilnOk(e.root, ['push', name], { env: e.env }));
  const signed = await kilnOk(e.root, ['sign', '--remote', '--key', e.key, name], { env: e.env });
  assert.match(signed, new RegExp(`and referrers tag .*:sha256-${digest.slice(7)}`));
  const c = client(reg.url);
  const index = (await c.req('GET', `/v2/lib/busybox/manifests/sha256-${digest.slice(7)}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json<Index>();
  assert.equal(index.manifests.length, 2);
  assert.ok(index.manifests.every((m) => m.artifactType === BundleV03));
  const v = await kilnOk(e.root, ['verify', '--remote', '--key', e.pub, name], { env: e.env });
  assert.equal(v.match(/^Verified: sigstore-bundle signature of .* \(referrers tag, /gm)?.length, 2);
});

test('kiln verify refuses, each with its reason, a signature over another digest, a tampered payload, an unknown bundle version, a referrer whose subject is elsewhere and a 100 MB signature (never downloaded)', { skip: distribution, timeout: 120_000 }, async (t) => {
  const reg = await startDistribution(t);
  const e = await setUp(t);
  const proxy = await startProxy(t, reg.url);
  const name = `${proxy.host}/lib/busybox:1`;
  await kilnOk(e.root, ['tag', 'busybox', name], { env: e.env });
  const digest = digestOf(await kilnOk(e.root, ['push', name], { env: e.env }));
  const c = client(reg.url);
  const repo = 'lib/busybox';
  const head = await c.req('GET', `/v2/${repo}/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const subject: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: head.body.length };
  const key = await readPrivateKey(readFileSync(e.key, 'utf8'), 'k.key', async () => 'pw');
  const bundleFor = (d: string, edit: (b: any) => void = () => {}) => {
    const b: any = makeBundle(signEnvelope(key, InTotoPayloadType, Buffer.from(JSON.stringify(signStatement('lib/busybox', d, {})))), key);
    edit(b);
    return Buffer.from(JSON.stringify(b));
  };
  const referrers: Descriptor[] = [];
  const attach = async (a: Artifact) => {
    for (const b of a.blobs) await pushBlob(c, repo, b.bytes);
    const put = await c.req('PUT', `/v2/${repo}/manifests/${a.descriptor.digest}`, { headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: a.bytes });
    assert.equal(put.status, 201, put.text());
    referrers.push(a.descriptor);
  };
  const other = 'sha256:' + '0'.repeat(64);
  await attach(bundleArtifact(subject, bundleFor(other)));
  await attach(
    bundleArtifact(
      subject,
      bundleFor(digest, (b) => {
        const p = Buffer.from(b.dsseEnvelope.payload, 'base64');
        p[10] ^= 1;
        b.dsseEnvelope.payload = p.toString('base64');
      }),
    ),
  );
  await attach(bundleArtifact(subject, bundleFor(digest, (b) => (b.mediaType = 'application/vnd.dev.sigstore.bundle.v0.9+json'))));
  await attach(bundleArtifact({ ...subject, digest: sha256('elsewhere') }, bundleFor(digest)));
  // 100 MB in the registry, named as a bundle layer
  const huge = Buffer.alloc(100 << 20, 0x20);
  const hugeDigest = await pushBlob(c, repo, huge);
  const hugeArtifact = bundleArtifact(subject, Buffer.from('{}'));
  const manifest = { ...hugeArtifact.manifest, layers: [{ mediaType: BundleV03, digest: hugeDigest, size: huge.length }] };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await pushBlob(c, repo, Buffer.from('{}'));
  assert.equal((await c.req('PUT', `/v2/${repo}/manifests/${sha256(bytes)}`, { headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: bytes })).status, 201);
  referrers.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(bytes), size: bytes.length, artifactType: BundleV03 });
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: referrers };
  assert.equal((await c.req('PUT', `/v2/${repo}/manifests/sha256-${digest.slice(7)}`, { headers: { 'content-type': index.mediaType }, body: JSON.stringify(index) })).status, 201);

  const r = await kiln(e.root, ['verify', '--remote', '--key', e.pub, name], { env: e.env });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`signs ${other}, not ${digest}`));
  assert.match(r.stderr, /the bundle's signature does not verify with the given key/);
  assert.match(r.stderr, /mediaType "application\/vnd\.dev\.sigstore\.bundle\.v0\.9\+json" is not a Sigstore bundle version kiln reads/);
  assert.match(r.stderr, new RegExp(`its subject is ${sha256('elsewhere')}, not ${digest}`));
  assert.match(r.stderr, new RegExp(`layer ${hugeDigest} is ${100 << 20} bytes; signature blobs over 1048576 bytes are refused`));
  assert.match(r.stderr, /Error: no signature of .* verifies \(5 found, none valid\)/);
  assert.ok(!proxy.log.some((l) => l.path.includes(hugeDigest)), 'the 100 MB blob was never requested');

  // one good signature among them is enough, and the bad ones are still reported
  await kilnOk(e.root, ['sign', '--remote', '--key', e.key, name], { env: e.env });
  const ok = await kiln(e.root, ['verify', '--remote', '--key', e.pub, name], { env: e.env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.match(/^Verified: /gm)?.length, 1);
  assert.equal(ok.stderr.match(/^not verified: /gm)?.length, 5);
});

test('kiln verify checks a Notation signature against --certificate and refuses one whose targetArtifact is another digest', async (t) => {
  const reg = await startRegistry(t);
  const e = await setUp(t);
  const name = `${hostOf(reg.url)}/lib/busybox:1`;
  await kilnOk(e.root, ['tag', 'busybox', name], { env: e.env });
  const digest = digestOf(await kilnOk(e.root, ['push', name], { env: e.env }));
  const c: Client = client(reg.url);
  const jws = readFileSync(join(interopDir, 'notation-jws-signature.json'));
  const leaf = JSON.parse(jws.toString()).header.x5c[0] as string;
  const cert = join(e.dir, 'leaf.pem');
  writeFileSync(cert, `-----BEGIN CERTIFICATE-----\n${leaf.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`);
  const head = await c.req('GET', `/v2/lib/busybox/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const layer = blob(jws, 'application/jose+json');
  await pushBlob(c, 'lib/busybox', layer.bytes);
  await pushBlob(c, 'lib/busybox', Buffer.from('{}'));
  const m = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.cncf.notary.signature',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
    layers: [layer.descriptor],
    subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: head.body.length },
  };
  const bytes = Buffer.from(JSON.stringify(m));
  assert.equal((await c.req('PUT', `/v2/lib/busybox/manifests/${sha256(bytes)}`, { headers: { 'content-type': m.mediaType }, body: bytes })).status, 201);
  const r = await kiln(e.root, ['verify', '--remote', '--certificate', cert, name], { env: e.env });
  assert.equal(r.code, 1);
  // the vector verifies cryptographically and chains to the certificate, but signs another image
  assert.match(r.stderr, new RegExp(`signs sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0, not ${digest}`));
  const k = await kiln(e.root, ['verify', '--remote', '--key', e.pub, name], { env: e.env });
  assert.match(k.stderr, /a Notation signature; give --certificate to verify it/);
});

test('an image loaded from a docker-archive (uncompressed layers) is signed as it will be pushed: local, signed and pushed digests are one', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  e.env.KILN_PASSWORD = 'pw';
  await kilnOk(e.root, ['load', '-i', fixture('busybox', 'docker')], { env: e.env });
  await kilnOk(e.root, ['key', 'generate', '-o', join(e.dir, 'k')], { env: e.env });
  const name = `${hostOf(reg.url)}/lib/busybox:docker`;
  await kilnOk(e.root, ['tag', 'busybox', name], { env: e.env });
  const images = async () => (await kilnOk(e.root, ['images', '--digests', '--format', 'json'], { env: e.env })).trim().split('\n').map((l) => JSON.parse(l) as { Digest: string });
  const before = await images();
  const signed = await kilnOk(e.root, ['sign', '--key', join(e.dir, 'k.key'), name], { env: e.env });
  const signedDigest = /@(sha256:[0-9a-f]{64}):/.exec(signed)![1]!;
  const pushed = await kilnOk(e.root, ['push', name], { env: e.env });
  assert.equal(digestOf(pushed), signedDigest);
  assert.match(pushed, /^referrer: digest: /m);
  const after = await images();
  assert.equal(after.length, before.length, 'the compressed image replaced the uncompressed one under its names');
  assert.ok(after.every((i) => i.Digest === signedDigest) && !before.some((i) => i.Digest === signedDigest), 'the store holds the signed digest, no longer the uncompressed one');
  assert.match(await kilnOk(e.root, ['verify', '--remote', '--key', join(e.dir, 'k.pub'), name], { env: e.env }), /^Verified: sigstore-bundle signature .* \(referrers API, /m);
  assert.match(await kilnOk(e.root, ['verify', '--key', join(e.dir, 'k.pub'), name], { env: e.env }), /^Verified: .* \(store, /m);
});

test('skopeo copies a signed image and its referrers tag from docker-registry to kiln\'s registry, and kiln verify passes on the copy', { skip: (distribution || !has('skopeo')) && 'docker-registry or skopeo missing', timeout: 60_000 }, async (t) => {
  const from = await startDistribution(t);
  const to = await startRegistry(t);
  const e = await setUp(t);
  const src = `${from.host}/lib/busybox`;
  const dst = `${hostOf(to.url)}/lib/busybox`;
  await kilnOk(e.root, ['tag', 'busybox', `${src}:1`], { env: e.env });
  const digest = digestOf(await kilnOk(e.root, ['push', `${src}:1`], { env: e.env }));
  await kilnOk(e.root, ['sign', '--remote', '--key', e.key, `${src}:1`], { env: e.env });
  const skopeo = (...args: string[]) => promisify(execFile)('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', ...args], { timeout: 30_000 });
  await skopeo(`docker://${src}:1`, `docker://${dst}:1`);
  const tag = `sha256-${digest.slice(7)}`;
  await skopeo('--all', `docker://${src}:${tag}`, `docker://${dst}:${tag}`);
  const v = await kilnOk(e.root, ['verify', '--remote', '--key', e.pub, `${dst}:1`], { env: e.env });
  // kiln's registry indexed the copied referrer by its subject: the referrers API finds it
  assert.match(v, new RegExp(`^Verified: sigstore-bundle signature of ${dst.replace(/[.]/g, '\\.')}@${digest} by key sha256:\\S+ \\(referrers API, `, 'm'));
});
