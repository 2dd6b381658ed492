// The Metadata contract (src/registry/server/metadata/metadata.ts), written once and run against
// both backends: SQLite in a temporary directory and PostgreSQL on a throwaway cluster
// (test/support/postgres.ts; needs root). The races run for real: concurrent calls through
// Promise.all, which PostgreSQL serves on several connections at once.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { ManifestRecord, ManifestRefs, Metadata, UploadRecord } from '../../../src/registry/server/metadata/metadata.js';
import { openSqliteMetadata } from '../../../src/registry/server/metadata/sqlite.js';
import { openPostgresMetadata } from '../../../src/registry/server/metadata/postgres.js';
import { loadConfig } from '../../../src/registry/server/config.js';
import { startPostgres, type Postgres } from '../../support/postgres.js';
import { freePort, suiteScope, type TestContextLike } from '../../support/daemon.js';

const notRoot = process.getuid?.() !== 0 && 'not root: the PostgreSQL test server is set up as root (scripts/setup.sh installs it)';

/** A backend under test: where a new empty database is, and how to open it. */
interface Backend {
  name: string;
  /** A location (path or URL) of a new database, with the schema or without. */
  fresh(): Promise<string>;
  /** A location of a new database with nothing in it, not even the schema. */
  empty(): Promise<string>;
  open(location: string, replicaId?: string): Promise<Metadata>;
  /** Write the schema version of an existing database (to test refusal of newer schemas). */
  setSchemaVersion(location: string, version: number): Promise<void>;
  /** Deadlocks the server detected in the database so far, where it counts them. */
  deadlocks?(location: string): Promise<number>;
}

const digestOf = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Clocks of the grace period: rows used at OLD are collectable at CUTOFF, rows used at NEW are not.
const OLD = 1_000;
const CUTOFF = 5_000;
const NEW = 9_000;

