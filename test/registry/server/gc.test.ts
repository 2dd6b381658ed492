import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { indexOf, pushBlob, pushImage, randomImage, sha256, startRegistry, waitFor, type Client, type TestImage } from './support.js';

// Garbage collection: what no tag or referrer reaches goes; everything reachable stays, also
// while pushes go on; fresh uploads keep a grace period.

const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

async function pullsCompletely(c: Client, repo: string, ref: string, img: TestImage): Promise<void> {
  const m = await c.req('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  assert.equal(m.status, 200, `${repo}:${ref}`);
  assert.deepEqual(m.body, img.manifest);
  for (const b of [img.config, ...img.layers]) {
    const r = await c.req('GET', `/v2/${repo}/blobs/${sha256(b)}`);
    assert.equal(r.status, 200, `${repo} blob`);
    assert.equal(sha256(r.body), sha256(b));
  }
}

test('GC removes manifests and blobs no tag or referrer reaches, and keeps tagged images, index children and referrers', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 0));
  const c = reg.client();
  const tagged = randomImage();
  await pushImage(c, 'gc/app', 'keep', tagged);
  const orphan = randomImage();
  await pushImage(c, 'gc/app', 'gone', orphan);
  assert.equal((await c.req('DELETE', `/v2/gc/app/manifests/gone`)).status, 202);
  const [c1, c2] = [randomImage(), randomImage()];
  await pushImage(c, 'gc/app', c1.digest, c1);
  await pushImage(c, 'gc/app', c2.digest, c2);
  const idx = indexOf([c1, c2]);
  assert.equal((await c.req('PUT', '/v2/gc/app/manifests/multi', { body: idx.body, headers: { 'content-type': idx.mediaType } })).status, 201);
  const sbom = randomImage({ subject: { mediaType: tagged.mediaType, digest: tagged.digest, size: tagged.manifest.length }, artifactType: 'application/vnd.example.sbom', layers: 1 });
  await pushImage(c, 'gc/app', sbom.digest, sbom);
  const loose = await pushBlob(c, 'gc/app', randomBytes(50));

  const dry = await reg.registry.gc({ dryRun: true });
  assert.deepEqual(dry.manifests.map((m) => m.digest), [orphan.digest]);
  assert.equal((await c.req('GET', `/v2/gc/app/manifests/${orphan.digest}`, { headers: { accept } })).status, 200, 'dry run removes nothing');

  const r = await reg.registry.gc();
  assert.deepEqual(r.manifests.map((m) => m.digest), [orphan.digest]);
  assert.deepEqual(new Set(r.blobs), new Set([sha256(orphan.config), ...orphan.layers.map(sha256), loose]));
  assert.equal((await c.req('GET', `/v2/gc/app/manifests/${orphan.digest}`, { headers: { accept } })).status, 404);
  assert.equal((await c.req('HEAD', `/v2/gc/app/blobs/${loose}`)).status, 404);
  await pullsCompletely(c, 'gc/app', 'keep', tagged);
  await pullsCompletely(c, 'gc/app', c1.digest, c1);
  await pullsCompletely(c, 'gc/app', c2.digest, c2);
  await pullsCompletely(c, 'gc/app', sbom.digest, sbom);
  assert.equal((await c.req('GET', `/v2/gc/app/referrers/${tagged.digest}`)).json().manifests.length, 1);
});

test('uploads not yet referenced by a manifest are kept for the grace period', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 3600));
  const c = reg.client();
  const d = await pushBlob(c, 'gc/grace', randomBytes(100));
  const loc = (await c.req('POST', '/v2/gc/grace/blobs/uploads/')).headers.get('location')!;
  await c.req('PATCH', loc, { body: randomBytes(10), headers: { 'content-range': '0-9' } });
  const r = await reg.registry.gc();
  assert.deepEqual(r.blobs, []);
  assert.equal((await c.req('HEAD', `/v2/gc/grace/blobs/${d}`)).status, 200);
  assert.equal((await c.req('GET', loc)).status, 204, 'the upload in progress is untouched');
});

