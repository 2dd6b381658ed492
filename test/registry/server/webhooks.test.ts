import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admin } from '../../../src/registry/server/admin.js';
import { webhookAdmin } from '../../../src/registry/server/webhooks/hooks.js';
import { addressPolicy } from '../../../src/registry/server/webhooks/policy.js';
import { baseNameParts } from '../../../src/registry/server/base-updates.js';
import type { RegistryConfig } from '../../../src/registry/server/config.js';
import { serve } from '../../../src/registry/server/server.js';
import { logger } from '../../../src/registry/server/log.js';
import { client, freePort, pushBlob, pushImage, randomImage, registryCli, startRegistry, testConfig, waitFor, type TestRegistry } from './support.js';

// Webhooks (issue 23): events of a namespace POSTed to a receiver as signed JSON by a durable
// queue, with retries; a slow receiver never slows a push; URLs the configuration does not allow
// are refused when added and again when sent.

interface Received {
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A receiver on loopback; `answer` decides each response (undefined: never answer). */
async function receiver(t: { after: (fn: () => Promise<void> | void) => void }, answer: (r: Received) => number | undefined = () => 204, port = 0) {
  const got: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks) };
      got.push(r);
      const status = answer(r);
      if (status === undefined) return void hanging.push(res);
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 400 ? 'receiver is broken' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  t.after(close);
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got, hanging, close, json: () => got.map((r) => JSON.parse(r.body.toString('utf8')) as Record<string, any>) };
}

const quick = (c: RegistryConfig) => {
  c.webhooks.pollInterval = 0.05;
  c.webhooks.backoff = 0.05;
  c.webhooks.attempts = 3;
  c.webhooks.timeout = 5;
};

const signed = (secret: string, r: Received) => r.headers['x-kiln-signature'] === 'sha256=' + createHmac('sha256', secret).update(r.body).digest('hex');

