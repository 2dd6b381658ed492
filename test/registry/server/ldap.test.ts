import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { admin } from '../../../src/registry/server/admin.js';
import { loadConfig } from '../../../src/registry/server/config.js';
import { logger } from '../../../src/registry/server/log.js';
import { ldapProvider, type LdapOptions } from '../../../src/registry/server/auth/ldap.js';
import { suiteScope } from '../../support/daemon.js';
import { fixture, kiln, tempDir } from '../../support/env.js';
import { escapeDnValue, ldifLine, startSlapd, type Slapd } from '../../support/slapd.js';
import { startRegistry, type TestRegistry } from './support.js';

// Sign-in through LDAP (issue 21) against a real OpenLDAP server: a user found by the service
// account's search and checked by a bind as their DN, groups by the group filter, bound to roles
// with `kiln registry role grant-group`; group changes in the directory count at the next token
// request; an outage refuses directory sign-ins and leaves local users working.

const run = promisify(execFile);
const skip = !existsSync('/usr/sbin/slapd') ? 'needs Debian\'s slapd and ldap-utils (scripts/setup.sh installs them)' : !existsSync('/usr/bin/skopeo') ? 'needs skopeo' : undefined;

const people = (s: Slapd) => `ou=people,${s.suffix}`;
const groups = (s: Slapd) => `ou=groups,${s.suffix}`;
const pw = (name: string) => `ldap-pw-${name}`;
// A DN with a comma in its value (Active Directory's "CN=Smith\, John" form), RFC 4514-escaped.
const obrienDn = (s: Slapd) => `cn=${escapeDnValue("O'Brien, Pat")},${people(s)}`;

function userLdif(dn: string, uid: string, password: string): string {
  return [ldifLine('dn', dn), 'objectClass: inetOrgPerson', ldifLine('uid', uid), ldifLine('cn', uid), ldifLine('sn', uid), ldifLine('userPassword', password), ''].join('\n');
}

function ldapOptions(s: Slapd): LdapOptions {
  return {
    url: s.url,
    startTLS: false,
    bindDN: `cn=registry,${s.suffix}`,
    bindPassword: 'service-password',
    userBase: people(s),
    userFilter: '(&(objectClass=inetOrgPerson)(uid={username}))',
    usernameAttribute: 'uid',
    groupBase: groups(s),
    groupFilter: '(&(objectClass=groupOfNames)(member={dn}))',
    groupNameAttribute: 'cn',
    timeout: 2,
    poolSize: 2,
  };
}

const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

