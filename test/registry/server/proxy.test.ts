import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../../support/env.js';
import { startDistribution, startProxy } from '../client/support.js';
import { admin } from '../../../src/registry/server/admin.js';
import { indexOf, pushBlob, pushImage, randomImage, registryCli, sha256, startRegistry, waitFor, type TestRegistry } from './support.js';

// Pull-through cache namespaces (issue 23): `namespace set NS --proxy URL`, a pull that misses
// fetched from upstream and stored, served later with upstream gone, tags re-checked after the
// TTL, pushes refused; and upstreams that answer garbage, redirect elsewhere or refuse our credentials.

const run = promisify(execFile);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sh = async (cmd: string, args: string[]) => {
  try {
    return (await run(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr || err.message}`);
  }
};
const hostOf = (url: string) => url.replace(/^https?:\/\//, '');
const OciManifest = 'application/vnd.oci.image.manifest.v1+json';
const Accept = [OciManifest, 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

/** Make `ns` a proxy of `url` offline, then wait until the serving registry sees it (its 250 ms SQLite poll). */
async function setProxy(reg: TestRegistry, ns: string, url: string, extra: string[] = [], input?: string): Promise<void> {
  const r = await registryCli(reg, ['namespace', 'set', ns, '--proxy', url, ...extra], { input });
  assert.equal(r.code, 0, r.stderr);
  await waitFor(async () => (await reg.registry.proxy.upstreamOf(`${ns}/x`)) !== undefined, 5_000, 'the proxy setting');
}

/** The same through the service's own admin operations, in this process (no CLI to spawn). */
async function setProxyHere(reg: TestRegistry, ns: string, proxy: { url: string; username?: string; password?: string; ttlSeconds?: number }): Promise<void> {
  await admin(reg.registry.metadata, 'test').setNamespace(ns, { proxy });
  reg.registry.proxy.invalidate();
}

async function proxyFetches(reg: TestRegistry): Promise<string[]> {
  await reg.registry.audit.flush();
  return (await reg.registry.metadata.listAudit({ action: 'proxy-fetch', limit: 100 })).map((e) => e.digest ?? '');
}

test('a proxy namespace fetches busybox from docker-registry on the first pull, serves it with upstream stopped, sees a moved tag after the TTL and refuses pushes', { skip: !(has('skopeo') && has('docker-registry')) && 'skopeo or docker-registry missing', timeout: 60_000 }, async (t) => {
  const upstream = await startDistribution(t, { user: 'up', password: 'up-password' });
  await sh('skopeo', ['copy', '-q', '--dest-creds', 'up:up-password', `oci-archive:${fixture('busybox')}`, `docker://${upstream.host}/library/busybox:latest`, '--dest-tls-verify=false']);
  const upstreamDigest = (await sh('skopeo', ['inspect', '--creds', 'up:up-password', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${upstream.host}/library/busybox:latest`])).trim();

  const reg = await startRegistry(t);
  await setProxy(reg, 'proxyns', upstream.url, ['--proxy-username', 'up', '--proxy-password-stdin', '--proxy-ttl', '1s'], 'up-password\n');
  const listed = await registryCli(reg, ['namespace', 'list']);
  assert.match(listed.stdout, new RegExp(`proxyns .*${upstream.url.replace(/[.]/g, '\\.')} \\(credentials set\\)`));
  assert.doesNotMatch(listed.stdout + (await registryCli(reg, ['audit', '--format', 'json'])).stdout, /up-password/);

  // First pull: fetched from upstream, verified, stored.
  const dir = await tempDir(t, 'kiln-proxy-');
  const here = `docker://${hostOf(reg.url)}/proxyns/library/busybox:latest`;
  await sh('skopeo', ['copy', '-q', '--src-tls-verify=false', here, `oci:${dir}/first:x`]);
  const inspect = async () => (await sh('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', here])).trim();
  assert.equal(await inspect(), upstreamDigest);
  const manifest = JSON.parse(await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', here])) as { config: { digest: string }; layers: { digest: string }[] };
  const fetched = await proxyFetches(reg);
  for (const d of [upstreamDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) assert.ok(fetched.includes(d), `proxy-fetch of ${d} audited`);
  assert.ok(await reg.registry.metadata.linkedBlob('proxyns/library/busybox', manifest.layers[0]!.digest), 'the layer is linked into the repository');

  // The tag moves upstream (the same image as a Docker v2 manifest): seen once the TTL has passed.
  await sh('skopeo', ['copy', '-q', '--format', 'v2s2', '--dest-creds', 'up:up-password', `oci-archive:${fixture('busybox')}`, `docker://${upstream.host}/library/busybox:latest`, '--dest-tls-verify=false']);
  const moved = (await sh('skopeo', ['inspect', '--creds', 'up:up-password', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${upstream.host}/library/busybox:latest`])).trim();
  assert.notEqual(moved, upstreamDigest);
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal(await inspect(), moved);

  // Upstream gone: the second pull is served from what was stored, digests identical.
  await upstream.stop();
  await new Promise((r) => setTimeout(r, 1_100));
  await sh('skopeo', ['copy', '-q', '--src-tls-verify=false', here, `oci:${dir}/second:x`]);
  assert.equal(await inspect(), moved);
  const byDigest = await reg.client().req('GET', `/v2/proxyns/library/busybox/manifests/${upstreamDigest}`, { headers: { accept: Accept } });
  assert.equal(byDigest.status, 200);
  assert.equal(sha256(byDigest.body), upstreamDigest);

  // Pushes, uploads and mounts into the proxy namespace are refused, naming it.
  const c = reg.client();
  const post = await c.req('POST', '/v2/proxyns/library/busybox/blobs/uploads/');
  assert.equal(post.status, 403);
  assert.equal(post.json().errors[0].code, 'DENIED');
  assert.match(post.json().errors[0].message, /proxyns is a pull-through cache/);
  const put = await c.req('PUT', '/v2/proxyns/library/busybox/manifests/mine', { body: byDigest.body, headers: { 'content-type': OciManifest } });
  assert.equal(put.status, 403);
  assert.match(put.text(), /DENIED.*pull-through cache/);
  await assert.rejects(sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${fixture('busybox')}`, `docker://${hostOf(reg.url)}/proxyns/mine:latest`]), /denied|pull-through/i);
});

/** A small HTTP server on loopback answering `handle` (an upstream that misbehaves on purpose). */
async function server(t: { after: (fn: () => Promise<void> | void) => void }, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer(handle);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}

test('a proxy of an upstream that answers garbage, sends bytes of another digest, redirects a manifest to another host or refuses our credentials gives 502 naming it and stores nothing; a blob streams to its client while being stored, also when redirected to storage', async (t) => {
  const good = randomImage({ layers: 1 });
  const wrongBytes = Buffer.from('not the layer');
  const big = randomBytes(2 << 20);
  // Another host (another port): where a blob may be redirected to, and a manifest may not.
  const elsewhere = await server(t, (req, res) => {
    if (req.url?.endsWith(`/blobs/${sha256(good.layers[0]!)}`)) return void res.writeHead(200, { 'content-length': good.layers[0]!.length }).end(good.layers[0]);
    res.writeHead(200, { 'content-type': OciManifest, 'docker-content-digest': good.digest }).end(good.manifest);
  });
  const upstream = await server(t, (req, res) => {
    const u = req.url ?? '';
    if (u === '/v2/') return void res.writeHead(200).end('{}');
    if (u === '/v2/lib/garbage/manifests/latest') return void res.writeHead(200, { 'content-type': OciManifest }).end('<html>not json');
    if (u === '/v2/lib/lying/manifests/latest') return void res.writeHead(200, { 'content-type': OciManifest, 'docker-content-digest': sha256('other') }).end(good.manifest);
    if (u === '/v2/lib/redirect/manifests/latest') return void res.writeHead(307, { location: `${elsewhere}/v2/lib/redirect/manifests/latest` }).end();
    if (u === '/v2/lib/img/manifests/latest') return void res.writeHead(200, { 'content-type': OciManifest, 'docker-content-digest': good.digest }).end(good.manifest);
    if (u === `/v2/lib/img/blobs/${sha256(good.layers[0]!)}`) return void res.writeHead(307, { location: `${elsewhere}${u}` }).end();
    if (u.startsWith('/v2/lib/bad/blobs/')) return void res.writeHead(200, { 'content-length': wrongBytes.length }).end(wrongBytes);
    if (u.startsWith('/v2/lib/slow/blobs/')) {
      // Half now, half after 600 ms: the client should have the first half long before.
      res.writeHead(200, { 'content-length': big.length }).write(big.subarray(0, big.length / 2));
      return void setTimeout(() => res.end(big.subarray(big.length / 2)), 600);
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}');
  });
  const refusing = await server(t, (req, res) => {
    if (req.url === '/v2/') return void res.writeHead(401, { 'www-authenticate': 'Basic realm="upstream"' }).end();
    res.writeHead(401, { 'www-authenticate': 'Basic realm="upstream"', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
  });

  const reg = await startRegistry(t);
  // A --proxy that is not http(s), or carries credentials in the URL: refused, nothing changed.
  for (const [bad, why] of [['ftp://127.0.0.1/', /--proxy: "ftp:\/\/127.0.0.1\/": only http:\/\/ and https:\/\//], ['registry.example.com', /--proxy: "registry.example.com" is not a URL/]] as const) {
    const r = await registryCli(reg, ['namespace', 'set', 'broken', '--public', '--proxy', bad]);
    assert.notEqual(r.code, 0, bad);
    assert.match(r.stderr, why);
  }
  for (const bad of ['file:///etc', 'http://u:p@127.0.0.1:1', 'http://127.0.0.1:1/?q=1', 'http://127.0.0.1:1/UPPER']) {
    await assert.rejects(setProxyHere(reg, 'broken', { url: bad }), /--proxy/, bad);
  }
  assert.equal(await reg.registry.metadata.getProxy('broken'), undefined);
  assert.equal(await reg.registry.metadata.getNamespace('broken'), undefined, 'nothing of the refused command was written');
  await setProxyHere(reg, 'up', { url: upstream });
  await setProxyHere(reg, 'locked', { url: refusing, username: 'me', password: 'wrong' });
  const c = reg.client();
  const get = (path: string) => c.req('GET', path, { headers: { accept: Accept } });
  const error = (r: { json(): any }) => `${r.json().errors[0].code} ${r.json().errors[0].message}`;

  const garbage = await get('/v2/up/lib/garbage/manifests/latest');
  assert.equal(garbage.status, 502);
  assert.match(error(garbage), new RegExp(`^UNAVAILABLE upstream ${upstream}.*not valid JSON`));
  const lying = await get('/v2/up/lib/lying/manifests/latest');
  assert.equal(lying.status, 502);
  assert.match(error(lying), /says the manifest is sha256:.* but its content is/);
  const redirected = await get('/v2/up/lib/redirect/manifests/latest');
  assert.equal(redirected.status, 502);
  assert.match(error(redirected), /redirected the manifest .* refused/);
  const locked = await get('/v2/locked/lib/x/manifests/latest');
  assert.equal(locked.status, 502);
  assert.match(error(locked), new RegExp(`upstream ${refusing} of proxy namespace locked refused the proxy's credentials`));
  for (const repo of ['up/lib/garbage', 'up/lib/lying', 'up/lib/redirect']) assert.equal(await reg.registry.metadata.resolveTag(repo, 'latest'), undefined, repo);
  assert.equal((await get('/v2/up/lib/missing/manifests/latest')).status, 404);

  // Bytes that are not the digest asked for: the streamed answer is cut before its end, nothing is stored.
  const digest = sha256(good.layers[0]!);
  await assert.rejects(async () => {
    const r = await fetch(`${reg.url}/v2/up/lib/bad/blobs/${digest}`);
    await r.arrayBuffer();
  });
  const head = await c.req('HEAD', `/v2/up/lib/bad/blobs/${digest}`);
  assert.equal(head.status, 502);
  assert.equal(await reg.registry.metadata.linkedBlob('up/lib/bad', digest), undefined);

  // The client that caused the fetch gets the bytes while they arrive, not once the blob is stored.
  const started = Date.now();
  const slow = await fetch(`${reg.url}/v2/up/lib/slow/blobs/${sha256(big)}`);
  const reader = slow.body!.getReader();
  const chunks: Uint8Array[] = [];
  let firstAt = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    firstAt ||= Date.now() - started;
    chunks.push(r.value);
  }
  assert.ok(firstAt < 500, `first bytes after ${firstAt} ms, upstream sends the rest after 600`);
  assert.ok(Buffer.concat(chunks).equals(big));
  assert.ok(await reg.registry.metadata.linkedBlob('up/lib/slow', sha256(big)));

  // A blob redirected to another host (object storage) is fetched from there and verified.
  assert.equal((await get('/v2/up/lib/img/manifests/latest')).status, 200);
  const blob = await get(`/v2/up/lib/img/blobs/${digest}`);
  assert.equal(blob.status, 200);
  assert.ok(blob.body.equals(good.layers[0]!));
  assert.equal((await reg.registry.metadata.linkedBlob('up/lib/img', digest))?.size, good.layers[0]!.length);
});

test('an index pulled by tag through a proxy of another kiln registry stores its children only when they are asked for; concurrent misses fetch a blob once', async (t) => {
  const upstream = await startRegistry(t);
  const [a, b] = [randomImage({ layers: 1, layerSize: 300_000 }), randomImage({ layers: 1 })];
  const u = upstream.client();
  await pushImage(u, 'team/app', a.digest, a);
  await pushImage(u, 'team/app', b.digest, b);
  const idx = indexOf([a, b]);
  assert.equal((await u.req('PUT', '/v2/team/app/manifests/v1', { body: idx.body, headers: { 'content-type': idx.mediaType } })).status, 201);

  // Blobs answer slowly, so that the concurrent misses below overlap; `down` makes upstream fail.
  let down = false;
  const front = await startProxy(t, upstream.url, (req) => (down ? { status: 500, body: 'down' } : req.url?.includes('/blobs/') ? { delayMs: 300 } : 'pass'));
  // No grace period: the collection below would remove at once whatever no tag reaches.
  const reg = await startRegistry(t, (cfg) => (cfg.gc.gracePeriod = 0));
  const logged: string[] = [];
  const log = reg.registry.log.log.bind(reg.registry.log);
  reg.registry.log.log = (level, msg, fields) => (logged.push(`${level} ${msg}`), log(level, msg, fields));
  // The URL's path is the upstream repository prefix: cache/app is team/app upstream. TTL 0: every tag pull asks upstream.
  await setProxyHere(reg, 'cache', { url: `${front.url}/team`, ttlSeconds: 0 });
  const c = reg.client();
  const index = await c.req('GET', '/v2/cache/app/manifests/v1', { headers: { accept: Accept } });
  assert.equal(index.status, 200);
  assert.equal(sha256(index.body), idx.digest);
  assert.equal(await reg.registry.metadata.getManifest('cache/app', a.digest), undefined, 'children wait until asked for');
  assert.equal((await c.req('GET', `/v2/cache/app/manifests/${a.digest}`, { headers: { accept: Accept } })).status, 200);
  assert.ok(await reg.registry.metadata.getManifest('cache/app', a.digest));
  assert.equal(await reg.registry.metadata.getManifest('cache/app', b.digest), undefined);

  const layer = sha256(a.layers[0]!);
  const bodies = await Promise.all([1, 2, 3, 4].map(async () => (await c.req('GET', `/v2/cache/app/blobs/${layer}`)).body));
  for (const body of bodies) assert.ok(body.equals(a.layers[0]!));
  assert.equal(front.log.filter((l) => l.path.endsWith(`/blobs/${layer}`)).length, 1, 'one upstream fetch for four concurrent misses');
  assert.equal((await proxyFetches(reg)).filter((d) => d === layer).length, 1);

  // Upstream failing: the tag is served from the cache, and the log says so; garbage collection keeps it all.
  down = true;
  const cached = await c.req('GET', '/v2/cache/app/manifests/v1', { headers: { accept: Accept } });
  assert.equal(cached.status, 200);
  assert.equal(sha256(cached.body), idx.digest);
  assert.ok(logged.includes('warn proxy: upstream failed; serving the cached copy'), logged.join('\n'));
  await reg.registry.gc();
  assert.ok(await reg.registry.metadata.getManifest('cache/app', a.digest));
  assert.equal(await reg.registry.metadata.resolveTag('cache/app', 'v1'), idx.digest);
  assert.ok(await reg.registry.metadata.linkedBlob('cache/app', layer));

  // Uploads into the proxy namespace are refused even where the blob exists upstream.
  assert.equal((await c.req('POST', `/v2/cache/app/blobs/uploads/?mount=${layer}&from=cache/app`)).status, 403);
  await assert.rejects(pushBlob(c, 'cache/other', Buffer.from('x')), /403/);
});

test('the /kiln/v1/ namespace API sets a proxy without ever showing its password, and a proxy namespace stays private: anonymous pulls get 401 and reach no upstream', async (t) => {
  let upstreamRequests = 0;
  const upstream = await server(t, (_req, res) => {
    upstreamRequests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const reg = await startRegistry(t, (cfg) => (cfg.auth.enabled = true));
  await admin(reg.registry.metadata, 'test').addUser('root', 'root-password', true);
  const basic = { authorization: 'Basic ' + Buffer.from('root:root-password').toString('base64'), 'content-type': 'application/json' };
  const bad = await fetch(`${reg.url}/kiln/v1/namespaces/hub`, { method: 'PUT', headers: basic, body: JSON.stringify({ proxy: { url: 'gopher://x' } }) });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /--proxy.*only http/);
  const set = await fetch(`${reg.url}/kiln/v1/namespaces/hub`, { method: 'PUT', headers: basic, body: JSON.stringify({ proxy: { url: upstream, username: 'u', password: 's3cret-pw', ttl: '10m' } }) });
  assert.equal(set.status, 200);
  const shown = await set.text();
  assert.doesNotMatch(shown, /s3cret-pw/);
  assert.deepEqual(JSON.parse(shown).proxy, { url: upstream, ttlSeconds: 600, credentials: true });
  const list = await (await fetch(`${reg.url}/kiln/v1/namespaces`, { headers: basic })).text();
  assert.doesNotMatch(list, /s3cret-pw/);

  const before = upstreamRequests;
  assert.equal((await fetch(`${reg.url}/v2/hub/library/busybox/manifests/latest`)).status, 401);
  assert.equal(upstreamRequests, before);

  // Evicting from the cache (DELETE) is for the namespace's admins and system administrators only.
  await admin(reg.registry.metadata, 'test').addUser('max', 'max-password', false);
  await admin(reg.registry.metadata, 'test').grant('max', 'hub', 'maintainer');
  const maintainer = reg.client({ user: 'max', password: 'max-password' });
  const refused = await maintainer.req('DELETE', '/v2/hub/library/busybox/manifests/latest');
  assert.equal(refused.status, 403);
  assert.match(refused.text(), /DENIED.*namespace hub is a pull-through cache/);
  const root = reg.client({ user: 'root', password: 'root-password' });
  assert.equal((await root.req('DELETE', '/v2/hub/library/busybox/manifests/latest')).status, 404, 'past the proxy rule: there is no such tag');

  const off = await fetch(`${reg.url}/kiln/v1/namespaces/hub`, { method: 'PUT', headers: basic, body: JSON.stringify({ proxy: null }) });
  assert.equal(off.status, 200);
  assert.equal(JSON.parse(await off.text()).proxy, undefined);
});
