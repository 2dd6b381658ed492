import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { chromium } from 'playwright-core';
import argon2 from 'argon2';
import { admin } from '../../../src/registry/server/admin.js';
import { loadConfig, type RegistryConfig } from '../../../src/registry/server/config.js';
import { logger } from '../../../src/registry/server/log.js';
import { freePort, suiteScope } from '../../support/daemon.js';
import { fixture, tempDir } from '../../support/env.js';
import { startOp, type TestOp } from '../../support/oidc.js';
import { registryCli, startRegistry, type TestRegistry } from './support.js';

// Sign-in through OpenID Connect (issue 21) against a real OpenID Provider (panva's certified
// oidc-provider, in a process of its own): the browser flow in Chromium through the provider's
// login page, CLI secrets for docker/skopeo login, group bindings from the groups claim, the
// provider asked again (refresh) once auth.oidc.recheck has passed. Bad answers a real provider
// will not give (a wrong audience, an expired ID token, one signed by another key) come from a
// small fake provider in this process.

const run = promisify(execFile);
const chromiumPath = '/usr/bin/chromium';
const skip = !existsSync('/usr/bin/skopeo') ? 'needs skopeo' : undefined;
const clientId = 'kiln-registry';
const clientSecret = 'kiln-client-secret';
const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

/** A browser without a browser: fetch with a cookie jar, following redirects by hand (cookies are per host, not port: RFC 6265 section 8.5). */
function jar() {
  const cookies = new Map<string, string>();
  const take = (r: Response) => {
    for (const c of r.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || pair!.slice(eq + 1).trim() === '') cookies.delete(name);
      else cookies.set(name, pair!.slice(eq + 1).trim());
    }
  };
  const header = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  return {
    cookies,
    /** Follow redirects until a page, or until `stop` says the next address is one to look at. */
    async go(url: string, init: RequestInit = {}, stop?: (next: string) => boolean): Promise<{ res: Response; url: string }> {
      let r = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: header() } });
      take(r);
      for (let i = 0; i < 20 && r.status >= 300 && r.status < 400; i++) {
        const next = new URL(r.headers.get('location')!, url).href;
        if (stop?.(next)) return { res: r, url: next };
        url = next;
        r = await fetch(url, { redirect: 'manual', headers: { cookie: header() } });
        take(r);
      }
      return { res: r, url };
    },
  };
}
type Jar = ReturnType<typeof jar>;

/** Through the provider's login form, as a browser would: up to the registry's callback (not followed), or to the page after it. */
async function signIn(reg: TestRegistry, user: string, password: string, o: { b?: Jar; stopAtCallback?: boolean } = {}) {
  const b = o.b ?? jar();
  const atCallback = (u: string) => !!o.stopAtCallback && u.startsWith(`${reg.url}/kiln/v1/oidc/callback`);
  const login = await b.go(`${reg.url}/kiln/v1/oidc/login?next=/ui/account`);
  assert.equal(login.res.status, 200, `the provider's login page: ${await login.res.clone().text()}`);
  assert.match(login.url, /\/interaction\//);
  const done = await b.go(`${login.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ login: user, password }).toString() }, atCallback);
  return { ...done, b };
}

async function callback(reg: TestRegistry, b: Jar, url: string) {
  const r = await b.go(url, { headers: { accept: 'application/json' } }, () => true);
  const text = await r.res.text();
  return { status: r.res.status, location: r.res.headers.get('location'), message: text.startsWith('{') ? (JSON.parse(text) as { errors?: { message: string }[] }).errors?.[0]?.message : undefined };
}

async function token(reg: TestRegistry, user: string, password: string, scope = 'repository:team/app:pull,push') {
  const r = await fetch(`${reg.url}/token?service=kiln-registry&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic(user, password) } });
  const body = (await r.json()) as { token?: string; errors?: { message: string }[] };
  const claims = body.token ? JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString('utf8')) : undefined;
  return { status: r.status, actions: (claims?.access?.[0]?.actions ?? []) as string[], message: body.errors?.[0]?.message };
}

/** POST /kiln/v1/cli-secret from a signed-in jar (the session's CSRF token from GET /kiln/v1/session). */
async function newSecret(reg: TestRegistry, b: Jar): Promise<string> {
  const s = (await (await b.go(`${reg.url}/kiln/v1/session`)).res.json()) as { csrf: string };
  const r = await b.go(`${reg.url}/kiln/v1/cli-secret`, { method: 'POST', headers: { 'x-kiln-csrf': s.csrf } });
  const body = (await r.res.json()) as { secret: string };
  assert.equal(r.res.status, 200, JSON.stringify(body));
  return body.secret;
}

