import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import formats from 'ajv-formats';
import * as CDX from '@cyclonedx/cyclonedx-library';
import { fixture, kiln, kilnOk, repoRoot } from '../support/env.js';
import { Store } from '../../src/store/store.js';
import { storeSbom, storedCatalog, SBOM_ARTIFACT_TYPE, type Catalog } from '../../src/sbom/index.js';
import { has, startDistribution, startRegistry, testEnv } from '../registry/client/support.js';
import { buildPackagesImage, writeContext } from './fixtures.js';

// `kiln sbom` in each format, checked against the formats' published JSON schemas; `kiln build
// --sbom` storing the SBOM beside the image; `kiln push` handing it to the registry as a referrer.

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-sbom-cli-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  await buildPackagesImage(root, work);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** SPDX 2.3's JSON schema, from the spdx/spdx-spec repository (tag v2.3, schemas/spdx-schema.json); see schemas/README.md. */
function spdxValidator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  // ajv-formats is CommonJS: its plugin is the module's default export
  (formats as unknown as { default: (a: Ajv) => void }).default(ajv);
  return ajv.compile(JSON.parse(readFileSync(join(repoRoot, 'test', 'sbom', 'schemas', 'spdx-2.3.schema.json'), 'utf8')));
}

test('kiln sbom prints a table of packages by default', async () => {
  const outText = await kilnOk(root, ['sbom', 'pkgs']);
  const lines = outText.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME\s+VERSION\s+TYPE\s+LAYER\s+LICENSES$/);
  assert.match(outText, /^bash\s+5\.2\.15-2\+b2\s+deb\s+3\s+GPL-3\+$/m);
  assert.match(outText, /^express\s+4\.19\.2\s+npm\s+7\s+MIT$/m);
  assert.equal(lines.length, 1 + 4 + 2 + 2 + 3);
});

