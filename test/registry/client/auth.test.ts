import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk } from '../../support/env.js';
import { Store } from '../../../src/store/store.js';
import { pull } from '../../../src/registry/client/index.js';
import { authRegistry, hostOf, makeImage, seedImage, startProxy, testEnv, client } from './support.js';

// Token authentication against kiln's registry, and credentials where docker and podman keep them.

test('login checks the password and writes it to ~/.docker/config.json (0600); push and pull then use it, and the password shows nowhere', async (t) => {
  const reg = await authRegistry(t, 'dev', 's3cret-pw');
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  const login = await kiln(e.root, ['login', host, '-u', 'dev', '--password-stdin'], { env: e.env, input: 's3cret-pw\n' });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /^Login Succeeded$/m);
  const path = join(e.env.HOME!, '.docker', 'config.json');
  const config = JSON.parse(await readFile(path, 'utf8'));
  assert.equal(Buffer.from(config.auths[host].auth, 'base64').toString(), 'dev:s3cret-pw');
  assert.equal((await stat(path)).mode & 0o777, 0o600);

  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  await kilnOk(e.root, ['tag', 'busybox', `${host}/team/busybox:1`], { env: e.env });
  const push = await kiln(e.root, ['push', `${host}/team/busybox:1`], { env: e.env });
  assert.equal(push.code, 0, push.stderr);
  const mount = await kiln(e.root, ['push', `${host}/team/busybox:1`, `${host}/team/copy:1`], { env: e.env });
  assert.match(mount.stdout, /Mounted from team\/busybox/, 'cross-repository mount with a token for both repositories');
  const pulled = await kiln(`${e.dir}/other`, ['pull', `${host}/team/busybox:1`], { env: e.env });
  assert.equal(pulled.code, 0, pulled.stderr);
  for (const r of [login, push, mount, pulled]) assert.ok(!(r.stdout + r.stderr).includes('s3cret-pw'));

  const out = await kilnOk(e.root, ['logout', host], { env: e.env });
  assert.match(out, new RegExp(`Removing login credentials for ${host}`));
  assert.equal(JSON.parse(await readFile(path, 'utf8')).auths[host], undefined);
  const denied = await kiln(`${e.dir}/third`, ['pull', `${host}/team/busybox:1`], { env: e.env });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /unauthorized.*kiln login/);
});

test('login with a wrong password fails, says so, and stores nothing', async (t) => {
  const reg = await authRegistry(t, 'dev', 'right-password');
  const e = await testEnv(t);
  const r = await kiln(e.root, ['login', hostOf(reg.url), '-u', 'dev', '--password-stdin'], { env: e.env, input: 'wrong-password' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /incorrect username or password/);
  await assert.rejects(readFile(join(e.env.HOME!, '.docker', 'config.json')), { code: 'ENOENT' });
  assert.ok(!r.stderr.includes('wrong-password'));
});

test('-p works but warns that the password is visible to other processes', async (t) => {
  const reg = await authRegistry(t, 'dev', 'pw-longer-one');
  const e = await testEnv(t);
  const r = await kiln(e.root, ['login', hostOf(reg.url), '-u', 'dev', '-p', 'pw-longer-one'], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Using --password via the CLI is insecure/);
});

test('a token is asked for once per scope and reused by later pulls in the same process', async (t) => {
  const reg = await authRegistry(t);
  for (const tag of ['a', 'b']) await seedImage(client(reg.url, { user: 'dev', password: 'dev-password' }), 'team/tok', tag, makeImage({ layers: 3 }));
  const proxy = await startProxy(t, reg.url);
  const e = await testEnv(t);
  await mkdir(join(e.env.HOME!, '.docker'), { recursive: true });
  await writeFile(join(e.env.HOME!, '.docker', 'config.json'), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('dev:dev-password').toString('base64') } } }));
  const store = await Store.open(e.root);
  await pull(store, `${proxy.host}/team/tok:a`, { env: e.env });
  await pull(store, `${proxy.host}/team/tok:b`, { env: e.env });
  const tokenRequests = proxy.log.filter((l) => l.path.startsWith('/token'));
  assert.equal(tokenRequests.length, 1, tokenRequests.map((l) => l.path).join('\n'));
  assert.match(decodeURIComponent(tokenRequests[0]!.path), /scope=repository:team\/tok:pull/);
  assert.equal(proxy.log.filter((l) => l.status === 401).length, 1, 'only the first /v2/ ping is answered 401');
});

test("podman's ${XDG_RUNTIME_DIR}/containers/auth.json is read", async (t) => {
  const reg = await authRegistry(t);
  await seedImage(client(reg.url, { user: 'dev', password: 'dev-password' }), 'team/podman', '1', makeImage());
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  const anonymous = await kiln(e.root, ['pull', `${host}/team/podman:1`], { env: e.env });
  assert.match(anonymous.stderr, /unauthorized/);
  await mkdir(join(e.env.XDG_RUNTIME_DIR!, 'containers'), { recursive: true });
  await writeFile(join(e.env.XDG_RUNTIME_DIR!, 'containers', 'auth.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('dev:dev-password').toString('base64') } } }));
  await kilnOk(e.root, ['pull', `${host}/team/podman:1`], { env: e.env });
});

test('with credsStore the secret goes to docker-credential-<helper> on stdin, never in its arguments; logout erases it', async (t) => {
  const reg = await authRegistry(t, 'dev', 'helper-secret');
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  const bin = join(e.dir, 'bin');
  await mkdir(bin);
  // A credential helper speaking the docker-credential-helpers protocol, keeping one entry in a file.
  await writeFile(
    join(bin, 'docker-credential-kilntest'),
    `#!/bin/sh
echo "$0 $*" >> "${e.dir}/helper-argv.log"
store="${e.dir}/helper-store.json"
case "$1" in
  store) cat > "$store" ;;
  get) read server; if [ -s "$store" ]; then cat "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server; rm -f "$store" ;;
esac
`,
  );
  await chmod(join(bin, 'docker-credential-kilntest'), 0o755);
  await mkdir(join(e.env.HOME!, '.docker'), { recursive: true });
  await writeFile(join(e.env.HOME!, '.docker', 'config.json'), JSON.stringify({ credsStore: 'kilntest' }));
  const env = { ...e.env, PATH: `${bin}:${process.env.PATH}` };
  const login = await kiln(e.root, ['login', host, '-u', 'dev', '--password-stdin'], { env, input: 'helper-secret' });
  assert.equal(login.code, 0, login.stderr);
  assert.ok(!login.stderr.includes('stored unencrypted'));
  const config = await readFile(join(e.env.HOME!, '.docker', 'config.json'), 'utf8');
  assert.ok(!config.includes(Buffer.from('dev:helper-secret').toString('base64')) && !config.includes('helper-secret'), 'no secret in config.json');
  assert.deepEqual(JSON.parse(await readFile(join(e.dir, 'helper-store.json'), 'utf8')), { ServerURL: host, Username: 'dev', Secret: 'helper-secret' });

  await seedImage(client(reg.url, { user: 'dev', password: 'helper-secret' }), 'team/helped', '1', makeImage());
  await kilnOk(e.root, ['pull', `${host}/team/helped:1`], { env });
  await kilnOk(e.root, ['logout', host], { env });
  await assert.rejects(readFile(join(e.dir, 'helper-store.json')), { code: 'ENOENT' });
  const argv = await readFile(join(e.dir, 'helper-argv.log'), 'utf8');
  assert.match(argv, /kilntest store/);
  assert.match(argv, /kilntest get/);
  assert.match(argv, /kilntest erase/);
  assert.ok(!argv.includes('helper-secret'));
});