function oidcConfig(issuer: string, port: number, extra: Record<string, unknown> = {}): NonNullable<RegistryConfig['auth']['oidc']> {
  return {
    issuer,
    name: 'Test OP',
    clientId,
    clientSecret,
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    defaultScopes: true,
    groupsClaim: 'groups',
    redirectUrl: `http://127.0.0.1:${port}/kiln/v1/oidc/callback`,
    autoOnboard: true,
    recheck: 3600,
    timeout: 3,
    ...extra,
  };
}

async function registryOn(scope: Parameters<typeof startRegistry>[0], port: number, oidc: NonNullable<RegistryConfig['auth']['oidc']>, log?: string[]) {
  return startRegistry(
    scope,
    (c) => {
      c.http.addr = `127.0.0.1:${port}`;
      c.auth.enabled = true;
      c.auth.basic = true;
      c.auth.rateLimit.failures = 100;
      c.auth.oidc = oidc;
    },
    log ? { log: logger('info', (text) => void log.push(...text.trimEnd().split('\n'))) } : {},
  );
}

/**
 * A local system administrator whose argon2id hash is cheap to check (the parameters travel in the
 * hash): the default costs seconds on a loaded test machine, and these tests are about sign-in, not hashing.
 */
async function addLocalAdmin(reg: TestRegistry, name: string, password: string): Promise<void> {
  const passwordHash = await argon2.hash(password, { type: argon2.argon2id, memoryCost: 1024, timeCost: 1 });
  await reg.registry.metadata.putUser({ name, passwordHash, admin: true, createdAt: Date.now() });
}

const audit = async (reg: TestRegistry, action?: string) => {
  await reg.registry.audit.flush();
  return (await reg.registry.metadata.listAudit({ limit: 500, ...(action ? { action } : {}) })).map((e) => `${e.actor} ${e.action} ${e.detail ?? ''}`.trim());
};

