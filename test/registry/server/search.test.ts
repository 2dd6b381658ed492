import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { admin } from '../../../src/registry/server/admin.js';
import { serve } from '../../../src/registry/server/server.js';
import { logger } from '../../../src/registry/server/log.js';
import { client, pushImage, randomImage, startRegistry, tableRows, testConfig, type Client } from './support.js';
import { CDX, cyclonedx, pushSbom, spdx } from '../../sbom/support.js';

// The registry's search API: packages of SBOMs pushed as referrers, images built on a base
// (transitively), only in repositories the caller may pull, and index rows that go with their manifests.

const BaseDigest = 'org.opencontainers.image.base.digest';
const BaseName = 'org.opencontainers.image.base.name';

async function searchJson(c: Client, q: string): Promise<any> {
  const r = await c.req('GET', `/api/v1/search?${q}`);
  assert.equal(r.status, 200, `search ${q}: ${r.status} ${r.text()}`);
  return r.json();
}

const imagesOf = (body: { results: { repository: string; tags: string[] }[] }) => body.results.map((r) => `${r.repository}:${[...r.tags].sort().join(',')}`).sort();

test('search by package finds images whose SPDX or CycloneDX SBOM lists it, with the matching versions and tags', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const web = randomImage({ layers: 1 });
  const api = randomImage({ layers: 1 });
  const tool = randomImage({ layers: 1 });
  assert.equal((await pushImage(c, 'apps/web', 'v1', web)).status, 201);
  assert.equal((await c.req('PUT', '/v2/apps/web/manifests/stable', { body: web.manifest, headers: { 'content-type': web.mediaType } })).status, 201);
  assert.equal((await pushImage(c, 'apps/api', 'v2', api)).status, 201);
  assert.equal((await pushImage(c, 'tools/py', 'v3', tool)).status, 201);
  await pushSbom(c, 'apps/web', web, spdx([
    ['bash', '5.2.15-2+b2', 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64'],
    ['libssl3', '3.0.11-1~deb12u2', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl'],
  ]));
  await pushSbom(c, 'apps/api', api, cyclonedx([
    ['bash', '5.2.21-2', 'pkg:deb/debian/bash@5.2.21-2?arch=amd64'],
    ['express', '4.18.2', 'pkg:npm/express@4.18.2'],
  ]), CDX);
  await pushSbom(c, 'tools/py', tool, spdx([['Flask_Login', '0.6.3', 'pkg:pypi/flask-login@0.6.3']]));

  const bash = await searchJson(c, 'package=bash');
  assert.deepEqual(imagesOf(bash), ['apps/api:v2', 'apps/web:stable,v1']);
  const webHit = bash.results.find((r: { repository: string }) => r.repository === 'apps/web');
  assert.equal(webHit.digest, web.digest);
  assert.deepEqual(webHit.packages.map((p: { name: string; version: string; type: string }) => [p.name, p.version, p.type]), [['bash', '5.2.15-2+b2', 'deb']]);

  // dpkg order: 5.2.15-2+b2 < 5.2.15-3 < 5.2.21-2.
  assert.deepEqual(imagesOf(await searchJson(c, 'package=bash&version=' + encodeURIComponent('<5.2.15-3'))), ['apps/web:stable,v1']);
  assert.deepEqual(imagesOf(await searchJson(c, 'package=' + encodeURIComponent('bash@>=5.2.15-3'))), ['apps/api:v2']);
  // A Debian source package finds its binary packages; "~" sorts before the release.
  const openssl = await searchJson(c, 'package=' + encodeURIComponent('openssl@>=3.0,<3.0.11-1'));
  assert.deepEqual(imagesOf(openssl), ['apps/web:stable,v1']);
  assert.equal(openssl.results[0].packages[0].name, 'libssl3');
  // Python names compare normalised (PEP 503).
  assert.deepEqual(imagesOf(await searchJson(c, 'package=flask-login')), ['tools/py:v3']);
  assert.deepEqual(imagesOf(await searchJson(c, 'package=express&version=' + encodeURIComponent('<4.18.10'))), ['apps/api:v2']);
  assert.deepEqual((await searchJson(c, 'package=nonexistent')).results, []);

  const bad = await c.req('GET', '/api/v1/search?package=bash&version=%3E%3E1');
  assert.equal(bad.status, 400);
  assert.match(bad.json().errors[0].message, /version range ">>1"/);
  assert.equal((await c.req('GET', '/api/v1/search')).status, 400);
  assert.equal((await c.req('GET', '/api/v1/search?base=sha256:abc')).status, 400);
});

test('search by base finds images built on it directly and through images built on it, in every repository', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const os = randomImage({ layers: 1 });
  const runtime = randomImage({ layers: 1, annotations: { [BaseDigest]: os.digest, [BaseName]: 'base/os:1' } });
  const framework = randomImage({ layers: 1, annotations: { [BaseDigest]: runtime.digest, [BaseName]: 'base/runtime:1' } });
  const app = randomImage({ layers: 1, annotations: { [BaseDigest]: framework.digest } });
  const unrelated = randomImage({ layers: 1, annotations: { [BaseDigest]: randomImage().digest } });
  assert.equal((await pushImage(c, 'base/os', '1', os)).status, 201);
  assert.equal((await pushImage(c, 'base/runtime', '1', runtime)).status, 201);
  assert.equal((await pushImage(c, 'fw/flask', '1', framework)).status, 201);
  assert.equal((await pushImage(c, 'apps/app', 'v1', app)).status, 201);
  assert.equal((await pushImage(c, 'apps/other', 'v1', unrelated)).status, 201);

  const r = await searchJson(c, `base=${os.digest}`);
  assert.deepEqual(
    r.results.map((x: { repository: string; depth: number; digest: string }) => [x.repository, x.depth, x.digest]),
    [
      ['base/runtime', 1, runtime.digest],
      ['fw/flask', 2, framework.digest],
      ['apps/app', 3, app.digest],
    ],
  );
  assert.deepEqual(r.results[0].base, { digest: os.digest, name: 'base/os:1' });
  assert.deepEqual(r.results[0].tags, ['1']);
  assert.deepEqual(imagesOf(await searchJson(c, `base=${framework.digest}`)), ['apps/app:v1']);

  // Deleting the middle image removes its row: what was only reachable through it is no longer found.
  assert.equal((await c.req('DELETE', `/v2/fw/flask/manifests/${framework.digest}`)).status, 202);
  assert.deepEqual(imagesOf(await searchJson(c, `base=${os.digest}`)), ['base/runtime:1']);
});

