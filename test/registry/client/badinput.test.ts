import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { kiln } from '../../support/env.js';
import { Store, hostPlatform } from '../../../src/store/store.js';
import { pull, TransferTruncated } from '../../../src/registry/client/index.js';
import { freePort } from '../server/support.js';
import { assertNothingPartial, authRegistry, client, fakeRegistry, fastRetry, hostOf, makeImage, seedImage, seedIndex, sha256, startProxy, startRegistry, storeImage, testEnv, type Image } from './support.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import { CacheArtifactType, CacheConfigType } from '../../../src/registry/client/cache.js';

// Bad input: each ends in a clear error, a non-zero exit, and nothing partial in the store
// (no image recorded, nothing left in ingest/, no blob whose content failed its digest).

/** Serve `img` as repository x/y, tag 1, letting `tweak` replace any answer. */
function serveImage(img: Image, tweak: (req: IncomingMessage, res: ServerResponse) => boolean = () => false) {
  const blobs = new Map([img.config, ...img.layers].map((b) => [sha256(b), b]));
  return (req: IncomingMessage, res: ServerResponse) => {
    if (tweak(req, res)) return;
    const m = /^\/v2\/x\/y\/(manifests|blobs)\/(.+)$/.exec(req.url!);
    if (m?.[1] === 'manifests' && (m[2] === '1' || m[2] === img.digest)) {
      res.writeHead(200, { 'content-type': img.mediaType, 'content-length': img.manifest.length, 'docker-content-digest': img.digest });
      res.end(img.manifest);
      return;
    }
    const blob = m?.[1] === 'blobs' ? blobs.get(m[2]!) : undefined;
    if (blob) {
      res.writeHead(200, { 'content-length': blob.length });
      res.end(blob);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
  };
}

async function expectCleanFailure(root: string, r: { code: number; stderr: string }, pattern: RegExp): Promise<void> {
  assert.notEqual(r.code, 0, 'non-zero exit');
  assert.match(r.stderr, pattern);
  assert.ok(!/\n\s+at /.test(r.stderr), `a message, not a stack trace:\n${r.stderr}`);
  assert.deepEqual(await assertNothingPartial(root), { images: 0, ingest: [] });
}

test('bad input: wrong credentials — pull fails with "incorrect username or password"', async (t) => {
  const reg = await authRegistry(t);
  await seedImage(client(reg.url, { user: 'dev', password: 'dev-password' }), 'team/app', '1', makeImage());
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  await mkdir(join(e.env.HOME!, '.docker'), { recursive: true });
  await writeFile(join(e.env.HOME!, '.docker', 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('dev:not-the-password').toString('base64') } } }));
  const r = await kiln(e.root, ['pull', `${host}/team/app:1`], { env: e.env });
  await expectCleanFailure(e.root, r, /unauthorized: incorrect username or password/);
  assert.ok(!r.stderr.includes('not-the-password'));
});

test('bad input: a registry that is down — pull and push fail with "cannot reach registry"', async (t) => {
  const e = await testEnv(t);
  const port = await freePort();
  const r = await kiln(e.root, ['pull', `127.0.0.1:${port}/team/app:1`], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  const push = await kiln(e.root, ['push', `127.0.0.1:${port}/team/app:1`], { env: e.env });
  assert.notEqual(push.code, 0);
});

test('bad input: a manifest whose digest does not match the one asked for is refused', async (t) => {
  const img = makeImage();
  const other = makeImage();
  // Asked for other.digest, the registry answers with img's manifest.
  const fake = await fakeRegistry(
    t,
    serveImage(img, (req, res) => {
      if (req.url === `/v2/x/y/manifests/${other.digest}`) {
        res.writeHead(200, { 'content-type': img.mediaType });
        res.end(img.manifest);
        return true;
      }
      return false;
    }),
  );
  const e = await testEnv(t);
  const r = await kiln(e.root, ['pull', `${fake.host}/x/y@${other.digest}`], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`manifest with digest ${img.digest}, not the ${other.digest} asked for`));
});

