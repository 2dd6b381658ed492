// The registry on an S3-compatible store (a real Ceph radosgw): the distribution-spec checks pass
// with blobs in the bucket and upload sessions in the database, and a session's bytes may arrive
// in chunks of any size (S3 refuses parts under 5 MiB except the last). Then two replicas on one
// PostgreSQL and one bucket: every request of the checks goes to the other replica than the one
// before, tags moved through one are served by the other within a second, a token of one is good
// at the other, and garbage collection runs on both while clients push through both.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checks } from './conformance.js';
import { client, pushBlob, pushImage, randomImage, sha256, startRegistry, type Client, type TestImage, type TestRegistry } from './support.js';
import { startRadosgw, type Radosgw } from '../../support/radosgw.js';
import { startPostgres, type Postgres } from '../../support/postgres.js';
import { admin } from '../../../src/registry/server/admin.js';
import { suiteScope } from '../../support/daemon.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promisify } from 'node:util';
import { kiln, kilnMain } from '../../support/env.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type RegistryConfig } from '../../../src/registry/server/config.js';
import { serve } from '../../../src/registry/server/server.js';
import { logger } from '../../../src/registry/server/log.js';
import pg from 'pg';

const skip = process.getuid?.() !== 0 && 'not root: the Ceph test cluster is set up as root (scripts/setup.sh installs it)';

let bucketCount = 0;
function onS3(gw: Radosgw): (c: RegistryConfig) => void {
  const bucket = `kiln-${process.pid}-${++bucketCount}`;
  return (c) => {
    c.storage.driver = 's3';
    c.storage.s3 = { endpoint: gw.endpoint, region: gw.region, bucket, accessKey: gw.accessKey, secretKey: gw.secretKey, forcePathStyle: true };
  };
}

