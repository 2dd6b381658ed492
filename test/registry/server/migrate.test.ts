// kiln registry migrate (issue 18): a registry on SQLite and a filesystem, filled through HTTP, is
// copied into PostgreSQL and S3 (a real PostgreSQL and Ceph radosgw) and a registry started there
// serves the same content to the same users. A run interrupted half-way continues where it stopped;
// a corrupted source blob and an unreachable target database stop it with a clear message.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { client, indexOf, pushImage, randomImage, sha256, startRegistry, type Client } from './support.js';
import { startRadosgw, type Radosgw } from '../../support/radosgw.js';
import { startPostgres, type Postgres } from '../../support/postgres.js';
import { freePort, suiteScope, type TestContextLike } from '../../support/daemon.js';
import { kiln, tempDir } from '../../support/env.js';
import { admin } from '../../../src/registry/server/admin.js';
import { defaultConfig, type RegistryConfig } from '../../../src/registry/server/config.js';
import { serve } from '../../../src/registry/server/server.js';
import { logger } from '../../../src/registry/server/log.js';
import { openBackends, openMetadata } from '../../../src/registry/server/registry.js';
import { migrateRegistry } from '../../../src/registry/server/migrate.js';
import type { Metadata } from '../../../src/registry/server/metadata/metadata.js';

const skip = process.getuid?.() !== 0 && 'not root: the PostgreSQL and Ceph test servers are set up as root (scripts/setup.sh installs them)';

/** What a filled source holds, to be found again in the target. */
interface Content {
  root: string;
  tags: { repo: string; tag: string; digest: string; body: Buffer; mediaType: string }[];
  untagged: { repo: string; digest: string; body: Buffer; mediaType: string }[];
  blobs: { repo: string; data: Buffer }[];
  referrer: { repo: string; subject: string; digest: string };
  deletedTag: { repo: string; tag: string };
  audit: number;
  /** Distinct blobs the source holds. */
  blobCount: number;
}

const PASSWORD = 'correct horse battery';