test('bad input: a tag whose Docker-Content-Digest contradicts the manifest content is refused', async (t) => {
  const img = makeImage();
  const fake = await fakeRegistry(
    t,
    serveImage(img, (req, res) => {
      if (req.url === '/v2/x/y/manifests/1') {
        res.writeHead(200, { 'content-type': img.mediaType, 'docker-content-digest': sha256('something else') });
        res.end(img.manifest);
        return true;
      }
      return false;
    }),
  );
  const e = await testEnv(t);
  const r = await kiln(e.root, ['pull', `${fake.host}/x/y:1`], { env: e.env });
  await expectCleanFailure(e.root, r, /says the manifest is sha256:[0-9a-f]+ but its content is/);
});

test('bad input: a blob whose content does not match its digest never reaches the store', async (t) => {
  const img = makeImage({ layers: 2, layerSize: 50_000 });
  const bad = sha256(img.layers[1]!);
  const fake = await fakeRegistry(
    t,
    serveImage(img, (req, res) => {
      if (req.url === `/v2/x/y/blobs/${bad}`) {
        const wrong = Buffer.from(img.layers[1]!);
        wrong[wrong.length - 10] ^= 0xff; // same size, one byte off
        res.writeHead(200, { 'content-length': wrong.length });
        res.end(wrong);
        return true;
      }
      return false;
    }),
  );
  const e = await testEnv(t);
  const r = await kiln(e.root, ['pull', `${fake.host}/x/y:1`], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`layer ${bad} of .*: digest sha256:[0-9a-f]{64}, expected ${bad}`));
  const store = await Store.open(e.root);
  assert.equal(await store.content.has(bad), false);
  assert.equal(existsSync(store.content.blobPath(img.digest)), false, 'the manifest is stored only after every blob');
});

test('bad input: a transfer that is always cut short fails after a few resumes, leaving nothing behind', async (t) => {
  const img = makeImage({ layers: 1, layerSize: 100_000 });
  const layer = sha256(img.layers[0]!);
  let gets = 0;
  const fake = await fakeRegistry(
    t,
    serveImage(img, (req, res) => {
      if (req.url === `/v2/x/y/blobs/${layer}`) {
        gets++;
        // Declares the whole blob, sends less than half, then drops the connection (ignores Range).
        res.writeHead(200, { 'content-length': img.layers[0]!.length });
        res.write(img.layers[0]!.subarray(0, 40_000), () => setTimeout(() => res.socket?.destroy(), 10));
        return true;
      }
      return false;
    }),
  );
  const e = await testEnv(t);
  const store = await Store.open(e.root);
  await assert.rejects(pull(store, `${fake.host}/x/y:1`, { env: e.env, retry: fastRetry }), (err: Error) => {
    assert.ok(err instanceof TransferTruncated, String(err));
    assert.match(err.message, /transfer truncated at \d+ of \d+ bytes/);
    return true;
  });
  assert.equal(gets, 6, 'the first try and five resumes');
  assert.deepEqual(await assertNothingPartial(e.root), { images: 0, ingest: [] });
  assert.equal(await store.content.has(layer), false);
});

test('bad input: an unknown manifest media type, or a layer of an unknown media type, is refused', async (t) => {
  const odd = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing.v1+json', blobs: [] }));
  const withOddLayer = makeImage({ layers: 1, layerType: 'application/vnd.example.layer.v1.tar+lz4' });
  const fake = await fakeRegistry(
    t,
    serveImage(withOddLayer, (req, res) => {
      if (req.url === '/v2/x/odd/manifests/1') {
        res.writeHead(200, { 'content-type': 'application/vnd.example.thing.v1+json' });
        res.end(odd);
        return true;
      }
      return false;
    }),
  );
  const e = await testEnv(t);
  const r = await kiln(e.root, ['pull', `${fake.host}/x/odd:1`], { env: e.env });
  await expectCleanFailure(e.root, r, /unsupported manifest media type "application\/vnd\.example\.thing\.v1\+json"/);
  const r2 = await kiln(e.root, ['pull', `${fake.host}/x/y:1`], { env: e.env });
  await expectCleanFailure(e.root, r2, /layers\[0\] has unsupported media type "application\/vnd\.example\.layer\.v1\.tar\+lz4"/);
});

