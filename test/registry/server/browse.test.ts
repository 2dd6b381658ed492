import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admin } from '../../../src/registry/server/admin.js';
import { indexOf, pushImage, randomImage, startRegistry, type Client } from './support.js';

// The browsing half of /kiln/v1/ (issue 20) without a browser: pages of many tags (keyset
// pagination, both orders, nothing missed or repeated), what a tag row carries, and who sees what.

const put = (c: Client, repo: string, ref: string, m: { body: Buffer; mediaType: string } | { manifest: Buffer; mediaType: string }) =>
  c.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: 'body' in m ? m.body : m.manifest, headers: { 'content-type': m.mediaType } });
const basic = (user: string, password: string) => ({ authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') });

test('the tags of a repository of 120 tags come in pages by push time and by name, none missed or repeated, with size, pusher, platforms and SBOM/signature marks', async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  await admin(reg.registry.metadata, 'test').addUser('dev', 'password-dev', false);
  await admin(reg.registry.metadata, 'test').grant('dev', 'team', 'developer');
  const c = reg.client({ user: 'dev', password: 'password-dev' });
  const img = randomImage({ layers: 2, layerSize: 3000 });
  assert.equal((await pushImage(c, 'team/app', 'base', img)).status, 201);
  const total = 120;
  for (let i = 0; i < total; i += 40) {
    await Promise.all(Array.from({ length: 40 }, (_, k) => put(c, 'team/app', `v${String(i + k).padStart(4, '0')}`, img).then((r) => assert.equal(r.status, 201))));
  }
  // An index of two images, an SBOM and a signature referring to the image.
  const other = randomImage();
  await pushImage(c, 'team/app', other.digest, other);
  const index = indexOf([img, other]);
  assert.equal((await put(c, 'team/app', 'multi', index)).status, 201);
  const subject = { digest: img.digest, size: img.manifest.length, mediaType: img.mediaType };
  assert.equal((await pushImage(c, 'team/app', 'sbom', randomImage({ layers: 1, subject, artifactType: 'application/spdx+json' }))).status, 201);
  assert.equal((await pushImage(c, 'team/app', 'sig', randomImage({ layers: 1, subject, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }))).status, 201);
  await reg.registry.audit.flush();

  const h = basic('dev', 'password-dev');
  const token = (await (await fetch(`${reg.url}/token?service=${reg.config.auth.service}`, { headers: h })).json()) as { token: string };
  const get = async (path: string) => {
    const r = await fetch(reg.url + path, { headers: { authorization: `Bearer ${token.token}` } });
    assert.equal(r.status, 200, `${path}: ${r.status} ${await r.clone().text()}`);
    return r.json() as Promise<{ tags: { tag: string; digest: string; size: number; pushedAt: number; pushedBy?: string; platforms: { os: string; architecture: string }[]; sbom: boolean; signed: boolean }[]; next?: string }>;
  };
  for (const sort of ['-pushed', 'name', '-name', 'pushed']) {
    const seen: string[] = [];
    let last: string | undefined;
    let pages = 0;
    do {
      const page = await get(`/kiln/v1/tags?repository=team/app&sort=${sort}&n=37${last ? `&last=${encodeURIComponent(last)}` : ''}`);
      seen.push(...page.tags.map((x) => x.tag));
      last = page.next;
      pages++;
    } while (last);
    assert.equal(new Set(seen).size, seen.length, `${sort}: no tag twice`);
    assert.equal(seen.length, total + 4, `${sort}: every tag once`);
    assert.equal(pages, Math.ceil((total + 4) / 37));
    if (sort === 'name') assert.deepEqual(seen, [...seen].sort());
    if (sort === '-name') assert.deepEqual(seen, [...seen].sort().reverse());
  }
  const newest = await get('/kiln/v1/tags?repository=team/app&sort=-pushed&n=4');
  assert.deepEqual(newest.tags.slice(0, 3).map((x) => x.tag), ['sig', 'sbom', 'multi'], 'the latest pushes first');
  assert.ok(newest.tags.every((x, k) => k === 0 || newest.tags[k - 1]!.pushedAt >= x.pushedAt));
  const byName = await get('/kiln/v1/tags?repository=team/app&sort=name&n=1000');
  const base = byName.tags.find((x) => x.tag === 'base')!;
  assert.equal(base.digest, img.digest);
  assert.equal(base.size, img.manifest.length + img.config.length + img.layers.reduce((n, l) => n + l.length, 0), 'size: manifest, config and layers');
  assert.equal(base.pushedBy, 'dev', 'the pusher, from the audit log');
  assert.equal(base.sbom, true);
  assert.equal(base.signed, true);
  const multi = byName.tags.find((x) => x.tag === 'multi')!;
  assert.deepEqual(multi.platforms.map((p) => `${p.os}/${p.architecture}`), ['linux/amd64', 'linux/arm64']);
  assert.equal(multi.sbom, false);

  const bad = await fetch(`${reg.url}/kiln/v1/tags?repository=team/app&sort=pushed&last=nonsense`, { headers: h });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /last: not a cursor of sort=pushed/);
  assert.equal((await fetch(`${reg.url}/kiln/v1/tags?repository=team/app&sort=size`, { headers: h })).status, 400);
});

