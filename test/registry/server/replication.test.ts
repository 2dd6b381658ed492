import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../support/env.js';
import { admin } from '../../../src/registry/server/admin.js';
import { has, startDistribution, startProxy } from '../client/support.js';
import { freePort, indexOf, pushImage, randomImage, registryCli, sha256, startRegistry, waitFor, type Client, type TestImage, type TestRegistry } from './support.js';

// Replication (issue 23) between kiln and Debian's docker-registry (CNCF Distribution 2.8): rules
// pushing a namespace out and pulling one in with the same digests, a run that resumes after its
// target was killed, push-triggered rules, label filters, and a remote that refuses the credentials.

const skip = !has('docker-registry') && 'docker-registry missing (Debian package docker-registry)';
const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const pw = 'password-root';

/** docker-registry on a fixed port and directory, so that it can be killed and started again with what it stored. */
async function distribution(t: { after: (fn: () => void) => void }): Promise<{ url: string; start(): Promise<void>; kill(): void }> {
  const dir = await tempDir(t, 'kiln-repl-distribution-');
  const port = await freePort();
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  let child: ChildProcess | undefined;
  const url = `http://127.0.0.1:${port}`;
  const kill = () => {
    child?.kill('SIGKILL');
    child = undefined;
  };
  t.after(kill);
  const start = async () => {
    child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    await waitFor(async () => (await fetch(`${url}/v2/`)).status === 200, 15_000, 'docker-registry');
  };
  await start();
  return { url, start, kill };
}

async function kilnRegistry(t: Parameters<typeof startRegistry>[0]): Promise<TestRegistry & { api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> }> {
  const reg = await startRegistry(t, (c) => {
    c.replication.attempts = 2;
    c.replication.backoff = 0.05;
  });
  await admin(reg.registry.metadata, 'test').addUser('root', pw, true);
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(reg.url + path, {
      method,
      headers: { authorization: 'Basic ' + Buffer.from(`root:${pw}`).toString('base64'), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
  };
  return Object.assign(reg, { api });
}

const digestAt = async (url: string, repo: string, ref: string) => (await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers: { accept } })).headers.get('docker-content-digest');
const bytesAt = async (url: string, repo: string, ref: string) => Buffer.from(await (await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { accept } })).arrayBuffer());

async function waitRun(reg: Awaited<ReturnType<typeof kilnRegistry>>, rule: string, id: number, statuses: string[], ms = 15_000): Promise<any> {
  let last: any;
  await waitFor(async () => {
    last = (await reg.api('GET', `/kiln/v1/replication/${rule}/runs/${id}`)).json;
    return statuses.includes(last.status);
  }, ms, `run ${id} of ${rule} to be ${statuses.join(' or ')} (last: ${JSON.stringify(last)})`);
  return last;
}

/** An image whose config carries `labels`. */
function labelled(labels: Record<string, string>): TestImage {
  const layer = randomBytes(512);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: labels }, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  return { config, layers: [layer], manifest, digest: sha256(manifest), mediaType };
}

async function pushIndex(c: Client, repo: string, tag: string, images: TestImage[]): Promise<string> {
  for (const img of images) assert.equal((await pushImage(c, repo, img.digest, img)).status, 201);
  const idx = indexOf(images);
  const r = await c.req('PUT', `/v2/${repo}/manifests/${tag}`, { body: idx.body, headers: { 'content-type': idx.mediaType } });
  assert.equal(r.status, 201, r.text());
  return idx.digest;
}