/** GET /token for a scope: the status, the JSON answer and the actions granted on the first scope. */
async function token(reg: TestRegistry, user: string, password: string, scope = 'repository:team/app:pull,push') {
  const r = await fetch(`${reg.url}/token?service=kiln-registry&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic(user, password) } });
  const body = (await r.json()) as { token?: string; errors?: { code: string; message: string }[] };
  const claims = body.token ? JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString('utf8')) : undefined;
  return { status: r.status, body, actions: (claims?.access?.[0]?.actions ?? []) as string[], sub: claims?.sub as string | undefined };
}

describe('LDAP sign-in and group bindings', { skip }, () => {
  const scope = suiteScope();
  let slapd: Slapd;
  let reg: TestRegistry;
  let cliConfig: string;
  const logLines: string[] = [];

  before(async () => {
    slapd = await startSlapd(scope, { tls: true });
    const s = slapd;
    await s.add(
      [
        `dn: ${people(s)}\nobjectClass: organizationalUnit\nou: people\n`,
        `dn: ${groups(s)}\nobjectClass: organizationalUnit\nou: groups\n`,
        `dn: cn=registry,${s.suffix}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: registry\nuserPassword: service-password\n`,
        userLdif(`uid=alice,${people(s)}`, 'alice', pw('alice')),
        userLdif(`uid=bob,${people(s)}`, 'bob', pw('bob')),
        userLdif(obrienDn(s), "o'brien", pw('obrien')),
        userLdif(`uid=jürgen,${people(s)}`, 'jürgen', pw('jürgen')),
        userLdif(`uid=carol,${people(s)}`, 'carol', pw('carol-in-ldap')),
        [`dn: cn=team-devs,${groups(s)}`, 'objectClass: groupOfNames', 'cn: team-devs', `member: uid=alice,${people(s)}`, `member: ${obrienDn(s)}`, ldifLine('member', `uid=jürgen,${people(s)}`), ''].join('\n'),
        [`dn: cn=others,${groups(s)}`, 'objectClass: groupOfNames', 'cn: others', `member: uid=bob,${people(s)}`, ''].join('\n'),
      ].join('\n'),
    );
    const log = logger('info', (text) => void logLines.push(...text.trimEnd().split('\n')));
    reg = await startRegistry(
      scope,
      (c) => {
        c.auth.enabled = true;
        c.auth.basic = true;
        c.auth.rateLimit.failures = 100;
        c.auth.ldap = ldapOptions(s);
      },
      { log },
    );
    await admin(reg.registry.metadata, 'test').addUser('root', 'root-password', true);
    await admin(reg.registry.metadata, 'test').addUser('carol', 'carol-local-password', false);
    // The configuration an administrator would write, for the CLI (it reads auth.ldap for role list --user).
    const dir = await tempDir(scope);
    cliConfig = join(dir, 'registry.yaml');
    const l = ldapOptions(s);
    await writeFile(
      cliConfig,
      `root: ${reg.root}\nauth:\n  ldap:\n    url: ${l.url}\n    bindDN: ${l.bindDN}\n    bindPassword: ${l.bindPassword}\n    userBase: ${l.userBase}\n` +
        `    userFilter: "${l.userFilter}"\n    groupBase: ${l.groupBase}\n    groupFilter: "${l.groupFilter}"\n    groupNameAttribute: cn\n    timeout: 2s\n`,
    );
  });
  const cli = (args: string[]) => kiln(reg.root, ['registry', ...args, '--config', cliConfig]);

  test('alice, in team-devs bound to team as developer, pushes with skopeo; bob, in no bound group, is refused', async () => {
    const granted = await cli(['role', 'grant-group', 'team-devs', 'team', 'developer']);
    assert.equal(granted.code, 0, granted.stderr);
    const host = reg.url.replace(/^http:\/\//, '');
    const copy = (creds: string) =>
      run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', creds, `oci-archive:${fixture('busybox')}`, `docker://${host}/team/busybox:v1`]).then(
        () => '',
        (e: { stderr?: string }) => e.stderr || 'failed',
      );
    assert.equal(await copy(`alice:${pw('alice')}`), '', 'alice pushes');
    assert.match(await copy(`bob:${pw('bob')}`), /denied|unauthorized|authentication required/i, 'bob may not push');
    assert.deepEqual((await token(reg, 'bob', pw('bob'))).actions, [], 'bob gets no access to team');

    // Both signed in through LDAP and have a record now; the audit log says so, with alice's groups.
    assert.equal((await reg.registry.metadata.getUser('alice'))?.provider, 'ldap');
    assert.equal((await reg.registry.metadata.getUser('bob'))?.provider, 'ldap');
    await reg.registry.audit.flush();
    const events = await reg.registry.metadata.listAudit({ limit: 200 });
    assert.ok(events.some((e) => e.action === 'sign-in' && e.actor === 'alice' && e.detail === 'ldap, groups team-devs'), 'alice signs in through LDAP');
    assert.ok(events.some((e) => e.action === 'role-grant-group' && e.namespace === 'team' && e.detail === 'group team-devs developer'));
    assert.ok(events.some((e) => e.action === 'push' && e.actor === 'alice' && e.repository === 'team/busybox'));
  });

  test("in the web UI too, alice's LDAP group counts: her session lists the private team namespace's repositories, bob's does not", async () => {
    const visible = async (user: string) => {
      const signIn = await fetch(`${reg.url}/kiln/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user, password: pw(user) }) });
      assert.equal(signIn.status, 200, `${user} signs in to the web UI`);
      const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
      const r = await fetch(`${reg.url}/kiln/v1/repositories`, { headers: { cookie } });
      assert.equal(r.status, 200);
      return ((await r.json()) as { repositories: { name: string }[] }).repositories.map((x) => x.name);
    };
    assert.ok((await visible('alice')).includes('team/busybox'), 'alice, through team-devs, sees team/busybox');
    assert.ok(!(await visible('bob')).includes('team/busybox'), 'bob, in no bound group, does not');
  });

  test('removing alice from team-devs with ldapmodify takes push away at her next token request (Basic on /v2/ and refresh tokens too); her own role still counts', async () => {
    // The management API: a system administrator binds and unbinds groups; the audit log has it.
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${reg.url}/kiln/v1/namespaces/team/groups${path}`, { method, headers: { authorization: basic('root', 'root-password'), 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.equal((await api('PUT', '/Team-Devs', { role: 'developer' })).status, 200, 'group names match case-insensitively: this replaces the binding');
    const ops = admin(reg.registry.metadata, 'test');
    await token(reg, 'alice', pw('alice')); // the record exists once she signed in
    await ops.grant('alice', 'team', 'guest');
    assert.deepEqual((await token(reg, 'alice', pw('alice'))).actions, ['pull', 'push'], 'the highest of guest (own) and developer (group)');
    const upload = () => fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: basic('alice', pw('alice')) } });
    assert.equal((await upload()).status, 202, 'Basic on /v2/: alice may push');
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: pw('alice'), access_type: 'offline', service: 'kiln-registry', scope: 'repository:team/app:push' });
    const pwGrant = (await (await fetch(`${reg.url}/token`, { method: 'POST', body: form })).json()) as { refresh_token: string; scope: string };
    assert.match(pwGrant.scope, /push/);

    const listed = await cli(['role', 'list', '--user', 'alice']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /team\s+alice\s+guest\s+user/);
    assert.match(listed.stdout, /team\s+alice\s+developer\s+group Team-Devs/, listed.stderr);

    await slapd.modify(`dn: cn=team-devs,${groups(slapd)}\nchangetype: modify\ndelete: member\nmember: uid=alice,${people(slapd)}\n`);
    assert.deepEqual((await token(reg, 'alice', pw('alice'))).actions, ['pull'], 'only her own guest role is left');
    assert.equal((await upload()).status, 403, 'Basic on /v2/ reads the groups again');
    const refreshed = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: pwGrant.refresh_token, service: 'kiln-registry', scope: 'repository:team/app:pull,push' });
    const r = (await (await fetch(`${reg.url}/token`, { method: 'POST', body: refreshed })).json()) as { scope: string };
    assert.equal(r.scope, 'repository:team/app:pull', 'a refresh asks the directory again');

    assert.equal((await api('PUT', '/others', { role: 'maintainer' })).status, 200);
    assert.deepEqual(((await (await api('GET', '')).json()) as { groups: unknown[] }).groups, [
      { namespace: 'team', group: 'others', role: 'maintainer' },
      { namespace: 'team', group: 'Team-Devs', role: 'developer' },
    ]);
    assert.deepEqual((await token(reg, 'bob', pw('bob'), 'repository:team/app:pull,push,delete')).actions, ['pull', 'push', 'delete', 'promote']);
    assert.equal((await api('DELETE', '/others')).status, 200);
    assert.equal((await api('DELETE', '/others')).status, 400, 'no such binding any more');
    assert.deepEqual((await token(reg, 'bob', pw('bob'))).actions, []);
    const revoked = await cli(['role', 'revoke-group', 'team-devs', 'team']);
    assert.equal(revoked.code, 0, revoked.stderr);
    await reg.registry.audit.flush();
    const changes = (await reg.registry.metadata.listAudit({ namespace: 'team', limit: 100 })).filter((e) => e.action.endsWith('-group')).map((e) => `${e.actor} ${e.action} ${e.detail}`);
    assert.equal(changes.length, 5, changes.join('\n'));
    assert.match(changes[0]!, /^cli:\S+ role-revoke-group group team-devs$/);
    assert.equal(changes[1], 'root role-revoke-group group others');
    assert.equal(changes[2], 'root role-grant-group group others maintainer');
    assert.equal(changes[3], 'root role-grant-group group Team-Devs developer');
  });

  test('a wrong or empty password, the filter injection *)(uid=*, an unknown user and an LDAP user with a local name are refused; o\'brien and jürgen sign in', async () => {
    assert.equal((await cli(['role', 'grant-group', 'team-devs', 'team', 'developer'])).code, 0);
    for (const [user, password, why] of [
      ['alice', 'wrong', 'a wrong password'],
      ['alice', '', 'an empty password (an unauthenticated bind, RFC 4513 5.1.2)'],
      ['*)(uid=*', pw('alice'), 'a filter injection'],
      ['alice)(uid=*', pw('alice'), 'a filter injection that unescaped would find exactly alice'],
      ['al*', pw('alice'), 'a wildcard that unescaped would find exactly alice'],
      ['*', pw('alice'), 'a wildcard'],
      ['nobody', pw('alice'), 'an unknown user'],
      ['carol', pw('carol-in-ldap'), 'a local user\'s name: only the local password counts'],
      ['CAROL', pw('carol-in-ldap'), 'the local name spelled otherwise'],
    ]) {
      const r = await token(reg, user!, password!);
      assert.equal(r.status, 401, `${why} is refused`);
      assert.equal(r.body.errors?.[0]?.code, 'UNAUTHORIZED');
    }
    assert.equal((await token(reg, 'carol', 'carol-local-password')).status, 200, 'the local carol signs in');
    const obrien = await token(reg, "o'brien", pw('obrien'));
    assert.equal(obrien.status, 200);
    assert.deepEqual(obrien.actions, ['pull', 'push'], "o'brien's DN has an escaped comma, and the group filter finds it");
    const jurgen = await token(reg, 'jürgen', pw('jürgen'));
    assert.deepEqual([jurgen.status, jurgen.sub, jurgen.actions], [200, 'jürgen', ['pull', 'push']]);
    assert.equal((await token(reg, 'ALICE', pw('alice'))).sub, 'alice', 'the directory\'s spelling of the name');
    await reg.registry.audit.flush();
    const failed = (await reg.registry.metadata.listAudit({ action: 'sign-in-failed', limit: 100 })).map((e) => `${e.actor}: ${e.detail}`);
    assert.ok(failed.includes('alice: ldap: wrong password'), failed.join('\n'));
    assert.ok(failed.includes('*)(uid=*: ldap: no such user'), failed.join('\n'));
    assert.ok(failed.includes('CAROL: ldap: carol is a local user'), failed.join('\n'));
  });

  test('StartTLS and ldaps:// with auth.ldap.ca check alice\'s password; a certificate the CA does not vouch for is refused, naming the reason', async () => {
    const signIn = async (o: Partial<LdapOptions>) => {
      const p = ldapProvider({ ...ldapOptions(slapd), ...o });
      try {
        const id = await p.authenticate('alice', pw('alice'));
        return id && 'user' in id ? `${id.user} through ${id.provider}` : id;
      } finally {
        await p.close();
      }
    };
    assert.equal(await signIn({ startTLS: true, ca: slapd.caFile }), 'alice through ldap');
    assert.equal(await signIn({ url: slapd.ldapsUrl!, ca: slapd.caFile }), 'alice through ldap');
    await assert.rejects(signIn({ startTLS: true }), /^ProviderUnavailable: ldap: TLS with ldap:\/\/127\.0\.0\.1:\d+ failed: self-signed certificate \(auth\.ldap\.ca\)$/);
    await assert.rejects(signIn({ url: slapd.ldapsUrl! }), /^ProviderUnavailable: ldap: TLS with ldaps:\/\/127\.0\.0\.1:\d+ failed: self-signed certificate \(auth\.ldap\.ca\)$/);
  });

  test('with LDAP stopped, directory sign-ins fail with 503 naming the server, and the log says so; a local administrator signs in; LDAP back, alice does too', async () => {
    await slapd.stop();
    try {
      const r = await token(reg, 'alice', pw('alice'));
      assert.equal(r.status, 503);
      assert.equal(r.body.errors?.[0]?.code, 'UNAVAILABLE');
      assert.match(r.body.errors![0]!.message, new RegExp(`cannot check the password now: ldap: cannot reach ${slapd.url}: connect ECONNREFUSED`));
      const upload = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: basic('alice', pw('alice')) } });
      assert.equal(upload.status, 503, 'Basic on /v2/ too, never accepted');
      const root = await token(reg, 'root', 'root-password', 'repository:team/app:pull,push,delete');
      assert.deepEqual([root.status, root.actions], [200, ['pull', 'push', 'delete', 'promote']]);
      reg.registry.log.flush();
      assert.ok(logLines.some((l) => /"level":"error".*identity provider cannot be reached.*"user":"alice".*ECONNREFUSED/.test(l)), logLines.join('\n'));
    } finally {
      await slapd.start();
    }
    assert.equal((await token(reg, 'alice', pw('alice'))).status, 200, 'the shared connections bind again after the outage');
  });
});

