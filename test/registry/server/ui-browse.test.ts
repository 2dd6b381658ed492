import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { chromium, type Page } from 'playwright-core';
import { admin } from '../../../src/registry/server/admin.js';
import { SessionCookie } from '../../../src/registry/server/sessions.js';
import { indexOf, pushBlob, pushImage, randomImage, sha256, startRegistry, type TestImage } from './support.js';
import { makeTar } from '../../store/support.js';
import { pushSbom, spdx } from '../../sbom/support.js';

// The web UI's browsing (issue 20) in a real browser: the package and base searches as forms, an
// image's lineage, SBOM packages, per-layer file trees and an index's platforms; and the bad
// inputs: unknown repositories and digests, a manifest kiln cannot read, a history too long to
// show whole, a config too large to read, a layer tree past its bounds, an expired session.
// One registry and one browser for all of it (chromium starts in about a second).

const chromiumPath = '/usr/bin/chromium';
const BaseDigest = 'org.opencontainers.image.base.digest';
const BaseName = 'org.opencontainers.image.base.name';

/** An OCI image of these layers (plain tars) and config fields, as a build would write it. */
function image(layers: Buffer[], config: Record<string, unknown>, annotations?: Record<string, string>): TestImage {
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', ...config, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
      ...(annotations ? { annotations } : {}),
    }),
  );
  return { config: cfg, layers, manifest, digest: sha256(manifest), mediaType };
}

const dir = (path: string) => ({ header: { path, type: 'directory' as const } });
const file = (path: string, content: string) => ({ header: { path, type: 'file' as const }, content });