test('concurrent pushes while GC runs: every pushed image then pulls completely, and garbage is gone', async (t) => {
  const grace = 1.5;
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = grace));
  const c = reg.client();
  const base = randomBytes(4096);
  const garbage: TestImage[] = [];
  for (let i = 0; i < 5; i++) {
    const g = randomImage();
    await pushImage(c, `gc/g${i}`, 'tmp', g);
    await c.req('DELETE', `/v2/gc/g${i}/manifests/${g.digest}`);
    garbage.push(g);
  }
  await new Promise((r) => setTimeout(r, grace * 1000 + 200));

  let pushing = true;
  let gcRuns = 0;
  const gcLoop = (async () => {
    while (pushing) {
      await reg.registry.gc();
      gcRuns++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const pushed: { repo: string; tag: string; img: TestImage }[] = [];
  await Promise.all(
    Array.from({ length: 6 }, async (_, w) => {
      // At least 5 images per pusher, and on until GC has run 3 times, so that pushes and GC overlap
      // however fast either is.
      for (let i = 0; i < 5 || gcRuns < 3; i++) {
        const img = randomImage({ layers: 2, layerSize: 20_000 });
        // A shared base layer: its blob exists already, the client checks with HEAD and skips it.
        const m = JSON.parse(img.manifest.toString());
        m.layers.unshift({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(base), size: base.length });
        const withBase: TestImage = { ...img, layers: [base, ...img.layers], manifest: Buffer.from(JSON.stringify(m)), digest: sha256(JSON.stringify(m)) };
        const repo = `gc/w${w}`;
        for (const b of withBase.layers.concat(withBase.config)) {
          const head = await c.req('HEAD', `/v2/${repo}/blobs/${sha256(b)}`);
          if (head.status !== 200) await pushBlob(c, repo, b);
        }
        const r = await c.req('PUT', `/v2/${repo}/manifests/v${i}`, { body: withBase.manifest, headers: { 'content-type': withBase.mediaType } });
        assert.equal(r.status, 201, r.text());
        pushed.push({ repo, tag: `v${i}`, img: withBase });
      }
    }),
  );
  pushing = false;
  await gcLoop;
  assert.ok(gcRuns >= 3, `GC ran ${gcRuns} times during the pushes`);
  await reg.registry.gc();
  for (const p of pushed) await pullsCompletely(c, p.repo, p.tag, p.img);
  for (const [i, g] of garbage.entries()) assert.equal((await c.req('HEAD', `/v2/gc/g${i}/blobs/${sha256(g.config)}`)).status, 404);
});

test('the scheduled online GC runs by itself', async (t) => {
  const reg = await startRegistry(t, (c) => {
    c.gc.gracePeriod = 0;
    c.gc.interval = 0.3;
  });
  const c = reg.client();
  const img = randomImage();
  await pushImage(c, 'gc/sched', 'x', img);
  await c.req('DELETE', `/v2/gc/sched/manifests/${img.digest}`);
  await waitFor(async () => (await c.req('HEAD', `/v2/gc/sched/blobs/${sha256(img.config)}`)).status === 404, 10_000, 'scheduled GC');
});

test('a GC run asked for while a dry run goes on waits for it and removes the garbage (it does not get the dry run\'s report)', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 0));
  const c = reg.client();
  const orphan = randomImage();
  await pushImage(c, 'gc/kinds', 'gone', orphan);
  assert.equal((await c.req('DELETE', '/v2/gc/kinds/manifests/gone')).status, 202);
  const [dry, real, again] = await Promise.all([reg.registry.gc({ dryRun: true }), reg.registry.gc(), reg.registry.gc({ dryRun: true })]);
  assert.equal(dry.dryRun, true);
  assert.deepEqual(dry.manifests.map((m) => m.digest), [orphan.digest]);
  assert.equal(real.dryRun, false, 'the real run ran');
  assert.deepEqual(real.manifests.map((m) => m.digest), [orphan.digest]);
  assert.equal((await c.req('GET', `/v2/gc/kinds/manifests/${orphan.digest}`, { headers: { accept } })).status, 404);
  assert.equal(again.dryRun, true);
});