async function api(reg: TestRegistry, method: string, path: string, body?: unknown, user = 'root:password-root') {
  const r = await fetch(`${reg.url}/kiln/v1/${path}`, {
    method,
    headers: { authorization: 'Basic ' + Buffer.from(user).toString('base64'), 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, text, json: () => JSON.parse(text) };
}

test('a loopback receiver gets push, pull, delete, promote, quota-exceeded, retention and base-updated, each signed over its exact body', async (t) => {
  const rx = await receiver(t);
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    c.auth.basic = true;
    quick(c);
  });
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  const c = reg.client({ user: 'root', password: 'password-root' });

  const added = await registryCli(reg, ['webhook', 'add', 'team', rx.url, '--secret', 's3cret']);
  assert.equal(added.code, 0, added.stderr);
  const id = Number(added.stdout.trim());
  assert.ok(id > 0);
  const listed = await registryCli(reg, ['webhook', 'list', 'team']);
  assert.match(listed.stdout, new RegExp(`${id}\\s+team\\s+${rx.url.replace(/[/.]/g, '\\$&')}`));
  assert.doesNotMatch(listed.stdout, /s3cret/, 'the secret is never shown');

  const host = new URL(reg.url).host;
  const base1 = randomImage();
  assert.equal((await pushImage(c, 'team/base', '1', base1)).status, 201);
  const app = randomImage({ annotations: { 'org.opencontainers.image.base.digest': base1.digest, 'org.opencontainers.image.base.name': `${host}/team/base:1` } });
  assert.equal((await pushImage(c, 'team/app', 'v1', app)).status, 201);
  assert.equal((await c.req('GET', '/v2/team/app/manifests/v1', { headers: { accept: app.mediaType } })).status, 200);
  const promoted = await api(reg, 'POST', 'promote', { source: 'team/app:v1', destination: 'team/app:stable' });
  assert.equal(promoted.status, 200, promoted.text);
  assert.equal((await c.req('DELETE', '/v2/team/app/manifests/stable')).status, 202);
  const base2 = randomImage();
  assert.equal((await pushImage(c, 'team/base', '1', base2)).status, 201, 'a new digest of team/base:1, which team/app is built on');
  // Retention from the offline CLI: the serving registry delivers what it queued.
  assert.equal((await pushImage(c, 'team/app', 'old-1', randomImage())).status, 201);
  await ops.addRetention('team', { repos: 'app', tags: 'old-*', kind: 'never' });
  const ran = await registryCli(reg, ['retention', 'run', 'team']);
  assert.equal(ran.code, 0, ran.stderr);
  await ops.setNamespace('team', { quotaBytes: 1 });
  await assert.rejects(pushBlob(c, 'team/app', Buffer.alloc(64, 7)), /403/);

  const kinds = ['push', 'pull', 'delete', 'promote', 'quota-exceeded', 'retention', 'base-updated'];
  await waitFor(async () => kinds.every((k) => rx.json().some((p) => p.type === k)), 10_000, `deliveries of ${kinds.join(', ')}`);
  for (const r of rx.got) {
    assert.ok(signed('s3cret', r), 'X-Kiln-Signature is the HMAC-SHA256 of the body');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-kiln-event'], JSON.parse(r.body.toString()).type);
    assert.match(String(r.headers['x-kiln-delivery']), /^\d+$/);
  }
  const of = (type: string) => rx.json().filter((p) => p.type === type);
  const push = of('push').find((p) => p.event_data.repository.repo_full_name === 'team/app' && p.event_data.resources[0].tag === 'v1')!;
  assert.deepEqual(push.event_data.resources, [{ digest: app.digest, tag: 'v1', resource_url: `${host}/team/app:v1` }]);
  assert.deepEqual(push.event_data.repository, { name: 'app', namespace: 'team', repo_full_name: 'team/app' });
  assert.equal(push.operator, 'root');
  assert.ok(Math.abs(push.occur_at - Date.now() / 1000) < 60);
  assert.equal(of('pull')[0]!.event_data.resources[0].digest, app.digest);
  assert.equal(of('promote')[0]!.event_data.source, `team/app@${app.digest}`);
  assert.deepEqual(of('delete')[0]!.event_data.resources.map((r: { tag: string }) => r.tag), ['stable']);
  const based = of('base-updated');
  assert.equal(based.length, 1);
  assert.equal(based[0]!.event_data.resources[0].digest, base2.digest);
  assert.deepEqual(based[0]!.event_data.affected.map((a: { repository: string; digest: string; base_digest: string }) => `${a.repository}@${a.digest} on ${a.base_digest}`), [`team/app@${app.digest} on ${base1.digest}`]);
  assert.deepEqual(of('retention')[0]!.event_data.retention.deleted_tags.map((x: { tag: string }) => x.tag), ['old-1']);
  assert.equal(of('retention')[0]!.operator.startsWith('cli:'), true);
  assert.equal(of('quota-exceeded')[0]!.event_data.quota.limit_bytes, 1);

  const deliveries = await reg.registry.metadata.deliveries(id, 100);
  assert.ok(deliveries.length >= 7 && deliveries.every((d) => d.status === 'delivered' && d.attempts === 1 && d.lastStatus === 204), JSON.stringify(deliveries));
  const audit = await reg.registry.metadata.listAudit({ namespace: 'team', action: 'webhook-add', limit: 10 });
  assert.match(audit[0]?.detail ?? '', new RegExp(`webhook ${id}: http://127\\.0\\.0\\.1:\\d+/hook`));
});

test('a receiver answering 500 gets the configured attempts, then the log says failed with the status; the API never shows the secret', async (t) => {
  const rx = await receiver(t, () => 500);
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    quick(c);
  });
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  await ops.addUser('mia', 'password-mia', false);
  await ops.grant('mia', 'team', 'maintainer');
  const created = await api(reg, 'POST', 'namespaces/team/webhooks', { url: rx.url, secret: 'k', events: ['push'] });
  assert.equal(created.status, 201, created.text);
  const hook = created.json() as { id: number; secret?: string };
  assert.equal(hook.secret, undefined);
  assert.equal((await api(reg, 'POST', 'namespaces/team/webhooks', { url: rx.url, secret: 'k' }, 'mia:password-mia')).status, 403, 'a maintainer may not add hooks');
  const seen = await api(reg, 'GET', 'namespaces/team/webhooks', undefined, 'mia:password-mia');
  assert.equal(seen.status, 200, 'a maintainer sees them');
  assert.doesNotMatch(seen.text, /"secret"/);

  const img = randomImage({ layers: 1 });
  assert.equal((await pushImage(reg.client({ user: 'root', password: 'password-root' }), 'team/app', 'v1', img)).status, 201);
  let log: { status: string; attempts: number; lastStatus: number; lastError: string }[] = [];
  // Polled in the database (each API call verifies a password hash), then read once through the API.
  await waitFor(async () => (await reg.registry.metadata.deliveries(hook.id, 10))[0]?.status === 'failed', 10_000, 'the delivery to fail');
  log = (await api(reg, 'GET', `namespaces/team/webhooks/${hook.id}/deliveries`, undefined, 'mia:password-mia')).json().deliveries;
  assert.equal(log.length, 1);
  assert.equal(log[0]!.attempts, 3);
  assert.equal(log[0]!.lastStatus, 500);
  assert.match(log[0]!.lastError, /HTTP 500: receiver is broken/);
  assert.equal(rx.got.length, 3, 'one request per attempt, none after it failed');
  assert.equal(new Set(rx.got.map((r) => r.headers['x-kiln-delivery'])).size, 1, 'the same delivery each time');
  assert.ok(rx.got.every((r) => r.body.equals(rx.got[0]!.body) && signed('k', r)), 'the same signed bytes each time');
  const cli = await registryCli(reg, ['webhook', 'deliveries', String(hook.id)]);
  assert.match(cli.stdout, /push\s+failed\s+3\s+500\s+HTTP 500/);
});