/** A registry on SQLite and a filesystem (the defaults), filled through HTTP, then stopped. */
async function fillSource(t: TestContextLike): Promise<Content> {
  const root = await tempDir(t, 'kiln-migrate-src-');
  const config = defaultConfig(root);
  config.http.addr = '127.0.0.1:0';
  config.log.requests = false;
  config.gc.interval = 0;
  const running = await serve(config, { log: logger('error', () => {}) });
  const c = client(running.url);
  const content: Omit<Content, 'audit' | 'blobCount'> = { root, tags: [], untagged: [], blobs: [], referrer: { repo: '', subject: '', digest: '' }, deletedTag: { repo: 'team/app', tag: 'old' } };
  const tagged = async (repo: string, tag: string, img: { manifest: Buffer; digest: string; mediaType: string; config: Buffer; layers: Buffer[] }) => {
    assert.equal((await pushImage(c, repo, tag, img)).status, 201);
    content.tags.push({ repo, tag, digest: img.digest, body: img.manifest, mediaType: img.mediaType });
    for (const data of [img.config, ...img.layers]) content.blobs.push({ repo, data });
  };
  try {
    const app = randomImage();
    await tagged('team/app', 'v1', app);
    await tagged('team/app', 'v2', randomImage({ layers: 1, layerSize: 300_000 }));
    await tagged('other/tool', 'latest', randomImage({ docker: true }));
    // A tag deleted in the source: its manifest stays, untagged.
    const old = randomImage({ layers: 1 });
    await tagged('team/app', 'old', old);
    assert.equal((await c.req('DELETE', `/v2/team/app/manifests/old`)).status, 202);
    content.tags.pop();
    // A layer mounted from team/app into team/mounted and used by an image there.
    const shared = app.layers[0]!;
    const mount = await c.req('POST', `/v2/team/mounted/blobs/uploads/?mount=${sha256(shared)}&from=team/app`);
    assert.equal(mount.status, 201, mount.text());
    const own = randomImage({ layers: 1 });
    const m = JSON.parse(own.manifest.toString());
    m.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(shared), size: shared.length });
    const body = Buffer.from(JSON.stringify(m));
    await tagged('team/mounted', 'v1', { ...own, manifest: body, digest: sha256(body) });
    content.blobs.push({ repo: 'team/mounted', data: shared });
    // An index of two children, pushed by digest, the index tagged.
    const children = [randomImage({ layers: 1 }), randomImage({ layers: 1 })];
    for (const child of children) {
      assert.equal((await pushImage(c, 'team/multi', child.digest, child)).status, 201);
      content.untagged.push({ repo: 'team/multi', digest: child.digest, body: child.manifest, mediaType: child.mediaType });
    }
    const index = indexOf(children);
    assert.equal((await c.req('PUT', `/v2/team/multi/manifests/latest`, { body: index.body, headers: { 'content-type': index.mediaType } })).status, 201);
    content.tags.push({ repo: 'team/multi', tag: 'latest', digest: index.digest, body: index.body, mediaType: index.mediaType });
    // A signature-like referrer of team/app:v1.
    const sig = randomImage({ layers: 1, artifactType: 'application/vnd.example.signature', subject: { digest: app.digest, size: app.manifest.length, mediaType: app.mediaType } });
    assert.equal((await pushImage(c, 'team/app', sig.digest, sig)).status, 201);
    content.referrer = { repo: 'team/app', subject: app.digest, digest: sig.digest };
    content.untagged.push({ repo: 'team/app', digest: sig.digest, body: sig.manifest, mediaType: sig.mediaType });
    // Identities: an administrator, a developer of the public namespace team, a robot.
    const a = admin(running.registry.metadata, 'test');
    await a.addUser('alice', PASSWORD, true);
    await a.addUser('bob', 'bob-password', false);
    await a.setNamespace('team', { public: true });
    await a.grant('bob', 'team', 'developer');
    await a.addRobot('team', 'ci', ['pull', 'push'], undefined);
    // Rules of the namespace: a quota and an immutability rule.
    await a.setNamespace('team', { quotaBytes: 1 << 30 });
    await a.addImmutable('team', { repos: '**', tags: 'v*', excludeTags: false });
    // A retention rule, a webhook and a replication rule.
    const md = running.registry.metadata;
    await md.addRetentionRule({ namespace: 'team', repos: '**', tags: '**', kind: 'latest-pushed', value: 10, createdBy: 'test', createdAt: 1 });
    await md.addWebhook({ namespace: 'team', url: 'http://127.0.0.1:9/hook', secret: 'hook-secret', events: ['push', 'delete'], enabled: true, createdBy: 'test', createdAt: 1 });
    await md.addReplicationRule({ name: 'out', direction: 'push', remote: 'http://127.0.0.1:9', namespace: 'team', repos: '**', tags: '**', trigger: 'manual', username: 'ci', secret: 'remote-secret', insecure: false, enabled: true, createdBy: 'test', createdAt: 1 });
  } finally {
    await running.close();
  }
  const m = await openMetadata(config);
  try {
    return { ...content, audit: (await m.listAudit({ limit: 100_000 })).length, blobCount: (await m.listBlobDigests()).length };
  } finally {
    await m.close();
  }
}