function manifest(repository: string, name: string, createdAt: number, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return { repository, digest: digestOf(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', body: Buffer.from(`{"name":"${name}"}`), createdAt, ...extra };
}
const refsOf = (blobs: string[], manifests: string[] = [], base?: ManifestRefs['base']): ManifestRefs => ({ blobs: blobs.map((digest) => ({ digest, size: 10 })), manifests, base });

function upload(id: string, overrides: Partial<UploadRecord> = {}): UploadRecord {
  return { id, repository: 'ns/app', algorithm: 'sha256', offset: 0, key: `uploads/${id}`, multipartId: undefined, parts: [], pending: [], startedAt: OLD, touchedAt: OLD, ...overrides };
}

/** Every test case, as a function of the backend. */
function contract(b: Backend): void {
  const open = async (t: TestContextLike, location?: string, replicaId?: string) => {
    const m = await b.open(location ?? (await b.fresh()), replicaId);
    t.after(() => m.close());
    return m;
  };
  /** A blob recorded (and linked into repo) at `at`. */
  const blob = async (m: Metadata, repo: string, name: string, at = OLD) => {
    const d = digestOf(name);
    await m.recordBlob(d, 10, repo, `blobs/${name}`, at);
    return d;
  };

  test(`${b.name}: blobs are recorded with their key, linked, mounted, touched and unlinked`, async (t) => {
    const m = await open(t);
    const d = digestOf('layer');
    assert.equal(m.kind, b.name);
    assert.deepEqual(await m.recordBlob(d, 10, 'ns/app', 'k1', OLD), { key: 'k1' });
    assert.deepEqual(await m.blob(d), { size: 10, key: 'k1' });
    assert.deepEqual(await m.linkedBlob('ns/app', d), { size: 10, key: 'k1' });
    assert.equal(await m.linkedBlob('other/app', d), undefined);
    // a second upload of a held digest keeps the first key (the caller deletes its copy)
    assert.deepEqual(await m.recordBlob(d, 10, 'ns/app2', 'k2', OLD), { key: 'k1' });
    assert.equal((await m.linkedBlob('ns/app2', d))?.key, 'k1');
    assert.equal(await m.linkBlob('other/app', d, OLD), true);
    assert.equal(await m.linkBlob('other/app', digestOf('nothing'), OLD), false);
    assert.equal(await m.blobRepositoryInNamespace('other', d), 'other/app');
    assert.equal(await m.blobRepositoryInNamespace('n_', d), undefined, 'LIKE wildcards in the namespace are escaped');
    assert.equal(await m.blobRepositoryInNamespace('nobody', d), undefined);
    assert.deepEqual(await m.listBlobDigests(), [d]);
    assert.equal(await m.keyInUse('k1'), true);
    assert.equal(await m.keyInUse('k2'), false);
    assert.deepEqual((await m.listRepositories(undefined, undefined)).sort(), ['ns/app', 'ns/app2', 'other/app']);
    assert.deepEqual((await m.listNamespaces()).map((n) => n.name), ['ns', 'other'], 'recording a blob creates the namespace');

    // touchBlob restarts the link's grace period
    await m.touchBlob('ns/app', d, NEW);
    assert.equal(await m.removeLinkIfUnused('ns/app', d, CUTOFF), false);
    assert.equal(await m.removeLinkIfUnused('ns/app2', d, CUTOFF), true);
    assert.equal(await m.unlinkBlob('other/app', d), true);
    assert.equal(await m.unlinkBlob('other/app', d), false);
    assert.equal(await m.repositoryExists('other/app'), false);
    assert.equal(await m.repositoryExists('ns/app'), true);
  });

  test(`${b.name}: manifests are stored only with their references, tags move and list in ASCII order, referrers and deletes`, async (t) => {
    const m = await open(t);
    const repo = 'ns/app';
    const layer = await blob(m, repo, 'layer');
    const config = await blob(m, repo, 'config');
    const img = manifest(repo, 'img', NEW);

    const missingBlob = digestOf('not-uploaded');
    const refused = await m.putManifest(img, refsOf([config, missingBlob, layer]), ['latest']);
    assert.deepEqual(refused, { missing: [missingBlob], moved: [] });
    assert.equal(await m.getManifest(repo, img.digest), undefined, 'nothing is stored when a reference is missing');
    assert.equal(await m.resolveTag(repo, 'latest'), undefined);

    assert.deepEqual(await m.putManifest({ ...img, annotations: { a: 'b' }, artifactType: 'x/y' }, refsOf([config, layer]), ['latest', 'B', 'a', 'v1']), { missing: [], moved: [] });
    const got = await m.getManifest(repo, img.digest);
    assert.ok(got);
    assert.deepEqual(got.body, img.body);
    assert.equal(got.mediaType, img.mediaType);
    assert.deepEqual(got.annotations, { a: 'b' });
    assert.equal(got.artifactType, 'x/y');
    assert.equal(got.createdAt, NEW);
    assert.equal(await m.resolveTag(repo, 'latest'), img.digest);
    assert.deepEqual(await m.listTags(repo, undefined, undefined), ['B', 'a', 'latest', 'v1'], 'ASCII order: upper case first');
    assert.deepEqual(await m.listTags(repo, 'B', 2), ['a', 'latest']);
    assert.deepEqual(await m.listTags(repo, 'v1', undefined), []);
    assert.equal(await m.listTags('ns/none', undefined, undefined), undefined);

    // an index listing the image, and a child that is not there
    const index = manifest(repo, 'index', NEW, { mediaType: 'application/vnd.oci.image.index.v1+json' });
    const absent = digestOf('absent');
    assert.deepEqual((await m.putManifest(index, refsOf([], [img.digest, absent]), [])).missing, [absent]);
    const second = manifest(repo, 'img2', NEW);
    await m.putManifest(second, refsOf([layer]), []);
    assert.deepEqual(await m.putManifest(index, refsOf([], [img.digest, second.digest]), ['latest']), { missing: [], moved: [{ tag: 'latest', from: img.digest }] });
    // re-pushing with the tag it already has moves nothing
    assert.deepEqual((await m.putManifest(index, refsOf([], [img.digest, second.digest]), ['latest'])).moved, []);

    // referrers, in push order
    const sig1 = manifest(repo, 'sig1', NEW + 1, { subject: img.digest, artifactType: 'application/sig' });
    const sig2 = manifest(repo, 'sig2', NEW + 2, { subject: img.digest });
    await m.putManifest(sig2, refsOf([]), []);
    await m.putManifest(sig1, refsOf([]), []);
    assert.deepEqual((await m.referrers(repo, img.digest)).map((r) => r.digest), [sig1.digest, sig2.digest]);
    assert.equal((await m.referrers(repo, img.digest))[0]!.subject, img.digest);
    assert.deepEqual(await m.referrers(repo, second.digest), []);

    const bodies = [img, index, second, sig1, sig2].reduce((n, x) => n + x.body.length, 0);
    assert.equal(await m.storageBytes(), 20 + bodies);

    assert.deepEqual(await m.listRepositories(undefined, undefined), [repo]);
    await blob(m, 'ns/b', 'other');
    await blob(m, 'ns/c', 'other');
    assert.deepEqual(await m.listRepositories('ns/app', 1), ['ns/b']);

    assert.equal(await m.deleteTag(repo, 'v1'), img.digest);
    assert.equal(await m.deleteTag(repo, 'v1'), undefined);
    const del = await m.deleteManifest(repo, img.digest);
    assert.deepEqual(del?.tags.sort(), ['B', 'a']);
    assert.equal(await m.deleteManifest(repo, img.digest), undefined);
    assert.equal(await m.resolveTag(repo, 'a'), undefined);
    assert.equal(await m.getManifest(repo, img.digest), undefined);
    assert.deepEqual(await m.listTags(repo, undefined, undefined), ['latest']);
  });

  test(`${b.name}: listLinks and listManifests give every link and every manifest with the references it was stored with`, async (t) => {
    const m = await open(t);
    const layer = await blob(m, 'ns/app', 'layer');
    assert.equal(await m.linkBlob('ns/other', layer, OLD), true);
    const img = manifest('ns/app', 'img', OLD);
    const base = { digest: digestOf('base'), name: 'docker.io/library/debian:12' };
    await m.putManifest(img, refsOf([layer], [], base), ['v1']);
    const index = manifest('ns/app', 'index', OLD, { mediaType: 'application/vnd.oci.image.index.v1+json' });
    await m.putManifest(index, refsOf([], [img.digest]), []);
    const sig = manifest('ns/app', 'sig', OLD, { subject: img.digest });
    await m.putManifest(sig, refsOf([]), []);
    const byRepo = (a: { repository: string; digest: string }, z: { repository: string; digest: string }) => (a.repository + a.digest < z.repository + z.digest ? -1 : 1);
    assert.deepEqual((await m.listLinks()).sort(byRepo), [
      { repository: 'ns/app', digest: layer },
      { repository: 'ns/other', digest: layer },
    ]);
    assert.deepEqual(
      (await m.listManifests()).sort(byRepo),
      [
        { repository: 'ns/app', digest: img.digest, refs: { blobs: [{ digest: layer, size: 10 }], manifests: [], base } },
        { repository: 'ns/app', digest: index.digest, refs: { blobs: [], manifests: [img.digest] } },
        { repository: 'ns/app', digest: sig.digest, subject: img.digest, refs: { blobs: [], manifests: [] } },
      ].sort(byRepo),
    );
  });

  test(`${b.name}: the search index finds packages of SBOM referrers and images by base, and its rows go with their manifests`, async (t) => {
    const m = await open(t);
    const repo = 'ns/app';
    const layer = await blob(m, repo, 'layer');
    const base = digestOf('debian');
    const img = manifest(repo, 'img', NEW);
    await m.putManifest(img, refsOf([layer], [], { digest: base, name: 'debian:12' }), []);
    const index = manifest(repo, 'index', NEW);
    await m.putManifest(index, refsOf([], [img.digest]), ['v1']);
    const sbom = manifest(repo, 'sbom', NEW, { subject: img.digest, artifactType: 'application/spdx+json' });
    await m.putManifest(sbom, refsOf([layer]), []);

    assert.deepEqual(await m.findBuiltOn([base]), [{ repository: repo, digest: img.digest, tags: ['v1'], base: { digest: base, name: 'debian:12' } }]);
    assert.deepEqual(await m.findBuiltOn([digestOf('alpine')]), []);
    assert.deepEqual(await m.findBuiltOn([]), []);
    assert.deepEqual(await m.unindexedReferrers(['application/spdx+json']), [{ repository: repo, digest: sbom.digest, subject: img.digest }]);

    await m.indexPackages(repo, sbom.digest, img.digest, [
      { package: { name: 'libssl3', version: '3.0.11', type: 'deb', purl: 'pkg:deb/debian/libssl3@3.0.11', source: 'openssl' }, nameKey: 'libssl3', sourceKey: 'openssl' },
      { package: { name: 'Flask', version: '3.0', type: 'pypi' }, nameKey: 'flask' },
    ]);
    assert.deepEqual(await m.unindexedReferrers(['application/spdx+json']), []);
    const bySource = await m.findPackages(['openssl']);
    assert.deepEqual(bySource, [
      {
        repository: repo,
        digest: img.digest,
        tags: ['v1'],
        sbom: sbom.digest,
        package: { name: 'libssl3', version: '3.0.11', type: 'deb', purl: 'pkg:deb/debian/libssl3@3.0.11', source: 'openssl' },
      },
    ]);
    assert.deepEqual((await m.findPackages(['flask'])).map((h) => h.package), [{ name: 'Flask', version: '3.0', type: 'pypi' }]);
    assert.deepEqual(await m.findPackages([]), []);

    // indexing again replaces the rows; indexing an SBOM that is gone stores nothing
    await m.indexPackages(repo, sbom.digest, img.digest, [{ package: { name: 'zlib1g', version: '1', type: 'deb' }, nameKey: 'zlib1g' }]);
    assert.deepEqual(await m.findPackages(['flask']), []);
    assert.equal((await m.findPackages(['zlib1g'])).length, 1);
    await m.indexPackages(repo, digestOf('gone'), img.digest, [{ package: { name: 'gone', version: '1', type: 'deb' }, nameKey: 'gone' }]);
    assert.deepEqual(await m.findPackages(['gone']), []);

    // rows of a deleted subject are not found; of a deleted SBOM, gone
    await m.deleteManifest(repo, index.digest);
    await m.deleteManifest(repo, img.digest);
    assert.deepEqual(await m.findPackages(['zlib1g']), []);
    assert.deepEqual(await m.findBuiltOn([base]), []);
    await m.deleteManifest(repo, sbom.digest);
    await m.putManifest(img, refsOf([layer]), []);
    assert.deepEqual(await m.findPackages(['zlib1g']), [], 'the SBOM rows went with the SBOM');
  });

  test(`${b.name}: users, namespaces, roles and robots`, async (t) => {
    const m = await open(t);
    await m.putUser({ name: 'bob', passwordHash: 'h1', admin: false, createdAt: 5 });
    await m.putUser({ name: 'alice', passwordHash: 'h2', admin: true, createdAt: 6 });
    await m.putUser({ name: 'bob', passwordHash: 'h3', admin: true, createdAt: 99 });
    assert.deepEqual(await m.getUser('bob'), { name: 'bob', passwordHash: 'h3', admin: true, createdAt: 5 });
    assert.deepEqual((await m.listUsers()).map((u) => u.name), ['alice', 'bob']);
    assert.equal(await m.getUser('carol'), undefined);

    await m.putNamespace({ name: 'team', public: true, createdAt: 7 });
    assert.deepEqual(await m.getNamespace('team'), { name: 'team', public: true, createdAt: 7 });
    await m.putNamespace({ name: 'team', public: false, createdAt: 8 });
    assert.deepEqual(await m.getNamespace('team'), { name: 'team', public: false, createdAt: 7 });

    await m.setRole('team', 'bob', 'developer');
    await m.setRole('lab', 'bob', 'guest');
    await m.setRole('team', 'alice', 'admin');
    await m.setRole('team', 'bob', 'maintainer');
    assert.equal(await m.getRole('team', 'bob'), 'maintainer');
    assert.deepEqual((await m.getNamespace('lab'))?.public, false, 'a role creates its namespace');
    assert.deepEqual(await m.rolesOf('bob'), [
      { namespace: 'lab', user: 'bob', role: 'guest' },
      { namespace: 'team', user: 'bob', role: 'maintainer' },
    ]);
    assert.deepEqual(await m.listMembers('team'), [
      { namespace: 'team', user: 'alice', role: 'admin' },
      { namespace: 'team', user: 'bob', role: 'maintainer' },
    ]);
    assert.equal(await m.revokeRole('lab', 'bob'), true);
    assert.equal(await m.revokeRole('lab', 'bob'), false);
    assert.equal(await m.deleteUser('bob'), true);
    assert.equal(await m.deleteUser('bob'), false);
    assert.deepEqual(await m.rolesOf('bob'), [], 'a deleted user keeps no roles');

    const robot = { name: 'robot$team+ci', namespace: 'team', secretHash: 's', actions: ['pull', 'push'], createdBy: 'alice', createdAt: 9 };
    await m.putRobot(robot);
    await m.putRobot({ name: 'robot$new+ci', namespace: 'new', secretHash: 's', actions: [], expiresAt: 1_900_000_000, createdBy: 'alice', createdAt: 9 });
    assert.deepEqual(await m.getRobot(robot.name), { ...robot, expiresAt: undefined });
    await m.putRobot({ ...robot, actions: ['pull'], expiresAt: 1_800_000_000 });
    assert.deepEqual((await m.getRobot(robot.name))?.actions, ['pull']);
    assert.equal((await m.getRobot(robot.name))?.expiresAt, 1_800_000_000);
    assert.deepEqual((await m.listRobots()).map((r) => r.name), ['robot$new+ci', 'robot$team+ci']);
    assert.deepEqual((await m.listRobots('new')).map((r) => r.name), ['robot$new+ci']);
    assert.ok(await m.getNamespace('new'), 'a robot creates its namespace');
    assert.equal(await m.deleteRobot('robot$new+ci'), true);
    assert.equal(await m.deleteRobot('robot$new+ci'), false);
    assert.deepEqual((await m.listNamespaces()).map((n) => n.name), ['lab', 'new', 'team']);
  });

  test(`${b.name}: users an identity provider vouches for, and roles of groups matched case-insensitively`, async (t) => {
    const m = await open(t);
    await m.putUser({ name: 'jürgen', passwordHash: '', admin: false, createdAt: 5, provider: 'ldap' });
    assert.deepEqual(await m.getUser('jürgen'), { name: 'jürgen', passwordHash: '', admin: false, createdAt: 5, provider: 'ldap' });
    await m.putUser({ name: 'jürgen', passwordHash: 'h', admin: true, createdAt: 6 });
    assert.deepEqual(await m.getUser('jürgen'), { name: 'jürgen', passwordHash: 'h', admin: true, createdAt: 5 }, 'a local user now');

    await m.setGroupRole('team', 'Team-Devs', 'developer');
    await m.setGroupRole('lab', 'team-devs', 'guest');
    await m.setGroupRole('team', 'ops', 'admin');
    assert.ok(await m.getNamespace('lab'), 'a binding creates its namespace');
    await m.setGroupRole('team', 'TEAM-DEVS', 'maintainer');
    assert.deepEqual(await m.groupBindings('team'), [
      { namespace: 'team', group: 'ops', role: 'admin' },
      { namespace: 'team', group: 'TEAM-DEVS', role: 'maintainer' },
    ], 'one binding per group name, whatever its case');
    assert.deepEqual(await m.bindingsOfGroups(['team-devs', 'nobody']), [
      { namespace: 'lab', group: 'team-devs', role: 'guest' },
      { namespace: 'team', group: 'TEAM-DEVS', role: 'maintainer' },
    ]);
    assert.deepEqual(await m.bindingsOfGroups([]), []);
    assert.equal((await m.groupBindings()).length, 3);
    assert.equal(await m.revokeGroupRole('team', 'Team-devs'), true);
    assert.equal(await m.revokeGroupRole('team', 'team-devs'), false);
    assert.deepEqual((await m.bindingsOfGroups(['Team-Devs'])).map((x) => x.namespace), ['lab']);
  });

  test(`${b.name}: signature policies, one per namespace, replaced by a new one; indexes listing a manifest`, async (t) => {
    const m = await open(t);
    const policy = { namespace: 'team', keys: ['PEM-A'], certificates: [], on: ['pull' as const], createdBy: 'alice', createdAt: 5 };
    await m.setSignaturePolicy(policy);
    await m.setSignaturePolicy({ ...policy, namespace: 'lab', keys: ['PEM-B', 'PEM-C'], certificates: ['CA'], on: ['pull', 'promote'] });
    await m.setSignaturePolicy({ ...policy, keys: ['PEM-D'], on: ['promote'], createdAt: 6 });
    assert.deepEqual(await m.signaturePolicies('team'), [{ ...policy, keys: ['PEM-D'], on: ['promote'], createdAt: 6 }]);
    assert.deepEqual((await m.signaturePolicies()).map((p) => [p.namespace, p.keys, p.certificates, p.on]), [['lab', ['PEM-B', 'PEM-C'], ['CA'], ['pull', 'promote']], ['team', ['PEM-D'], [], ['promote']]]);
    assert.equal((await m.removeSignaturePolicy('team'))?.namespace, 'team');
    assert.equal(await m.removeSignaturePolicy('team'), undefined);
    assert.deepEqual(await m.signaturePolicies('team'), []);

    const repo = 'team/app';
    const child = manifest(repo, 'child', NEW);
    const index = manifest(repo, 'index', NEW, { mediaType: 'application/vnd.oci.image.index.v1+json' });
    assert.deepEqual((await m.putManifest(child, refsOf([]), [])).missing, []);
    assert.deepEqual((await m.putManifest(index, refsOf([], [child.digest]), ['1'])).missing, []);
    assert.deepEqual(await m.indexesListing(repo, child.digest), [index.digest]);
    assert.deepEqual(await m.indexesListing(repo, index.digest), []);
  });

  test(`${b.name}: the audit log keeps events newest first, with the namespace derived from the repository`, async (t) => {
    const m = await open(t);
    await m.recordAudit([]);
    await m.recordAudit([
      { time: 1, actor: 'bob', action: 'push', repository: 'team/app', reference: 'v1', digest: digestOf('x'), address: '10.0.0.1' },
      { time: 2, actor: 'alice', action: 'pull', repository: 'team/app', count: 4 },
      { time: 3, actor: 'alice', action: 'role', namespace: 'lab', detail: 'bob: guest' },
    ]);
    const all = await m.listAudit({ limit: 10 });
    assert.deepEqual(all.map((e) => e.time), [3, 2, 1]);
    assert.deepEqual(
      { ...all[2], id: undefined },
      { id: undefined, time: 1, actor: 'bob', action: 'push', repository: 'team/app', namespace: 'team', reference: 'v1', digest: digestOf('x'), detail: undefined, address: '10.0.0.1', count: 1 },
    );
    assert.equal(all[1]!.count, 4);
    assert.ok(all[0]!.id! > all[1]!.id!);
    assert.deepEqual((await m.listAudit({ namespace: 'team', limit: 10 })).map((e) => e.time), [2, 1]);
    assert.deepEqual((await m.listAudit({ actor: 'alice', action: 'pull', limit: 10 })).map((e) => e.time), [2]);
    assert.deepEqual((await m.listAudit({ limit: 1 })).map((e) => e.time), [3]);
  });

  test(`${b.name}: garbage is found in removal order and each removal checks again`, async (t) => {
    const m = await open(t);
    const repo = 'ns/app';
    const [kept, childLayer, loose, unlinked, fresh] = await Promise.all(['kept', 'child', 'loose', 'unlinked', 'fresh'].map((n) => blob(m, repo, n)));
    await blob(m, repo, 'recent', NEW);
    await m.unlinkBlob(repo, unlinked);
    await m.unlinkBlob(repo, fresh);
    const tagged = manifest(repo, 'tagged', OLD);
    await m.putManifest(tagged, refsOf([kept]), ['v1']);
    const child = manifest(repo, 'child', OLD);
    await m.putManifest(child, refsOf([childLayer]), []);
    const index = manifest(repo, 'index', OLD);
    await m.putManifest(index, refsOf([], [child.digest]), []);
    const referrer = manifest(repo, 'referrer', OLD, { subject: index.digest });
    await m.putManifest(referrer, refsOf([]), []);
    const recent = manifest(repo, 'recent', NEW);
    await m.putManifest(recent, refsOf([]), []);

    const g = await m.findGarbage(CUTOFF);
    const order = g.manifests.map((x) => x.digest);
    assert.deepEqual([...order].sort(), [child.digest, index.digest, referrer.digest].sort());
    assert.ok(order.indexOf(index.digest) < order.indexOf(child.digest), 'parents before children');
    assert.ok(order.indexOf(index.digest) < order.indexOf(referrer.digest), 'subjects before referrers');
    assert.deepEqual(g.links.map((l) => l.digest).sort(), [childLayer, loose].sort());
    // blobs whose only link is collectable are collectable too (claimBlob waits for the link to go)
    assert.deepEqual(g.blobs.map((x) => x.digest).sort(), [unlinked, fresh, childLayer, loose].sort());
    assert.deepEqual(g.blobs[0]!.size, 10);
    assert.ok(await m.getManifest(repo, child.digest), 'findGarbage changes nothing');

    // out of order, each removal refuses
    assert.equal(await m.removeManifestIfUnused(repo, child.digest, CUTOFF), false, 'listed by the index');
    assert.equal(await m.removeManifestIfUnused(repo, referrer.digest, CUTOFF), false, 'its subject is there');
    assert.equal(await m.removeManifestIfUnused(repo, tagged.digest, CUTOFF), false, 'tagged');
    assert.equal(await m.removeManifestIfUnused(repo, recent.digest, CUTOFF), false, 'in its grace period');
    assert.equal(await m.removeLinkIfUnused(repo, childLayer, CUTOFF), false, 'referenced by the child');
    for (const x of g.manifests) assert.equal(await m.removeManifestIfUnused(x.repository, x.digest, CUTOFF), true);
    assert.equal(await m.getManifest(repo, child.digest), undefined);
    for (const l of g.links) assert.equal(await m.removeLinkIfUnused(l.repository, l.digest, CUTOFF), true);
    assert.equal(await m.linkedBlob(repo, loose), undefined);

    // blobs: claimed once, then neither served nor mounted; deletion finished by forgetBlob
    assert.equal(await m.claimBlob(kept, CUTOFF), undefined, 'linked and referenced');
    assert.equal(await m.claimBlob(fresh, 500), undefined, 'in its grace period');
    assert.equal(await m.claimBlob(unlinked, CUTOFF), 'blobs/unlinked');
    assert.equal(await m.claimBlob(unlinked, CUTOFF), undefined, 'already claimed');
    assert.equal(await m.blob(unlinked), undefined);
    assert.equal(await m.linkBlob('ns/other', unlinked, NEW), false, 'a blob being deleted cannot be mounted');
    assert.deepEqual(await m.deletingBlobs(), [{ digest: unlinked, key: 'blobs/unlinked' }]);
    assert.equal(await m.keyInUse('blobs/unlinked'), true, 'the row still names the key until forgotten');
    assert.ok(!(await m.listBlobDigests()).includes(unlinked));
    await m.forgetBlob(unlinked, 'blobs/unlinked');
    assert.deepEqual(await m.deletingBlobs(), []);
    assert.equal(await m.keyInUse('blobs/unlinked'), false);
    const after = await m.findGarbage(CUTOFF);
    assert.deepEqual(after.manifests, []);
    assert.deepEqual(after.links, []);
    assert.deepEqual(after.blobs.map((x) => x.digest).sort(), [childLayer, fresh, loose].sort());
  });

  test(`${b.name}: upload sessions are claimed by one request at a time`, async (t) => {
    const m = await open(t);
    await m.createUpload(upload('u1'));
    assert.deepEqual(await m.getUpload('u1'), upload('u1'));
    assert.equal(await m.getUpload('nope'), undefined);
    assert.equal(await m.claimUpload('nope', 0, 'x', Date.now() + 60_000), undefined);
    assert.equal(await m.keyInUse('uploads/u1'), true);

    // two requests at the same offset: one wins
    const until = Date.now() + 60_000;
    const results = await Promise.all([m.claimUpload('u1', 0, 'tokA', until), m.claimUpload('u1', 0, 'tokB', until)]);
    const won = results.findIndex((r) => typeof r === 'object');
    assert.notEqual(won, -1, JSON.stringify(results));
    assert.equal(results[1 - won], 'busy');
    const winner = won === 0 ? 'tokA' : 'tokB';
    const loser = won === 0 ? 'tokB' : 'tokA';
    assert.deepEqual(results[won], upload('u1'));

    assert.equal(await m.releaseUpload('u1', loser, { offset: 99, parts: [], pending: [], touchedAt: NEW }), false);
    const update = { offset: 100, multipartId: 'mp-1', parts: [{ partNumber: 1, etag: '"e1"', size: 100 }], pending: [{ key: 'tmp/1', size: 5 }], touchedAt: NEW };
    assert.equal(await m.releaseUpload('u1', winner, update), true);
    assert.deepEqual(await m.getUpload('u1'), upload('u1', update));
    assert.equal(await m.claimUpload('u1', 0, 'tokC', until), 'offset');

    // an expired claim is taken over; the first holder's release then fails
    const claimed = await m.claimUpload('u1', 100, 'tokD', Date.now() - 1);
    assert.equal(typeof claimed, 'object');
    assert.equal((await m.claimUpload('u1', 100, 'tokE', until) as UploadRecord).offset, 100);
    assert.equal(await m.releaseUpload('u1', 'tokD'), false);
    assert.equal(await m.claimUpload('u1', 100, 'tokF', until), 'busy');
    assert.equal(await m.releaseUpload('u1', 'tokE'), true);
    assert.deepEqual(await m.getUpload('u1'), upload('u1', update), 'a release without changes keeps the session');

    // stale sessions: untouched since before, and not held
    await m.createUpload(upload('u2', { touchedAt: OLD }));
    await m.createUpload(upload('u3', { touchedAt: OLD }));
    await m.claimUpload('u3', 0, 'held', until);
    assert.deepEqual((await m.staleUploads(CUTOFF)).map((u) => u.id), ['u2']);
    await m.deleteUpload('u2');
    assert.equal(await m.getUpload('u2'), undefined);
  });

  test(`${b.name}: shared values are the first writer's; login failures count per key in windows`, async (t) => {
    const location = await b.fresh();
    const [m1, m2] = [await open(t, location), await open(t, location)];
    let created = 0;
    const values = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? m1 : m2).sharedValue('token-key', () => `value-${i}-${++created}`)));
    assert.equal(new Set(values).size, 1, values.join(' '));
    assert.equal(await m1.sharedValue('token-key', () => 'late'), values[0]);

    const W = 60_000;
    assert.deepEqual(await m1.loginFailures(['u:bob'], W, 1000, false), [{ failures: 0, start: 1000 }]);
    assert.deepEqual(await m1.loginFailures(['u:bob', 'a:1.2.3.4'], W, 1000, true), [{ failures: 1, start: 1000 }, { failures: 1, start: 1000 }]);
    assert.deepEqual(await m2.loginFailures(['u:bob'], W, 2000, true), [{ failures: 2, start: 1000 }]);
    // concurrent failures are all counted
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? m1 : m2).loginFailures(['u:bob'], W, 3000, true)));
    assert.deepEqual(await m1.loginFailures(['u:bob', 'a:1.2.3.4'], W, 4000, false), [{ failures: 12, start: 1000 }, { failures: 1, start: 1000 }]);
    // the window ends windowMs after its first failure; the next failure starts a new one
    assert.deepEqual(await m1.loginFailures(['u:bob'], W, 1000 + W, false), [{ failures: 0, start: 1000 + W }]);
    assert.deepEqual(await m1.loginFailures(['u:bob'], W, 1000 + W + 5, true), [{ failures: 1, start: 1000 + W + 5 }]);
    await m1.clearFailures(['u:bob']);
    await m1.clearFailures([]);
    assert.deepEqual(await m2.loginFailures(['u:bob', 'a:1.2.3.4'], W, 5000, false), [{ failures: 0, start: 5000 }, { failures: 1, start: 1000 }]);
  });

  // Races. Each iteration starts the contenders together; PostgreSQL runs them on separate connections.

  test(`${b.name}: a manifest push racing link and blob collection never leaves a manifest on a deleted blob (distribution #3045)`, async (t) => {
    const m = await open(t);
    const repo = 'ns/race';
    let stored = 0;
    for (let i = 0; i < 40; i++) {
      const layer = await blob(m, repo, `layer-${i}`);
      const img = manifest(repo, `img-${i}`, NEW);
      // the collector's cutoff is past the link's clock, not past the push's
      const [put, , claimed] = await Promise.all([m.putManifest(img, refsOf([layer]), []), m.removeLinkIfUnused(repo, layer, CUTOFF), m.claimBlob(layer, CUTOFF)]);
      const held = await m.getManifest(repo, img.digest);
      if (put.missing.length === 0) {
        stored++;
        assert.ok(held);
        assert.equal(claimed, undefined, `iteration ${i}: blob claimed while a stored manifest references it`);
        assert.ok(await m.linkedBlob(repo, layer), `iteration ${i}: the stored manifest's blob is linked and live`);
      } else {
        assert.deepEqual(put.missing, [layer]);
        assert.equal(held, undefined);
      }
    }
    t.diagnostic(`${stored} of 40 pushes won the race`);
  });

  test(`${b.name}: a blob uploaded again while it is being deleted is live with the new key (harbor #20131)`, async (t) => {
    const m = await open(t);
    const d = await blob(m, 'ns/app', 'layer');
    await m.unlinkBlob('ns/app', d);
    assert.equal(await m.claimBlob(d, CUTOFF), 'blobs/layer');
    assert.deepEqual(await m.recordBlob(d, 10, 'ns/app', 'blobs/layer-2', NEW), { key: 'blobs/layer-2' });
    assert.deepEqual(await m.blob(d), { size: 10, key: 'blobs/layer-2' });
    await m.forgetBlob(d, 'blobs/layer');
    assert.deepEqual(await m.linkedBlob('ns/app', d), { size: 10, key: 'blobs/layer-2' }, 'the collector finishing the old deletion leaves the new row');
    assert.deepEqual(await m.deletingBlobs(), []);
    assert.equal(await m.keyInUse('blobs/layer'), false, 'the old bytes may go');
    assert.equal(await m.keyInUse('blobs/layer-2'), true);
    assert.equal(await m.claimBlob(d, CUTOFF), undefined, 'live, linked and used again');
  });

  test(`${b.name}: two pushes moving one tag at once end on one of them and report the move consistently`, async (t) => {
    const m = await open(t);
    const repo = 'ns/tags';
    const layer = await blob(m, repo, 'layer');
    const start = manifest(repo, 'start', NEW);
    await m.putManifest(start, refsOf([layer]), ['t']);
    for (let i = 0; i < 20; i++) {
      const a = manifest(repo, `a-${i}`, NEW);
      const c = manifest(repo, `b-${i}`, NEW);
      const from = (await m.resolveTag(repo, 't'))!;
      const [ra, rc] = await Promise.all([m.putManifest(a, refsOf([layer]), ['t', 'u']), m.putManifest(c, refsOf([layer]), ['u', 't'])]);
      const end = await m.resolveTag(repo, 't');
      assert.ok(end === a.digest || end === c.digest);
      const [last, lastResult, firstResult, first] = end === a.digest ? [a, ra, rc, c] : [c, rc, ra, a];
      assert.equal(await m.resolveTag(repo, 'u'), last.digest, 'both tags end on the same push');
      const fromOf = (r: typeof ra, tag: string) => r.moved.find((x) => x.tag === tag)?.from;
      assert.equal(fromOf(firstResult, 't'), from, `iteration ${i}: the first push moved t from the previous digest`);
      assert.equal(fromOf(lastResult, 't'), first.digest, `iteration ${i}: the second push moved t from the first`);
      assert.equal(fromOf(lastResult, 'u'), first.digest);
    }
  });

  test(`${b.name}: concurrent deletes of the same and of overlapping manifests each delete once, without deadlock errors`, async (t) => {
    const location = await b.fresh();
    const m = await open(t, location);
    const repo = 'ns/del';
    const layer = await blob(m, repo, 'layer');
    for (let round = 0; round < 5; round++) {
      const ms = Array.from({ length: 10 }, (_, i) => manifest(repo, `m-${round}-${i}`, NEW));
      // tags in both directions of name order, so the deletes lock tags that pushes also lock
      for (const [i, x] of ms.entries()) await m.putManifest(x, refsOf([layer]), [`t${i}`, `z${9 - i}`, `shared-${i % 3}`]);
      const index = manifest(repo, `index-${round}`, NEW);
      await m.putManifest(index, refsOf([], ms.map((x) => x.digest)), ['idx']);
      const all = [index, ...ms];
      const first = all.slice(0, 7);
      const second = all.slice(4).reverse();
      const calls = [...first, ...second, ...all].map((x) => m.deleteManifest(repo, x.digest).then((r) => [x.digest, r] as const));
      // a push moving tags among them meanwhile
      calls.push(m.putManifest(manifest(repo, `late-${round}`, NEW), refsOf([layer]), ['shared-0', 'shared-1', 't3', 'z2']).then(() => ['push', undefined] as const));
      const results = await Promise.all(calls);
      for (const x of all) assert.equal(results.filter(([d, r]) => d === x.digest && r !== undefined).length, 1, `${x.digest} deleted exactly once`);
      for (const x of all) assert.equal(await m.getManifest(repo, x.digest), undefined);
    }
    if (b.deadlocks) {
      // the server counts a deadlock when the aborted transaction's backend reports its statistics, at the latest when it exits
      await m.close();
      await sleep(100);
      assert.equal(await b.deadlocks(location), 0, 'locks are taken in one order, so nothing deadlocked (a deadlock would have been retried)');
    }
  });

  test(`${b.name}: a change through one instance calls back another on the same database, not itself`, async (t) => {
    const location = await b.fresh();
    const a = await open(t, location, 'replica-a');
    const c = await open(t, location, 'replica-b');
    let seenA = 0;
    let seenC = 0;
    a.onExternalChange(() => seenA++);
    c.onExternalChange(() => seenC++);
    const started = Date.now();
    await a.putUser({ name: 'bob', passwordHash: 'h', admin: false, createdAt: 1 });
    while (seenC === 0 && Date.now() - started < 1000) await sleep(10);
    assert.ok(seenC > 0, 'the other instance was called back within 1 s');
    t.diagnostic(`called back after ${Date.now() - started} ms`);
    await sleep(300);
    assert.equal(seenA, 0, 'the instance that made the change is not called back');
    assert.equal((await c.getUser('bob'))?.passwordHash, 'h');
  });

  test(`${b.name}: a database with a newer schema is refused; instances opening an empty database together migrate it once`, async () => {
    const location = await b.empty();
    const opened = await Promise.all([b.open(location), b.open(location), b.open(location)]);
    await Promise.all(opened.map((m, i) => m.putUser({ name: `u${i}`, passwordHash: 'h', admin: false, createdAt: i })));
    assert.deepEqual((await opened[0]!.listUsers()).map((u) => u.name), ['u0', 'u1', 'u2']);
    await Promise.all(opened.map((m) => m.close()));

    await b.setSchemaVersion(location, 99);
    await assert.rejects(b.open(location), /schema version 99, newer than the \d+ this kiln knows/);
  });

  test(`${b.name}: pull-through cache settings are stored, replaced and removed; a proxy's manifest may be stored before what it references`, async (t) => {
    const m = await open(t);
    const p = { namespace: 'hub', url: 'https://registry.example.com/mirror', username: 'u', password: 'p w', ttlSeconds: 0.5, createdBy: 'cli:root', createdAt: OLD };
    await m.setProxy('hub', p, OLD);
    assert.deepEqual(await m.getProxy('hub'), p);
    assert.ok((await m.listNamespaces()).some((n) => n.name === 'hub'), 'the namespace is made');
    const anonymous = { namespace: 'hub', url: 'http://127.0.0.1:5000', ttlSeconds: 300, createdBy: 'x', createdAt: NEW };
    await m.setProxy('hub', anonymous, NEW);
    await m.setProxy('cache', { ...anonymous, namespace: 'cache' }, NEW);
    assert.deepEqual(await m.listProxies(), [{ ...anonymous, namespace: 'cache' }, anonymous]);
    await m.setProxy('hub', undefined, NEW);
    assert.equal(await m.getProxy('hub'), undefined);
    assert.deepEqual((await m.listProxies()).map((x) => x.namespace), ['cache']);

    // Without allowMissing the references must be there; with it the manifest and its tag are stored.
    const idx = manifest('cache/app', 'index', OLD);
    const refs = refsOf([digestOf('layer')], [digestOf('child')]);
    assert.deepEqual((await m.putManifest(idx, refs, ['v1'])).missing.sort(), [digestOf('child'), digestOf('layer')].sort());
    assert.deepEqual((await m.putManifest(idx, refs, ['v1'], { allowMissing: true })).missing, []);
    assert.equal(await m.resolveTag('cache/app', 'v1'), idx.digest);
    const garbage = await m.findGarbage(NEW + 1);
    assert.deepEqual(garbage.manifests, [], 'a tagged manifest is no garbage, whatever it lacks');
  });
}