test('spdx-json is a valid SPDX 2.3 document: purls as PACKAGE-MANAGER refs, DESCRIBES the image, stable ids', async () => {
  const text = await kilnOk(root, ['sbom', '--format', 'spdx-json', 'pkgs']);
  const doc = JSON.parse(text);
  const validate = spdxValidator();
  assert.equal(validate(doc), true, JSON.stringify(validate.errors?.slice(0, 5)));
  assert.equal(doc.spdxVersion, 'SPDX-2.3');
  const describes = doc.relationships.filter((r: any) => r.relationshipType === 'DESCRIBES');
  assert.equal(describes.length, 1);
  assert.equal(describes[0].spdxElementId, 'SPDXRef-DOCUMENT');
  const image = doc.packages.find((p: any) => p.SPDXID === describes[0].relatedSpdxElement);
  assert.equal(image.name, 'pkgs:latest');
  assert.equal(image.primaryPackagePurpose, 'CONTAINER');
  const bash = doc.packages.find((p: any) => p.name === 'bash');
  assert.deepEqual(bash.externalRefs, [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2' }]);
  // "GPL-3+" is no SPDX identifier: declared through a LicenseRef with its text extracted
  assert.equal(bash.licenseDeclared, 'LicenseRef-GPL-3-plus');
  assert.ok(doc.hasExtractedLicensingInfos.some((l: any) => l.licenseId === 'LicenseRef-GPL-3-plus' && l.name === 'GPL-3+'));
  assert.equal(doc.packages.find((p: any) => p.name === 'Flask').licenseDeclared, 'BSD-3-Clause');
  const contains = doc.relationships.filter((r: any) => r.relationshipType === 'CONTAINS');
  assert.equal(contains.length, doc.packages.length - 1);
  assert.equal(new Set(doc.packages.map((p: any) => p.SPDXID)).size, doc.packages.length, 'SPDX ids are unique');
  assert.equal(await kilnOk(root, ['sbom', '--format', 'spdx-json', 'pkgs']), text, 'the same image gives the same document');
});

test('the SPDX schema check can fail: a document without spdxVersion is refused', () => {
  const validate = spdxValidator();
  assert.equal(validate({ SPDXID: 'SPDXRef-DOCUMENT', name: 'x', dataLicense: 'CC0-1.0', creationInfo: { created: 'now', creators: [] } }), false);
});

test('cyclonedx-json is valid CycloneDX 1.6 (the library\'s schemas, checked with ajv)', async () => {
  const text = await kilnOk(root, ['sbom', '--format', 'cyclonedx-json', 'pkgs']);
  const validator = new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6);
  assert.equal(await validator.validate(text), null);
  assert.notEqual(await validator.validate(text.replace('"library"', '"libary"')), null, 'the validator does reject a wrong document');
  const bom = JSON.parse(text);
  assert.equal(bom.bomFormat, 'CycloneDX');
  assert.equal(bom.specVersion, '1.6');
  assert.equal(bom.metadata.component.type, 'container');
  const express = bom.components.find((c: any) => c.name === 'express');
  assert.equal(express.purl, 'pkg:npm/express@4.19.2');
  assert.deepEqual(express.licenses, [{ license: { id: 'MIT' } }]);
  const layer = express.properties.find((p: any) => p.name === 'kiln:layer:index');
  assert.equal(layer.value, '7');
  assert.ok(bom.components.some((c: any) => c.type === 'operating-system' && c.name === 'debian' && c.version === '12'));
});

test('json and -o FILE: the catalog written to a file', async () => {
  const file = join(work, 'sbom.json');
  assert.equal(await kilnOk(root, ['sbom', '--format', 'json', '-o', file, 'pkgs']), '');
  const doc = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(doc.image.name, 'pkgs:latest');
  assert.deepEqual(doc.distro, { id: 'debian', versionId: '12', codename: 'bookworm' });
  const libc = doc.packages.find((p: any) => p.name === 'libc6');
  assert.equal(libc.layer.index, 8);
  assert.equal(libc.location, '/var/lib/dpkg/status');
});

test('an unknown SBOM format is a clear error, exits non-zero and writes nothing', async () => {
  const file = join(work, 'never.xml');
  const r = await kiln(root, ['sbom', '--format', 'spdx-xml', '-o', file, 'pkgs']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown SBOM format "spdx-xml" \(use table, json, spdx-json, cyclonedx-json\)/);
  assert.equal(r.stdout, '');
  assert.equal(existsSync(file), false);
});

test('malformed metadata in the image: a warning naming the file, and the rest is catalogued', async () => {
  const ctx = join(work, 'ctx-broken');
  await writeContext(ctx, {
    Dockerfile: 'FROM busybox\nCOPY status /var/lib/dpkg/status\nCOPY nm/ /srv/node_modules/\n',
    status: 'Package: ok\nStatus: install ok installed\nVersion: 1\n\n%%% not a field\n',
    'nm/bad/package.json': '{ nope',
    'nm/good/package.json': '{"name":"good","version":"2.0.0"}',
  });
  await kilnOk(root, ['build', '-q', '-t', 'broken', ctx]);
  const r = await kiln(root, ['sbom', '--format', 'json', 'broken']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: \/srv\/node_modules\/bad\/package\.json: invalid JSON/m);
  assert.match(r.stderr, /^warning: \/var\/lib\/dpkg\/status: line 5: expected "Field: value"/m);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(doc.packages.map((p: any) => p.name), ['ok', 'good']);
  assert.equal(doc.problems.length, 2);
});

test('kiln build --sbom stores the SBOM beside the image; kiln sbom uses it; gc drops it with the image', async () => {
  const ctx = join(work, 'ctx-built');
  await writeContext(ctx, {
    Dockerfile: 'FROM busybox\nCOPY nm/ /app/node_modules/\n',
    'nm/left-pad/package.json': '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}',
  });
  const r = await kiln(root, ['build', '--sbom', '--progress', 'plain', '-t', 'withsbom', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /writing SBOM sha256:[a-f0-9]{64} \(1 packages\) done/);
  const store = await Store.open(root);
  const image = await store.resolveImage('withsbom');
  const refs = await store.referrers(image.manifestDescriptor.digest);
  assert.equal(refs.length, 1);
  assert.equal(refs[0]!.artifactType, SBOM_ARTIFACT_TYPE);
  const artifact = await store.content.readJSON<any>(refs[0]!.digest);
  assert.equal(artifact.subject.digest, image.manifestDescriptor.digest);
  assert.equal(artifact.layers[0].mediaType, 'application/spdx+json');
  const spdx = await store.content.readJSON<any>(artifact.layers[0].digest);
  assert.equal(spdxValidator()(spdx), true);
  assert.ok(spdx.packages.some((p: any) => p.name === 'left-pad'));
  assert.deepEqual((await storedCatalog(store, image))!.packages.map((p) => p.name), ['left-pad']);

  // `kiln sbom` reads the stored catalog rather than the layers: replace it and see the difference.
  const replaced: Catalog = { packages: [{ ...(await storedCatalog(store, image))!.packages[0]!, name: 'from-the-store' }], problems: [] };
  await storeSbom(store, image, replaced);
  await store.content.releaseLease(); // this process's lease would keep the blobs through gc
  assert.equal((await store.referrers(image.manifestDescriptor.digest)).length, 1, 'a new SBOM replaces the old one');
  assert.match(await kilnOk(root, ['sbom', 'withsbom']), /^from-the-store\s/m);

  // gc keeps it while the image lives ...
  await kilnOk(root, ['prune']);
  const kept = await store.referrers(image.manifestDescriptor.digest);
  assert.equal(kept.length, 1);
  assert.equal(await store.content.has(kept[0]!.digest), true);
  // ... and drops it with the image
  await kilnOk(root, ['rmi', 'withsbom']);
  await kilnOk(root, ['prune']);
  assert.deepEqual(await store.referrers(image.manifestDescriptor.digest), []);
  assert.equal(await store.content.has(kept[0]!.digest), false);
  const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
  assert.equal(index.manifests.some((m: any) => m.digest === kept[0]!.digest), false);
});

test("kiln push sends the stored SBOM as a referrer of the image: kiln's registry lists it at /referrers/<digest>", async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const host = reg.url.replace(/^https?:\/\//, '');
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  const ctx = join(work, 'ctx-push');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nCOPY nm/ /app/node_modules/\n', 'nm/debug/package.json': '{"name":"debug","version":"4.3.4","license":"MIT"}' });
  await kilnOk(e.root, ['build', '-q', '--sbom', '-t', `${host}/team/app:1`, ctx], { env: e.env });
  const pushed = await kilnOk(e.root, ['push', `${host}/team/app:1`], { env: e.env });
  const digest = /^1: digest: (sha256:[a-f0-9]{64})/m.exec(pushed)![1]!;
  const referrer = /^referrer: digest: (sha256:[a-f0-9]{64})$/m.exec(pushed)![1]!;
  const c = reg.client();
  const res = await c.req('GET', `/v2/team/app/referrers/${digest}`);
  assert.equal(res.status, 200);
  const index = res.json();
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.artifactType]), [[referrer, 'application/spdx+json']]);
  const filtered = await c.req('GET', `/v2/team/app/referrers/${digest}?artifactType=application/spdx%2Bjson`);
  assert.equal(filtered.json().manifests.length, 1);
  const artifact = (await c.req('GET', `/v2/team/app/manifests/${referrer}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  assert.equal(artifact.subject.digest, digest, 'the subject is the manifest as pushed');
  const spdx = (await c.req('GET', `/v2/team/app/blobs/${artifact.layers[0].digest}`)).json();
  assert.equal(spdxValidator()(spdx), true);
  assert.ok(spdx.packages.some((p: any) => p.name === 'debug'));
});

test('against a registry without the referrers API, push keeps the referrers tag schema (sha256-<hex> index)', { skip: !has('docker-registry') && 'docker-registry not installed', timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t);
  const e = await testEnv(t);
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  const ctx = join(work, 'ctx-push2');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nCOPY nm/ /app/node_modules/\n', 'nm/ms/package.json': '{"name":"ms","version":"2.1.3"}' });
  await kilnOk(e.root, ['build', '-q', '--sbom', '-t', `${reg.host}/team/app:1`, ctx], { env: e.env });
  const pushed = await kilnOk(e.root, ['push', `${reg.host}/team/app:1`], { env: e.env });
  const digest = /^1: digest: (sha256:[a-f0-9]{64})/m.exec(pushed)![1]!;
  const referrer = /^referrer: digest: (sha256:[a-f0-9]{64})$/m.exec(pushed)![1]!;
  const r = await fetch(`${reg.url}/v2/team/app/manifests/${digest.replace(':', '-')}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(r.status, 200);
  const index = (await r.json()) as any;
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.artifactType]), [[referrer, 'application/spdx+json']]);
});