describe('kiln registry migrate: SQLite and a filesystem into PostgreSQL and S3', { skip }, () => {
  const scope = suiteScope();
  let gw: Radosgw;
  let pgsrv: Postgres;
  let targets = 0;

  /** A new database and bucket: the target's configuration, as a tweak and as a YAML file. */
  const newTarget = async (t: TestContextLike): Promise<{ tweak: (c: RegistryConfig) => void; file: string; config: RegistryConfig }> => {
    const name = `kiln_migrate_${process.pid}_${++targets}`;
    const database = { driver: 'postgres' as const, postgres: { url: await pgsrv.createDatabase(name) } };
    const s3 = { endpoint: gw.endpoint, region: gw.region, bucket: name.replace(/_/g, '-'), accessKey: gw.accessKey, secretKey: gw.secretKey, forcePathStyle: true };
    const dir = await tempDir(t, 'kiln-migrate-dst-');
    const file = join(dir, 'target.yaml');
    // JSON is YAML.
    await writeFile(file, JSON.stringify({ database, storage: { driver: 's3', s3 } }));
    const tweak = (c: RegistryConfig) => {
      c.database.driver = 'postgres';
      c.database.postgres = { ...database.postgres };
      c.storage.driver = 's3';
      c.storage.s3 = { ...s3 };
    };
    const config = defaultConfig(dir);
    tweak(config);
    return { tweak, file, config };
  };

  const migrate = (source: Content, file: string) => kiln(source.root, ['registry', 'migrate', '--root', source.root, '--to-config', file]);

  /** A registry on the target (auth on) serves everything the source had, to the source's users. */
  const verify = async (t: TestContextLike, source: Content, tweak: (c: RegistryConfig) => void) => {
    const reg = await startRegistry(t, (c) => {
      tweak(c);
      c.auth.enabled = true;
    });
    // Before any request adds rows of its own.
    assert.equal((await reg.registry.metadata.listAudit({ limit: 100_000 })).length, source.audit, 'audit rows');
    const alice: Client = reg.client({ user: 'alice', password: PASSWORD });
    for (const x of source.tags) {
      const r = await alice.req('GET', `/v2/${x.repo}/manifests/${x.tag}`, { headers: { accept: x.mediaType } });
      assert.equal(r.status, 200, `${x.repo}:${x.tag}`);
      assert.equal(r.headers.get('docker-content-digest'), x.digest);
      assert.ok(r.body.equals(x.body), `${x.repo}:${x.tag} bytes`);
    }
    for (const x of source.untagged) {
      const r = await alice.req('GET', `/v2/${x.repo}/manifests/${x.digest}`, { headers: { accept: x.mediaType } });
      assert.equal(r.status, 200, `${x.repo}@${x.digest}`);
      assert.ok(r.body.equals(x.body));
    }
    for (const b of source.blobs) {
      const r = await alice.req('GET', `/v2/${b.repo}/blobs/${sha256(b.data)}`);
      assert.equal(r.status, 200, `${b.repo} blob`);
      assert.ok(r.body.equals(b.data), `${b.repo} blob bytes`);
    }
    const deleted = await alice.req('GET', `/v2/${source.deletedTag.repo}/manifests/${source.deletedTag.tag}`);
    assert.equal(deleted.status, 404, 'the deleted tag stays deleted');
    const referrers = await alice.req('GET', `/v2/${source.referrer.repo}/referrers/${source.referrer.subject}`);
    assert.equal(referrers.status, 200);
    assert.deepEqual(
      referrers.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest),
      [source.referrer.digest],
    );
    // team is public (anonymous pull with a token asked for without credentials), other is not;
    // bob logs in with his password; the role and the robot are there.
    const anonymousPull = async (x: Content['tags'][number]) => {
      const tr = await fetch(`${reg.url}/token?service=kiln-registry&scope=${encodeURIComponent(`repository:${x.repo}:pull`)}`);
      const { token } = (await tr.json()) as { token: string };
      return (await reg.client({ token }).req('GET', `/v2/${x.repo}/manifests/${x.tag}`, { headers: { accept: x.mediaType } })).status;
    };
    const team = source.tags.find((x) => x.repo.startsWith('team/'))!;
    assert.equal(await anonymousPull(team), 200);
    assert.equal(await anonymousPull(source.tags.find((x) => x.repo.startsWith('other/'))!), 401);
    assert.equal((await reg.client({ user: 'bob', password: 'bob-password' }).req('GET', `/v2/${team.repo}/manifests/${team.tag}`, { headers: { accept: team.mediaType } })).status, 200);
    assert.equal(await reg.registry.metadata.getRole('team', 'bob'), 'developer');
    assert.deepEqual(await reg.registry.metadata.getRobot('robot$team+ci').then((r) => r?.actions), ['pull', 'push']);
    assert.equal((await reg.registry.metadata.getNamespace('team'))?.quotaBytes, 1 << 30);
    assert.deepEqual((await reg.registry.metadata.immutableRules('team')).map((r) => [r.repos, r.tags, r.excludeRepos, r.excludeTags]), [['**', 'v*', false, false]]);
    assert.deepEqual((await reg.registry.metadata.retentionRules('team')).map((r) => [r.repos, r.tags, r.kind, r.value]), [['**', '**', 'latest-pushed', 10]]);
    assert.deepEqual((await reg.registry.metadata.webhooks('team')).map((h) => [h.url, h.secret, h.events, h.enabled]), [['http://127.0.0.1:9/hook', 'hook-secret', ['push', 'delete'], true]]);
    const rule = await reg.registry.metadata.replicationRule('out');
    assert.deepEqual(rule && [rule.direction, rule.remote, rule.namespace, rule.username, rule.secret], ['push', 'http://127.0.0.1:9', 'team', 'ci', 'remote-secret']);
    return reg;
  };

  test('start PostgreSQL and radosgw', async () => {
    [gw, pgsrv] = await Promise.all([startRadosgw(scope), startPostgres(scope)]);
  });

  test('everything is copied: tags, manifest bytes, blobs, referrers, users with their passwords, roles, robots, the audit log', async (t) => {
    const source = await fillSource(t);
    const target = await newTarget(t);
    const r = await migrate(source, target.file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Migrated ${source.blobCount} blobs \\(\\d+ bytes\\), 9 manifests, 5 tags, 2 users, 2 namespaces, 1 roles, 1 robots, 4 rules, ${source.audit} audit rows; 0 skipped`, 'm'));
    assert.match(r.stderr, /^blobs: \d+\/\d+/m);
    assert.match(r.stderr, /search index: not copied/);
    await verify(t, source, target.tweak);
  });

  test('a run interrupted after some blobs were written continues: nothing is copied twice, and the result is whole', async (t) => {
    const source = await fillSource(t);
    const target = await newTarget(t);
    // The target database goes away after the 4th blob's bytes are written, before its row is: as if the process died there.
    const from = await openBackends(defaultConfig(source.root));
    const to = await openBackends(target.config);
    let records = 0;
    const failing: Metadata = Object.assign(Object.create(to.metadata) as Metadata, {
      recordBlob(...args: Parameters<Metadata['recordBlob']>) {
        if (++records === 4) return Promise.reject(new Error('the database went away'));
        return to.metadata.recordBlob(...args);
      },
    });
    try {
      await assert.rejects(migrateRegistry(from, { metadata: failing, driver: to.driver }, () => {}), /the database went away/);
    } finally {
      await from.metadata.close();
    }
    assert.equal((await to.metadata.listBlobDigests()).length, 3);
    const again = await migrate(source, target.file);
    assert.equal(again.code, 0, again.stderr);
    // The users, namespaces, roles, robot and the three recorded blobs were there.
    assert.match(again.stdout, /; (\d+) skipped/);
    assert.ok(Number(/; (\d+) skipped/.exec(again.stdout)![1]) >= 9, again.stdout);
    assert.equal((await to.metadata.listBlobDigests()).length, source.blobCount);
    // One object more than blobs: the copy written but not recorded, for the target's GC.
    let objects = 0;
    for await (const _ of to.driver.list('data/')) objects++;
    assert.equal(objects, source.blobCount + 1);
    await to.metadata.close();
    to.driver.destroy?.();
    const third = await migrate(source, target.file);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stdout, /^Migrated 0 blobs \(0 bytes\), 0 manifests, 0 tags, 0 users, 0 namespaces, 0 roles, 0 robots, 0 rules, 0 audit rows; [1-9]\d* skipped/m);
    await verify(t, source, target.tweak);
  });

  test('a corrupted source blob stops the migration naming its digest, and it is not recorded in the target', async (t) => {
    const source = await fillSource(t);
    const target = await newTarget(t);
    const victim = sha256(source.blobs[0]!.data);
    const m = await openMetadata(defaultConfig(source.root));
    const row = await m.blob(victim);
    await m.close();
    await writeFile(join(source.root, 'blobs', ...row!.key.split('/')), randomBytes(row!.size));
    const r = await migrate(source, target.file);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Error: migration stopped: blob ${victim}: the source's bytes .* do not match`));
    const check = await openMetadata(target.config);
    try {
      assert.equal(await check.blob(victim), undefined);
    } finally {
      await check.close();
    }
  });

  test('an unreachable target database is named, and nothing is done', async (t) => {
    const source = await fillSource(t);
    const dir = await tempDir(t);
    const port = await freePort();
    const file = join(dir, 'target.yaml');
    await writeFile(file, JSON.stringify({ database: { driver: 'postgres', postgres: { url: `postgres://kiln@127.0.0.1:${port}/kiln` } } }));
    const started = Date.now();
    const r = await migrate(source, file);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Error: target: .*127\\.0\\.0\\.1:${port}/kiln`));
    assert.ok(Date.now() - started < 20_000);
    // The same database as source and target is refused.
    const same = join(dir, 'same.yaml');
    await writeFile(same, JSON.stringify({ root: source.root }));
    const r2 = await migrate(source, same);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /the target is the source's database/);
  });
});