describe('OpenID Connect sign-in and CLI secrets', { skip }, () => {
  const scope = suiteScope();
  let op: TestOp;
  let reg: TestRegistry;
  let strict: TestRegistry;
  let wrongSecret: TestRegistry;
  const ports: number[] = [];

  before(async () => {
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    op = await startOp(scope, {
      clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: ports.map((p) => `http://127.0.0.1:${p}/kiln/v1/oidc/callback`) }],
      users: {
        alice: { password: 'alice-pw', groups: ['team-devs'] },
        bob: { password: 'bob-pw', groups: ['readers'] },
        jurgen: { password: 'jurgen-pw', username: "jürgen o'brien", groups: ['team-devs'] },
        colon: { password: 'colon-pw', username: 'eve:admin', groups: [] },
        robot: { password: 'robot-pw', username: 'robot$team+ci', groups: [] },
        root: { password: 'root-at-op', groups: ['admins'] },
      },
    });
    [reg, strict, wrongSecret] = await Promise.all([
      registryOn(scope, ports[0]!, oidcConfig(op.issuer, ports[0]!)),
      registryOn(scope, ports[1]!, oidcConfig(op.issuer, ports[1]!, { autoOnboard: false })),
      registryOn(scope, ports[2]!, oidcConfig(op.issuer, ports[2]!, { clientSecret: 'not-the-secret' })),
    ]);
    const ops = admin(reg.registry.metadata, 'test');
    await addLocalAdmin(reg, 'root', 'root-password');
    await ops.grantGroup('team-devs', 'team', 'developer');
    await ops.grantGroup('readers', 'team', 'guest');
  });

  test('in Chromium: "Sign in with Test OP", the provider\'s login page, back signed in; a CLI secret from the account page logs skopeo in, and alice (team-devs → developer) pushes while bob (readers → guest) only pulls', { skip: existsSync(chromiumPath) ? false : `needs ${chromiumPath}` }, async (t) => {
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
    t.after(() => browser.close());
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(5000);
    await page.goto(`${reg.url}/ui/sign-in?next=/ui/account`);
    await page.getByRole('link', { name: 'Sign in with Test OP' }).click();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
    assert.equal(new URL(page.url()).pathname, '/ui/account', 'back at the page the sign-in started from');
    await page.getByRole('heading', { name: 'CLI secret' }).waitFor();
    await page.getByRole('button', { name: 'Create CLI secret' }).click();
    const secret = (await page.getByTestId('cli-secret').textContent())!.trim();
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    await page.getByRole('button', { name: 'Regenerate CLI secret' }).waitFor();
    const cookie = (await page.context().cookies()).find((c) => c.name === 'kiln_session');
    assert.equal(cookie?.httpOnly, true);

    const host = reg.url.replace(/^http:\/\//, '');
    const dir = await tempDir(t);
    const skopeo = (authfile: string, args: string[]) =>
      run('skopeo', [...args.slice(0, 1), '--authfile', authfile, ...args.slice(1)]).then(
        () => '',
        (e: { stderr?: string }) => e.stderr || 'failed',
      );
    const aliceAuth = join(dir, 'alice.json');
    assert.equal(await skopeo(aliceAuth, ['login', '--tls-verify=false', '-u', 'alice', '-p', secret, host]), '', 'skopeo login with the CLI secret');
    assert.equal(await skopeo(aliceAuth, ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${fixture('busybox')}`, `docker://${host}/team/busybox:v1`]), '', 'alice pushes');

    const bob = await signIn(reg, 'bob', 'bob-pw');
    assert.equal(new URL(bob.url).pathname, '/ui/account');
    const bobAuth = join(dir, 'bob.json');
    const bobSecret = await newSecret(reg, bob.b);
    assert.equal(await skopeo(bobAuth, ['login', '--tls-verify=false', '-u', 'bob', '-p', bobSecret, host]), '');
    assert.equal(await skopeo(bobAuth, ['copy', '-q', '--src-tls-verify=false', `docker://${host}/team/busybox:v1`, `oci:${join(dir, 'bob-pull')}:v1`]), '', 'bob pulls');
    assert.deepEqual((await token(reg, 'bob', bobSecret, 'repository:team/busybox:pull,push')).actions, ['pull'], 'bob may not push');

    const events = await audit(reg);
    assert.ok(events.includes('alice sign-in oidc, groups team-devs'), events.join('\n'));
    assert.ok(events.includes('alice cli-secret-create for alice'), events.join('\n'));
    assert.ok(events.some((e) => /^alice group-role developer through group team-devs: pull,push$/.test(e)), events.join('\n'));
    assert.equal((await reg.registry.metadata.getUser('alice'))?.provider, 'oidc');
  });

  test('a CLI secret is regenerated (the old one stops working) and revoked, from a session only; a local user signs in beside, and local sign-ins are audited like the others', async () => {
    const { b } = await signIn(reg, 'alice', 'alice-pw');
    const first = await newSecret(reg, b);
    assert.equal((await token(reg, 'alice', first)).status, 200);
    const second = await newSecret(reg, b);
    assert.equal((await token(reg, 'alice', first)).status, 401, 'the old secret is gone');
    assert.deepEqual((await token(reg, 'alice', second)).actions, ['pull', 'push']);
    const byBasic = await fetch(`${reg.url}/kiln/v1/cli-secret`, { method: 'POST', headers: { authorization: basic('alice', second) } });
    assert.equal(byBasic.status, 403, 'a CLI secret cannot make the next one');
    const status = (await (await fetch(`${reg.url}/kiln/v1/cli-secret`, { headers: { authorization: basic('alice', second) } })).json()) as { exists: boolean; provider: string };
    assert.deepEqual([status.exists, status.provider], [true, 'oidc']);
    const s = (await (await b.go(`${reg.url}/kiln/v1/session`)).res.json()) as { csrf: string };
    assert.equal((await b.go(`${reg.url}/kiln/v1/cli-secret`, { method: 'DELETE' })).res.status, 403, 'the CSRF token is needed');
    assert.equal((await b.go(`${reg.url}/kiln/v1/cli-secret`, { method: 'DELETE', headers: { 'x-kiln-csrf': s.csrf } })).res.status, 200);
    assert.equal((await token(reg, 'alice', second)).status, 401, 'revoked');
    assert.equal((await token(reg, 'root', 'root-password')).status, 200, 'the local administrator');
    assert.equal((await token(reg, 'root', 'wrong')).status, 401);
    assert.equal((await token(reg, 'nobody', 'x')).status, 401);
    const events = await audit(reg);
    for (const e of ['alice cli-secret-regenerate for alice', 'alice cli-secret-revoke for alice', 'root sign-in local', 'root sign-in-failed local: wrong password', 'nobody sign-in-failed no such user', 'alice sign-in-failed oidc: wrong CLI secret']) {
      assert.ok(events.includes(e), `${e} in\n${events.join('\n')}`);
    }
  });

  test('a forged state, a replayed state and a state from another browser are refused, audited, and sign no one in', async () => {
    const forged = await callback(reg, jar(), `${reg.url}/kiln/v1/oidc/callback?code=abc&state=forged-state`);
    assert.deepEqual([forged.status, forged.message], [400, 'unknown state (forged, already used or expired): start the sign-in again']);
    const first = await signIn(reg, 'alice', 'alice-pw', { stopAtCallback: true });
    const ok = await callback(reg, first.b, first.url);
    assert.deepEqual([ok.status, ok.location], [303, '/ui/account']);
    const replay = await callback(reg, first.b, first.url);
    assert.equal(replay.status, 400, 'the same state again');
    assert.match(replay.message!, /unknown state/);
    const other = await signIn(reg, 'alice', 'alice-pw', { stopAtCallback: true });
    const stolen = await callback(reg, jar(), other.url);
    assert.deepEqual([stolen.status, stolen.message], [400, 'the state was issued to another browser: start the sign-in again']);
    const page = await fetch(`${reg.url}/kiln/v1/oidc/callback?state=x`);
    assert.equal(page.status, 400);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.match(await page.text(), /unknown state/);
    const failed = await audit(reg, 'sign-in-failed');
    assert.ok(failed.some((e) => e === '- sign-in-failed oidc: unknown state (forged, already used or expired): start the sign-in again'), failed.join('\n'));
  });

  test('a wrong client secret, autoOnboard: false and user names with unusual characters: refused with the reason, or signed in as written', async () => {
    const wrong = await signIn(wrongSecret, 'alice', 'alice-pw', { stopAtCallback: true });
    const w = await callback(wrongSecret, wrong.b, wrong.url);
    assert.equal(w.status, 401);
    assert.match(w.message!, /^Test OP's answer is refused: invalid_client \(client authentication failed\), HTTP 401$/);

    const s = await signIn(strict, 'alice', 'alice-pw', { stopAtCallback: true });
    const refused = await callback(strict, s.b, s.url);
    assert.equal(refused.status, 403);
    assert.match(refused.message!, /alice has no account in the registry and auth\.oidc\.autoOnboard is false/);
    assert.equal(await strict.registry.metadata.getUser('alice'), undefined);
    const added = await registryCli(strict, ['oidc', 'add-user', 'alice']);
    assert.equal(added.code, 0, added.stderr);
    const again = await signIn(strict, 'alice', 'alice-pw', { stopAtCallback: true });
    assert.equal((await callback(strict, again.b, again.url)).status, 303, 'an administrator added her');

    const jurgen = await signIn(reg, 'jurgen', 'jurgen-pw');
    assert.equal(new URL(jurgen.url).pathname, '/ui/account');
    assert.deepEqual((await token(reg, "jürgen o'brien", await newSecret(reg, jurgen.b))).actions, ['pull', 'push'], 'an apostrophe, a space and an umlaut');
    for (const [user, why] of [
      ['colon', /the user name "eve:admin" from claim preferred_username has a colon/],
      ['robot', /the user name "robot\$team\+ci" from claim preferred_username starts with robot\$/],
      ['root', /root is a local user, not one of Test OP/],
    ] as const) {
      const x = await signIn(reg, user, `${user === 'root' ? 'root-at-op' : `${user}-pw`}`, { stopAtCallback: true });
      const r = await callback(reg, x.b, x.url);
      assert.equal(r.status, 403, user);
      assert.match(r.message!, why);
    }
    assert.equal((await reg.registry.metadata.getUser('root'))?.provider, undefined, 'the local root stays local');
  });

  test('the provider refusing the refresh (alice disabled there) takes her access away at the next token request after auth.oidc.recheck, and ends her session', async () => {
    // auth.oidc.recheck of half a second from here on (the registry reads it at each use), so
    // that the other tests make no refresh grant at every token request.
    const oidc = reg.registry.oidc!.options;
    const recheck = oidc.recheck;
    oidc.recheck = 0.5;
    const { b } = await signIn(reg, 'alice', 'alice-pw');
    const secret = await newSecret(reg, b);
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual((await token(reg, 'alice', secret)).actions, ['pull', 'push'], 'a refresh the provider grants');
    await op.disable('alice');
    try {
      await new Promise((r) => setTimeout(r, 600));
      const r = await token(reg, 'alice', secret);
      assert.equal(r.status, 401);
      const who = (await (await b.go(`${reg.url}/kiln/v1/session`)).res.json()) as { user: string | null };
      assert.equal(who.user, null, 'the session ends too');
      const failed = await audit(reg, 'sign-in-failed');
      assert.ok(failed.some((e) => /^alice sign-in-failed oidc: Test OP refused the refresh: invalid_grant/.test(e)), failed.join('\n'));
    } finally {
      await op.enable('alice');
    }
    assert.equal((await token(reg, 'alice', secret)).status, 401, 'still refused: the refresh token is forgotten until she signs in again');
    await signIn(reg, 'alice', 'alice-pw');
    assert.equal((await token(reg, 'alice', secret)).status, 200, 'signed in again in the web UI');
    oidc.recheck = recheck;
  });
});

/** An OpenID Provider in this process that signs whatever ID token the test wants. */
async function fakeOp(t: { after: (fn: () => void) => void }, port = 0) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const other = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  let next: (nonce: string) => Promise<string> = async () => '';
  let nonce = '';
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url!, issuer);
    const json = (v: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (u.pathname === '/.well-known/openid-configuration')
      return json({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['ES256'] });
    if (u.pathname === '/jwks') return json({ keys: [jwk] });
    if (u.pathname === '/token') {
      req.resume();
      req.on('end', () => void next(nonce).then((id_token) => json({ access_token: 'at', token_type: 'Bearer', expires_in: 60, id_token })));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(() => server.close());
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const sign = (claims: Record<string, unknown>, key: CryptoKey = privateKey) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(key);
  return {
    issuer,
    otherKey: other.privateKey,
    sign,
    /** The ID token the next code exchange answers with, given the nonce of the sign-in. */
    answer(fn: (nonce: string) => Promise<string>) {
      next = fn;
    },
    setNonce(n: string) {
      nonce = n;
    },
  };
}

test('ID tokens with a wrong audience, an expired one and one signed by another key are refused with the reason; a good one signs in', async (t) => {
  const fake = await fakeOp(t);
  const port = await freePort();
  const reg = await registryOn(t, port, { ...oidcConfig(fake.issuer, port), defaultScopes: false, scopes: ['openid'] });
  const now = Math.floor(Date.now() / 1000);
  const claims = (nonce: string, extra: Record<string, unknown> = {}) => ({ iss: fake.issuer, aud: clientId, sub: 'u-1', preferred_username: 'fay', groups: ['g'], nonce, iat: now, exp: now + 300, ...extra });
  const attempt = async () => {
    const b = jar();
    const start = await b.go(`${reg.url}/kiln/v1/oidc/login`, {}, () => true);
    const at = new URL(start.url);
    assert.equal(at.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(at.searchParams.get('code_challenge'));
    fake.setNonce(at.searchParams.get('nonce')!);
    return callback(reg, b, `${reg.url}/kiln/v1/oidc/callback?code=c&state=${encodeURIComponent(at.searchParams.get('state')!)}`);
  };
  for (const [make, why] of [
    [(n: string) => fake.sign(claims(n, { aud: 'someone-else' })), /unexpected JWT "aud" \(audience\) claim value/],
    [(n: string) => fake.sign(claims(n, { iat: now - 600, exp: now - 300 })), /unexpected JWT "exp" \(expiration time\) claim value, expiration is past current timestamp/],
    [(n: string) => fake.sign(claims(n), fake.otherKey), /signature verification failed/],
    [(n: string) => fake.sign(claims(n, { iss: 'https://evil.example' })), /unexpected JWT "iss" \(issuer\) claim value/],
    [(_n: string) => fake.sign(claims('another-nonce')), /unexpected ID Token "nonce" claim value/],
  ] as const) {
    fake.answer(make);
    const r = await attempt();
    assert.equal(r.status, 401, String(why));
    assert.match(r.message!, why);
  }
  fake.answer((n) => fake.sign(claims(n)));
  assert.equal((await attempt()).status, 303, 'the same, well made, signs fay in');
  assert.equal((await reg.registry.metadata.getUser('fay'))?.provider, 'oidc');
  const failed = await audit(reg, 'sign-in-failed');
  assert.equal(failed.length, 5, failed.join('\n'));
});

test('a provider unreachable at start: the registry serves local users, logs it, and the sign-in page and endpoint say the provider is unavailable; discovery is tried again later', async (t) => {
  const port = await freePort();
  const dead = await freePort();
  const log: string[] = [];
  const reg = await registryOn(t, port, oidcConfig(`http://127.0.0.1:${dead}`, port), log);
  await addLocalAdmin(reg, 'root', 'root-password');
  assert.equal((await token(reg, 'root', 'root-password')).status, 200);
  const status = (await (await fetch(`${reg.url}/kiln/v1/oidc`)).json()) as { configured: boolean; available: boolean; error: string; name: string };
  assert.deepEqual([status.configured, status.available, status.name], [true, false, 'Test OP']);
  assert.match(status.error, new RegExp(`discovery at http://127.0.0.1:${dead} failed: .*ECONNREFUSED`));
  const login = await fetch(`${reg.url}/kiln/v1/oidc/login`, { redirect: 'manual' });
  assert.equal(login.status, 503);
  assert.match(await login.text(), /Test OP is unavailable: discovery at .* failed/);
  reg.registry.log.flush();
  assert.ok(log.some((l) => /"level":"error".*the OpenID Provider is unavailable.*ECONNREFUSED/.test(l)), log.join('\n'));

  // The provider comes up: the next look after the retry interval (1 s) finds it.
  await fakeOp(t, dead);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(((await (await fetch(`${reg.url}/kiln/v1/oidc`)).json()) as { available: boolean }).available, true);
  const again = await fetch(`${reg.url}/kiln/v1/oidc/login`, { redirect: 'manual' });
  assert.equal(again.status, 302);
  assert.match(again.headers.get('location')!, new RegExp(`^http://127.0.0.1:${dead}/auth\\?`));
});

test('auth.oidc settings are checked, naming the setting', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'r.yaml');
  const base = { issuer: 'https://id.example.com', clientId: 'c', clientSecret: 's', redirectUrl: 'https://registry.example.com/kiln/v1/oidc/callback' };
  const load = async (oidc: Record<string, unknown>, http?: Record<string, unknown>) => {
    await writeFile(file, JSON.stringify({ auth: { oidc }, ...(http ? { http } : {}) }));
    return loadConfig({ file, defaultRoot: dir });
  };
  const c = await load({ ...base, recheck: '15m' });
  assert.deepEqual(c.auth.oidc, { ...base, name: 'id.example.com', scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'], defaultScopes: true, groupsClaim: 'groups', autoOnboard: true, recheck: 900, timeout: 10 });
  const { redirectUrl: _r, ...noRedirect } = base;
  assert.equal((await load(noRedirect, { publicUrl: 'https://r.example.com/' })).auth.oidc!.redirectUrl, 'https://r.example.com/kiln/v1/oidc/callback');
  for (const [oidc, message] of [
    [{ ...base, clientsecret: 'x' }, /auth\.oidc\.clientsecret: unknown setting/],
    [{ ...base, clientSecret: undefined }, /auth\.oidc\.clientSecret: required/],
    [{ ...base, issuer: 'http://id.example.com' }, /auth\.oidc\.issuer: "http:\/\/id\.example\.com" must be https:\/\/ \(http:\/\/ only on loopback\)/],
    [{ ...base, issuer: 'not a url' }, /auth\.oidc\.issuer: "not a url" is not a URL/],
    [noRedirect, /auth\.oidc\.redirectUrl: required .* unless http\.publicUrl is set/],
    [{ ...base, redirectUrl: 'https://registry.example.com/callback' }, /auth\.oidc\.redirectUrl: .* must end in \/kiln\/v1\/oidc\/callback/],
    [{ ...base, scopes: ['profile'] }, /auth\.oidc\.scopes: must include openid/],
    [{ ...base, scopes: 7 }, /auth\.oidc\.scopes: expected a list/],
    [{ ...base, autoOnboard: 'yes' }, /auth\.oidc\.autoOnboard: expected true or false/],
    [{ ...base, recheck: 'soon' }, /auth\.oidc\.recheck: "soon" is not a duration/],
    [{ ...base, recheck: 0 }, /auth\.oidc\.recheck: expected more than 0/],
  ] as const) {
    await assert.rejects(load(oidc as Record<string, unknown>), message);
  }
});
