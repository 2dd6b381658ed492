import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';
import { Store } from '../../src/store/store.js';
import { loadArchiveFile } from '../../src/store/load.js';
import type { Manifest } from '../../src/oci/types.js';
import { hostOf, testEnv } from '../registry/client/support.js';
import { startRegistry } from '../registry/server/support.js';

// kiln build --provenance (SLSA provenance v1 of the build) and --sbom, as attestations of the
// built image: signed with --attest-key (kiln verify-attestation checks them), else a bare in-toto
// statement as a referrer (buildx's unsigned form).

test('kiln build --provenance --sbom --attest-key: signed SLSA v1 provenance (Dockerfile digest, base digest, build args but secrets) and an SPDX attestation; without the key an unsigned in-toto referrer', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const ctx = join(dir, 'ctx');
  mkdirSync(ctx);
  const dockerfile = 'FROM busybox\nARG FOO\nLABEL foo=$FOO\n';
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(dir, 'k.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'k.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  await kilnOk(root, ['load', '-i', fixture('busybox')]);

  const built = await kiln(root, ['build', '--provenance', '--sbom', '--attest-key', join(dir, 'k.key'), '--build-arg', 'FOO=bar', '--build-arg', 'API_TOKEN=s3cret', '-t', 'app:1', ctx]);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stderr, /writing attestation https:\/\/slsa\.dev\/provenance\/v1: stored as referrer/);
  const v = JSON.parse(await kilnOk(root, ['verify-attestation', '--key', join(dir, 'k.pub'), 'app:1', '--output', 'json'])) as { verified: boolean; attestations: { verified: boolean; predicateType: string; predicate: any }[] };
  assert.equal(v.verified, true);
  assert.deepEqual(v.attestations.map((a) => [a.predicateType, a.verified]).sort(), [['https://slsa.dev/provenance/v1', true], ['https://spdx.dev/Document', true]]);
  const p = v.attestations.find((a) => a.predicateType === 'https://slsa.dev/provenance/v1')!.predicate;
  assert.equal(p.buildDefinition.externalParameters.configSource.digest.sha256, createHash('sha256').update(dockerfile).digest('hex'));
  assert.deepEqual(p.buildDefinition.externalParameters.buildArgs, { FOO: 'bar' }, 'API_TOKEN is named like a secret and left out');
  const store = await Store.open(root);
  const busybox = await store.resolveImage('busybox');
  assert.deepEqual(p.buildDefinition.resolvedDependencies.map((d: { name: string; digest: { sha256: string } }) => [d.name, 'sha256:' + d.digest.sha256]), [['busybox', busybox.manifestDescriptor.digest]]);
  assert.ok(p.runDetails.metadata.startedOn <= p.runDetails.metadata.finishedOn);
  assert.match(v.attestations.find((a) => a.predicateType === 'https://spdx.dev/Document')!.predicate.spdxVersion, /^SPDX-2\./);

  await kilnOk(root, ['build', '-q', '--provenance', '-t', 'app:2', ctx]);
  const reopened = await Store.open(root);
  const app = await reopened.resolveImage('app:2');
  const unsigned = await reopened.referrers(app.manifestDescriptor.digest, 'application/vnd.in-toto+json');
  assert.equal(unsigned.length, 1);
  const m = await reopened.content.readJSON<Manifest>(unsigned[0]!.digest);
  const statement = await reopened.content.readJSON<{ predicateType: string; subject: { digest: { sha256: string } }[] }>(m.layers[0]!.digest);
  assert.equal(statement.predicateType, 'https://slsa.dev/provenance/v1');
  assert.equal('sha256:' + statement.subject[0]!.digest.sha256, app.manifestDescriptor.digest);
});

test('kiln build --sbom --provenance --annotation: the SBOM and the provenance are referrers of the annotated image, in the store and in the registry after kiln push', { timeout: 60_000 }, async (t) => {
  const e = await testEnv(t);
  const reg = await startRegistry(t);
  const ctx = join(e.dir, 'ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nLABEL foo=bar\n');
  await loadArchiveFile(await Store.open(e.root), fixture('busybox'));
  const image = `${hostOf(reg.url)}/team/app:1`;
  await kilnOk(e.root, ['build', '-q', '--sbom', '--provenance', '--annotation', 'org.example.k=v', '-t', image, ctx], { env: e.env });

  const store = await Store.open(e.root);
  const built = await store.resolveImage(image);
  assert.equal(built.manifest.annotations?.['org.example.k'], 'v');
  const subjects = async (types: string[]) => {
    const out: [string, string | undefined][] = [];
    for (const type of types) for (const r of await store.referrers(built.manifestDescriptor.digest, type)) out.push([type, (await store.content.readJSON<Manifest>(r.digest)).subject?.digest]);
    return out;
  };
  const types = ['application/spdx+json', 'application/vnd.in-toto+json'];
  assert.deepEqual(await subjects(types), types.map((type) => [type, built.manifestDescriptor.digest]), 'the SBOM and the provenance name the annotated manifest');

  await kilnOk(e.root, ['push', image], { env: e.env });
  const pushed = await reg.client().req('GET', `/v2/team/app/referrers/${built.manifestDescriptor.digest}`);
  assert.equal(pushed.status, 200);
  assert.deepEqual(pushed.json<{ manifests: { artifactType: string }[] }>().manifests.map((m) => m.artifactType).sort(), types);
  assert.equal((await reg.client().req('HEAD', '/v2/team/app/manifests/1')).headers.get('docker-content-digest'), built.manifestDescriptor.digest, 'pushed as stored');
});
