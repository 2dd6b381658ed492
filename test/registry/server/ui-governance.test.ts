import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext } from 'playwright-core';
import { admin } from '../../../src/registry/server/admin.js';
import { hashPassword } from '../../../src/registry/server/auth/passwords.js';
import { SessionCookie, startSession } from '../../../src/registry/server/sessions.js';
import { pushImage, randomImage, registryCli, startRegistry } from './support.js';

// The web UI's governance pages (issue 20) in Debian's chromium: what each role is shown and what
// the API answers the others; deleting and promoting tags, members, robot accounts (the secret
// shown once, then used by skopeo), the audit log, GC, and an expired session in the middle of a
// change. One registry and one browser for all of it (a context per user).

const chromiumPath = '/usr/bin/chromium';
const run = promisify(execFile);
const password = 'password-of-everyone';

test('in Chromium: governance by role — delete, promote, members, robots, audit, GC, and an expired session', { skip: existsSync(chromiumPath) ? false : `needs ${chromiumPath}`, timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    c.gc.gracePeriod = 0;
  });
  const ops = admin(reg.registry.metadata, 'test');
  // One argon2 hash for every user (each costs about a second on a busy machine): same password.
  const passwordHash = await hashPassword(password);
  for (const [name, sys] of [['root', true], ['dev', false], ['maint', false], ['owner', false], ['newbie', false], ['late', false]] as const) await reg.registry.metadata.putUser({ name, passwordHash, admin: sys, createdAt: Date.now() });
  await ops.grant('dev', 'team', 'developer');
  await ops.grant('maint', 'team', 'maintainer');
  await ops.grant('owner', 'team', 'admin');
  const root = reg.client({ user: 'root', password });
  const v2 = randomImage();
  await ops.grantGroup('team-devs', 'team', 'developer');
  const old = randomImage();
  for (const [tag, img] of [['v1', randomImage()], ['v2', v2], ['old', old]] as const) assert.equal((await pushImage(root, 'team/app', tag, img)).status, 201);

  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  t.after(() => browser.close());
  /** A browser context signed in as `user`: a session made as sign-in makes it, without another password check (the form has its tests in ui.test.ts and below). */
  const as = async (user: string): Promise<{ context: BrowserContext; csrf: string }> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const s = await startSession(reg.registry, user);
    await context.addCookies([{ name: SessionCookie, value: /^[^=]+=([^;]*)/.exec(s.setCookie)![1]!, url: reg.url, httpOnly: true, sameSite: 'Lax' }]);
    return { context, csrf: s.csrf };
  };
  const permissionsLoaded = (p: import('playwright-core').Page) => p.waitForResponse((r) => r.url().includes('/kiln/v1/permissions') && r.status() === 200);

  await t.test('a developer is shown no delete or promote button, and the API refuses both', async () => {
    const { context, csrf } = await as('dev');
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    const loaded = permissionsLoaded(page);
    await page.goto(`${reg.url}/ui/repo/team/app`);
    await page.getByRole('link', { name: 'v1', exact: true }).waitFor();
    await loaded;
    await page.getByRole('link', { name: 'v2', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^(Delete|Promote)/ }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Garbage collection' }).count(), 0, 'no GC link for a non-administrator');
    const del = await context.request.delete(`${reg.url}/kiln/v1/repositories/team/app/tags/v1`, { headers: { 'x-kiln-csrf': csrf } });
    assert.equal(del.status(), 403, await del.text());
    const promote = await context.request.post(`${reg.url}/kiln/v1/promote`, { headers: { 'x-kiln-csrf': csrf }, data: { source: 'team/app:v1', destination: 'team/app:prod' } });
    assert.equal(promote.status(), 403);
    assert.equal((await context.request.get(`${reg.url}/kiln/v1/gc`)).status(), 403);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('alert').getByText(/whole audit log is for system administrators/).waitFor();
    assert.equal((await root.req('GET', '/v2/team/app/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).status, 200, 'v1 is still there');
    await context.close();
  });

  await t.test('a maintainer deletes a tag and a manifest after a confirmation dialog, promotes a tag, and the audit view shows them', async () => {
    const { context, csrf } = await as('maint');
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    await page.goto(`${reg.url}/ui/repo/team/app`);
    await page.getByRole('button', { name: 'Delete tag v2' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete tag v2?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('link', { name: 'v2', exact: true }).count(), 1, 'Cancel deletes nothing');
    await page.getByRole('button', { name: 'Delete tag v2' }).click();
    await page.getByRole('dialog', { name: 'Delete tag v2?' }).getByRole('button', { name: 'Delete tag' }).click();
    await page.getByRole('link', { name: 'v2', exact: true }).waitFor({ state: 'detached' });

    await page.getByRole('button', { name: 'Delete the manifest of old' }).click();
    await page.getByRole('dialog', { name: /^Delete manifest sha256:/ }).getByRole('button', { name: 'Delete manifest' }).click();
    await page.getByRole('link', { name: 'old', exact: true }).waitFor({ state: 'detached' });
    assert.equal(await root.req('GET', `/v2/team/app/manifests/${old.digest}`).then((r) => r.status), 404, 'the manifest is gone, not only the tag');
    const badTag = await context.request.delete(`${reg.url}/kiln/v1/repositories/team/app/tags/-bad`, { headers: { 'x-kiln-csrf': csrf } });
    assert.equal(badTag.status(), 400);
    const badDigest = await context.request.delete(`${reg.url}/kiln/v1/repositories/team/app/manifests/sha256:nope`, { headers: { 'x-kiln-csrf': csrf } });
    assert.equal(badDigest.status(), 400);
    assert.match(await badDigest.text(), /invalid digest/);

    await page.getByRole('button', { name: 'Promote v1' }).click();
    const promote = page.getByRole('dialog', { name: 'Promote v1' });
    await promote.getByLabel('Destination tag').fill('prod');
    await promote.getByRole('button', { name: 'Promote' }).click();
    await page.getByRole('link', { name: 'prod', exact: true }).waitFor();
    const prod = await root.req('GET', '/v2/team/app/manifests/prod', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const v1 = await root.req('GET', '/v2/team/app/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(prod.headers.get('docker-content-digest'), v1.headers.get('docker-content-digest'));

    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Namespace').fill('team');
    await page.getByLabel('User').fill('maint');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('tr', { hasText: 'delete-tag' }).filter({ hasText: 'v2' }).waitFor();
    await page.locator('tr', { hasText: 'promote' }).filter({ hasText: 'prod' }).waitFor();
    assert.deepEqual([...new Set(await page.locator('tbody tr td:nth-child(2)').allInnerTexts())], ['maint'], 'only maint\'s events');
    await page.getByLabel('Action').fill('promote');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1);
    assert.match(page.url(), /\/ui\/audit\?namespace=team&actor=maint&action=promote$/);
    await context.close();
  });

  await t.test('a namespace admin adds a member (kiln registry role list shows it), creates a robot whose secret is shown once and works with skopeo, and an expired session returns to sign-in and back with the form kept', async () => {
    const { context } = await as('owner');
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    await page.goto(`${reg.url}/ui/namespace/team`);
    await page.getByLabel('Name', { exact: true }).fill('newbie');
    await page.getByLabel('Role', { exact: true }).selectOption('guest');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('combobox', { name: 'Role of user newbie' }).waitFor();
    const list = await registryCli(reg, ['role', 'list', '--namespace', 'team']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^team\s+newbie\s+guest\s+user$/m, list.stdout);

    assert.equal(await page.getByRole('button', { name: 'Make public' }).count(), 0, 'visibility is system administrators\'');
    await page.getByRole('cell', { name: 'group team-devs (identity provider)' }).waitFor();
    assert.equal(await page.getByRole('combobox', { name: 'Role of group team-devs' }).inputValue(), 'developer');

    await page.getByLabel('Robot name').fill('ci');
    await page.getByRole('button', { name: 'Create robot' }).click();
    const secret = await page.getByRole('textbox', { name: 'Secret' }).inputValue();
    assert.ok(secret.length >= 20, 'the secret is shown');
    assert.ok(await page.getByRole('button', { name: 'Copy the secret' }).isVisible());
    await page.getByRole('cell', { name: 'robot$team+ci', exact: true }).waitFor();
    await page.reload();
    await page.getByRole('cell', { name: 'robot$team+ci', exact: true }).waitFor();
    assert.equal(await page.getByRole('textbox', { name: 'Secret' }).count(), 0, 'never shown again');
    assert.ok(!(await page.content()).includes(secret));
    if (existsSync('/usr/bin/skopeo')) {
      const dir = await mkdtemp(join(tmpdir(), 'kiln-skopeo-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const host = reg.url.replace(/^http:\/\//, '');
      const authfile = join(dir, 'auth.json');
      await run('skopeo', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'robot$team+ci', '-p', secret, host]);
      const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--authfile', authfile, `docker://${host}/team/app:v1`])).stdout) as { Digest: string };
      assert.match(inspected.Digest, /^sha256:/);
    }

    await page.getByRole('button', { name: 'Delete robot$team+ci' }).click();
    await page.getByRole('dialog', { name: 'Delete robot$team+ci?' }).getByRole('button', { name: 'Delete robot' }).click();
    await page.getByText('No robot accounts.').waitFor();
    assert.equal(await reg.registry.metadata.getRobot('robot$team+ci'), undefined);

    // The session ends (expiry, or an administrator) while a member is being added.
    await page.getByLabel('Name', { exact: true }).fill('late');
    await page.getByLabel('Role', { exact: true }).selectOption('maintainer');
    await reg.registry.metadata.purgeSessions(Date.now() + 365 * 86400_000);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.waitForURL(/\/ui\/sign-in\?next=%2Fui%2Fnamespace%2Fteam$/);
    await page.getByLabel('User name').fill('owner');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/ui\/namespace\/team$/);
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'late', 'what was typed is back');
    assert.equal(await page.getByLabel('Role', { exact: true }).inputValue(), 'maintainer');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('combobox', { name: 'Role of user late' }).waitFor();
    assert.equal(await reg.registry.metadata.getRole('team', 'late'), 'maintainer');
    await context.close();
  });

  await t.test('a system administrator runs a GC dry run and sees the untagged manifest, then a run after confirming, which becomes the last report', async () => {
    const { context } = await as('root');
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    await page.goto(`${reg.url}/`);
    await page.getByRole('navigation', { name: 'Registry' }).getByRole('link', { name: 'Garbage collection' }).click();
    await page.getByText('No run recorded yet.').waitFor();
    await page.getByRole('button', { name: 'Dry run' }).click();
    const report = page.getByRole('region', { name: 'Dry run report' });
    await report.getByText(`team/app@${v2.digest.slice(0, 19)}`).waitFor();
    assert.equal(await root.req('GET', `/v2/team/app/manifests/${v2.digest}`).then((r) => r.status), 200, 'a dry run removes nothing');
    await page.getByRole('button', { name: 'Run garbage collection…' }).click();
    await page.getByRole('dialog', { name: 'Run garbage collection?' }).getByRole('button', { name: 'Run now' }).click();
    await page.getByRole('region', { name: 'Report' }).waitFor();
    await page.getByText(/by root: 1 manifests, \d+ blobs/).waitFor();
    assert.equal(await root.req('GET', `/v2/team/app/manifests/${v2.digest}`).then((r) => r.status), 404);

    // Visibility: a system administrator makes the namespace public; anonymous visitors see it.
    await page.getByRole('link', { name: 'Namespaces' }).click();
    await page.getByRole('link', { name: 'team', exact: true }).click();
    await page.getByRole('button', { name: 'Make public' }).click();
    await page.getByRole('button', { name: 'Make private' }).waitFor();
    const anonymous = (await (await fetch(`${reg.url}/kiln/v1/repositories`)).json()) as { repositories: { name: string }[] };
    assert.deepEqual(anonymous.repositories.map((r) => r.name), ['team/app']);
    await context.close();
  });
  await t.test('the audit API pages with next and filters by time; a bad filter is a 400 naming it', async () => {
    const s = await startSession(reg.registry, 'root');
    const get = async (q: string) => {
      const r = await fetch(`${reg.url}/kiln/v1/audit?${q}`, { headers: { cookie: /^[^;]*/.exec(s.setCookie)![0] } });
      return { status: r.status, body: (await r.json()) as { events: { id: number; time: number }[]; next?: string; errors?: { message: string }[] } };
    };
    const all = (await get('namespace=team&limit=1000')).body.events;
    assert.ok(all.length >= 4, `${all.length} events`);
    const paged: number[] = [];
    let next: string | undefined = '';
    while (next !== undefined) {
      const page = await get(`namespace=team&limit=3${next ? `&before=${next}` : ''}`);
      assert.ok(page.body.events.length <= 3);
      paged.push(...page.body.events.map((e) => e.id));
      next = page.body.next;
    }
    assert.deepEqual(paged, all.map((e) => e.id), 'the pages together are the whole log, newest first, each event once');
    const middle = all[Math.floor(all.length / 2)]!.time;
    const since = (await get(`namespace=team&since=${middle}`)).body.events;
    assert.ok(since.length > 0 && since.every((e) => e.time >= middle));
    const until = (await get(`namespace=team&until=${new Date(middle).toISOString()}`)).body.events;
    assert.ok(until.length > 0 && until.every((e) => e.time <= middle));
    assert.equal((await get(`namespace=team&since=${Date.now() + 3600_000}`)).body.events.length, 0);
    const bad = await get('namespace=team&since=yesterday');
    assert.equal(bad.status, 400);
    assert.match(bad.body.errors![0]!.message, /^since: "yesterday" is not a time/);
    const cursor = await get('namespace=team&before=abc');
    assert.equal(cursor.status, 400);
    assert.match(cursor.body.errors![0]!.message, /^before:/);
  });
});