test('in Chromium: searching by package and by base, lineage, SBOM packages, layer file trees, platforms; not-found, unreadable, huge and expired inputs each get a clear page', { skip: existsSync(chromiumPath) ? false : `needs ${chromiumPath} (scripts/setup.sh installs Debian's chromium)` }, async (t) => {
  const reg = await startRegistry(t, (c) => {
    c.auth.enabled = true;
    c.limits.layerTreeEntries = 40;
    c.limits.layerTreeSize = 40 * 1024;
  });
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('dev', 'password-dev', false);
  await ops.grant('dev', 'team', 'developer');
  await ops.grant('dev', 'mine', 'developer');
  // One token for every push: a password check (argon2) per scope would cost seconds.
  const scopes = ['team/base', 'team/app', 'team/multi', 'team/long', 'team/huge', 'team/many', 'mine/copy'].map((r) => `scope=repository:${r}:push,pull`).join('&');
  const tokenAnswer = await fetch(`${reg.url}/token?service=${reg.config.auth.service}&${scopes}`, { headers: { authorization: 'Basic ' + Buffer.from('dev:password-dev').toString('base64') } });
  assert.equal(tokenAnswer.status, 200);
  const dev = reg.client({ token: ((await tokenAnswer.json()) as { token: string }).token });
  const host = new URL(reg.url).host;

  // A base with a few files, and an app on it whose layer adds one, rewrites one, deletes one
  // (whiteout) and empties a directory (opaque whiteout).
  const baseLayer = makeTar([dir('etc'), file('etc/os-release', 'ID=kiln\n'), file('etc/old.conf', 'x=1\n'), dir('var'), dir('var/cache'), file('var/cache/a', 'a'), file('var/cache/b', 'b'), dir('usr'), dir('usr/bin'), file('usr/bin/tool', '#!/bin/sh\n')]);
  const appLayer = makeTar([dir('etc'), file('etc/os-release', 'ID=kiln\nVERSION=2\n'), file('etc/.wh.old.conf', ''), dir('var/cache'), file('var/cache/.wh..wh..opq', ''), dir('app'), file('app/server.js', 'console.log("hi")\n')]);
  const history = [{ created_by: 'ADD rootfs.tar /' }, { created_by: 'COPY server.js /app/' }];
  const base = image([baseLayer], { history: history.slice(0, 1) });
  assert.equal((await pushImage(dev, 'team/base', '1', base)).status, 201);
  const app = image([baseLayer, appLayer], { history, config: { Cmd: ['node', '/app/server.js'] } }, { [BaseDigest]: base.digest, [BaseName]: `${host}/team/base:1` });
  assert.equal((await pushImage(dev, 'team/app', 'v1', app)).status, 201);
  await pushSbom(dev, 'team/app', app, spdx([
    ['libssl3', '3.0.11-1~deb12u2', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl'],
    ['zlib1g', '1:1.2.13.dfsg-1', 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1'],
  ]));
  // An index of two platforms.
  const amd = randomImage({ layers: 1 });
  const arm = randomImage({ layers: 1 });
  assert.equal((await pushImage(dev, 'team/multi', amd.digest, amd)).status, 201);
  assert.equal((await pushImage(dev, 'team/multi', arm.digest, arm)).status, 201);
  const idx = indexOf([amd, arm]);
  assert.equal((await dev.req('PUT', '/v2/team/multi/manifests/latest', { body: idx.body, headers: { 'content-type': idx.mediaType } })).status, 201);
  // A history of 1,500 entries; a config larger than the 4 MiB the page reads.
  const long = image([baseLayer], { history: Array.from({ length: 1500 }, (_, i) => ({ created_by: `RUN step ${i}`, empty_layer: i > 0 })) });
  assert.equal((await pushImage(dev, 'team/long', '1', long)).status, 201);
  const huge = image([baseLayer], { config: { Labels: { blob: 'x'.repeat(4 * 1024 * 1024 + 1) } } });
  assert.equal((await pushImage(dev, 'team/huge', '1', huge)).status, 201);
  // A schema 1 manifest, which /v2/ refuses, stored as an older registry or a migration could have.
  const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'team/old', tag: 'v0', fsLayers: [{ blobSum: sha256('x') }], note: '<b>bold</b>' }));
  await reg.registry.metadata.putManifest({ repository: 'team/old', digest: sha256(schema1), mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws', body: schema1, createdAt: Date.now() }, { blobs: [], manifests: [] }, ['v0']);

  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const signIn = async (p: Page) => {
    await p.getByLabel('User name').fill('dev');
    await p.getByLabel('Password').fill('password-dev');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText('Signed in as').waitFor();
  };
  await page.goto(`${reg.url}/ui/sign-in`);
  await signIn(page);
  /** Go to a page of the UI without reloading it (as its links do), which is much quicker than page.goto. */
  const visit = (path: string) =>
    page.evaluate((p) => {
      window.history.pushState(null, '', p);
      dispatchEvent(new PopStateEvent('popstate'));
    }, path);

  await t.test('the package form finds the image whose SBOM lists the package; the image page lists the SBOM\'s packages', async () => {
    await page.getByRole('link', { name: 'team/app' }).waitFor();
    await page.getByLabel('Package', { exact: true }).fill('openssl');
    await page.getByLabel('Version range').fill('>=3.0, <3.0.12');
    await page.getByRole('button', { name: 'Find images with the package' }).click();
    const hit = page.getByRole('link', { name: /^team\/app@sha256:/ });
    await hit.waitFor();
    assert.equal(await hit.count(), 1, 'only the image with the SBOM');
    assert.ok(await page.getByText('libssl3 3.0.11-1~deb12u2').isVisible(), 'the matching package and version');
    assert.match(page.url(), /\/ui\/search\?package=openssl&version=/, 'the query is in the address');
    // Out of range: nothing.
    await page.getByLabel('Version range').fill('<3.0');
    await page.getByRole('button', { name: 'Find images with the package' }).click();
    await page.getByText('No image you may pull matches.').waitFor();
    await page.goBack();
    await hit.click();
    await page.getByRole('heading', { name: 'SBOMs' }).waitFor();
    const sboms = page.getByRole('region', { name: 'SBOMs' });
    await sboms.getByText('zlib1g').waitFor();
    assert.ok(await sboms.getByText('libssl3').isVisible());
  });

  await t.test('the base form finds the image built on it; the image links its base and the base lists what is built on it', async () => {
    await visit(`/`);
    await page.getByLabel('Base image digest').fill(base.digest);
    await page.getByRole('button', { name: 'Find images built on it' }).click();
    await page.getByRole('cell', { name: 'directly' }).waitFor();
    await page.getByRole('link', { name: /^team\/app@sha256:/ }).click();
    const baseLink = page.getByRole('link', { name: `${host}/team/base:1 ${base.digest.slice(0, 19)}` });
    await baseLink.click();
    await page.getByRole('heading', { name: `team/base@${base.digest}` }).waitFor();
    await page.getByRole('link', { name: 'team/app:v1' }).waitFor();
  });

  await t.test('a layer\'s file tree shows the files it added and changed and those its whiteouts removed, a directory at a time', async () => {
    await visit(`/ui/image/team/app/v1`);
    await page.getByText('Files of layer 2').click();
    await page.getByText('1 file added, 1 changed, 3 removed.').waitFor();
    const tree = page.locator('details.layer-files').nth(1);
    await tree.locator('li[data-path="/app"] > details > summary').click();
    await tree.locator('li[data-path="/app/server.js"]', { hasText: 'added' }).waitFor();
    await tree.locator('li[data-path="/etc"] > details > summary').click();
    await tree.locator('li[data-path="/etc/old.conf"]', { hasText: 'removed' }).waitFor();
    await tree.locator('li[data-path="/etc/os-release"]', { hasText: 'changed' }).waitFor();
    // The opaque whiteout removed what the base had under /var/cache.
    await tree.locator('li[data-path="/var"] > details > summary').click();
    await tree.locator('li[data-path="/var/cache"] > details > summary').click();
    await tree.locator('li[data-path="/var/cache/a"]', { hasText: 'removed' }).waitFor();
    // The base's own layer: everything added, nothing removed; /usr/bin/tool is not in layer 2.
    assert.equal(await tree.locator('li[data-path="/usr"]').count(), 0, 'layer 2 does not touch /usr');
    await page.getByText('Files of layer 1').click();
    await page.getByText('5 files added, 0 changed, 0 removed.').waitFor();
  });

  await t.test('an index lists its platforms, each linking to its manifest', async () => {
    await visit(`/ui/image/team/multi/latest`);
    await page.getByRole('heading', { name: 'Platforms' }).waitFor();
    assert.ok(await page.getByRole('cell', { name: 'linux/amd64' }).isVisible());
    await page.getByRole('link', { name: arm.digest.slice(0, 19) }).click();
    await page.getByRole('heading', { name: `team/multi@${arm.digest}` }).waitFor();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
  });

  await t.test('an unknown repository, tag or digest gets a not-found page that says which', async () => {
    await visit(`/ui/repo/team/nothing`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    assert.ok(await page.getByText('no repository team/nothing').isVisible());
    const missing = 'sha256:' + '0'.repeat(64);
    await visit(`/ui/image/team/app/${missing}`);
    await page.getByText(`team/app has no manifest ${missing}`).waitFor();
    assert.ok(await page.getByRole('link', { name: 'Back to team/app' }).isVisible());
    await visit(`/ui/image/team/app/nope`);
    await page.getByText('team/app has no manifest tagged nope').waitFor();
    await visit(`/ui/nowhere`);
    await page.getByText('There is no page at /ui/nowhere.').waitFor();
  });

  await t.test('a manifest kiln cannot read is shown as stored, with a note saying why', async () => {
    await visit(`/ui/image/team/old/v0`);
    await page.getByText(/kiln cannot read this manifest \(schemaVersion 1 is not supported/).waitFor();
    assert.equal(await page.getByLabel('The manifest as stored').innerText(), schema1.toString('utf8'));
    assert.equal(await page.locator('main b').count(), 0, 'shown as text');
  });

  await t.test('a history too long and a config too large are cut with a note', async () => {
    await visit(`/ui/image/team/long/1`);
    await page.getByText('Only the first 1000 of 1500 entries are shown.').waitFor();
    assert.equal(await page.locator('table.history tbody tr').count(), 1000);
    await visit(`/ui/image/team/huge/1`);
    await page.getByText(/the config is \d+ bytes, larger than the 4194304 the web UI reads/).waitFor();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
  });

  await t.test('a layer tree past limits.layerTreeEntries or limits.layerTreeSize is cut with a note; bad layer and path parameters are 400s naming them', async () => {
    const many = makeTar(Array.from({ length: 50 }, (_, i) => dir(`d${i}`)));
    assert.equal((await pushImage(dev, 'team/many', '1', image([many], {}))).status, 201);
    const large = makeTar([file('blob', 'x'.repeat(48 * 1024))]);
    assert.equal((await pushImage(dev, 'team/many', 'large', image([large], {}))).status, 201);
    await visit(`/ui/image/team/many/1`);
    await page.getByText('Files of layer 1').click();
    await page.getByText(/Incomplete: layers 0 to 0 hold more than limits.layerTreeEntries \(40\) entries/).waitFor();
    const sized = (await (await page.request.get(`${reg.url}/kiln/v1/layer?repository=team/many&reference=large&layer=0`)).json()) as { truncated?: string; entries: unknown[] };
    assert.match(sized.truncated ?? '', /layers 0 to 0 hold \d+ bytes, more than limits.layerTreeSize \(40960\)/);
    assert.deepEqual(sized.entries, []);
    const api = (q: string) => page.request.get(`${reg.url}/kiln/v1/layer?repository=team/app&reference=v1&${q}`);
    const bad = await api('layer=x');
    assert.equal(bad.status(), 400);
    assert.match(await bad.text(), /layer: expected the index of a layer/);
    assert.match(await (await api('layer=0&path=../etc')).text(), /path: expected an absolute path/);
    const past = await api('layer=2');
    assert.equal(past.status(), 404);
    assert.match(await past.text(), /has 2 layers \(the first is 0\)/);
    // A non-distributable layer, which the registry need not hold: the tree says so.
    const foreign = randomBytes(64);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'windows', rootfs: { type: 'layers', diff_ids: [sha256(foreign)] } }));
    await pushBlob(dev, 'team/many', cfg);
    const win = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: sha256(foreign), size: foreign.length, urls: ['https://example.invalid/layer'] }] }));
    assert.equal((await dev.req('PUT', '/v2/team/many/manifests/win', { body: win, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
    const remote = (await (await page.request.get(`${reg.url}/kiln/v1/layer?repository=team/many&reference=win&layer=0`)).json()) as { truncated?: string; entries: unknown[] };
    assert.match(remote.truncated ?? '', /layer 0 \(sha256:[0-9a-f]+\) is not stored in team\/many \(a non-distributable layer/);
    assert.deepEqual(remote.entries, []);
    // A manifest elsewhere naming the base layer (already shown, so its tree is cached) as
    // non-distributable: the registry still checks that this repository holds the layer.
    await pushBlob(dev, 'mine/copy', cfg);
    const copy = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar', digest: sha256(baseLayer), size: baseLayer.length, urls: ['https://example.invalid/layer'] }] }));
    assert.equal((await dev.req('PUT', '/v2/mine/copy/manifests/x', { body: copy, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
    const copied = (await (await page.request.get(`${reg.url}/kiln/v1/layer?repository=mine/copy&reference=x&layer=0`)).json()) as { truncated?: string; entries: unknown[] };
    assert.match(copied.truncated ?? '', /is not stored in mine\/copy/);
    assert.deepEqual(copied.entries, [], 'nothing of the other repository\'s layer');
    // Paged: one entry a page, the cursor from the previous one.
    const p1 = (await (await api('layer=1&n=1')).json()) as { entries: { name: string }[]; next?: string };
    assert.deepEqual(p1.entries.map((e) => e.name), ['app']);
    const p2 = (await (await api(`layer=1&n=1&last=${p1.next}`)).json()) as { entries: { name: string }[] };
    assert.deepEqual(p2.entries.map((e) => e.name), ['etc']);
  });

  await t.test('an expired session sends the visitor to sign in, then back to the page they were going to', async () => {
    await visit(`/ui/repo/team/app`);
    await page.getByRole('link', { name: 'v1', exact: true }).waitFor();
    const cookie = (await context.cookies()).find((c) => c.name === SessionCookie)!;
    const idHash = createHash('sha256').update(cookie.value).digest('hex');
    const s = (await reg.registry.metadata.getSession(idHash, Date.now()))!;
    await reg.registry.metadata.deleteSession(idHash);
    await reg.registry.metadata.putSession({ ...s, expiresAt: Date.now() - 1000 });
    await page.getByRole('link', { name: 'v1', exact: true }).click();
    await page.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
    assert.equal(new URL(page.url()).searchParams.get('next'), '/ui/image/team/app/v1');
    assert.equal(await page.getByText('Signed in as').count(), 0, 'the header no longer claims a user');
    await signIn(page);
    await page.getByText('COPY server.js /app/').waitFor();
    assert.equal(new URL(page.url()).pathname, '/ui/image/team/app/v1');
  });
});