test('the queue survives a restart: a delivery pending while the receiver is down arrives after the registry starts again', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const config = testConfig(root);
  quick(config);
  config.webhooks.attempts = 1000;
  config.webhooks.backoff = 0.1;
  const port = await freePort();
  const quiet = { log: logger('error', () => {}) };
  let running = await serve(config, quiet);
  try {
    const hooks = webhookAdmin(running.registry.metadata, 'test', config.webhooks);
    const hook = await hooks.add('team', { url: `http://127.0.0.1:${port}/down`, secret: 'x', events: ['push'] });
    running.registry.webhooks.invalidate();
    const img = randomImage({ layers: 1 });
    const c = client(running.url);
    assert.equal((await pushImage(c, 'team/app', 'v1', img)).status, 201);
    await waitFor(async () => ((await hooks.deliveries(hook.id, 1))[0]?.attempts ?? 0) >= 1, 5000, 'a failed attempt');
    const before = (await hooks.deliveries(hook.id, 1))[0]!;
    assert.equal(before.status, 'pending');
    assert.match(before.lastError ?? '', /ECONNREFUSED/);
  } finally {
    await running.close();
  }
  const rx = await receiver(t, () => 200, port);
  running = await serve(config, quiet);
  try {
    await waitFor(async () => rx.got.length > 0, 10_000, 'the delivery after the restart');
    assert.equal(JSON.parse(rx.got[0]!.body.toString()).type, 'push');
  } finally {
    await running.close();
  }
});

test('a receiver that never answers does not hold up pushes', async (t) => {
  const rx = await receiver(t, () => undefined);
  const reg = await startRegistry(t, (c) => {
    quick(c);
    c.webhooks.timeout = 60;
    c.webhooks.concurrency = 1;
  });
  await webhookAdmin(reg.registry.metadata, 'test', reg.config.webhooks).add('team', { url: rx.url, secret: 'x' });
  reg.registry.webhooks.invalidate();
  const c = reg.client();
  assert.equal((await pushImage(c, 'team/app', 'v1', randomImage({ layers: 1 }))).status, 201);
  await waitFor(async () => rx.hanging.length > 0, 5000, 'the receiver to hold a delivery');
  for (let i = 2; i <= 4; i++) assert.equal((await pushImage(c, 'team/app', `v${i}`, randomImage({ layers: 1 }))).status, 201);
  assert.equal(rx.hanging.length, 1, 'the receiver still holds the first delivery, unanswered, while the pushes completed');
  assert.equal(rx.hanging[0]!.writableEnded, false);
});