test('replication copies a multi-layer image, its signature and an index from kiln to docker-registry and back with identical digests, resuming after the target is killed mid-run', { skip, timeout: 60_000 }, async (t) => {
  const reg = await kilnRegistry(t);
  const target = await distribution(t);
  // Requests pass through a proxy that holds the first one of the second item, long enough to kill the target under it.
  let hold = true;
  const proxy = await startProxy(t, target.url, (req) => {
    if (hold && req.url!.startsWith('/v2/mirror/multi/')) {
      hold = false;
      return { delayMs: 500 };
    }
    return 'pass';
  });
  const c = reg.client();
  const image = randomImage({ layers: 3, layerSize: 64 * 1024 });
  assert.equal((await pushImage(c, 'team/app', '1', image)).status, 201);
  const signature = randomImage({ layers: 1, subject: { digest: image.digest, size: image.manifest.length, mediaType: image.mediaType }, artifactType: 'application/vnd.example.signature' });
  assert.equal((await pushImage(c, 'team/app', signature.digest, signature)).status, 201);
  const children = [randomImage({ layers: 2 }), randomImage({ layers: 2 })];
  const index = await pushIndex(c, 'team/multi', '1', children);

  const added = await reg.api('POST', '/kiln/v1/replication', { name: 'out', direction: 'push', remote: proxy.url, namespace: 'team', remoteNamespace: 'mirror' });
  assert.equal(added.status, 201, JSON.stringify(added.json));
  const requested = await reg.api('POST', '/kiln/v1/replication/out/runs');
  assert.equal(requested.status, 202, JSON.stringify(requested.json));
  const id = requested.json.run.id as number;

  // The first request of team/multi's copy arrives: the target dies before it is answered.
  await waitFor(async () => proxy.log.some((l) => l.path.startsWith('/v2/mirror/multi/')), 10_000, 'the second item to start');
  target.kill();
  const killedAt = proxy.log.length;
  const interrupted = await waitRun(reg, 'out', id, ['interrupted']);
  const [app, multi] = interrupted.items;
  assert.deepEqual([app.source, app.target, app.status, app.digest, app.attempts, app.blobsCopied], ['team/app', 'mirror/app', 'done', image.digest, 1, 6]);
  assert.equal(multi.status, 'pending');
  assert.match(multi.error, /cannot reach registry|socket|ECONN/);
  assert.match(interrupted.error, /will be retried/);

  await target.start();
  const resumed = await reg.api('POST', '/kiln/v1/replication/out/runs');
  assert.equal(resumed.json.run.id, id, 'the interrupted run goes on; no new run');
  const done = await waitRun(reg, 'out', id, ['succeeded', 'failed']);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  assert.deepEqual([done.copied, done.skipped, done.failed], [2, 0, 0]);
  assert.equal(done.items[0].attempts, 1, 'the item done before the kill is not done again');
  const after = proxy.log.slice(killedAt);
  assert.ok(!after.some((l) => l.path.startsWith('/v2/mirror/app/')), `nothing of team/app is sent again: ${after.map((l) => `${l.method} ${l.path}`).join(', ')}`);

  // Identical bytes, hence digests, on the target: image, signature, index and the index's images.
  assert.equal(await digestAt(target.url, 'mirror/app', '1'), image.digest);
  assert.ok((await bytesAt(target.url, 'mirror/app', '1')).equals(image.manifest));
  assert.equal(await digestAt(target.url, 'mirror/app', signature.digest), signature.digest, 'the referrer came along');
  assert.ok((await bytesAt(target.url, 'mirror/multi', '1')).equals((await c.req('GET', '/v2/team/multi/manifests/1', { headers: { accept } })).body));
  for (const ch of children) assert.equal(await digestAt(target.url, 'mirror/multi', ch.digest), ch.digest);

  // A pull rule brings them back into another namespace, offline CLI request, the serving registry copies.
  const pull = await reg.api('POST', '/kiln/v1/replication', { name: 'in', direction: 'pull', remote: target.url, namespace: 'back', remoteNamespace: 'mirror', repos: '{app,multi}' });
  assert.equal(pull.status, 201, JSON.stringify(pull.json));
  const ran = await registryCli(reg, ['replication', 'run', 'in', '--wait']);
  assert.equal(ran.code, 0, ran.stderr);
  assert.match(ran.stdout, /2 copied, 0 skipped, 0 failed/);
  assert.equal((await c.req('HEAD', '/v2/back/app/manifests/1', { headers: { accept } })).headers.get('docker-content-digest'), image.digest);
  assert.equal((await c.req('HEAD', '/v2/back/multi/manifests/1', { headers: { accept } })).headers.get('docker-content-digest'), index);
  for (const ch of children) assert.equal((await c.req('HEAD', `/v2/back/multi/manifests/${ch.digest}`, { headers: { accept } })).status, 200);
  const blob = await c.req('GET', `/v2/back/app/blobs/${sha256(image.layers[2]!)}`);
  assert.ok(blob.body.equals(image.layers[2]!));

  // A second run finds everything up to date.
  const again = await waitRun(reg, 'in', (await reg.api('POST', '/kiln/v1/replication/in/runs')).json.run.id, ['succeeded']);
  assert.deepEqual([again.copied, again.skipped, again.failed], [0, 2, 0]);
  const history = await registryCli(reg, ['replication', 'runs', 'in']);
  assert.match(history.stdout, /manual\s+succeeded.*\s+0\s+2\s+0\s+0/);
  assert.match(history.stdout, /mirror\/app:1\s+back\/app\s+skipped\s+sha256:[0-9a-f]{64}\s+1\s+0\s+0\s+up to date/);

  await reg.registry.audit.flush();
  const audit = (await reg.registry.metadata.listAudit({ limit: 200 })).filter((e) => e.action.startsWith('replication')).map((e) => `${e.action} ${e.detail}`).reverse();
  assert.match(audit.join('\n'), /replication-add out: push[\s\S]*replication-request out: run \d+[\s\S]*replication-run run \d+ interrupted[\s\S]*replication-request out: resume run \d+[\s\S]*replication-run run \d+ succeeded: 2 copied/);
});

