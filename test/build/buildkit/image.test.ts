// BuildKit's frontend/dockerfile/dockerfile_image_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. Images BuildKit keeps in containerd are kiln store images.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('image');
});
after(() => b.close());

const ok = async (dir: string, args: string[]) => {
  const r = await b.build(dir, args);
  assert.equal(r.code, 0, r.stderr);
};

test('testPullScratch: an image with no layers is a base like any other, and mounts as an empty directory (the LLB half, as RUN --mount=from=…,rw)', async () => {
  await ok(await b.context({ Dockerfile: 'FROM scratch\nLABEL foo=bar\n' }), ['-t', 'docker.io/moby/testpullscratch:latest']);
  const dest = join(b.work, 'pullscratch2.tar');
  await ok(await b.context({ Dockerfile: 'FROM docker.io/moby/testpullscratch:latest\nLABEL bar=baz\nCOPY foo .\n', foo: 'foo-contents' }), [
    '-t',
    'docker.io/moby/testpullscratch2:latest',
    '-o',
    `type=oci,dest=${dest}`,
  ]);
  const blob = (d: string) => JSON.parse(execFileSync('tar', ['-xOf', dest, `blobs/sha256/${d.replace(/^sha256:/, '')}`], { encoding: 'utf8' }));
  const index = JSON.parse(execFileSync('tar', ['-xOf', dest, 'index.json'], { encoding: 'utf8' }));
  const img = blob(blob(index.manifests[0].digest).config.digest);
  assert.equal(img.rootfs.type, 'layers');
  assert.equal(img.rootfs.diff_ids.length, 1);
  assert.equal(img.config.Labels.foo, 'bar');
  assert.equal(img.config.Labels.bar, 'baz');
  // The layerless image mounted into a RUN, as BuildKit's LLB half mounts it at /empty.
  const out = await b.tree(
    await b.context({ Dockerfile: 'FROM busybox\nRUN --mount=from=docker.io/moby/testpullscratch:latest,target=/empty,rw [ -z "$(ls -A /empty)" ] && echo -n foo0 > /empty/foo && cp /empty/foo /foo\n' }),
  );
  assert.equal(await readFile(join(out, 'foo'), 'utf8'), 'foo0');
});

function checkIndex(idx: any) {
  assert.equal(idx.manifests.length, 2);
  const [m0, m1] = idx.manifests;
  assert.equal(m0.digest, m1.digest);
  assert.deepEqual(m0.platform, m1.platform);
  assert.equal(m0.mediaType, m1.mediaType);
  assert.equal(m0.size, m1.size);
  assert.equal(m0.annotations['io.containerd.image.name'], 'docker.io/org/repo:tag1');
  assert.equal(m1.annotations['io.containerd.image.name'], 'docker.io/org/repo:tag2');
  assert.equal(m0.annotations['org.opencontainers.image.ref.name'], 'tag1');
  assert.equal(m1.annotations['org.opencontainers.image.ref.name'], 'tag2');
}

const multiname = 'FROM scratch\nCOPY <<EOF /foo\nhello\nEOF\n';

test('testDockerfileScratchConfig: FROM scratch + ENV gives a config with os, architecture, a working dir, no layers, one empty-layer history entry and PATH', async () => {
  const dest = join(b.work, 'scratchconfig.tar');
  await ok(await b.context({ Dockerfile: 'FROM scratch\nENV foo=bar\n' }), ['-t', 'example.com/moby/dockerfilescratch:test', '-o', `type=oci,dest=${dest}`]);
  const blob = (d: string) => JSON.parse(execFileSync('tar', ['-xOf', dest, `blobs/sha256/${d.replace(/^sha256:/, '')}`], { encoding: 'utf8' }));
  const index = JSON.parse(execFileSync('tar', ['-xOf', dest, 'index.json'], { encoding: 'utf8' }));
  const img = blob(blob(index.manifests[0].digest).config.digest);
  // BuildKit dockerfile_image_test.go:193-211, on the config blob itself.
  assert.notEqual(img.os ?? '', '');
  assert.notEqual(img.architecture ?? '', '');
  assert.notEqual(img.config.WorkingDir ?? '', '');
  assert.equal(img.rootfs.type, 'layers');
  assert.equal(img.rootfs.diff_ids.length, 0);
  assert.equal(img.history.length, 1);
  assert.match(img.history[0].created_by, /ENV foo=bar/);
  assert.equal(img.history[0].empty_layer, true);
  assert.ok(img.config.Env.includes('foo=bar'));
  assert.ok(img.config.Env.some((e: string) => e.startsWith('PATH=')));
});

test('testOCILayoutMultiname: an OCI archive of an image with two names lists it twice in index.json, once per name (kiln: two -t for name=a,b)', async () => {
  const dest = join(b.work, 'multiname.tar');
  await ok(await b.context({ Dockerfile: multiname }), ['-t', 'org/repo:tag1', '-t', 'org/repo:tag2', '-o', `type=oci,dest=${dest}`]);
  checkIndex(JSON.parse(execFileSync('tar', ['-xOf', dest, 'index.json'], { encoding: 'utf8' })));
});

test('testOCILayoutMultiname (tar=false and name=a,b): an OCI layout directory lists the image once per name, and the archive with the same name= matches', async () => {
  const dest = join(b.work, 'multiname-dir');
  await ok(await b.context({ Dockerfile: multiname }), ['-o', `type=oci,dest=${dest},tar=false,"name=org/repo:tag1,org/repo:tag2"`]);
  const idx = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8'));
  checkIndex(idx);
  assert.deepEqual(JSON.parse(await readFile(join(dest, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const manifest = JSON.parse(await readFile(join(dest, 'blobs/sha256', idx.manifests[0].digest.slice('sha256:'.length)), 'utf8'));
  for (const d of [manifest.config, ...manifest.layers]) assert.equal((await stat(join(dest, 'blobs/sha256', d.digest.slice('sha256:'.length)))).size, d.size);
  // The archive variant, named by the same attribute, gives the same index. name= holds a comma, so
  // it is quoted as in buildx's CSV form of --output.
  const tar = join(b.work, 'multiname-name.tar');
  await ok(await b.context({ Dockerfile: multiname }), ['-o', `type=oci,dest=${tar},"name=org/repo:tag1,org/repo:tag2"`]);
  const idx2 = JSON.parse(execFileSync('tar', ['-xOf', tar, 'index.json'], { encoding: 'utf8' }));
  checkIndex(idx2);
  assert.deepEqual(idx2, idx);
});