test('auth.ldap settings are checked, naming the setting', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'r.yaml');
  const base = { url: 'ldap://127.0.0.1:389', bindDN: 'cn=x', bindPassword: 'p', userBase: 'ou=people', userFilter: '(uid={username})' };
  const load = async (ldap: Record<string, unknown>) => {
    await writeFile(file, JSON.stringify({ auth: { ldap } }));
    return loadConfig({ file, defaultRoot: dir });
  };
  const c = await load({ ...base, groupBase: 'ou=groups', groupFilter: '(member={dn})', timeout: '3s', ca: 'ca.pem' });
  assert.deepEqual(
    { ...c.auth.ldap },
    { ...base, startTLS: false, ca: join(dir, 'ca.pem'), usernameAttribute: 'uid', groupBase: 'ou=groups', groupFilter: '(member={dn})', groupNameAttribute: 'cn', timeout: 3, poolSize: 2 },
  );
  for (const [ldap, message] of [
    [{ ...base, userfilter: 'x' }, /auth\.ldap\.userfilter: unknown setting/],
    [{ ...base, userFilter: undefined }, /auth\.ldap\.userFilter: required/],
    [{ ...base, url: 'http://x' }, /auth\.ldap\.url: "http:\/\/x" is not ldap:/],
    [{ ...base, userFilter: '(uid=alice)' }, /auth\.ldap\.userFilter: .* has no \{username\}/],
    [{ ...base, userFilter: '(uid={username}' }, /auth\.ldap\.userFilter: .* is not an LDAP filter/],
    [{ ...base, groupBase: 'ou=groups' }, /auth\.ldap\.groupFilter: required with auth\.ldap\.groupBase/],
    [{ ...base, url: 'ldaps://x', startTLS: true }, /auth\.ldap\.startTLS: for ldap:\/\/ URLs/],
    [{ ...base, poolSize: 0 }, /auth\.ldap\.poolSize: expected at least 1/],
    [{ ...base, timeout: 'soon' }, /auth\.ldap\.timeout: "soon" is not a duration/],
  ] as const) {
    await assert.rejects(load(ldap as Record<string, unknown>), message);
  }
});
