import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { admin } from '../../../src/registry/server/admin.js';
import { indexOf, pushBlob, pushImage, randomImage, sha256, startRegistry, tokenKeyPem, type Client, type TestRegistry } from './support.js';

// Token authentication (Docker registry token spec), Harbor-like roles per namespace, robot
// accounts, anonymous pull, rate-limited logins and the audit log.

const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
const pw = (name: string) => `password-${name}`;
const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

async function authRegistry(t: Parameters<typeof startRegistry>[0], tweak: Parameters<typeof startRegistry>[1] = () => {}): Promise<TestRegistry> {
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    tweak(c);
  });
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', pw('root'), true);
  for (const [user, role] of [
    ['ada', 'admin'],
    ['max', 'maintainer'],
    ['dev', 'developer'],
    ['gus', 'guest'],
    ['lim', 'limited-guest'],
  ] as const) {
    await ops.addUser(user, pw(user), false);
    await ops.grant(user, 'team', role);
  }
  await ops.addUser('out', pw('out'), false);
  return reg;
}

type Who = 'root' | 'ada' | 'max' | 'dev' | 'gus' | 'lim' | 'out' | 'anonymous';
const who: Who[] = ['root', 'ada', 'max', 'dev', 'gus', 'lim', 'out', 'anonymous'];
type Act = 'pull' | 'push' | 'promote' | 'promote-api' | 'delete-tag' | 'delete-manifest' | 'members-read' | 'members-write' | 'robots' | 'audit-read';

// Harbor's project roles (goharbor.io, "User Permissions By Role"), as the issue refines them.
const allowed: Record<Act, Who[]> = {
  pull: ['root', 'ada', 'max', 'dev', 'gus', 'lim'],
  push: ['root', 'ada', 'max', 'dev'],
  promote: ['root', 'ada', 'max'],
  'promote-api': ['root', 'ada', 'max'],
  'delete-tag': ['root', 'ada', 'max'],
  'delete-manifest': ['root', 'ada', 'max'],
  'members-read': ['root', 'ada', 'max', 'dev', 'gus'],
  'members-write': ['root', 'ada'],
  robots: ['root', 'ada'],
  'audit-read': ['root', 'ada', 'max', 'dev', 'gus'],
};