test('an event-triggered rule copies a push within seconds, a label filter skips an image without the label, a scheduled rule runs by itself, a dead process\'s run is taken over; no secret is shown', { skip, timeout: 60_000 }, async (t) => {
  const reg = await kilnRegistry(t);
  const target = await distribution(t);
  const events: unknown[] = [];
  reg.registry.events.subscribe((e) => void (e.type === 'replication' && events.push(e)));
  // The namespace's webhook hears of the rule's runs.
  const deliveries: any[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      deliveries.push(JSON.parse(body));
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => receiver.close(() => r())));
  const hook = await reg.api('POST', '/kiln/v1/namespaces/ci/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/`, secret: 'k', events: ['replication'] });
  assert.equal(hook.status, 201, JSON.stringify(hook.json));
  const add = await reg.api('POST', '/kiln/v1/replication', { name: 'hook', direction: 'push', remote: target.url, namespace: 'ci', repos: 'svc/*', tags: 'v*', label: 'release=yes', trigger: 'event', username: 'robot', password: 'secret-123' });
  assert.equal(add.status, 201, JSON.stringify(add.json));
  assert.equal(add.json.hasSecret, true);
  assert.ok(!JSON.stringify((await reg.api('GET', '/kiln/v1/replication')).json).includes('secret-123'), 'the secret is never shown');

  const c = reg.client();
  const yes = labelled({ release: 'yes' });
  const no = labelled({ release: 'no' });
  assert.equal((await pushImage(c, 'ci/svc/api', 'v1', yes)).status, 201);
  await waitFor(async () => (await digestAt(target.url, 'ci/svc/api', 'v1')) === yes.digest, 8_000, 'the pushed image on the target');
  assert.equal((await pushImage(c, 'ci/svc/api', 'v2', no)).status, 201);
  assert.equal((await pushImage(c, 'ci/svc/api', 'latest', yes)).status, 201, 'a tag the rule does not cover');
  await waitFor(async () => (await reg.api('GET', '/kiln/v1/replication/hook/runs')).json.runs.filter((r: { status: string }) => r.status === 'succeeded').length === 2, 8_000, 'two runs');
  const runs = (await reg.api('GET', '/kiln/v1/replication/hook/runs')).json.runs;
  assert.equal(runs.length, 2, 'the push of latest started no run');
  const skipped = (await reg.api('GET', `/kiln/v1/replication/hook/runs/${runs[0].id}`)).json;
  assert.deepEqual([skipped.trigger, skipped.copied, skipped.skipped, skipped.items[0].reference, skipped.items[0].error], ['event', 0, 1, 'v2', 'no label release=yes']);
  assert.equal(await digestAt(target.url, 'ci/svc/api', 'v2'), null);
  assert.equal(await digestAt(target.url, 'ci/svc/api', 'latest'), null);
  await waitFor(async () => events.length === 2, 2_000, 'replication events');
  assert.deepEqual(events.map((e: any) => [e.namespace, e.rule, e.status, e.copied]), [['ci', 'hook', 'succeeded', 1], ['ci', 'hook', 'succeeded', 0]]);
  await waitFor(async () => deliveries.length === 2, 5_000, 'the webhook deliveries');
  assert.deepEqual(deliveries.map((d) => [d.type, d.event_data.replication.rule, d.event_data.replication.status]).sort(), [['replication', 'hook', 'succeeded'], ['replication', 'hook', 'succeeded']]);

  // A scheduled pull rule runs by itself; a run whose process died (its lease ran out) is taken over.
  const m = reg.registry.metadata;
  assert.equal((await reg.api('POST', '/kiln/v1/replication', { name: 'tick', direction: 'pull', remote: target.url, namespace: 'copy', remoteNamespace: 'ci', trigger: 'schedule', interval: '1h' })).status, 201);
  await waitFor(async () => (await m.replicationRuns('tick', 5))[0]?.status === 'succeeded', 8_000, 'the scheduled run');
  const scheduled = (await m.replicationRuns('tick', 5))[0]!;
  assert.equal(scheduled.trigger, 'schedule');
  assert.equal((await c.req('HEAD', '/v2/copy/svc/api/manifests/v1', { headers: { accept } })).headers.get('docker-content-digest'), yes.digest);
  await reg.api('PATCH', '/kiln/v1/replication/tick', { enabled: false });
  assert.equal((await reg.api('POST', '/kiln/v1/replication', { name: 'orphan', direction: 'push', remote: target.url, namespace: 'ci', remoteNamespace: 'orphaned', enabled: false })).status, 201);
  const id = await m.createReplicationRun({ rule: 'orphan', trigger: 'manual', requestedBy: 'test', requestedAt: Date.now() });
  await m.setReplicationEnabled('orphan', true);
  const dead = await m.claimReplicationRun('a-process-that-died', Date.now() - 1, Date.now());
  assert.equal(dead?.id, id);
  const taken = await waitRun(reg, 'orphan', id, ['succeeded', 'failed']);
  assert.deepEqual([taken.status, taken.attempts, taken.copied, taken.skipped], ['succeeded', 2, 3, 0]);
  assert.equal(await digestAt(target.url, 'orphaned/svc/api', 'v1'), yes.digest);
});