test('deleting an image or its SBOM takes it out of package searches; garbage collection removes the index rows', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 0));
  const c = reg.client();
  const a = randomImage({ layers: 1 });
  const b = randomImage({ layers: 1, annotations: { [BaseDigest]: a.digest } });
  assert.equal((await pushImage(c, 'apps/a', 'v1', a)).status, 201);
  assert.equal((await pushImage(c, 'apps/b', 'v1', b)).status, 201);
  const sbomA = await pushSbom(c, 'apps/a', a, spdx([['zlib1g', '1:1.2.13.dfsg-1', 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1']]));
  await pushSbom(c, 'apps/b', b, spdx([['zlib1g', '1:1.2.13.dfsg-1', 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1']]));
  assert.deepEqual(imagesOf(await searchJson(c, 'package=zlib1g')), ['apps/a:v1', 'apps/b:v1']);
  // Epochs count: 1:1.2.13 is later than any version without one.
  assert.deepEqual(imagesOf(await searchJson(c, 'package=' + encodeURIComponent('zlib1g@>9.9'))), ['apps/a:v1', 'apps/b:v1']);

  assert.equal((await c.req('DELETE', `/v2/apps/a/manifests/${sbomA}`)).status, 202);
  assert.deepEqual(imagesOf(await searchJson(c, 'package=zlib1g')), ['apps/b:v1']);

  // Untagged, b and its SBOM are garbage: collected, their rows go with them.
  assert.equal((await c.req('DELETE', '/v2/apps/b/manifests/v1')).status, 202);
  assert.deepEqual(imagesOf(await searchJson(c, 'package=zlib1g')), ['apps/b:'], 'an untagged image is still there until collected');
  const gc = await reg.registry.gc();
  assert.ok(gc.manifests.some((m) => m.digest === b.digest));
  assert.deepEqual((await searchJson(c, 'package=zlib1g')).results, []);
  assert.deepEqual((await searchJson(c, `base=${a.digest}`)).results, []);
  for (const table of ['sbom_packages', 'sboms', 'image_bases']) assert.equal(await tableRows(reg, table), 0, `${table} is empty`);
});

test('an unreadable SBOM is stored and pulled like any artifact but indexes nothing', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const img = randomImage({ layers: 1 });
  assert.equal((await pushImage(c, 'apps/x', 'v1', img)).status, 201);
  const digest = await pushSbom(c, 'apps/x', img, { hello: 'not an sbom' });
  const referrers = await c.req('GET', `/v2/apps/x/referrers/${img.digest}`);
  assert.equal(referrers.json().manifests[0].digest, digest);
  await pushSbom(c, 'apps/x', img, spdx([['curl', '7.88.1-10']]));
  assert.deepEqual(imagesOf(await searchJson(c, 'package=curl')), ['apps/x:v1']);
});

test('with auth on, a user sees only repositories of namespaces they may pull; anonymous callers are challenged', async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  await ops.addUser('dev', 'password-dev', false);
  await ops.grant('dev', 'team', 'developer');
  await ops.addUser('pub', 'password-pub', false);
  await ops.setNamespace('open', { public: true });
  const root = reg.client({ user: 'root', password: 'password-root' });
  const base = randomImage({ layers: 1 });
  const secretChild = randomImage({ layers: 1, annotations: { [BaseDigest]: base.digest } });
  const teamGrandchild = randomImage({ layers: 1, annotations: { [BaseDigest]: secretChild.digest } });
  const openChild = randomImage({ layers: 1, annotations: { [BaseDigest]: base.digest } });
  for (const [repo, img] of [
    ['secret/base', base],
    ['secret/child', secretChild],
    ['team/app', teamGrandchild],
    ['open/tool', openChild],
  ] as const) {
    assert.equal((await pushImage(root, repo, 'v1', img)).status, 201);
    await pushSbom(root, repo, img, spdx([['bash', '5.2.15-2', 'pkg:deb/debian/bash@5.2.15-2']]));
  }

  assert.deepEqual(imagesOf(await searchJson(root, 'package=bash')), ['open/tool:v1', 'secret/base:v1', 'secret/child:v1', 'team/app:v1']);
  const dev = reg.client({ user: 'dev', password: 'password-dev' });
  assert.deepEqual(imagesOf(await searchJson(dev, 'package=bash')), ['open/tool:v1', 'team/app:v1']);
  // The team's image is built on the base through a repository dev may not read: found, that one hidden.
  assert.deepEqual(imagesOf(await searchJson(dev, `base=${base.digest}`)), ['open/tool:v1', 'team/app:v1']);
  const pub = reg.client({ user: 'pub', password: 'password-pub' });
  assert.deepEqual(imagesOf(await searchJson(pub, 'package=bash')), ['open/tool:v1']);
  const anon = await reg.client().req('GET', '/api/v1/search?package=bash');
  assert.equal(anon.status, 401);
  assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
});

test('a database from before the search index is migrated: bases from stored annotations, stored SBOMs read at start', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const config = testConfig(root);
  const quiet = { log: logger('error', () => {}) };
  const first = await serve(config, quiet);
  const c = client(first.url);
  const base = randomImage({ layers: 1 });
  const child = randomImage({ layers: 1, annotations: { [BaseDigest]: base.digest } });
  assert.equal((await pushImage(c, 'apps/base', 'v1', base)).status, 201);
  assert.equal((await pushImage(c, 'apps/child', 'v1', child)).status, 201);
  await pushSbom(c, 'apps/child', child, spdx([['musl', '1.2.4-r2', 'pkg:apk/alpine/musl@1.2.4-r2']]));
  await first.close();

  // Back to the first schema: none of migrations 3-10, no search index (migration 1), and blobs stored at their digest
  // paths with no key, state or clock (migration 2).
  const db = new Database(config.database.sqlite.path);
  const blobsRoot = config.storage.filesystem.rootdirectory;
  for (const r of db.prepare('SELECT digest, key FROM blobs').all() as { digest: string; key: string }[]) {
    const hex = r.digest.slice('sha256:'.length);
    await mkdir(join(blobsRoot, 'sha256', hex.slice(0, 2)), { recursive: true });
    await rename(join(blobsRoot, r.key), join(blobsRoot, 'sha256', hex.slice(0, 2), hex));
  }
  db.exec(`DROP TABLE oidc_logins; DROP TABLE oidc_accounts; DROP TABLE ui_sessions; DROP INDEX tags_pushed; DROP INDEX audit_repository_digest; DROP TABLE signature_policies;
    DROP TABLE group_roles; ALTER TABLE users DROP COLUMN provider; DROP TABLE replication_items; DROP TABLE replication_runs; DROP TABLE replication_rules;
    DROP TABLE proxies; DROP TABLE webhook_deliveries; DROP TABLE webhooks;
    DROP TABLE immutable_rules; ALTER TABLE namespaces DROP COLUMN quota_bytes; DROP TABLE retention_rules; ALTER TABLE manifests DROP COLUMN pulled_at;
    DROP TABLE image_bases; DROP TABLE sboms; DROP TABLE sbom_packages;
    DROP TABLE uploads; DROP TABLE shared_values; DROP TABLE login_failures; DROP INDEX blobs_key;
    ALTER TABLE blobs DROP COLUMN key; ALTER TABLE blobs DROP COLUMN state; ALTER TABLE blobs DROP COLUMN last_used;
    ALTER TABLE manifests DROP COLUMN last_used; PRAGMA user_version = 0;`);
  db.close();

  const again = await serve(config, quiet);
  t.after(() => again.close());
  const c2 = client(again.url);
  assert.deepEqual(imagesOf(await searchJson(c2, `base=${base.digest}`)), ['apps/child:v1']);
  const db2 = new Database(config.database.sqlite.path, { readonly: true });
  t.after(() => db2.close());
  assert.equal(db2.pragma('user_version', { simple: true }), 10);
  // Stored SBOMs are indexed in the background after start.
  for (let i = 0; i < 100 && (await searchJson(c2, 'package=musl')).results.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(imagesOf(await searchJson(c2, 'package=' + encodeURIComponent('musl@<1.2.4-r10'))), ['apps/child:v1']);
});
