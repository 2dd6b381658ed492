import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { admin } from '../../../src/registry/server/admin.js';
import { pushBlob, pushImage, randomImage, sha256, startRegistry, type Client } from './support.js';

// The web UI (issue 20) in a real browser: Debian's chromium driven by playwright-core. Sign-in,
// what each visitor is shown, the pages of a repository and an image, hostile text shown as text,
// the Content-Security-Policy, CSRF on cookie-authenticated changes, and the login rate limit the
// sign-in form shares with /token.

const chromiumPath = '/usr/bin/chromium';
const hostileLabel = '<script>alert("label")</script>';
const hostileAnnotation = '<img src=x onerror=alert("annotation")>';

/** An image whose config has labels, an entrypoint and a history, as a build would write it. */
async function pushLabelledImage(c: Client, repo: string, tag: string): Promise<string> {
  const layers = [randomBytes(2048), randomBytes(4096)];
  for (const l of layers) await pushBlob(c, repo, l);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-12-01T10:00:00Z',
      config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/usr/bin:/bin'], User: '1000:1000', ExposedPorts: { '8080/tcp': {} }, Labels: { 'org.example.evil': hostileLabel, 'org.opencontainers.image.title': 'app' } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) },
      history: [
        { created: '2026-12-01T09:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:0123abcd in / ' },
        { created: '2026-12-01T10:00:00Z', created_by: 'RUN /bin/sh -c make install # buildkit' },
        { created: '2026-12-01T10:00:00Z', created_by: 'LABEL org.example.evil=…', empty_layer: true },
      ],
    }),
  );
  await pushBlob(c, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
      annotations: { 'org.example.note': hostileAnnotation },
    }),
  );
  const r = await c.req('PUT', `/v2/${repo}/manifests/${tag}`, { body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(r.status, 201, r.text());
  return sha256(manifest);
}

test('in Chromium: a developer signs in and sees only what they may pull, a repository\'s tags and pull command, an image\'s config and history with hostile text as text; CSP, CSRF and the shared login limit hold', { skip: existsSync(chromiumPath) ? false : `needs ${chromiumPath} (scripts/setup.sh installs Debian's chromium)` }, async (t) => {
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    c.auth.rateLimit = { failures: 4, window: 60 };
  });
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  await ops.addUser('dev', 'password-dev', false);
  await ops.addUser('eve', 'password-eve', false);
  await ops.grant('dev', 'team', 'developer');
  await ops.grant('eve', 'eve', 'admin');
  await ops.setNamespace('pub', { public: true });
  const dev = reg.client({ user: 'dev', password: 'password-dev' });
  const root = reg.client({ user: 'root', password: 'password-root' });
  const digest = await pushLabelledImage(dev, 'team/app', 'v1');
  assert.equal((await pushImage(root, 'pub/tool', 'latest', randomImage())).status, 201);
  assert.equal((await pushImage(root, 'eve/private', 'latest', randomImage())).status, 201);
  // A tag made through the API (promote).
  const promoted = await fetch(`${reg.url}/kiln/v1/promote`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from('root:password-root').toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify({ source: 'team/app:v1', destination: 'team/app:release' }),
  });
  assert.equal(promoted.status, 200, await promoted.text());

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.setDefaultTimeout(5000);

  // Anonymous: public namespaces only. The page's headers: CSP and nosniff.
  const first = await page.goto(reg.url + '/');
  const headers = first!.headers();
  assert.match(headers['content-security-policy'] ?? '', /default-src 'self'/);
  assert.match(headers['content-security-policy'] ?? '', /script-src 'self'(;|$)/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  await page.getByRole('link', { name: 'pub/tool' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'team/app' }).count(), 0, 'anonymous visitors see no private namespace');

  // Sign in as the developer: their namespace and the public one, not eve's.
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('User name').fill('dev');
  await page.getByLabel('Password').fill('password-dev');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Signed in as').waitFor();
  await page.getByRole('link', { name: 'team/app' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'pub/tool' }).count(), 1);
  assert.equal(await page.getByText('eve/private').count(), 0, 'another user\'s private namespace is absent');
  const cookie = (await context.cookies()).find((c) => c.name === 'kiln_session')!;
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.secure, false, 'not Secure over plain HTTP');
  assert.ok(cookie.value.length >= 40, 'an opaque random id');
  // The filter box.
  await page.getByLabel('Filter repositories').fill('TOOL');
  await page.waitForFunction(() => !document.body.innerText.includes('team/app'));
  await page.getByLabel('Filter repositories').fill('');
  await page.getByRole('link', { name: 'team/app' }).click();

  // The repository: both tags, digests, the pull command.
  await page.getByRole('link', { name: 'release', exact: true }).waitFor();
  await page.getByRole('link', { name: 'v1', exact: true }).waitFor();
  assert.equal(await page.getByRole('textbox', { name: 'Pull command' }).inputValue(), `docker pull ${new URL(reg.url).host}/team/app:${await page.locator('tbody tr td a').first().innerText()}`);
  assert.equal(await page.getByText(digest.slice(0, 19), { exact: true }).count(), 2, 'both tags show the short digest');
  assert.ok(await page.getByRole('button', { name: 'Copy the pull command' }).isVisible());
  // 51 tags make two pages of 50: Next page and Previous page walk them (keyset cursors).
  const many = randomImage({ layers: 1 });
  for (let i = 0; i < 51; i++) assert.equal((await pushImage(dev, 'team/many', `t${String(i).padStart(2, '0')}`, many)).status, 201);
  const appPage = page.url();
  await page.goto(`${reg.url}/ui/repo/team/many`);
  const rowsAre = (n: number) => page.waitForFunction((want) => document.querySelectorAll('tbody tr').length === want, n);
  await rowsAre(50);
  await page.getByRole('button', { name: 'Next page' }).click();
  await rowsAre(1);
  assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled(), 'the last page has no next');
  await page.getByRole('button', { name: 'Previous page' }).click();
  await rowsAre(50);
  assert.ok(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), 'the first page has no previous');
  await page.goto(appPage);
  await page.getByRole('link', { name: 'v1', exact: true }).click();

  // The image: config, history lines, layers; the hostile label and annotation as text.
  await page.getByRole('heading', { name: 'History' }).waitFor();
  await page.getByText('RUN /bin/sh -c make install # buildkit').waitFor();
  await page.getByText('/bin/sh -c #(nop) ADD file:0123abcd in /').waitFor();
  assert.ok(await page.getByText('["/bin/app"]').isVisible(), 'the entrypoint');
  assert.ok(await page.getByText('1000:1000').isVisible(), 'the user');
  assert.ok(await page.getByText(hostileLabel, { exact: true }).isVisible(), 'the label is shown as text');
  assert.ok(await page.getByText(hostileAnnotation, { exact: true }).isVisible(), 'the annotation is shown as text');
  assert.equal(await page.locator('main script, main img').count(), 0, 'no element was made from them');
  assert.deepEqual(dialogs, [], 'no script ran');
  // A narrow window: the page still fits (tables scroll inside their box).
  await page.setViewportSize({ width: 380, height: 800 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling at 380 px');
  await page.setViewportSize({ width: 1280, height: 900 });

  // The CSP blocks an inline script even when one gets into the page.
  const violated = await page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
        const s = document.createElement('script');
        s.textContent = 'window.inlineRan = true';
        document.body.appendChild(s);
      }),
  );
  assert.match(violated, /^script-src/);
  assert.equal(await page.evaluate(() => (window as unknown as { inlineRan?: boolean }).inlineRan), undefined);

  // CSRF: a change made with the cookie alone is refused before anything else is looked at; the
  // page's own requests carry the session's token (sign-out below).
  const noToken = await page.request.post(`${reg.url}/kiln/v1/promote`, { data: { source: 'team/app:v1', destination: 'team/app:rc' } });
  assert.equal(noToken.status(), 403);
  assert.match(await noToken.text(), /CSRF token/);
  const noTokenOut = await page.request.delete(`${reg.url}/kiln/v1/session`);
  assert.equal(noTokenOut.status(), 403);
  const session = (await (await page.request.get(`${reg.url}/kiln/v1/session`)).json()) as { user: string; csrf: string };
  assert.equal(session.user, 'dev', 'still signed in');
  const wrongToken = await page.request.delete(`${reg.url}/kiln/v1/session`, { headers: { 'x-kiln-csrf': session.csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) } });
  assert.equal(wrongToken.status(), 403);

  // Sign out: the session is gone on the server, not only in the browser.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  const replay = await fetch(`${reg.url}/kiln/v1/session`, { headers: { cookie: `kiln_session=${cookie.value}` } });
  assert.equal(((await replay.json()) as { user: string | null }).user, null);

  // Wrong passwords at the form and at /token count together: 2 + 2 reach the limit of 4.
  for (let i = 0; i < 2; i++) {
    await page.goto(`${reg.url}/ui/sign-in`);
    await page.getByLabel('User name').fill('eve');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('Wrong user name or password.').waitFor();
  }
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${reg.url}/token?service=${reg.config.auth.service}`, { headers: { authorization: 'Basic ' + Buffer.from('eve:wrong').toString('base64') } });
    assert.equal(r.status, 401);
  }
  const limited = await fetch(`${reg.url}/token?service=${reg.config.auth.service}`, { headers: { authorization: 'Basic ' + Buffer.from('eve:password-eve').toString('base64') } });
  assert.equal(limited.status, 429, 'the right password waits too');
  const form = await page.request.post(`${reg.url}/kiln/v1/session`, { data: { username: 'eve', password: 'password-eve' } });
  assert.equal(form.status(), 429);
  assert.deepEqual(dialogs, []);
});