test('replication to a target that refuses the credentials fails with the remote and 401 in the run history; bad rules are refused naming the field', { skip, timeout: 60_000 }, async (t) => {
  const reg = await kilnRegistry(t);
  const target = await startDistribution(t, { user: 'ci', password: 'right-password' });
  const c = reg.client();
  assert.equal((await pushImage(c, 'ops/tool', '1', randomImage())).status, 201);
  const withPw = await registryCli(reg, ['replication', 'add', 'locked', '--direction', 'push', '--remote', target.url, '--namespace', 'ops', '--username', 'ci', '--password-stdin'], { input: 'wrong-password\n' });
  assert.equal(withPw.code, 0, withPw.stderr);
  assert.match(withPw.stdout, /^locked: push ops\/\*\*:\*\* to http:\/\/127\.0\.0\.1:\d+\/ops, manual, as ci\n$/);
  assert.ok(!JSON.stringify((await reg.api('GET', '/kiln/v1/replication/locked')).json).includes('wrong-password'));
  const ran = await registryCli(reg, ['replication', 'run', 'locked', '--wait']);
  assert.equal(ran.code, 1);
  assert.match(ran.stderr, new RegExp(`replication locked run \\d+ failed: remote ${target.url.replace(/\./g, '\\.')} refused the credentials of ci \\(HTTP 401\\)`));
  const history = (await reg.api('GET', '/kiln/v1/replication/locked/runs')).json.runs;
  assert.equal(history[0].status, 'failed');
  assert.match(history[0].error, /^remote http:\/\/127\.0\.0\.1:\d+ refused the credentials of ci \(HTTP 401\): /);
  const items = (await reg.api('GET', `/kiln/v1/replication/locked/runs/${history[0].id}`)).json.items;
  assert.deepEqual(items.map((i: { source: string; status: string }) => `${i.source} ${i.status}`), ['ops/tool failed']);
  assert.match(items[0].error, /\(HTTP 401\)/);

  // Bad rules: the CLI exits 2 naming the field, the API answers 400 with the same message; nothing is stored.
  for (const [args, message] of [
    [['--direction', 'push', '--remote', 'http://registry.example.com', '--namespace', 'ops'], /plain HTTP .* give --insecure/],
  ] as [string[], RegExp][]) {
    const r = await registryCli(reg, ['replication', 'add', 'bad', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const base = { name: 'bad', direction: 'push', remote: target.url, namespace: 'ops' };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ direction: 'sideways' }, /direction: "sideways" is neither push/],
    [{ direction: 'pull', trigger: 'event' }, /trigger event: only push rules/],
    [{ remote: 'ftp://x' }, /remote ftp:\/\/x: only http:\/\/ and https:\/\//],
    [{ repos: 'a/[b' }, /repos: "a\/\[b" is not a valid pattern/],
    [{ label: 'novalue' }, /label "novalue": expected KEY=VALUE/],
    [{ trigger: 'schedule' }, /interval: a schedule needs an interval/],
    [{ namespace: 'Ops' }, /namespace "Ops"/],
    [{ username: 'ci' }, /username: give the password too/],
    [{ name: 'locked' }, /a replication rule "locked" exists/],
    [{ interval: 'soon' }, /interval: "soon" is not a duration/],
  ];
  for (const [change, message] of bad) {
    const r = await reg.api('POST', '/kiln/v1/replication', { ...base, ...change });
    assert.equal(r.status, 400, JSON.stringify(change));
    assert.match(r.json.errors[0].message, message);
  }
  assert.deepEqual((await reg.api('GET', '/kiln/v1/replication')).json.rules.map((r: { name: string }) => r.name), ['locked'], 'no bad rule was stored');
});