/** SQLite: a file in a temporary directory per database. */
function sqliteBackend(): Backend {
  let dir = '';
  let n = 0;
  before(async () => void (dir = await mkdtemp(join(tmpdir(), 'kiln-metadata-'))));
  after(() => rm(dir, { recursive: true, force: true }));
  return {
    name: 'sqlite',
    fresh: async () => join(dir, `db-${++n}.sqlite`),
    empty: async () => join(dir, `db-${++n}.sqlite`),
    open: async (path) => openSqliteMetadata(path),
    async setSchemaVersion(path, v) {
      const db = new Database(path);
      db.pragma(`user_version = ${v}`);
      db.close();
    },
  };
}

async function sql(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

/**
 * PostgreSQL: one cluster for the suite, a new database per test: a copy of one migrated once
 * (CREATE DATABASE … TEMPLATE), which halves the time a test takes to start.
 */
function postgresBackend(server: () => Postgres): Backend {
  let n = 0;
  let template: Promise<void> | undefined;
  const create = async (from?: string) => {
    const name = `contract_${++n}`;
    return server().createDatabase(name, from);
  };
  return {
    name: 'postgres',
    async fresh() {
      template ??= (async () => {
        await sql(server().url, 'CREATE DATABASE contract_template');
        await (await openPostgresMetadata({ url: server().url.replace(/\/kiln$/, '/contract_template') })).close();
      })();
      await template;
      return create('contract_template');
    },
    empty: () => create(),
    open: (url, replicaId) => openPostgresMetadata({ url, poolSize: 8, replicaId }),
    async setSchemaVersion(url, v) {
      await sql(url, 'UPDATE schema_version SET version = $1', [v]);
    },
    async deadlocks(url) {
      return (await sql(url, 'SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0].n;
    },
  };
}

describe('Metadata on SQLite', () => {
  contract(sqliteBackend());
});

describe('Metadata on PostgreSQL', { skip: notRoot }, () => {
  const scope = suiteScope();
  let server: Postgres | undefined;
  before(async () => void (server = await startPostgres(scope)));
  const backend = postgresBackend(() => server!);
  contract(backend);

  test('postgres: an unreachable server is named in the error (host, port, database; never the password), quickly', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(openPostgresMetadata({ url: `postgres://kiln:s3cret-pw@127.0.0.1:${port}/registry` }), (e: Error) => {
      assert.match(e.message, new RegExp(`PostgreSQL 127\\.0\\.0\\.1:${port}/registry: .*ECONNREFUSED`));
      assert.doesNotMatch(e.message, /s3cret/);
      return true;
    });
    assert.ok(Date.now() - started < 6000);
    // a database that does not exist: the server's refusal, with the same naming
    await assert.rejects(openPostgresMetadata({ url: server!.url.replace(/\/kiln$/, '/nosuchdb') }), /PostgreSQL 127\.0\.0\.1:\d+\/nosuchdb: database "nosuchdb" does not exist/);
  });

  test('postgres: with database.postgres.ca the connection is TLS verified against that CA (also when the URL says sslmode=)', async (t) => {
    // A self-signed certificate for 127.0.0.1, which the server is told to use (ssl can be turned on by a reload).
    const dir = await mkdtemp(join(tmpdir(), 'kiln-pg-tls-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const selfSigned = (name: string) =>
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
    selfSigned('server');
    selfSigned('stranger');
    const owner = { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
    for (const f of ['', 'server.key', 'server.crt']) await chown(join(dir, f), owner.uid, owner.gid);
    await chmod(join(dir, 'server.key'), 0o600);
    await sql(server!.url, `ALTER SYSTEM SET ssl_cert_file = '${join(dir, 'server.crt')}'`);
    await sql(server!.url, `ALTER SYSTEM SET ssl_key_file = '${join(dir, 'server.key')}'`);
    await sql(server!.url, 'ALTER SYSTEM SET ssl = on');
    t.after(async () => {
      await sql(server!.url, 'ALTER SYSTEM RESET ALL');
      await sql(server!.url, 'SELECT pg_reload_conf()');
    });
    await sql(server!.url, 'SELECT pg_reload_conf()');
    for (let i = 0; (await sql(server!.url, 'SHOW ssl')).rows[0].ssl !== 'on'; i++) {
      assert.ok(i < 100, 'the server turned TLS on');
      await sleep(20);
    }
    const url = await backend.fresh();
    for (const u of [url, `${url}?sslmode=verify-full`]) {
      const m = await openPostgresMetadata({ url: u, ca: join(dir, 'server.crt') });
      await m.putUser({ name: 'tls', passwordHash: 'h', admin: false, createdAt: 1 });
      assert.equal((await m.getUser('tls'))?.name, 'tls');
      await m.close();
    }
    await assert.rejects(openPostgresMetadata({ url, ca: join(dir, 'stranger.crt') }), /PostgreSQL 127\.0\.0\.1:\d+\/contract_\d+: .*self[- ]signed/);
  });

  test('postgres: the listener reconnects after the server restarts, calls back (changes may have been missed) and keeps working', async (t) => {
    const url = await backend.fresh();
    const m = await openPostgresMetadata({ url, replicaId: 'a' });
    t.after(() => m.close());
    const other = await openPostgresMetadata({ url, replicaId: 'b' });
    t.after(() => other.close());
    let seen = 0;
    m.onExternalChange(() => seen++);
    await server!.restart(200);
    const started = Date.now();
    while (seen === 0 && Date.now() - started < 5000) await sleep(20);
    assert.ok(seen > 0, 'called back after reconnecting');
    // the pools open new connections; the listener hears the other replica again
    const before = seen;
    await other.putUser({ name: 'after-restart', passwordHash: 'h', admin: false, createdAt: 1 });
    while (seen === before && Date.now() - started < 8000) await sleep(20);
    assert.ok(seen > before, 'notified through the new listening connection');
    assert.equal((await m.getUser('after-restart'))?.name, 'after-restart');
  });
});

describe('database.postgres configuration', () => {
  let dir: string;
  before(async () => void (dir = await mkdtemp(join(tmpdir(), 'kiln-pg-config-'))));
  after(() => rm(dir, { recursive: true, force: true }));
  const load = async (yaml: string) => {
    await writeFile(join(dir, 'registry.yaml'), yaml);
    return loadConfig({ file: join(dir, 'registry.yaml'), defaultRoot: join(dir, 'root') });
  };

  test('driver postgres with its settings parses; ca is resolved against the file; sqlite stays the default', async () => {
    const c = await load('database:\n  driver: postgres\n  postgres:\n    url: postgres://kiln:pw@db.example.com:5432/registry?sslmode=verify-full\n    poolSize: 20\n    ca: pg-ca.pem\n');
    assert.equal(c.database.driver, 'postgres');
    assert.deepEqual(c.database.postgres, { url: 'postgres://kiln:pw@db.example.com:5432/registry?sslmode=verify-full', poolSize: 20, ca: join(dir, 'pg-ca.pem') });
    assert.deepEqual((await load('database:\n  driver: postgres\n  postgres:\n    url: postgresql://db/registry\n')).database.postgres, { url: 'postgresql://db/registry' });
    const d = await load('');
    assert.equal(d.database.driver, 'sqlite');
    assert.equal(d.database.postgres, undefined);
  });

  test('a missing url, an unknown key, a wrong type and postgres settings without driver postgres are refused', async () => {
    await assert.rejects(load('database:\n  driver: postgres\n'), { name: 'UsageError', message: /database\.postgres\.url: required/ });
    await assert.rejects(load('database:\n  driver: postgres\n  postgres:\n    poolSize: 3\n'), /database\.postgres\.url: required/);
    await assert.rejects(load('database:\n  driver: postgres\n  postgres:\n    url: postgres://db/r\n    password: x\n'), /database\.postgres\.password: unknown setting/);
    await assert.rejects(load('database:\n  driver: postgres\n  postgres:\n    url: postgres://db/r\n    poolSize: many\n'), /database\.postgres\.poolSize: expected a non-negative integer/);
    await assert.rejects(load('database:\n  driver: postgres\n  postgres:\n    url: postgres://db/r\n    poolSize: 0\n'), /database\.postgres\.poolSize: expected at least 1/);
    await assert.rejects(load('database:\n  driver: postgres\n  postgres:\n    url: mysql://db/r\n'), /database\.postgres\.url: expected a postgres:\/\/ URL/);
    await assert.rejects(load('database:\n  postgres:\n    url: postgres://db/r\n'), /database\.postgres: set, but database\.driver is sqlite/);
    await assert.rejects(load('database:\n  driver: mysql\n'), /database\.driver: "mysql" is not available \(sqlite, postgres\)/);
  });
});