test('every role against every action on a protected namespace: allowed exactly as the role says', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  const base = randomImage();
  assert.equal((await pushImage(rootC, 'team/app', 'v1', base)).status, 201);
  const other = randomImage();
  assert.equal((await pushImage(rootC, 'team/app', other.digest, other)).status, 201);

  const clientOf = (w: Who): Client => (w === 'anonymous' ? reg.client() : reg.client({ user: w, password: pw(w) }));
  const mgmt = (w: Who, method: string, path: string, body?: unknown) =>
    fetch(reg.url + path, { method, headers: { ...(w === 'anonymous' ? {} : { authorization: basic(w, pw(w)) }), 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

  const attempt: Record<Act, (w: Who, c: Client) => Promise<number>> = {
    pull: async (_w, c) => (await c.req('GET', '/v2/team/app/manifests/v1', { headers: { accept } })).status,
    push: async (w, c) => (await pushImage(c, 'team/app', `new-${w}`, randomImage({ layers: 1 })).catch(() => ({ status: 401 }))).status,
    promote: async (_w, c) => {
      const s = (await c.req('PUT', '/v2/team/app/manifests/v1', { body: other.manifest, headers: { 'content-type': other.mediaType } })).status;
      if (s === 201) assert.equal((await rootC.req('PUT', '/v2/team/app/manifests/v1', { body: base.manifest, headers: { 'content-type': base.mediaType } })).status, 201);
      return s;
    },
    'promote-api': async (w) => (await mgmt(w, 'POST', '/kiln/v1/promote', { source: 'team/app:v1', destination: `team/app:rc-${w}` })).status,
    'delete-tag': async (w, c) => {
      assert.equal((await rootC.req('PUT', `/v2/team/app/manifests/del-${w}`, { body: base.manifest, headers: { 'content-type': base.mediaType } })).status, 201);
      return (await c.req('DELETE', `/v2/team/app/manifests/del-${w}`)).status;
    },
    'delete-manifest': async (_w, c) => {
      const img = randomImage({ layers: 1 });
      assert.equal((await pushImage(rootC, 'team/app', img.digest, img)).status, 201);
      return (await c.req('DELETE', `/v2/team/app/manifests/${img.digest}`)).status;
    },
    'members-read': async (w) => (await mgmt(w, 'GET', '/kiln/v1/namespaces/team/members')).status,
    'members-write': async (w) => {
      const s = (await mgmt(w, 'PUT', '/kiln/v1/namespaces/team/members/out', { role: 'guest' })).status;
      if (s === 200) assert.equal((await mgmt('root', 'DELETE', '/kiln/v1/namespaces/team/members/out')).status, 200);
      return s;
    },
    robots: async (w) => (await mgmt(w, 'POST', '/kiln/v1/namespaces/team/robots', { name: `ci-${w}`, actions: ['pull'] })).status,
    'audit-read': async (w) => (await mgmt(w, 'GET', '/kiln/v1/audit?namespace=team')).status,
  };

  const wrong: string[] = [];
  for (const act of Object.keys(attempt) as Act[]) {
    for (const w of who) {
      const status = await attempt[act](w, clientOf(w));
      const ok = status >= 200 && status < 300;
      const expect = allowed[act].includes(w);
      if (ok !== expect) wrong.push(`${w} ${act}: ${status}, expected ${expect ? 'allowed' : 'denied'}`);
      else if (!ok) assert.ok([401, 403].includes(status), `${w} ${act}: denied with ${status}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('POST /kiln/v1/promote copies exactly the source manifest to a tag of another repository, index, children and blobs, through the same rules as /v2/', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  const [a, b] = [randomImage(), randomImage({ docker: true })];
  for (const img of [a, b]) assert.equal((await pushImage(rootC, 'team/build', img.digest, img)).status, 201);
  const index = indexOf([a, b]);
  assert.equal((await rootC.req('PUT', '/v2/team/build/manifests/rc1', { body: index.body, headers: { 'content-type': index.mediaType } })).status, 201);
  const promote = (user: Who, body: unknown) =>
    fetch(`${reg.url}/kiln/v1/promote`, { method: 'POST', headers: { authorization: basic(user, pw(user)), 'content-type': 'application/json' }, body: JSON.stringify(body) });

  const r = await promote('max', { source: 'team/build:rc1', destination: 'team/release:1.0' });
  assert.equal(r.status, 200, await r.clone().text());
  assert.deepEqual(await r.json(), { destination: 'team/release:1.0', digest: index.digest });
  const got = await rootC.req('GET', '/v2/team/release/manifests/1.0', { headers: { accept } });
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('docker-content-digest'), index.digest);
  assert.ok(got.body.equals(index.body), 'the same bytes');
  for (const img of [a, b]) {
    assert.equal((await rootC.req('GET', `/v2/team/release/manifests/${img.digest}`, { headers: { accept: img.mediaType } })).status, 200, 'each child manifest is in the destination');
    for (const blob of [img.config, ...img.layers]) assert.equal((await rootC.req('HEAD', `/v2/team/release/blobs/${sha256(blob)}`)).status, 200, 'and its blobs');
  }
  // A digest source pins exactly that manifest; a tag moved meanwhile does not leak.
  assert.equal((await promote('max', { source: `team/build@${a.digest}`, destination: 'team/release:1.0' })).status, 200);
  assert.equal((await rootC.req('GET', '/v2/team/release/manifests/1.0', { headers: { accept } })).headers.get('docker-content-digest'), a.digest);

  // The same rules as /v2/: a developer may push, not promote.
  const dev = await promote('dev', { source: 'team/build:rc1', destination: 'team/release:dev' });
  assert.equal(dev.status, 403);
  assert.match(await dev.text(), /promote on team\/release is not allowed for dev/);
  // Bad input names the field.
  for (const [body, why] of [
    [{ source: 'team/build:rc1' }, /destination: expected/],
    [{ source: 'team/build@sha256:abc', destination: 'team/release:x' }, /source: \\"sha256:abc\\" is not a digest/],
    [{ source: 'Team/Build:rc1', destination: 'team/release:x' }, /source: \\"Team\/Build\\" is not a repository name/],
    [{ source: 'team/build:rc1', destination: 'team/release@sha256:' + 'a'.repeat(64) }, /destination: give a tag/],
    [{ source: 'team/build:nope', destination: 'team/release:x' }, /MANIFEST_UNKNOWN/],
  ] as const) {
    const bad = await promote('root', body);
    assert.ok([400, 404].includes(bad.status), `${JSON.stringify(body)}: ${bad.status}`);
    assert.match(await bad.text(), why);
  }
  await reg.registry.audit.flush();
  const events = await reg.registry.metadata.listAudit({ action: 'promote', limit: 10 });
  assert.deepEqual(events.map((e) => [e.actor, e.repository, e.reference, e.digest, e.detail]).reverse(), [
    ['max', 'team/release', '1.0', index.digest, `from team/build:rc1@${index.digest}`],
    ['max', 'team/release', '1.0', a.digest, `from team/build@${a.digest}`],
  ]);
});

test('tokens with a tampered signature, the wrong audience, an expiry in the past or a scope for another repository are refused', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  assert.equal((await pushImage(rootC, 'team/app', 'v1', randomImage())).status, 201);
  const tokenFor = async (scope: string) => {
    const r = await fetch(`${reg.url}/token?service=kiln-registry&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic('dev', pw('dev')) } });
    assert.equal(r.status, 200);
    return ((await r.json()) as { token: string }).token;
  };
  const get = (token: string) => fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${token}`, accept } });

  const good = await tokenFor('repository:team/app:pull');
  assert.equal((await get(good)).status, 200, 'a valid token works');

  const [h, p, s] = good.split('.');
  const flipped = s!.slice(0, 10) + (s![10] === 'A' ? 'B' : 'A') + s!.slice(11);
  assert.equal((await get(`${h}.${p}.${flipped}`)).status, 401, 'tampered signature');
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'root' })).toString('base64url');
  assert.equal((await get(`${h}.${forged}.${s}`)).status, 401, 'tampered payload');

  const key = createPrivateKey(await tokenKeyPem(reg));
  const access = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: { aud?: string; exp?: number; iss?: string }) =>
    new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(claims.iss ?? reg.config.auth.issuer)
      .setSubject('dev')
      .setAudience(claims.aud ?? reg.config.auth.service)
      .setIssuedAt(now - 600)
      .setExpirationTime(claims.exp ?? now + 300)
      .sign(key);
  assert.equal((await get(await sign({}))).status, 200, 'a token we signed ourselves works (the test signs correctly)');
  assert.equal((await get(await sign({ aud: 'another-registry' }))).status, 401, 'wrong audience');
  assert.equal((await get(await sign({ exp: now - 120 }))).status, 401, 'expired');
  assert.equal((await get(await sign({ iss: 'someone-else' }))).status, 401, 'wrong issuer');
  const r = await get(await tokenFor('repository:team/other:pull'));
  assert.equal(r.status, 401, 'scope for another repository');
  assert.match(r.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
  assert.match(r.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull"/);
});

test('the 401 challenge names realm, service and scope, as docker and podman expect', async (t) => {
  const reg = await authRegistry(t);
  const r = await fetch(`${reg.url}/v2/team/app/manifests/v1`);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="kiln-registry",scope="repository:team/app:pull"`);
  assert.equal(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code, 'UNAUTHORIZED');
  const ping = await fetch(`${reg.url}/v2/`);
  assert.equal(ping.status, 401);
  assert.equal(ping.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="kiln-registry"`);
});

test('wrong passwords are refused, and rate-limited with 429 and Retry-After', async (t) => {
  const reg = await authRegistry(t, (c) => (c.auth.rateLimit = { failures: 3, window: 60 }));
  const tok = (password: string) => fetch(`${reg.url}/token?service=kiln-registry`, { headers: { authorization: basic('dev', password) } });
  for (let i = 0; i < 3; i++) {
    const r = await tok('wrong');
    assert.equal(r.status, 401);
    assert.equal(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code, 'UNAUTHORIZED');
  }
  const limited = await tok(pw('dev'));
  assert.equal(limited.status, 429, 'even the right password waits out the window');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.equal(((await limited.json()) as { errors: { code: string }[] }).errors[0]!.code, 'TOOMANYREQUESTS');
  const other = await fetch(`${reg.url}/token?service=kiln-registry`, { headers: { authorization: basic('max', pw('max')), 'x-forwarded-for': 'ignored' } });
  assert.equal(other.status, 429, 'the client address is limited too');
});

test('robot accounts get their fixed actions on their namespace until they expire', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  assert.equal((await pushImage(rootC, 'team/app', 'v1', randomImage())).status, 201);
  assert.equal((await pushImage(rootC, 'else/app', 'v1', randomImage())).status, 201);
  const ops = admin(reg.registry.metadata, 'test');
  const ci = await ops.addRobot('team', 'ci', ['pull', 'push'], 3600);
  assert.equal(ci.name, 'robot$team+ci');
  const robot = reg.client({ user: ci.name, password: ci.secret });
  assert.equal((await robot.req('GET', '/v2/team/app/manifests/v1', { headers: { accept } })).status, 200);
  assert.equal((await pushImage(robot, 'team/app', 'from-ci', randomImage({ layers: 1 }))).status, 201);
  assert.ok([401, 403].includes((await robot.req('DELETE', '/v2/team/app/manifests/from-ci')).status), 'delete was not granted');
  assert.equal((await robot.req('GET', '/v2/else/app/manifests/v1', { headers: { accept } })).status, 401, 'other namespace');
  const old = await ops.addRobot('team', 'old', ['pull'], 0);
  await new Promise((r) => setTimeout(r, 1100));
  const tr = await fetch(`${reg.url}/token?service=kiln-registry&scope=repository:team/app:pull`, { headers: { authorization: basic(old.name, old.secret) } });
  assert.equal(tr.status, 401, 'expired robot');
  const bad = await fetch(`${reg.url}/token?service=kiln-registry`, { headers: { authorization: basic(ci.name, 'not-the-secret') } });
  assert.equal(bad.status, 401);
});

test('anonymous pull works on a public namespace only, and never push', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  assert.equal((await pushImage(rootC, 'pub/app', 'v1', randomImage())).status, 201);
  assert.equal((await pushImage(rootC, 'team/app', 'v1', randomImage())).status, 201);
  await admin(reg.registry.metadata, 'test').setNamespace('pub', { public: true });
  const anonymous = {
    req: async (m: string, path: string, o?: Parameters<Client['req']>[2]) => {
      const first = await fetch(reg.url + path, { method: m, headers: o?.headers });
      const ch = first.headers.get('www-authenticate') ?? '';
      const scope = /scope="([^"]+)"/.exec(ch)?.[1];
      const tr = await fetch(`${reg.url}/token?service=kiln-registry&scope=${encodeURIComponent(scope ?? '')}`);
      const token = ((await tr.json()) as { token: string }).token;
      return fetch(reg.url + path, { method: m, headers: { ...o?.headers, authorization: `Bearer ${token}` } });
    },
  };
  assert.equal((await anonymous.req('GET', '/v2/pub/app/manifests/v1', { headers: { accept } })).status, 200);
  assert.equal((await anonymous.req('GET', '/v2/team/app/manifests/v1', { headers: { accept } })).status, 401);
  assert.equal((await anonymous.req('POST', '/v2/pub/app/blobs/uploads/')).status, 401);
});

test('OAuth2 password and refresh-token grants return tokens that work', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  assert.equal((await pushImage(rootC, 'team/app', 'v1', randomImage())).status, 201);
  const form = (f: Record<string, string>) =>
    fetch(`${reg.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() });
  const r = await form({ grant_type: 'password', username: 'gus', password: pw('gus'), service: 'kiln-registry', scope: 'repository:team/app:pull,push', access_type: 'offline', client_id: 'test' });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { access_token: string; refresh_token: string; scope: string; expires_in: number };
  assert.equal(body.scope, 'repository:team/app:pull', 'only the allowed actions are granted');
  assert.ok(body.refresh_token);
  const get = (tok: string) => fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${tok}`, accept } });
  assert.equal((await get(body.access_token)).status, 200);
  assert.equal((await get(body.refresh_token)).status, 401, 'a refresh token is not an access token');
  const r2 = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'kiln-registry', scope: 'repository:team/app:pull', client_id: 'test' });
  assert.equal(r2.status, 200);
  assert.equal((await get(((await r2.json()) as { access_token: string }).access_token)).status, 200);
  assert.equal((await form({ grant_type: 'password', username: 'gus', password: 'nope-nope', service: 'kiln-registry' })).status, 401);
});

test('Basic credentials directly on /v2/ work when auth.basic is on', async (t) => {
  const reg = await authRegistry(t, (c) => (c.auth.basic = true));
  const rootC = reg.client({ user: 'root', password: pw('root') });
  assert.equal((await pushImage(rootC, 'team/app', 'v1', randomImage())).status, 201);
  assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { authorization: basic('lim', pw('lim')), accept } })).status, 200);
  assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { method: 'DELETE', headers: { authorization: basic('lim', pw('lim')) } })).status, 403);
  assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { authorization: basic('lim', 'wrong-password'), accept } })).status, 401);
  // Basic credentials come with every request: a failure is audited, a success is not (a sign-in
  // row per request would bury the log); a token request is a sign-in and is audited.
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { authorization: basic('lim', pw('lim')), accept } })).status, 200);
  const signIns = async () => (await reg.registry.audit.flush(), await reg.registry.metadata.listAudit({ limit: 100 })).filter((e) => e.actor === 'lim' && e.action.startsWith('sign-in')).map((e) => e.action);
  assert.deepEqual(await signIns(), ['sign-in-failed']);
  assert.equal((await fetch(`${reg.url}/token?service=kiln-registry&scope=repository:team/app:pull`, { headers: { authorization: basic('lim', pw('lim')) } })).status, 200);
  assert.deepEqual((await signIns()).sort(), ['sign-in', 'sign-in-failed']);
});

test('the audit log records who pushed, pulled, deleted and changed roles, with digests', async (t) => {
  const reg = await authRegistry(t);
  const dev = reg.client({ user: 'dev', password: pw('dev') });
  const img = randomImage();
  assert.equal((await pushImage(dev, 'team/app', 'v1', img)).status, 201);
  for (let i = 0; i < 3; i++) assert.equal((await dev.req('GET', '/v2/team/app/manifests/v1', { headers: { accept } })).status, 200);
  const max = reg.client({ user: 'max', password: pw('max') });
  assert.equal((await max.req('DELETE', '/v2/team/app/manifests/v1')).status, 202);
  assert.equal((await fetch(`${reg.url}/kiln/v1/namespaces/team/members/out`, { method: 'PUT', headers: { authorization: basic('ada', pw('ada')) }, body: JSON.stringify({ role: 'guest' }) })).status, 200);
  const r = await fetch(`${reg.url}/kiln/v1/audit?namespace=team`, { headers: { authorization: basic('gus', pw('gus')) } });
  assert.equal(r.status, 200);
  const events = ((await r.json()) as { events: { actor: string; action: string; digest?: string; count: number; detail?: string }[] }).events;
  const find = (action: string, actor: string) => events.find((e) => e.action === action && e.actor === actor);
  assert.equal(find('push', 'dev')?.digest, img.digest);
  // Identical pulls within a second share a row; on a loaded machine they may span two rows.
  const pulls = events.filter((e) => e.action === 'pull' && e.actor === 'dev');
  assert.equal(pulls.reduce((n, e) => n + e.count, 0), 3, 'three pulls recorded');
  assert.ok(pulls.length <= 2, 'identical pulls are coalesced');
  assert.equal(find('delete-tag', 'max')?.digest, img.digest);
  assert.equal(find('role-grant', 'ada')?.detail, 'out guest');
});

test('a cross-repository mount is challenged for push on the target and pull on the source; a token for both mounts, one without pull on the source uploads instead', async (t) => {
  const reg = await authRegistry(t);
  const rootC = reg.client({ user: 'root', password: pw('root') });
  const layer = Buffer.from(`layer to mount ${Date.now()}`);
  const digest = await pushBlob(rootC, 'team/src', layer);
  const secret = Buffer.from(`layer dev may not pull ${Date.now()}`);
  const secretDigest = await pushBlob(rootC, 'else/src', secret);

  const mountPath = (from: string, d: string) => `/v2/team/dst/blobs/uploads/?mount=${d}&from=${from}`;
  const first = await fetch(reg.url + mountPath('team/src', digest), { method: 'POST' });
  assert.equal(first.status, 401);
  // distribution registry/handlers/app.go: the access records are the target's and pull on `from`,
  // written in one scope parameter separated by a space.
  const challenge = first.headers.get('www-authenticate');
  assert.equal(challenge, `Bearer realm="${reg.url}/token",service="kiln-registry",scope="repository:team/dst:push,pull repository:team/src:pull"`);
  const detail = ((await first.json()) as { errors: { detail: unknown }[] }).errors[0]!.detail;
  assert.deepEqual(detail, [
    { Type: 'repository', Name: 'team/dst', Action: 'push,pull' },
    { Type: 'repository', Name: 'team/src', Action: 'pull' },
  ]);

  const tokenFor = async (scopes: string[]) => {
    const u = new URL(`${reg.url}/token?service=kiln-registry`);
    for (const s of scopes) u.searchParams.append('scope', s);
    const r = await fetch(u, { headers: { authorization: basic('dev', pw('dev')) } });
    assert.equal(r.status, 200);
    return ((await r.json()) as { token: string }).token;
  };
  const post = (path: string, token: string) => fetch(reg.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const getBlob = (d: string, token: string) => fetch(`${reg.url}/v2/team/dst/blobs/${d}`, { headers: { authorization: `Bearer ${token}` } });

  // A client that asks for exactly what the challenge names (one scope parameter, as given) mounts.
  const both = await tokenFor([/scope="([^"]+)"/.exec(challenge!)![1]!]);
  const mounted = await post(mountPath('team/src', digest), both);
  assert.equal(mounted.status, 201);
  assert.equal(mounted.headers.get('location'), `/v2/team/dst/blobs/${digest}`);
  assert.equal(mounted.headers.get('docker-content-digest'), digest);
  const got = await getBlob(digest, both);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), layer);

  // Without pull on the source, the same request is an ordinary upload session (distribution-spec
  // end-11: "the registry SHOULD fall back to an upload session"), and the blob stays where it was.
  for (const [label, token] of [
    ['a token for the target only', await tokenFor(['repository:team/dst:push,pull'])],
    ['a token that asked for pull on a source the user may not pull', await tokenFor(['repository:team/dst:push,pull', 'repository:else/src:pull'])],
  ] as const) {
    const r = await post(mountPath('else/src', secretDigest), token);
    assert.equal(r.status, 202, label);
    assert.match(r.headers.get('location') ?? '', /^\/v2\/team\/dst\/blobs\/uploads\/[^/?]+$/, label);
    assert.equal((await getBlob(secretDigest, token)).status, 404, `${label}: the source's blob is not in the target`);
  }
});

test('a mount with a from that is not a repository name is challenged for the target only, and refused as NAME_INVALID once authorized', async (t) => {
  const reg = await authRegistry(t);
  const path = `/v2/team/dst/blobs/uploads/?mount=sha256:${'a'.repeat(64)}&from=${encodeURIComponent('x",error="forged')}`;
  const r = await fetch(reg.url + path, { method: 'POST' });
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="kiln-registry",scope="repository:team/dst:push,pull"`);
  const dev = reg.client({ user: 'dev', password: pw('dev') });
  const authorized = await dev.req('POST', path);
  assert.equal(authorized.status, 400);
  assert.equal(authorized.json<{ errors: { code: string }[] }>().errors[0]!.code, 'NAME_INVALID');
});
