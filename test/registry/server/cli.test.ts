import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kiln, kilnMain, kilnOk, tempDir } from '../../support/env.js';
import { client, freePort, pushImage, randomImage, waitFor } from './support.js';

// The command line: offline user/role/robot/namespace management against a registry root, the
// YAML configuration, serve with JSON request logs, /healthz and /metrics, and gc.

test('kiln registry user and role commands manage users offline, and the server honours them', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'reg');
  await kilnOk(dir, ['registry', 'user', 'add', 'alice', '--password-stdin', '--admin', '--root', root], { input: 'alice-password\n' });
  await kilnOk(dir, ['registry', 'user', 'add', 'bob', '--password-stdin', '--root', root], { input: 'bob-password\n' });
  const dup = await kiln(dir, ['registry', 'user', 'add', 'bob', '--password-stdin', '--root', root], { input: 'bob-password\n' });
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /exists/);
  await kilnOk(dir, ['registry', 'role', 'grant', 'bob', 'team', 'developer', '--root', root]);
  const bad = await kiln(dir, ['registry', 'role', 'grant', 'bob', 'team', 'owner', '--root', root]);
  assert.match(bad.stderr, /unknown role/);
  assert.match(await kilnOk(dir, ['registry', 'role', 'list', '--root', root]), /team\s+bob\s+developer/);
  assert.match(await kilnOk(dir, ['registry', 'user', 'list', '--root', root]), /alice\s+yes[\s\S]*bob\s+no/);
  await kilnOk(dir, ['registry', 'user', 'passwd', 'bob', '--password-stdin', '--root', root], { input: 'bob-new-password\n' });
  const robot = await kilnOk(dir, ['registry', 'robot', 'add', 'team', 'ci', '--actions', 'pull,push', '--expires', '30d', '--root', root]);
  assert.match(robot, /name: robot\$team\+ci\nsecret: \S+/);
  await kilnOk(dir, ['registry', 'namespace', 'set', 'team', '--public', '--root', root]);
  assert.match(await kilnOk(dir, ['registry', 'namespace', 'list', '--root', root]), /team\s+yes/);

  const port = await freePort();
  // Killed however the test ends: t.signal aborts when the test times out, which may skip its after
  // hooks, and a live child with open pipes would keep this file's process (and the run) from exiting.
  const server = spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`, '--auth'], { stdio: ['ignore', 'pipe', 'pipe'], signal: t.signal, killSignal: 'SIGKILL' });
  server.on('error', () => {});
  t.after(() => void server.kill('SIGKILL'));
  let logs = '';
  server.stdout.on('data', (c) => (logs += c));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, 15_000, 'serve');
  const bob = client(url, { user: "bob", password: "bob-new-password" });
  assert.equal((await pushImage(bob, 'team/app', 'v1', randomImage())).status, 201);
  const denied = (p: Promise<{ status: number }>) => p.then((r) => r.status, (e: Error) => (/: 401 /.test(e.message) ? 401 : 0));
  assert.equal(await denied(pushImage(client(url, { user: 'bob', password: 'bob-password' }), 'team/app', 'v2', randomImage())), 401, 'old password');
  await kilnOk(dir, ['registry', 'role', 'revoke', 'bob', 'team', '--root', root]);
  assert.equal(await denied(pushImage(client(url, { user: 'bob', password: 'bob-new-password' }), 'team/app', 'v3', randomImage())), 401, 'role revoked while serving');
  await kilnOk(dir, ['registry', 'user', 'del', 'bob', '--root', root]);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /kiln_registry_http_requests_total\{route="manifest",method="PUT",status="201"\} 1/);
  assert.match(metrics, /kiln_registry_uploads_in_progress 0/);
  assert.match(metrics, /kiln_registry_storage_bytes \d+/);
  await waitFor(async () => logs.includes('"path":"/v2/team/app/manifests/v1"'), 5000, 'request log');
  const line = JSON.parse(logs.split('\n').find((l) => l.includes('"method":"PUT"') && l.includes('/manifests/v1') && l.includes('"status":201'))!);
  assert.equal(line.status, 201);
  assert.equal(line.user, 'bob');
  assert.ok(line.duration_ms >= 0 && typeof line.bytes === 'number');
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));

  const audit = await kilnOk(dir, ['registry', 'audit', '--namespace', 'team', '--format', 'json', '--root', root]);
  const actions = audit.trim().split('\n').map((l) => JSON.parse(l).action);
  for (const a of ['push', 'role-grant', 'role-revoke', 'robot-add', 'namespace-set']) assert.ok(actions.includes(a), `${a} in ${actions}`);
});

test('a YAML config file sets address, root, auth and limits; unknown keys are refused', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const port = await freePort();
  const cfg = join(dir, 'registry.yaml');
  await writeFile(cfg, `root: ./data\nhttp:\n  addr: 127.0.0.1:${port}\nlimits:\n  manifestSize: 1KiB\nlog:\n  level: warn\ngc:\n  interval: 0\n`);
  const server = spawn(process.execPath, [kilnMain, 'registry', 'serve', '--config', cfg], { stdio: 'ignore' });
  t.after(() => void server.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/v2/`)).status === 200, 15_000, 'serve');
  const r = await pushImage(client(url), 'x/y', 'big', randomImage({ layers: 30 }));
  assert.equal(r.status, 413, 'limits.manifestSize applies');
  await writeFile(cfg, `htp:\n  addr: 1\n`);
  const bad = await kiln(dir, ['registry', 'serve', '--config', cfg]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /htp: unknown setting/);
});

test('kiln registry gc --dry-run reports and gc removes untagged content', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'reg');
  const port = await freePort();
  const server = spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`], { stdio: 'ignore' });
  t.after(() => void server.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/v2/`)).status === 200, 15_000, 'serve');
  const c = client(url);
  const img = randomImage();
  await pushImage(c, 'x/y', 'v1', img);
  await c.req('DELETE', `/v2/x/y/manifests/v1`);
  const dry = await kilnOk(dir, ['registry', 'gc', '--dry-run', '--grace', '0s', '--root', root]);
  assert.match(dry, /Would remove 1 manifests/);
  const real = await kilnOk(dir, ['registry', 'gc', '--grace', '0', '--root', root]);
  assert.match(real, /Removed 1 manifests, \d+ repository links, 3 blobs/);
  await waitFor(async () => (await c.req('GET', `/v2/x/y/blobs/${JSON.parse(img.manifest.toString()).config.digest}`)).status === 404, 5000, 'server sees the GC');
});
