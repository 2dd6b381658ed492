import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk } from '../../support/env.js';
import { freePort } from '../server/support.js';
import { client, has, hostOf, startDistribution, startRegistry, testEnv, type T, type TestEnv } from './support.js';

// kiln build --push / --output type=registry, and the build cache through a registry:
// --cache-to type=registry|inline, --cache-from, cache mounts that travel (mounts=true).

async function writeContext(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/** A store root with busybox loaded, private to the test. */
async function freshStore(e: TestEnv, name: string): Promise<string> {
  const root = join(e.dir, name);
  await kilnOk(root, ['load', '-i', fixture('busybox')], { env: e.env });
  return root;
}

async function build(e: TestEnv, root: string, ctx: string, args: string[]) {
  const r = await kiln(root, ['build', '--progress', 'plain', ...args, ctx], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
  return { ...r, steps: steps(r.stderr) };
}

/** The steps of a plain-progress log (FROM lines aside) and whether each was CACHED. */
function steps(log: string): { name: string; cached: boolean }[] {
  const names = new Map<string, string>();
  for (const m of log.matchAll(/^#(\d+) (\[.*\] (?!FROM ).*)$/gm)) names.set(m[1]!, m[2]!);
  const cached = new Set([...log.matchAll(/^#(\d+) CACHED$/gm)].map((m) => m[1]!));
  return [...names].map(([id, name]) => ({ name, cached: cached.has(id) }));
}

const ran = (s: { name: string; cached: boolean }[]) => s.filter((x) => !x.cached).map((x) => x.name);

async function imageId(e: TestEnv, root: string, name: string): Promise<string> {
  return JSON.parse(await kilnOk(root, ['inspect', name], { env: e.env }))[0].Id;
}

const app = {
  // A build stage whose layer the final image does not contain: mode=max exports it, and a
  // rebuild that hits every step never needs to download it.
  Dockerfile: [
    'FROM busybox AS tool',
    // The stage's layer holds more than the file copied out of it, so the two layers differ.
    'RUN head -c 4096 /dev/urandom > /tool.bin && echo built > /tool.log',
    'FROM busybox',
    'WORKDIR /app',
    'COPY big.bin .',
    'COPY a.txt .',
    'RUN cat a.txt > a2.txt && head -c 16 /dev/urandom | od -x > stamp',
    'COPY --from=tool /tool.bin /tool.bin',
    'COPY b.txt .',
    'RUN cat b.txt a2.txt > all.txt && head -c 16 /dev/urandom | od -x > stamp2',
    '',
  ].join('\n'),
  'a.txt': 'alpha\n',
  'b.txt': 'beta\n',
  // Incompressible and over 16 MiB: its layer is imported on a download thread (fetchBlobInThread).
  'big.bin': randomBytes(17 << 20),
};

async function registryCacheRoundTrip(t: T, host: string) {
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, app);
  const a = await freshStore(e, 'store-a');
  const first = await build(e, a, ctx, ['-t', `${host}/app/img:1`, '--push', '--cache-to', `type=registry,ref=${host}/app/cache:main,mode=max`]);
  assert.ok(ran(first.steps).length >= 6, first.stderr);
  assert.match(first.stderr, /exporting cache to .*app\/cache:main/);
  const idA = await imageId(e, a, `${host}/app/img:1`);

  // An empty store (busybox only) on "another machine", with the context checked out elsewhere
  // (another path, new inodes and mtimes): every step comes from the registry.
  const b = await freshStore(e, 'store-b');
  const elsewhere = join(e.dir, 'checkout', 'ctx');
  await cp(ctx, elsewhere, { recursive: true });
  const second = await build(e, b, elsewhere, ['-t', 'rebuilt', '--cache-from', `type=registry,ref=${host}/app/cache:main`]);
  assert.deepEqual(ran(second.steps), [], second.stderr);
  assert.equal(second.steps.length, first.steps.length);
  assert.equal(await imageId(e, b, 'rebuilt'), idA);

  // One source file changes: the steps from its COPY on run, the ones before stay cached.
  await writeFile(join(ctx, 'b.txt'), 'beta 2\n');
  const c = await freshStore(e, 'store-c');
  const third = await build(e, c, ctx, ['-t', 'changed', '--cache-from', `type=registry,ref=${host}/app/cache:main`]);
  assert.deepEqual(ran(third.steps).map((s) => s.replace(/^\[.*?\] /, '')), ['COPY b.txt .', 'RUN cat b.txt a2.txt > all.txt && head -c 16 /dev/urandom | od -x > stamp2']);
  return { e, a, b };
}

test('--cache-to type=registry,mode=max then --cache-from on an empty store: every step CACHED, same image ID; a changed file reruns only what follows it', { timeout: 240_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const { e, b } = await registryCacheRoundTrip(t, host);
  // Lazy: the tool stage's layer is in the cache artifact, but no step of store B needed it.
  const c = client(reg.url);
  const manifest = (await c.req('GET', '/v2/app/cache/manifests/main', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  assert.equal(manifest.artifactType, 'application/vnd.kiln.buildcache.v1');
  // Each record names the step before it, so an importer can fetch a layer one step ahead.
  const doc = (await c.req('GET', `/v2/app/cache/blobs/${manifest.config.digest}`)).json();
  const keys = new Set(doc.records.map((r: { key: string }) => r.key));
  assert.ok(doc.records.length >= 6 && doc.records.every((r: { parent?: unknown }) => typeof r.parent === 'string'), JSON.stringify(doc.records));
  assert.ok(doc.records.filter((r: { parent: string }) => keys.has(r.parent)).length >= 4, 'records chain to one another');
  const image = (await c.req('GET', '/v2/app/img/manifests/1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  const inImage = new Set(image.layers.map((l: { digest: string }) => l.digest));
  const stageOnly = manifest.layers.filter((l: { digest: string }) => !inImage.has(l.digest));
  assert.equal(stageOnly.length, 1, JSON.stringify(manifest.layers));
  assert.equal(existsSync(join(b, 'blobs', 'sha256', stageOnly[0].digest.slice(7))), false, 'the unused stage layer was downloaded');
  void e;
});

test('registry cache through Debian\'s docker-registry (CNCF Distribution)', { skip: !has('docker-registry') && 'docker-registry not installed', timeout: 240_000 }, async (t) => {
  const reg = await startDistribution(t);
  await registryCacheRoundTrip(t, reg.host);
});

test('--cache-to type=registry,mode=min exports only the final image\'s steps', { timeout: 180_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, app);
  const a = await freshStore(e, 'store-a');
  await build(e, a, ctx, ['--cache-to', `type=registry,ref=${host}/app/cache:min,mode=min`]);
  const b = await freshStore(e, 'store-b');
  const again = await build(e, b, ctx, ['--cache-from', `${host}/app/cache:min`]);
  // The tool stage is not in a mode=min cache: it runs; the final stage's steps before the
  // COPY --from are cached, and the COPY --from is too since the tool stage's key is the same.
  assert.deepEqual(ran(again.steps).map((s) => s.replace(/^\[.*?\] /, '')), ['RUN head -c 4096 /dev/urandom > /tool.bin && echo built > /tool.log']);
});

test('--cache-to type=inline with --push, then --cache-from the image on an empty store: every step CACHED, same digest', { timeout: 180_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt && head -c 16 /dev/urandom | od -x > /stamp\nENV X=1\n', 'a.txt': 'inline\n' });
  const a = await freshStore(e, 'store-a');
  await build(e, a, ctx, ['-t', `${host}/app/inline:1`, '--push', '--cache-to', 'type=inline']);
  const b = await freshStore(e, 'store-b');
  const again = await build(e, b, ctx, ['-t', 'again', '--cache-from', `${host}/app/inline:1`, '--cache-to', 'type=inline']);
  assert.deepEqual(ran(again.steps), [], again.stderr);
  assert.equal(await imageId(e, b, 'again'), await imageId(e, a, `${host}/app/inline:1`));
});

test('--cache-from a reference with no cache builds anyway, with a warning', { timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nRUN echo hi > /hi\n' });
  const a = await freshStore(e, 'store-a');
  const r = await build(e, a, ctx, ['--cache-from', `type=registry,ref=${hostOf(reg.url)}/none/cache:x`]);
  assert.match(r.stderr, /--cache-from .*none\/cache:x: .*manifest unknown; building without it/);
  assert.deepEqual(ran(r.steps).length, 1);
});

test('cache mounts travel: mounts=true exports a RUN --mount=type=cache directory, --cache-from restores it for an uncached step', { timeout: 180_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, {
    Dockerfile: 'FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs if [ -f /var/cache/pkgs/warm ]; then cp /var/cache/pkgs/warm /found; else echo cold-$RANDOM > /var/cache/pkgs/warm; echo none > /found; fi\n',
  });
  const a = await freshStore(e, 'store-a');
  await build(e, a, ctx, ['--cache-to', `type=registry,ref=${host}/app/cache:mounts,mode=max,mounts=true`]);
  const saved = (await readdir(join(a, 'cachemounts')))[0]!;
  const manifest = (await client(reg.url).req('GET', '/v2/app/cache/manifests/mounts', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  const mountLayers = manifest.layers.filter((l: { annotations?: Record<string, string> }) => l.annotations?.['dev.kiln.buildcache.mount.id'] === 'pkgs');
  assert.equal(mountLayers.length, 1);

  // A fresh store, --no-cache: the RUN is not cached, so it really runs, and finds the file the
  // first build left in the cache mount. The image's layers never contain the cache directory.
  const b = await freshStore(e, 'store-b');
  const out = join(e.dir, 'out');
  const r = await build(e, b, ctx, ['--no-cache', '--cache-from', `type=registry,ref=${host}/app/cache:mounts`, '-o', `type=local,dest=${out}`]);
  assert.deepEqual(ran(r.steps).length, 1);
  const warm = await readFile(join(a, 'cachemounts', saved, 'warm'), 'utf8');
  assert.match(warm, /^cold-\d+\n$/);
  assert.equal(await readFile(join(out, 'found'), 'utf8'), warm);
  assert.equal(existsSync(join(out, 'var/cache/pkgs/warm')), false);

  // Without mounts=true nothing of the cache mount is exported.
  await build(e, a, ctx, ['--cache-to', `type=registry,ref=${host}/app/cache:nomounts,mode=max`]);
  const plain = (await client(reg.url).req('GET', '/v2/app/cache/manifests/nomounts', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  assert.equal(plain.layers.some((l: { annotations?: Record<string, string> }) => l.annotations), false);

  // mounts-max-size: a cache mount larger than the limit stays home, with a warning.
  const small = await build(e, a, ctx, ['--cache-to', `type=registry,ref=${host}/app/cache:small,mode=max,mounts=true,mounts-max-size=1`]);
  assert.match(small.stderr, /cache mount "pkgs" not exported: \d+ bytes is more than mounts-max-size=1/);
  await rm(out, { recursive: true, force: true });
});

test('kiln build --push and --output type=registry push the stored image; a failed push exits non-zero and keeps the image', { timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nRUN echo pushed > /p\n' });
  const a = await freshStore(e, 'store-a');
  const r = await build(e, a, ctx, ['-t', `${host}/team/app:1`, '--push']);
  const digest = /pushing .*team\/app:1: 1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(r.stderr)?.[1];
  assert.ok(digest, r.stderr);
  const got = await client(reg.url).req('HEAD', '/v2/team/app/manifests/1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(got.headers.get('docker-content-digest'), digest);

  await build(e, a, ctx, ['--output', `type=registry,name=${host}/team/other:2`]);
  const other = await client(reg.url).req('HEAD', '/v2/team/other/manifests/2', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(other.headers.get('docker-content-digest'), digest);

  // Nothing listens on this port: the build fails, the image stays in the store under its name.
  const down = `127.0.0.1:${await freePort()}`;
  const failed = await kiln(a, ['build', '--progress', 'plain', '-t', `${down}/team/app:3`, '--push', ctx], { env: e.env });
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, new RegExp(down.replace(/\./g, '\\.')));
  assert.equal((await kiln(a, ['inspect', `${down}/team/app:3`], { env: e.env })).code, 0);

  // Usage errors come before any work.
  const noName = await kiln(a, ['build', '--push', ctx], { env: e.env });
  assert.notEqual(noName.code, 0);
  assert.match(noName.stderr, /--push needs a name/);
  const badMode = await kiln(a, ['build', '--cache-to', `type=registry,ref=${host}/x:y,mode=all`, ctx], { env: e.env });
  assert.notEqual(badMode.code, 0);
  assert.match(badMode.stderr, /mode must be min or max/);
});