test('webhook URLs the configuration does not allow are refused, naming the URL; at send time too, after DNS resolution', async (t) => {
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    quick(c);
    c.webhooks.allowLoopback = false;
  });
  await admin(reg.registry.metadata, 'test').addUser('root', 'password-root', true);
  const ftp = await registryCli(reg, ['webhook', 'add', 'team', 'ftp://example.com/x', '--secret', 's']);
  assert.notEqual(ftp.code, 0);
  assert.match(ftp.stderr, /webhook URL "ftp:\/\/example\.com\/x": only http and https are allowed/);
  const meta = await api(reg, 'POST', 'namespaces/team/webhooks', { url: 'http://169.254.169.254/latest/meta-data/', secret: 's' });
  assert.equal(meta.status, 400);
  assert.match(meta.text, /webhook URL \\"http:\/\/169\.254\.169\.254\/latest\/meta-data\/\\": 169\.254\.169\.254 is a cloud metadata address/);
  const linkLocal = await api(reg, 'POST', 'namespaces/team/webhooks', { url: 'http://[fe80::1]:8080/', secret: 's' });
  assert.equal(linkLocal.status, 400);
  assert.match(linkLocal.text, /webhook URL \\"http:\/\/\[fe80::1\]:8080\/\\": fe80::1 is a link-local address/);
  const mapped = await api(reg, 'POST', 'namespaces/team/webhooks', { url: 'http://[::ffff:169.254.169.254]/', secret: 's' });
  assert.equal(mapped.status, 400, 'an IPv4-mapped metadata address is the metadata address');
  const loop = await api(reg, 'POST', 'namespaces/team/webhooks', { url: 'http://127.0.0.1:9/', secret: 's' });
  assert.match(loop.text, /127\.0\.0\.1 is a loopback address \(webhooks\.allowLoopback is false\)/, 'this registry refuses loopback');
  assert.equal((await reg.registry.metadata.webhooks()).length, 0, 'nothing stored');

  // Added where loopback is allowed (as the CLI's default configuration does), refused by the server's rules when sent.
  const rx = await receiver(t);
  const hook = await webhookAdmin(reg.registry.metadata, 'test', { ...reg.config.webhooks, allowLoopback: true }).add('team', { url: rx.url.replace('127.0.0.1', 'localhost'), secret: 's', events: ['push'] });
  reg.registry.webhooks.invalidate();
  const c = reg.client({ user: 'root', password: 'password-root' });
  assert.equal((await pushImage(c, 'team/app', 'v1', randomImage({ layers: 1 }))).status, 201);
  let d: Awaited<ReturnType<typeof reg.registry.metadata.deliveries>>[number] | undefined;
  await waitFor(async () => (d = (await reg.registry.metadata.deliveries(hook.id, 1))[0])?.status === 'failed', 10_000, 'the delivery to be refused');
  assert.match(d!.lastError ?? '', /localhost resolves to (127\.0\.0\.1|::1) is a loopback address/);
  assert.equal(rx.got.length, 0, 'nothing was sent');
});

test('the address rules: private networks, link-local and metadata addresses, IPv4-mapped forms, the allow-list; base names without their host', async () => {
  const strict = addressPolicy({ allowLoopback: true, allowPrivateNetworks: false, allow: [] });
  assert.match(strict.refusal('10.1.2.3') ?? '', /private network/);
  assert.match(strict.refusal('fd12::1') ?? '', /private network/);
  assert.match(strict.refusal('169.254.10.1') ?? '', /link-local/);
  assert.match(strict.refusal('::ffff:a9fe:a9fe') ?? '', /169\.254\.169\.254 is a cloud metadata address/);
  assert.match(strict.refusal('fd00:ec2::254') ?? '', /cloud metadata/);
  assert.match(strict.refusal('224.0.0.1') ?? '', /not a unicast/);
  assert.equal(strict.refusal('127.0.0.1'), undefined);
  assert.equal(strict.refusal('93.184.216.34'), undefined);
  const open = addressPolicy({ allowLoopback: false, allowPrivateNetworks: true, allow: ['169.254.169.254', 'fe80::/64'] });
  assert.equal(open.refusal('10.1.2.3'), undefined);
  assert.equal(open.refusal('169.254.169.254'), undefined, 'listed: allowed');
  assert.equal(open.refusal('fe80::1'), undefined);
  assert.match(open.refusal('169.254.0.1') ?? '', /link-local/, 'allowPrivateNetworks does not open link-local');
  assert.match(open.refusal('::1') ?? '', /loopback/);
  assert.throws(() => addressPolicy({ allowLoopback: true, allowPrivateNetworks: false, allow: ['10.0.0.0/33'] }), /webhooks\.allow\[0\]: "10\.0\.0\.0\/33" is not an address or a CIDR range/);
  assert.deepEqual(baseNameParts('registry.example.com:5000/team/base:3.19@sha256:' + 'a'.repeat(64)), { repository: 'team/base', tag: '3.19' });
  assert.deepEqual(baseNameParts('docker.io/library/alpine'), { repository: 'library/alpine' });
  assert.deepEqual(baseNameParts('localhost/base:1'), { repository: 'base', tag: '1' });
});
