// Registry replicas under faults: two `kiln registry serve` processes on one PostgreSQL and one
// bucket (a real radosgw), behind a real haproxy. A replica SIGKILLed in the middle of pushes loses
// no push it acknowledged; PostgreSQL or radosgw restarting under traffic makes requests fail with
// 503 UNAVAILABLE (never 500, never a wrong answer such as a 404 for something that exists) until
// it is back, and then everything works again without restarting kiln; two replicas moving one tag
// at once end agreeing on one of the two manifests.
//
// Each test has a database, a bucket and replicas of its own; PostgreSQL and radosgw are shared.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { client, randomImage, sha256, type Client, type Res, type TestImage } from './support.js';
import { startRadosgw, type Radosgw } from '../../support/radosgw.js';
import { startPostgres, type Postgres } from '../../support/postgres.js';
import { startHaproxy, type Haproxy } from '../../support/haproxy.js';
import { freePort, logTail, startDaemon, suiteScope, waitUntil, type Daemon, type TestContextLike } from '../../support/daemon.js';
import { kilnMain, tempDir } from '../../support/env.js';

const skip =
  (process.getuid?.() !== 0 && 'not root: the PostgreSQL and Ceph test servers are set up as root (scripts/setup.sh installs them)') ||
  (!existsSync('/usr/sbin/haproxy') && 'haproxy is not installed (scripts/setup.sh installs it)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Replica {
  readonly url: string;
  readonly addr: string;
  readonly daemon: Daemon;
  readonly client: Client;
}

interface Cluster {
  a: Replica;
  b: Replica;
  lb: Haproxy;
  /** Through haproxy. */
  viaLb: Client;
  databaseUrl: string;
}

let count = 0;

/** One `kiln registry serve` process, answering /v2/. */
async function startReplica(t: TestContextLike, configFile: string, dir: string, name: string): Promise<Replica> {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const daemon = startDaemon(name, process.execPath, ['--enable-source-maps', kilnMain, 'registry', 'serve', '--config', configFile, '--root', join(dir, name), '--addr', addr], {
    logFile: join(dir, `${name}.log`),
  });
  t.after(() => daemon.stop('SIGTERM', 3000));
  const url = `http://${addr}`;
  await waitUntil(daemon, `answering on ${url}`, async () => (await fetch(`${url}/v2/`)).status === 200, 30_000);
  return { url, addr, daemon, client: client(url) };
}

/** Two replicas with one configuration file, on a new database and a new bucket, and haproxy in front. */
async function cluster(t: TestContextLike, pgsrv: Postgres, gw: Radosgw): Promise<Cluster> {
  const n = ++count;
  const dir = await tempDir(t, 'kiln-faults-');
  const databaseUrl = await pgsrv.createDatabase(`kiln_faults_${process.pid}_${n}`);
  const config = {
    database: { driver: 'postgres', postgres: { url: databaseUrl } },
    storage: { driver: 's3', s3: { endpoint: gw.endpoint, region: gw.region, bucket: `kiln-faults-${process.pid}-${n}`, accessKey: gw.accessKey, secretKey: gw.secretKey, forcePathStyle: true } },
    // every blob read goes to the bucket (none is served from memory), so an outage of it shows
    limits: { cachedBlobSize: 0 },
    log: { level: 'warn', requests: false },
  };
  const configFile = join(dir, 'registry.yaml');
  await writeFile(configFile, JSON.stringify(config, null, 2)); // JSON is YAML
  // started together: one makes the schema (under an advisory lock) and the bucket, the other finds them
  const [a, b] = await Promise.all([startReplica(t, configFile, dir, 'replica-a'), startReplica(t, configFile, dir, 'replica-b')]);
  const lb = await startHaproxy(t, [a.addr, b.addr]);
  return { a, b, lb, viaLb: client(lb.url), databaseUrl };
}

/** Each request to the next of `clients`. */
function alternating(clients: Client[]): Client {
  let next = 0;
  return { url: clients[0]!.url, req: (method, path, opts) => clients[next++ % clients.length]!.req(method, path, opts) };
}

const uploadPath = (c: Client, location: string, digest?: string): string => {
  const u = new URL(location, c.url);
  if (digest) u.searchParams.set('digest', digest);
  return u.pathname + u.search;
};