test('bad input: an index with no entry for the host platform is refused, naming the platforms it has', async (t) => {
  const reg = await startRegistry(t);
  const host = hostPlatform();
  const others = [
    { os: 'linux', architecture: host.architecture === 's390x' ? 'ppc64le' : 's390x' },
    { os: 'windows', architecture: host.architecture },
  ];
  await seedIndex(reg.client(), 'team/foreign', '1', others.map((platform) => ({ image: makeImage({ platform }), platform })));
  const e = await testEnv(t);
  const r = await kiln(e.root, ['pull', `${hostOf(reg.url)}/team/foreign:1`], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`no matching manifest for linux/${host.architecture}.* in the manifest list entries \\(it has ${others[0]!.os}/${others[0]!.architecture}, windows/`));
});

test('bad input: wrong credentials — push fails with "incorrect username or password" and the registry gets no manifest', async (t) => {
  const reg = await authRegistry(t);
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  await storeImage(e.root, makeImage(), `${host}/team/app:1`);
  await mkdir(join(e.env.HOME!, '.docker'), { recursive: true });
  await writeFile(join(e.env.HOME!, '.docker', 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('dev:not-the-password').toString('base64') } } }));
  const r = await kiln(e.root, ['push', `${host}/team/app:1`], { env: e.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unauthorized: incorrect username or password/);
  assert.ok(!r.stderr.includes('not-the-password'));
  const got = await client(reg.url, { user: 'dev', password: 'dev-password' }).req('GET', '/v2/team/app/manifests/1');
  assert.equal(got.status, 404);
});

test('bad input: a registry that is down — push fails with "cannot reach registry" and keeps the local image', async (t) => {
  const e = await testEnv(t);
  const port = await freePort();
  await storeImage(e.root, makeImage(), `127.0.0.1:${port}/team/app:1`);
  const r = await kiln(e.root, ['push', `127.0.0.1:${port}/team/app:1`], { env: e.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${port}`));
  assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
  assert.equal((await kiln(e.root, ['inspect', `127.0.0.1:${port}/team/app:1`], { env: e.env })).code, 0);
});

test('bad input: --cache-from a cache whose config is malformed fails the build naming the reference; nothing is tagged', { timeout: 60_000 }, async (t) => {
  const reg = await startRegistry(t);
  const config = Buffer.from(JSON.stringify({ records: 5 }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: CacheArtifactType, config: { mediaType: CacheConfigType, digest: sha256(config), size: config.length }, layers: [] }));
  await seedImage(reg.client(), 'app/cache', 'bad', { config, layers: [], manifest, digest: sha256(manifest), mediaType: MediaType.OciManifest } as unknown as Image);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY Dockerfile /\n');
  const ref = `${hostOf(reg.url)}/app/cache:bad`;
  const r = await kiln(e.root, ['build', '-t', 'never', '--cache-from', ref, ctx], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`--cache-from ${ref.replace(/\./g, '\\.')}: invalid cache: "records" is not a list`));
});

test('bad input: a cache layer whose content does not match its digest fails the build and never reaches the store', { timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const ctx = join(e.dir, 'ctx');
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY Dockerfile /\n');
  const a = join(e.dir, 'store-a');
  const made = await kiln(a, ['build', '--cache-to', `type=registry,ref=${hostOf(reg.url)}/app/cache:1`, ctx], { env: e.env });
  assert.equal(made.code, 0, made.stderr);
  const m = (await reg.client().req('GET', '/v2/app/cache/manifests/1', { headers: { accept: MediaType.OciManifest } })).json();
  const layer = m.layers[0] as { digest: string; size: number };
  // A proxy in front of the registry serves that layer one byte off, at the same size.
  const proxy = await startProxy(t, reg.url, (req) => (req.url === `/v2/app/cache/blobs/${layer.digest}` ? { status: 200, headers: { 'content-length': String(layer.size) }, body: Buffer.alloc(layer.size, 1) } : 'pass'));
  const r = await kiln(e.root, ['build', '-t', 'never', '--cache-from', `${proxy.host}/app/cache:1`, ctx], { env: e.env });
  await expectCleanFailure(e.root, r, new RegExp(`cache layer ${layer.digest} of ${proxy.host.replace(/\./g, '\\.')}/app/cache: digest sha256:[0-9a-f]{64}, expected ${layer.digest}`));
  assert.equal(existsSync((await Store.open(e.root)).content.blobPath(layer.digest)), false);
});