describe('the registry on S3 (radosgw)', { skip }, () => {
  const scope = suiteScope();
  let gw: Radosgw;
  let reg: TestRegistry;
  let c: Client;

  test('start radosgw and a registry on it', async () => {
    gw = await startRadosgw(scope);
    reg = await startRegistry(scope, onS3(gw));
    c = reg.client();
  });

  // The distribution-spec checks run on S3 below, through two replicas.

  test('a chunked upload in pieces of every size (under, at and over a part) arrives whole, and its blob is an S3 object under a key of its own', async () => {
    const sizes = [1, 3 << 20, 5 << 20, (8 << 20) + 7, 100, 9 << 20, 0, 2];
    const data = randomBytes(sizes.reduce((a, b) => a + b, 0));
    const post = await c.req('POST', '/v2/s3/chunks/blobs/uploads/');
    assert.equal(post.status, 202);
    let loc = post.headers.get('location')!;
    let at = 0;
    for (const n of sizes.filter((x) => x > 0)) {
      const r = await c.req('PATCH', loc, { body: data.subarray(at, at + n), headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + n - 1}` } });
      assert.equal(r.status, 202, r.text());
      at += n;
      assert.equal(r.headers.get('range'), `0-${at - 1}`);
      loc = r.headers.get('location')!;
    }
    const digest = sha256(data);
    const id = loc.split('?')[0]!.split('/').pop()!;
    const put = await c.req('PUT', `${loc}${loc.includes('?') ? '&' : '?'}digest=${digest}`);
    assert.equal(put.status, 201, put.text());
    const got = await c.req('GET', `/v2/s3/chunks/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.equal(sha256(got.body), digest);
    const row = await reg.registry.metadata.blob(digest);
    assert.ok(row && row.key.startsWith('data/'), JSON.stringify(row));
    const stat = await reg.registry.driver.stat(row.key);
    assert.equal(stat?.size, data.length);
    // Nothing is left of the session: no temporary object, no multipart upload, no row.
    assert.equal(await reg.registry.metadata.getUpload(id), undefined);
    const objects: string[] = [];
    for await (const o of reg.registry.driver.list(`_uploads/${id}`)) objects.push(o.key);
    const multiparts: string[] = [];
    for await (const m of reg.registry.driver.multipart!.listMultipart('data')) multiparts.push(m.key);
    assert.deepEqual({ objects, multiparts }, { objects: [], multiparts: [] });
  });

  test('a chunk out of order is refused with 416 and the session keeps what it had; a wrong digest ends the session and stores nothing', async () => {
    const post = await c.req('POST', '/v2/s3/order/blobs/uploads/');
    const loc = post.headers.get('location')!;
    const first = randomBytes(1000);
    const r1 = await c.req('PATCH', loc, { body: first, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-999' } });
    assert.equal(r1.status, 202);
    const skipAhead = await c.req('PATCH', loc, { body: randomBytes(10), headers: { 'content-type': 'application/octet-stream', 'content-range': '2000-2009' } });
    assert.equal(skipAhead.status, 416);
    assert.equal(skipAhead.headers.get('range'), '0-999');
    const status = await c.req('GET', loc);
    assert.equal(status.headers.get('range'), '0-999');
    const wrong = await c.req('PUT', `${loc}?digest=${sha256(Buffer.from('something else'))}`);
    assert.equal(wrong.status, 400);
    assert.equal((await c.req('GET', loc)).status, 404);
    assert.equal(await reg.registry.metadata.blob(sha256(Buffer.from('something else'))), undefined);
  });

  test('an object missing for a blob row: the pull answers BLOB_UNKNOWN and logs an error, GC removes the row, a push uploads it again', async () => {
    const lines: string[] = [];
    const root = await mkdtemp(join(tmpdir(), 'kiln-s3-missing-'));
    scope.after(() => rm(root, { recursive: true, force: true }));
    const cfg = defaultConfig(root);
    cfg.http.addr = '127.0.0.1:0';
    cfg.gc.interval = 0;
    onS3(gw)(cfg);
    const running = await serve(cfg, { log: logger('error', (l) => void lines.push(l)) });
    scope.after(() => running.close());
    const mc = client(running.url);
    const data = randomBytes(5000);
    const digest = await pushBlob(mc, 's3/lost', data);
    const row = (await running.registry.metadata.blob(digest))!;
    await running.registry.driver.delete(row.key);
    const got = await mc.req('GET', `/v2/s3/lost/blobs/${digest}`);
    assert.equal(got.status, 404);
    assert.equal(got.json().errors[0].code, 'BLOB_UNKNOWN');
    running.registry.log.flush();
    assert.ok(lines.some((l) => l.includes('blob missing from storage') && l.includes(digest)), lines.join(''));
    assert.equal((await mc.req('HEAD', `/v2/s3/lost/blobs/${digest}`)).status, 404);
    const report = await running.registry.gc();
    assert.equal(report.lost, 1);
    assert.equal((await running.registry.metadata.missingBlobs()).length, 0);
    assert.equal(await pushBlob(mc, 's3/lost', data), digest);
    const again = await mc.req('GET', `/v2/s3/lost/blobs/${digest}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), digest);
  });

  test('with storage.s3.redirect, GETs of blobs over the memory-cache size answer 307 to a presigned URL that serves the bytes; small blobs and HEAD are served directly', async () => {
    const r = await startRegistry(scope, (cfg) => {
      onS3(gw)(cfg);
      cfg.storage.s3!.redirect = true;
      cfg.limits.cachedBlobSize = 64 * 1024;
    });
    const rc = r.client();
    const big = randomBytes(200 * 1024);
    const small = randomBytes(1000);
    const [bigDigest, smallDigest] = [await pushBlob(rc, 's3/redirect', big), await pushBlob(rc, 's3/redirect', small)];
    const got = await rc.req('GET', `/v2/s3/redirect/blobs/${bigDigest}`);
    assert.equal(got.status, 307);
    const location = got.headers.get('location')!;
    assert.ok(location.startsWith(gw.endpoint), location);
    assert.equal(sha256(Buffer.from(await (await fetch(location)).arrayBuffer())), bigDigest);
    const part = await fetch(location, { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), big.subarray(10, 20));
    assert.equal((await rc.req('HEAD', `/v2/s3/redirect/blobs/${bigDigest}`)).status, 200);
    const direct = await rc.req('GET', `/v2/s3/redirect/blobs/${smallDigest}`);
    assert.equal(direct.status, 200);
    assert.equal(sha256(direct.body), smallDigest);
  });

  test('a session abandoned past the timeout is purged: its row, its temporary object and its multipart upload', async () => {
    const short = await startRegistry(scope, (cfg) => {
      onS3(gw)(cfg);
      cfg.uploads.sessionTimeout = 1;
    });
    const sc = short.client();
    const loc = (await sc.req('POST', '/v2/s3/abandoned/blobs/uploads/')).headers.get('location')!;
    // Over one part (a multipart upload exists) plus a short tail (a temporary object exists).
    const r = await sc.req('PATCH', loc, { body: randomBytes((8 << 20) + 10), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 202);
    const pending = async () => {
      const found: string[] = [];
      for await (const o of short.registry.driver.list('_uploads')) found.push(o.key);
      for await (const m of short.registry.driver.multipart!.listMultipart('data')) found.push(m.key);
      return found;
    };
    assert.equal((await pending()).length, 2);
    const deadline = Date.now() + 10_000;
    while ((await sc.req('GET', loc)).status !== 404 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    assert.equal((await sc.req('GET', loc)).status, 404);
    while ((await pending()).length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(await pending(), []);
  });
});

/** Each request to the next replica: what a load balancer without affinity does. */
function alternating(clients: Client[]): Client {
  let next = 0;
  return {
    url: clients[0]!.url,
    req(method, path, opts) {
      const c = clients[next++ % clients.length]!;
      return c.req(method, path, opts);
    },
  };
}

let databaseCount = 0;

describe('two replicas on PostgreSQL and S3', { skip }, () => {
  const scope = suiteScope();
  let gw: Radosgw;
  let pgsrv: Postgres;
  let a: TestRegistry;
  let b: TestRegistry;

  const replicas = async (tweak: (c: RegistryConfig) => void = () => {}): Promise<[TestRegistry, TestRegistry]> => {
    // A database of its own for each pair of replicas, so they share nothing with other tests.
    const url = await pgsrv.createDatabase(`kiln_replicas_${++databaseCount}`);
    const s3 = onS3(gw);
    const config = (c: RegistryConfig) => {
      s3(c);
      c.database.driver = 'postgres';
      c.database.postgres = { url };
      tweak(c);
    };
    // The first creates the schema and the bucket; the second finds them.
    const first = await startRegistry(scope, config);
    return [first, await startRegistry(scope, config)];
  };

  test('start PostgreSQL, radosgw and two replicas', async () => {
    [gw, pgsrv] = await Promise.all([startRadosgw(scope), startPostgres(scope)]);
    [a, b] = await replicas();
  });

  describe('OCI distribution-spec conformance, every request to the other replica', () => {
    let c: Client;
    test('client', () => {
      c = alternating([a.client(), b.client()]);
    });
    for (const check of checks) test(check.name, () => check.run(c, 'replicas'));
  });

  test('a tag moved through one replica is served by the other within a second, though the other had it cached', async () => {
    const [ca, cb] = [a.client(), b.client()];
    const one = randomImage();
    const two = randomImage();
    await pushImage(ca, 'moving/app', 'latest', one);
    for (let i = 0; i < 3; i++) assert.equal((await cb.req('GET', '/v2/moving/app/manifests/latest')).headers.get('docker-content-digest'), one.digest);
    await pushImage(ca, 'moving/app', 'latest', two);
    const moved = Date.now();
    let seen = '';
    while (Date.now() - moved < 5000) {
      seen = (await cb.req('GET', '/v2/moving/app/manifests/latest')).headers.get('docker-content-digest') ?? '';
      if (seen === two.digest) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = Date.now() - moved;
    assert.equal(seen, two.digest);
    assert.ok(after < 1000, `replica B served the new tag after ${after} ms`);
  });

  test('with auth on, a token one replica issued is good at the other, and users made through one log in at the other', async () => {
    const [x, y] = await replicas((c) => (c.auth.enabled = true));
    await admin(x.registry.metadata, 'test').addUser('ada', 'correct horse battery', true);
    const viaX = client(x.url, { user: 'ada', password: 'correct horse battery' });
    const img = randomImage();
    await pushImage(viaX, 'team/app', 'v1', img);
    const challenge = await client(y.url).req('GET', '/v2/team/app/manifests/v1');
    assert.equal(challenge.status, 401);
    const realm = /realm="([^"]+)"/.exec(challenge.headers.get('www-authenticate') ?? '')![1]!;
    const tokenFromX = realm.replace(y.url, x.url);
    const tr = await fetch(`${tokenFromX}?service=${encodeURIComponent(x.config.auth.service)}&scope=repository:team/app:pull`, {
      headers: { authorization: 'Basic ' + Buffer.from('ada:correct horse battery').toString('base64') },
    });
    assert.equal(tr.status, 200);
    const token = ((await tr.json()) as { token: string }).token;
    const atY = await client(y.url, { token }).req('GET', '/v2/team/app/manifests/v1', { headers: { accept: img.mediaType } });
    assert.equal(atY.status, 200, atY.text());
    assert.equal(atY.headers.get('docker-content-digest'), img.digest);
  });

  test('a replica holding another token key than the one the replicas share refuses to start, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-other-key-'));
    scope.after(() => rm(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'token-key.pem');
    await writeFile(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const url = a.config.database.postgres!.url;
    await assert.rejects(
      startRegistry(scope, (c) => {
        onS3(gw)(c);
        c.database.driver = 'postgres';
        c.database.postgres = { url };
        c.auth.tokenKey = keyFile;
      }),
      (e: Error) => e.message.includes(keyFile) && /not the token signing key the other replicas share/.test(e.message),
    );
  });

  test('kiln registry serve with an unreachable database or bucket exits non-zero with an error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-unreachable-'));
    scope.after(() => rm(dir, { recursive: true, force: true }));
    const serveWith = async (yaml: string) => {
      const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
      await writeFile(file, yaml);
      try {
        await promisify(execFile)(process.execPath, [kilnMain, 'registry', 'serve', '--config', file, '--addr', '127.0.0.1:0'], { timeout: 30_000 });
        return { code: 0, stderr: '' };
      } catch (e) {
        const err = e as { code?: number; stderr?: string };
        return { code: err.code ?? -1, stderr: err.stderr ?? '' };
      }
    };
    const s3 = `storage: {driver: s3, s3: {endpoint: "${gw.endpoint}", region: ${gw.region}, bucket: kiln-unreachable, accessKey: ${gw.accessKey}, secretKey: ${gw.secretKey}, forcePathStyle: true}}`;
    const noDb = await serveWith(`root: ${dir}\ndatabase: {driver: postgres, postgres: {url: "postgres://kiln@127.0.0.1:9/kiln"}}\n${s3}\n`);
    assert.notEqual(noDb.code, 0);
    assert.match(noDb.stderr, /127\.0\.0\.1:9/);
    const noBucket = await serveWith(
      `root: ${dir}\ndatabase: {driver: postgres, postgres: {url: "${a.config.database.postgres!.url}"}}\nstorage: {driver: s3, s3: {endpoint: "http://127.0.0.1:9", bucket: nowhere, accessKey: k, secretKey: s, forcePathStyle: true}}\n`,
    );
    assert.notEqual(noBucket.code, 0);
    assert.match(noBucket.stderr, /nowhere/);
    assert.match(noBucket.stderr, /127\.0\.0\.1:9/);
  });

  test('kiln registry user add and role grant --config FILE change the shared database: both replicas see them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-shared-users-'));
    scope.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'registry.yaml');
    await writeFile(file, `root: ${dir}\ndatabase: {driver: postgres, postgres: {url: "${a.config.database.postgres!.url}"}}\n`);
    const added = await kiln(dir, ['registry', 'user', 'add', 'dev', '--password-stdin', '--config', file], { input: 'a long enough password\n' });
    assert.equal(added.code, 0, added.stderr);
    const granted = await kiln(dir, ['registry', 'role', 'grant', 'dev', 'team', 'developer', '--config', file]);
    assert.equal(granted.code, 0, granted.stderr);
    for (const r of [a, b]) {
      assert.equal((await r.registry.metadata.getUser('dev'))?.name, 'dev');
      assert.equal(await r.registry.metadata.getRole('team', 'dev'), 'developer');
    }
    const listed = await kiln(dir, ['registry', 'user', 'list', '--config', file]);
    assert.match(listed.stdout, /^dev\s+no\s/m);
  });

  test('after one replica collects a blob, the other answers HEAD with 404 at once, not from its cache (zot #4062); a collector that died after marking blobs leaves them to the next run (harbor #22991)', async () => {
    const [x, y] = await replicas((c) => (c.gc.gracePeriod = 1));
    const [cx, cy] = [x.client(), y.client()];
    const data = randomBytes(3000);
    const digest = await pushBlob(cx, 'stale/app', data);
    assert.equal((await cy.req('HEAD', `/v2/stale/app/blobs/${digest}`)).status, 200);
    assert.equal((await cy.req('GET', `/v2/stale/app/blobs/${digest}`)).status, 200);
    await new Promise((r) => setTimeout(r, 1300));
    const report = await x.registry.gc();
    assert.deepEqual(report.blobs, [digest]);
    const deadline = Date.now() + 1000;
    let status = 0;
    while (Date.now() < deadline && (status = (await cy.req('HEAD', `/v2/stale/app/blobs/${digest}`)).status) !== 404) await new Promise((r) => setTimeout(r, 20));
    assert.equal(status, 404);
    assert.equal((await cy.req('GET', `/v2/stale/app/blobs/${digest}`)).status, 404);

    // A collector that marked a blob and died before deleting its bytes.
    const orphan = await pushBlob(cx, 'stale/other', randomBytes(3000));
    await new Promise((r) => setTimeout(r, 1300));
    assert.ok(await x.registry.metadata.removeLinkIfUnused('stale/other', orphan, Date.now() - 1000));
    const key = await x.registry.metadata.claimBlob(orphan, Date.now() - 1000);
    assert.ok(key);
    assert.equal((await cy.req('HEAD', `/v2/stale/other/blobs/${orphan}`)).status, 404);
    assert.ok(await y.registry.driver.stat(key), 'the bytes are still there');
    await y.registry.gc();
    assert.deepEqual(await y.registry.metadata.deletingBlobs(), []);
    assert.equal(await y.registry.driver.stat(key), undefined);
  });

  test('garbage collection on both replicas while 64 clients push and pull through both: no error, nothing referenced lost', async () => {
    // Long enough for a pusher's blobs to wait for their manifest with 64 clients on a loaded
    // 2-core machine (a HEAD keeps a blob for 3/4 of the grace, see blobs.ts touch): the garbage
    // made first is dated back instead, so that the collectors find it at once.
    const grace = 60;
    const [x, y] = await replicas((c) => (c.gc.gracePeriod = grace));
    const both = [x.client(), y.client()];
    const garbage: TestImage[] = [];
    for (let i = 0; i < 4; i++) {
      const g = randomImage();
      await pushImage(both[i % 2]!, `gc/g${i}`, 'tmp', g);
      assert.equal((await both[(i + 1) % 2]!.req('DELETE', `/v2/gc/g${i}/manifests/${g.digest}`)).status, 202);
      garbage.push(g);
    }
    const db = new pg.Client({ connectionString: x.config.database.postgres!.url });
    await db.connect();
    try {
      await db.query(`UPDATE blobs SET created_at = 0, last_used = 0 WHERE digest IN (SELECT digest FROM repo_blobs WHERE repo LIKE 'gc/g%')`);
      await db.query(`UPDATE repo_blobs SET last_used = 0 WHERE repo LIKE 'gc/g%'`);
      await db.query(`UPDATE manifests SET created_at = 0, last_used = 0 WHERE repo LIKE 'gc/g%'`);
    } finally {
      await db.end();
    }
    let pushing = true;
    let runs = 0;
    const collectors = [x, y].map(async (r) => {
      while (pushing) {
        await r.registry.gc();
        runs++;
        await new Promise((res) => setTimeout(res, 10));
      }
    });
    const base = randomBytes(2048);
    const pushed: { repo: string; tag: string; img: TestImage }[] = [];
    const pushers = Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        const c = alternating([both[w % 2]!, both[(w + 1) % 2]!]);
        // Twice at least: the second push finds the shared base layer by HEAD and skips it.
        for (let i = 0; i < 2 || runs < 6; i++) {
          const img = randomImage({ layers: 2, layerSize: 10_000 });
          const m = JSON.parse(img.manifest.toString());
          m.layers.unshift({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(base), size: base.length });
          const withBase: TestImage = { ...img, layers: [base, ...img.layers], manifest: Buffer.from(JSON.stringify(m)), digest: sha256(JSON.stringify(m)) };
          const repo = `gc/w${w}`;
          const started = Date.now();
          for (const blob of [...withBase.layers, withBase.config]) {
            if ((await c.req('HEAD', `/v2/${repo}/blobs/${sha256(blob)}`)).status !== 200) await pushBlob(c, repo, blob);
          }
          const r = await c.req('PUT', `/v2/${repo}/manifests/v${i}`, { body: withBase.manifest, headers: { 'content-type': withBase.mediaType } });
          assert.equal(r.status, 201, `${r.text()} (${Date.now() - started} ms after the first HEAD; grace ${grace} s)`);
          pushed.push({ repo, tag: `v${i}`, img: withBase });
        }
      }),
    );
    try {
      await pushers;
    } finally {
      pushing = false;
      await Promise.all(collectors);
    }
    assert.ok(runs >= 6, `GC ran ${runs} times during the pushes`);
    await x.registry.gc();
    // Every pushed image, through each replica; 16 readers at once, as the pushers were many.
    const checks = pushed.flatMap((p) => both.map((c) => ({ p, c })));
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let next = checks.shift(); next; next = checks.shift()) {
          const { p, c } = next;
          const m = await c.req('GET', `/v2/${p.repo}/manifests/${p.tag}`, { headers: { accept: p.img.mediaType } });
          assert.equal(m.status, 200, `${p.repo}:${p.tag}`);
          for (const blob of [...p.img.layers, p.img.config]) {
            const got = await c.req('GET', `/v2/${p.repo}/blobs/${sha256(blob)}`);
            assert.equal(got.status, 200, `${p.repo}@${sha256(blob)}`);
            assert.equal(sha256(got.body), sha256(blob));
          }
        }
      }),
    );
    for (const [i, g] of garbage.entries()) assert.equal(await x.registry.metadata.blob(sha256(g.config)), undefined, `garbage g${i} collected`);
  });
});