/** A blob pushed as docker does: POST, then one PUT or PATCHes and a PUT; throws on any unexpected answer. */
async function uploadOnce(c: Client, repo: string, data: Buffer, chunked: boolean): Promise<void> {
  const digest = sha256(data);
  const post = await c.req('POST', `/v2/${repo}/blobs/uploads/`);
  if (post.status !== 202) throw new Error(`POST: ${post.status} ${post.text()}`);
  let loc = post.headers.get('location')!;
  if (chunked) {
    const half = data.length >> 1;
    for (const [start, end] of [[0, half], [half, data.length]] as const) {
      const r = await c.req('PATCH', uploadPath(c, loc), { body: data.subarray(start, end), headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` } });
      if (r.status !== 202) throw new Error(`PATCH ${start}-${end - 1}: ${r.status} ${r.text()}`);
      loc = r.headers.get('location')!;
    }
  }
  const put = await c.req('PUT', uploadPath(c, loc, digest), chunked ? {} : { body: data, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`PUT: ${put.status} ${put.text()}`);
}

/** Tries `fn` up to `attempts` times (a failed blob upload starts again from its POST, as docker's does). */
async function retrying<T>(attempts: number, fn: () => Promise<T>, onRetry: (e: unknown) => void = () => {}): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= attempts) throw e;
      onRetry(e);
      await sleep(100 * i);
    }
  }
}

/** The image's manifest and every blob, compared byte for byte. */
async function assertPulls(c: Client, repo: string, tag: string, img: TestImage): Promise<void> {
  const m = await c.req('GET', `/v2/${repo}/manifests/${tag}`, { headers: { accept: img.mediaType } });
  assert.equal(m.status, 200, `${repo}:${tag}: ${m.text()}`);
  assert.ok(m.body.equals(img.manifest), `${repo}:${tag}: other manifest bytes`);
  for (const blob of [img.config, ...img.layers]) {
    const r = await c.req('GET', `/v2/${repo}/blobs/${sha256(blob)}`);
    assert.equal(r.status, 200, `${repo}@${sha256(blob)}: ${r.text()}`);
    assert.ok(r.body.equals(blob), `${repo}@${sha256(blob)}: other bytes`);
  }
}

/** What traffic saw during an outage: right answers, 503 UNAVAILABLE, and anything else (which is a bug). */
interface Tally {
  ok: number;
  unavailable: number;
  wrong: string[];
}

/** A 503 as the registry means it: UNAVAILABLE in a distribution-spec error body, Retry-After: 1. */
function isUnavailable(method: string, r: Res): boolean {
  if (r.status !== 503 || r.headers.get('retry-after') !== '1') return false;
  if (method === 'HEAD') return true;
  try {
    return r.json<{ errors: { code: string }[] }>().errors[0]?.code === 'UNAVAILABLE';
  } catch {
    return false;
  }
}

/**
 * One request: the response when `right` says it is the right answer; undefined after a 503
 * UNAVAILABLE (the caller gives up what it was doing); anything else is recorded as wrong.
 */
async function step(tally: Tally, c: Client, what: string, method: string, path: string, right: (r: Res) => boolean, opts?: Parameters<Client['req']>[2]): Promise<Res | undefined> {
  let r: Res;
  try {
    r = await c.req(method, path, opts);
  } catch (e) {
    tally.wrong.push(`${what}: ${method} ${path}: ${(e as Error).message} ${String((e as Error).cause ?? '')}`);
    return undefined;
  }
  if (right(r)) {
    tally.ok++;
    return r;
  }
  if (isUnavailable(method, r)) {
    tally.unavailable++;
    await sleep(20);
    return undefined;
  }
  tally.wrong.push(`${what}: ${method} ${path}: ${r.status} ${r.headers.get('retry-after') ?? ''} ${r.text().slice(0, 300)}`);
  return undefined;
}

/**
 * Pushes and pulls through both replicas until `stop()`; every answer checked. A push abandoned
 * after a 503 is never pulled (it may or may not exist); one acknowledged with 201 always is.
 */
function traffic(clients: Client[], workers: number) {
  const tally: Tally = { ok: 0, unavailable: 0, wrong: [] };
  let running = true;
  /** Images pushed and pulled back whole, counted from the moment `mark()` was called. */
  let roundTrips = 0;
  const run = async (w: number) => {
    const c = alternating(w % 2 ? [...clients].reverse() : clients);
    const repo = `faults/w${w}`;
    const pushed: { tag: string; img: TestImage }[] = [];
    for (let n = 0; running; n++) {
      const img = randomImage({ layers: 1, layerSize: 1000 + randomInt(4000) });
      let complete = true;
      for (const blob of [img.config, ...img.layers]) {
        const post = await step(tally, c, 'start upload', 'POST', `/v2/${repo}/blobs/uploads/`, (r) => r.status === 202 && !!r.headers.get('location'));
        const put =
          post &&
          (await step(tally, c, 'finish upload', 'PUT', uploadPath(c, post.headers.get('location')!, sha256(blob)), (r) => r.status === 201 && r.headers.get('docker-content-digest') === sha256(blob), {
            body: blob,
            headers: { 'content-type': 'application/octet-stream' },
          }));
        if (!put) complete = false;
        if (!complete) break;
      }
      const tag = `t${n}`;
      if (complete && (await step(tally, c, 'push manifest', 'PUT', `/v2/${repo}/manifests/${tag}`, (r) => r.status === 201 && r.headers.get('docker-content-digest') === img.digest, { body: img.manifest, headers: { 'content-type': img.mediaType } }))) {
        pushed.push({ tag, img });
      }
      if (!pushed.length) continue;
      const p = pushed[randomInt(pushed.length)]!;
      const layer = p.img.layers[0]!;
      const steps = [
        await step(tally, c, 'pull manifest', 'GET', `/v2/${repo}/manifests/${p.tag}`, (r) => r.status === 200 && r.body.equals(p.img.manifest), { headers: { accept: p.img.mediaType } }),
        await step(tally, c, 'pull layer', 'GET', `/v2/${repo}/blobs/${sha256(layer)}`, (r) => r.status === 200 && r.body.equals(layer)),
        await step(tally, c, 'check config', 'HEAD', `/v2/${repo}/blobs/${sha256(p.img.config)}`, (r) => r.status === 200 && r.headers.get('content-length') === String(p.img.config.length)),
        await step(tally, c, 'list tags', 'GET', `/v2/${repo}/tags/list`, (r) => {
          if (r.status !== 200) return false;
          const tags = new Set(r.json<{ tags: string[] }>().tags);
          return pushed.every((x) => tags.has(x.tag));
        }),
      ];
      if (steps.every(Boolean) && pushed.at(-1)!.tag === tag) roundTrips++;
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => run(w)));
  return {
    tally,
    /** Round trips (a push acknowledged and pulled back whole) since the last call. */
    roundTrips: () => {
      const n = roundTrips;
      roundTrips = 0;
      return n;
    },
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** How the replicas are, for failure messages: a replica that ended says why in its log. */
async function replicaStates(k: Cluster): Promise<string> {
  const states = await Promise.all(
    [k.a, k.b].map(async (r) => (r.daemon.running() ? `${r.daemon.name} running` : `${r.daemon.name} ended (${await r.daemon.exited}); end of its log:\n${await logTail(r.daemon.logFile, 15)}`)),
  );
  return states.join('\n');
}

/** Waits until the traffic has made `n` round trips since the last count; fails after `timeoutMs`. */
async function roundTrips(k: Cluster, load: ReturnType<typeof traffic>, n: number, timeoutMs: number, what: string): Promise<number> {
  const since = Date.now();
  let seen = 0;
  while ((seen += load.roundTrips()) < n) {
    if (Date.now() - since > timeoutMs || !k.a.daemon.running() || !k.b.daemon.running()) {
      await load.stop();
      assert.fail(`${what}: ${seen} round trips in ${Date.now() - since} ms; wrong answers: ${JSON.stringify(load.tally.wrong.slice(0, 5))}\n${await replicaStates(k)}`);
    }
    await sleep(20);
  }
  return Date.now() - since;
}

/** Run traffic, call `fault` (which resolves once the server is back), then require recovery without restarting kiln. */
async function underOutage(k: Cluster, fault: () => Promise<void>): Promise<{ tally: Tally; recoveredMs: number }> {
  const load = traffic([k.a.client, k.b.client], 4);
  await roundTrips(k, load, 2, 15_000, 'before the fault');
  assert.deepEqual(load.tally.wrong, [], 'before the fault');
  await fault();
  const unavailableDuring = load.tally.unavailable;
  load.roundTrips();
  // the replicas' pools and PostgreSQL listeners reconnect on their own, while the traffic goes on
  const recoveredMs = await roundTrips(k, load, 2, 15_000, 'after the server is back');
  await load.stop();
  assert.deepEqual(load.tally.wrong, [], `every answer is the right one or 503 UNAVAILABLE\n${await replicaStates(k)}`);
  assert.ok(unavailableDuring > 0, 'requests got 503 while the server was down');
  // both replicas themselves and haproxy, each at once
  for (const [where, c] of [['replica A', k.a.client], ['replica B', k.b.client], ['haproxy', k.viaLb]] as const) {
    const img = randomImage({ layers: 2, layerSize: 3000 });
    for (const blob of [img.config, ...img.layers]) await uploadOnce(c, 'faults/after', blob, blob === img.layers[1]);
    const r = await c.req('PUT', `/v2/faults/after/manifests/${where.replace(' ', '-')}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
    assert.equal(r.status, 201, `${where}: ${r.text()}`);
    await assertPulls(alternating([k.a.client, k.b.client]), 'faults/after', where.replace(' ', '-'), img);
  }
  return { tally: load.tally, recoveredMs };
}

/** The tag's digest as `c` serves it. */
async function tagOn(c: Client, repo: string, tag: string): Promise<string | undefined> {
  const r = await c.req('GET', `/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return r.status === 200 ? (r.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/** A manifest of `base` (whose blobs are pushed) that differs by an annotation: a new digest without new blobs. */
function variant(base: TestImage, note: string): { body: Buffer; digest: string } {
  const m = JSON.parse(base.manifest.toString());
  m.annotations = { 'org.example.variant': note };
  const body = Buffer.from(JSON.stringify(m));
  return { body, digest: sha256(body) };
}

describe('registry replicas under faults (haproxy, PostgreSQL, radosgw)', { skip }, () => {
  const scope = suiteScope();
  let pgsrv: Postgres;
  let gw: Radosgw;

  test('start PostgreSQL and radosgw', async () => {
    [pgsrv, gw] = await Promise.all([startPostgres(scope), startRadosgw(scope)]);
  });

  test('a replica SIGKILLed during 16 concurrent pushes through haproxy: every push completes, every acknowledged image pulls back whole from the survivor', async (t) => {
    const k = await cluster(t, pgsrv, gw);
    const pushers = 16;
    const images = 3;
    const acked: { repo: string; tag: string; img: TestImage }[] = [];
    const retried: string[] = [];
    const onRetry = (e: unknown) => void retried.push((e as Error).message.slice(0, 120));
    const pushAll = Promise.all(
      Array.from({ length: pushers }, async (_, w) => {
        const repo = `crash/p${w}`;
        for (let i = 0; i < images; i++) {
          // small enough that haproxy holds a whole request and may replay it elsewhere
          const img = randomImage({ layers: 1, layerSize: 2000 + randomInt(6000) });
          for (const [j, blob] of [img.config, ...img.layers].entries()) {
            await retrying(6, () => uploadOnce(k.viaLb, repo, blob, (w + i + j) % 2 === 1), onRetry);
          }
          const tag = `v${i}`;
          await retrying(6, async () => {
            const r = await k.viaLb.req('PUT', `/v2/${repo}/manifests/${tag}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
            if (r.status !== 201) throw new Error(`manifest PUT: ${r.status} ${r.text()}`);
          }, onRetry);
          acked.push({ repo, tag, img });
        }
      }),
    );
    let settled = false;
    void pushAll.then(() => (settled = true), () => (settled = true));
    // SIGKILL replica A once a quarter of the images are in: the rest, and requests in flight, are not
    while (!settled && acked.length < (pushers * images) / 4) await sleep(10);
    await k.a.daemon.stop('SIGKILL');
    const ackedAtKill = acked.length;
    await pushAll;
    t.diagnostic(`${ackedAtKill} images acknowledged before the kill; ${retried.length} steps retried: ${[...new Set(retried)].slice(0, 4).join(' | ')}`);
    assert.equal(acked.length, pushers * images);
    assert.ok(ackedAtKill < acked.length, `pushes went on after the kill (${ackedAtKill} of ${acked.length} before it)`);
    // from the survivor itself, not through haproxy; a few images at a time
    for (let i = 0; i < acked.length; i += 8) await Promise.all(acked.slice(i, i + 8).map((p) => assertPulls(k.b.client, p.repo, p.tag, p.img)));
  });

  test('PostgreSQL restarted under traffic: 503 UNAVAILABLE while it is down, never 500 or a wrong answer; everything works again once it is back', async (t) => {
    const k = await cluster(t, pgsrv, gw);
    const { tally, recoveredMs } = await underOutage(k, () => pgsrv.restart(1500));
    t.diagnostic(`${tally.ok} right answers, ${tally.unavailable} × 503; round trips again ${recoveredMs} ms after the restart`);
    const listenerSince = Date.now();
    // B's PostgreSQL listener connected again: a tag moved through A reaches B's cache within a second
    const repo = 'faults/listener';
    const base = randomImage({ layers: 1, layerSize: 500 });
    for (const blob of [base.config, ...base.layers]) await uploadOnce(k.a.client, repo, blob, false);
    const put = async (m: { body: Buffer }) =>
      assert.equal((await k.a.client.req('PUT', `/v2/${repo}/manifests/latest`, { body: m.body, headers: { 'content-type': base.mediaType } })).status, 201);
    const seenOnB = async (digest: string, withinMs: number) => {
      const since = Date.now();
      while ((await tagOn(k.b.client, repo, 'latest')) !== digest) {
        assert.ok(Date.now() - since < withinMs, `replica B still serves the old tag after ${withinMs} ms`);
        await sleep(20);
      }
    };
    const first = variant(base, 'first');
    await put(first);
    // the listener may still be backing off (up to 5 s after the outage): its reconnection drops B's cache too
    await seenOnB(first.digest, 8000);
    for (let i = 0; i < 3; i++) assert.equal(await tagOn(k.b.client, repo, 'latest'), first.digest);
    const second = variant(base, 'second');
    await put(second);
    await seenOnB(second.digest, 1000);
    t.diagnostic(`tag moves reach replica B again ${Date.now() - listenerSince} ms after the recovery checks`);
  });

  test('radosgw restarted under traffic: 503 UNAVAILABLE while it is down, never 500 or a wrong answer; everything works again once it is back', async (t) => {
    const k = await cluster(t, pgsrv, gw);
    const { tally, recoveredMs } = await underOutage(k, () => gw.restart(1500));
    t.diagnostic(`${tally.ok} right answers, ${tally.unavailable} × 503; round trips again ${recoveredMs} ms after the restart`);
  });

  test('two replicas moving one tag at once, round after round: it ends on one of the two manifests, and both replicas (and haproxy) agree within a second', async (t) => {
    const k = await cluster(t, pgsrv, gw);
    const repo = 'race/app';
    const base = randomImage({ layers: 1, layerSize: 700 });
    for (const blob of [base.config, ...base.layers]) await uploadOnce(k.a.client, repo, blob, false);
    const { default: pg } = await import('pg');
    const db = new pg.Client({ connectionString: k.databaseUrl });
    await db.connect();
    t.after(() => db.end());
    const rounds = 10;
    let slowest = 0;
    for (let round = 0; round < rounds; round++) {
      const x = variant(base, `${round}-a-${randomBytes(4).toString('hex')}`);
      const y = variant(base, `${round}-b-${randomBytes(4).toString('hex')}`);
      // both replicas have the tag cached at its previous value
      await Promise.all([tagOn(k.a.client, repo, 'latest'), tagOn(k.b.client, repo, 'latest')]);
      const [ra, rb] = await Promise.all([
        k.a.client.req('PUT', `/v2/${repo}/manifests/latest`, { body: x.body, headers: { 'content-type': base.mediaType } }),
        k.b.client.req('PUT', `/v2/${repo}/manifests/latest`, { body: y.body, headers: { 'content-type': base.mediaType } }),
      ]);
      assert.deepEqual([ra.status, rb.status], [201, 201], `round ${round}: ${ra.text()} ${rb.text()}`);
      const stored = (await db.query<{ digest: string }>("SELECT digest FROM tags WHERE repo = $1 AND tag = 'latest'", [repo])).rows;
      assert.equal(stored.length, 1);
      const winner = stored[0]!.digest;
      assert.ok([x.digest, y.digest].includes(winner), `round ${round}: the tag is on neither manifest`);
      const since = Date.now();
      for (;;) {
        const seen = await Promise.all([tagOn(k.a.client, repo, 'latest'), tagOn(k.b.client, repo, 'latest'), tagOn(k.viaLb, repo, 'latest')]);
        const lists = await Promise.all([k.a.client, k.b.client].map(async (c) => (await c.req('GET', `/v2/${repo}/tags/list`)).json<{ tags: string[] }>().tags));
        if (seen.every((d) => d === winner) && lists.every((l) => JSON.stringify(l) === '["latest"]')) break;
        assert.ok(Date.now() - since < 1000, `round ${round}: after 1 s the replicas serve ${JSON.stringify(seen)} and list ${JSON.stringify(lists)}, the database has ${winner}`);
        await sleep(20);
      }
      slowest = Math.max(slowest, Date.now() - since);
    }
    t.diagnostic(`${rounds} rounds; the slowest agreement took ${slowest} ms`);
  });
});