test('repositories, tags and images show only what the caller may pull: a member sees its namespace and public ones, anonymous only public ones', async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  await ops.addUser('alice', 'password-alice', false);
  await ops.grant('alice', 'team', 'developer');
  await ops.setNamespace('pub', { public: true });
  const root = reg.client({ user: 'root', password: 'password-root' });
  for (const repo of ['team/app', 'other/secret', 'pub/tool']) assert.equal((await pushImage(root, repo, 'latest', randomImage())).status, 201);

  const names = async (headers: Record<string, string>, q = '') =>
    ((await (await fetch(`${reg.url}/kiln/v1/repositories${q}`, { headers })).json().then((j) => (j.repositories ? j : assert.fail(JSON.stringify(j))))) as { repositories: { name: string; tags: number; size: number }[] }).repositories.map((r) => r.name);
  assert.deepEqual(await names(basic('alice', 'password-alice')), ['pub/tool', 'team/app']);
  assert.deepEqual(await names({}), ['pub/tool'], 'anonymous: public namespaces only');
  assert.deepEqual(await names(basic('root', 'password-root')), ['other/secret', 'pub/tool', 'team/app']);
  assert.deepEqual(await names(basic('root', 'password-root'), '?filter=TOO'), ['pub/tool'], 'the filter: a substring, any case');
  const paged = (await (await fetch(`${reg.url}/kiln/v1/repositories?n=2`, { headers: basic('root', 'password-root') })).json()) as { repositories: unknown[]; next?: string };
  assert.equal(paged.repositories.length, 2);
  assert.equal(paged.next, 'pub/tool');

  assert.equal((await fetch(`${reg.url}/kiln/v1/tags?repository=other/secret`, { headers: basic('alice', 'password-alice') })).status, 404, 'another namespace is not told to exist');
  assert.equal((await fetch(`${reg.url}/kiln/v1/tags?repository=other/secret`)).status, 401, 'anonymous: sign in');
  assert.equal((await fetch(`${reg.url}/kiln/v1/image?repository=other/secret&reference=latest`, { headers: basic('alice', 'password-alice') })).status, 404);
  const pub = await fetch(`${reg.url}/kiln/v1/image?repository=pub/tool&reference=latest`);
  assert.equal(pub.status, 200);
  const view = (await pub.json()) as { kind: string; layers: unknown[]; config: { platform: { os: string } } };
  assert.equal(view.kind, 'image');
  assert.equal(view.layers.length, 2);
  assert.equal(view.config.platform.os, 'linux');
  const unknown = await fetch(`${reg.url}/kiln/v1/image?repository=pub/tool&reference=nope`);
  assert.equal(unknown.status, 404);
  assert.match(await unknown.text(), /pub\/tool has no manifest tagged nope/);
});
