// BuildKit's frontend/dockerfile/dockerfile_namedcontext_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors. BuildKit's `context:NAME` frontend attribute is
// `kiln build --build-context NAME=…`; the images BuildKit pulls from Docker Hub or pushes to a
// registry are images in kiln's store: "alpine" is busybox with an /etc/alpine-release.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('namedcontext');
  const r = await b.build(await b.context({ Dockerfile: 'FROM busybox\nRUN echo 3.99.0 > /etc/alpine-release\n' }), ['-t', 'alpine:latest']);
  assert.equal(r.code, 0, r.stderr);
});
after(() => b.close());

const ok = async (dir: string, args: string[]) => {
  const r = await b.build(dir, args);
  assert.equal(r.code, 0, r.stderr);
};

test('testNamedImageContext: docker-image:// replaces a FROM image, and the image\'s ENV comes with it', async () => {
  // Without a tag: the name resolves as a FROM line would.
  let out = await b.tree(await b.context({ Dockerfile: 'FROM busybox AS base\nRUN cat /etc/alpine-release > /out\nFROM scratch\nCOPY --from=base /out /\n' }), [
    '--build-context',
    'busybox=docker-image://alpine',
  ]);
  assert.ok((await readFile(join(out, 'out'), 'utf8')).length > 0);

  // An image with its own ENV: the stage that replaces busybox has it.
  await ok(await b.context({ Dockerfile: 'FROM alpine:latest\nENV PATH=/foobar:$PATH\nENV FOOBAR=foobar\n' }), ['-t', 'localhost/buildkit/testnamedimagecontext:latest']);
  out = await b.tree(
    await b.context({
      Dockerfile: [
        'FROM busybox AS base',
        'RUN cat /etc/alpine-release > /out',
        'RUN env | grep PATH > /env_path',
        'RUN env | grep FOOBAR > /env_foobar',
        'FROM scratch',
        'COPY --from=base /out /',
        'COPY --from=base /env_path /',
        'COPY --from=base /env_foobar /',
        '',
      ].join('\n'),
    }),
    ['--build-context', 'busybox=docker-image://localhost/buildkit/testnamedimagecontext:latest'],
  );
  assert.ok((await readFile(join(out, 'out'), 'utf8')).length > 0);
  assert.equal((await readFile(join(out, 'env_foobar'), 'utf8')).trim(), 'FOOBAR=foobar');
  assert.match(await readFile(join(out, 'env_path'), 'utf8'), /\/foobar:/);
});

// A named context of a stage's name replaces the whole stage: BuildKit gives its dispatch state the
// context, drops the base its FROM named and dispatches none of its instructions
// (dockerfile2llb/convert.go:460-474).
test('testNamedImageContext (a stage built on another stage, replaced as a whole: moby/buildkit#5578)', async () => {
  await ok(await b.context({ Dockerfile: 'FROM alpine:latest\nENV PATH=/foobar:$PATH\nENV FOOBAR=foobar\n' }), ['-t', 'localhost/buildkit/testnamedimagecontext:latest']);
  await ok(await b.context({ Dockerfile: 'FROM busybox AS parent\nFROM parent AS base\nRUN echo base > /out\nFROM base\nRUN [ -f /etc/alpine-release ]\nRUN [ ! -f /out ]\n' }), [
    '--build-context',
    'base=docker-image://localhost/buildkit/testnamedimagecontext:latest',
  ]);
});

test('testNamedImageContextTimestamps: an image built on a named image context is created later than that image, within minutes', async () => {
  const dockerfile = 'FROM alpine\nRUN echo foo >> /test\n';
  await ok(await b.context({ Dockerfile: dockerfile }), ['-t', 'localhost/buildkit/testnamedimagecontexttimestamps:latest']);
  await ok(await b.context({ Dockerfile: dockerfile }), [
    '--build-context',
    'alpine=docker-image://localhost/buildkit/testnamedimagecontexttimestamps:latest',
    '-t',
    'localhost/buildkit/testnamedimagecontexttimestampsderived:latest',
  ]);
  const created = Date.parse((await b.inspect('localhost/buildkit/testnamedimagecontexttimestamps:latest')).Created);
  const derived = Date.parse((await b.inspect('localhost/buildkit/testnamedimagecontexttimestampsderived:latest')).Created);
  assert.ok(derived > created, `${derived} > ${created}`);
  assert.ok(derived - created < 10 * 60 * 1000);
});

test('testNamedImageContextScratch: docker-image://scratch replaces a FROM image with the empty image', async () => {
  const out = await b.tree(await b.context({ Dockerfile: 'FROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n' }), ['--build-context', 'busybox=docker-image://scratch']);
  assert.deepEqual(await readdir(out), ['out']);
  assert.equal(await readFile(join(out, 'out'), 'utf8'), 'hello world!\n');
});

test('testNamedLocalContext: a directory replaces a stage; its own .dockerignore applies', async () => {
  const base = await b.context({ out: 'dummy-result', out2: 'dummy-result', '.dockerignore': 'out2\n' });
  const out = await b.tree(await b.context({ Dockerfile: 'FROM busybox AS base\nRUN cat /etc/alpine-release > /out\nFROM scratch\nCOPY --from=base /o* /\n' }), ['--build-context', `base=${base}`]);
  assert.equal(await readFile(join(out, 'out'), 'utf8'), 'dummy-result');
  await assert.rejects(readFile(join(out, 'out2')), { code: 'ENOENT' });
});

test('testNamedOCILayoutContext: oci-layout://DIR@DIGEST replaces both a stage\'s image (its files, not the stage\'s RUN) and a FROM name (its ENV reaches the RUN)', async () => {
  const tar = join(b.work, 'ocilayout.tar');
  await ok(await b.context({ Dockerfile: 'FROM busybox:latest\nWORKDIR /test\nRUN sh -c "echo -n first > out"\nRUN sh -c "echo -n second > out2"\nENV foo=bar\n' }), ['-o', `type=oci,dest=${tar}`]);
  const layout = join(b.work, 'ocilayout');
  await mkdir(layout);
  execFileSync('tar', ['-xf', tar, '-C', layout]);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1);
  const digest: string = index.manifests[0].digest;
  // BuildKit dockerfile_namedcontext_test.go:604-612 (the Dockerfile) and :640-641 (both contexts the same layout).
  const out = await b.tree(
    await b.context({
      Dockerfile: 'FROM busybox AS base\nRUN cat /etc/alpine-release > out\nFROM foo AS imported\nRUN echo -n $foo > outfoo\nFROM scratch\nCOPY --from=base /test/o* /\nCOPY --from=imported /test/outfoo /\n',
    }),
    ['--build-context', `base=oci-layout://${layout}@${digest}`, '--build-context', `foo=oci-layout://${layout}@${digest}`],
  );
  // :668-682
  assert.equal(await readFile(join(out, 'out'), 'utf8'), 'first');
  assert.equal(await readFile(join(out, 'out2'), 'utf8'), 'second');
  assert.equal(await readFile(join(out, 'outfoo'), 'utf8'), 'bar');
});

test('testNamedOCILayoutContextExport: an image exported as OCI and named by oci-layout://DIR@DIGEST keeps its WORKDIR and ENV', async () => {
  const tar = join(b.work, 'ocilayout-export.tar');
  await ok(await b.context({ Dockerfile: 'FROM scratch\nWORKDIR /test\nENV foo=bar\n' }), ['-o', `type=oci,dest=${tar}`]);
  const layout = join(b.work, 'ocilayout-export');
  await mkdir(layout);
  execFileSync('tar', ['-xf', tar, '-C', layout]);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1);
  const digest: string = index.manifests[0].digest;

  const tar2 = join(b.work, 'ocilayout-export2.tar');
  await ok(await b.context({ Dockerfile: 'FROM nonexistent AS base\n' }), ['--build-context', `nonexistent=oci-layout://${layout}@${digest}`, '-o', `type=oci,dest=${tar2}`]);
  const out = JSON.parse(execFileSync('tar', ['-xOf', tar2, 'index.json'], { encoding: 'utf8' }));
  assert.equal(out.manifests.length, 1);
  const blob = (d: string) => JSON.parse(execFileSync('tar', ['-xOf', tar2, `blobs/sha256/${d.replace(/^sha256:/, '')}`], { encoding: 'utf8' }));
  const cfg = blob(blob(out.manifests[0].digest).config.digest);
  assert.equal(cfg.config.WorkingDir, '/test');
  assert.ok(cfg.config.Env.includes('foo=bar'));
});

test('testNamedFilteredContext: a named directory serves COPY --from, RUN --mount from= and FROM, alone or replacing a stage (the bytes-transferred half is n/a: kiln reads the directory in place)', async (t) => {
  const foo = await b.context({ foo: 'foo', bar: Buffer.alloc(4096 * 1000) });
  const base = [
    'FROM scratch AS copy_from',
    'COPY --from=foo /foo /',
    'FROM alpine AS run_mount',
    'RUN --mount=from=foo,src=/foo,target=/in/foo cp /in/foo /foo',
    'FROM foo AS image_source',
    'COPY --from=alpine / /',
    'RUN cat /foo > /bar',
    'FROM scratch AS all',
    'COPY --link --from=copy_from /foo /foo.b',
    'COPY --link --from=run_mount /foo /foo.c',
    'COPY --link --from=image_source /bar /foo.d',
    '',
  ].join('\n');
  const full = 'FROM scratch AS foo\nCOPY <<EOF /foo\ntest\nEOF\n' + base;
  const out = await b.tree(await b.context({ Dockerfile: base }), ['--build-context', `foo=${foo}`, '--target', 'all']);
  for (const f of ['foo.b', 'foo.c', 'foo.d']) assert.equal(await readFile(join(out, f), 'utf8'), 'foo', f);
  // "replace": the same with a stage named foo that the directory replaces.
  await t.test('replace', async () => {
    const out2 = await b.tree(await b.context({ Dockerfile: full }), ['--build-context', `foo=${foo}`, '--target', 'all']);
    for (const f of ['foo.b', 'foo.c', 'foo.d']) assert.equal(await readFile(join(out2, f), 'utf8'), 'foo', f);
  });
});

test('testEagerNamedContextLookup: named contexts the build does not use are not resolved', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM broken AS notused\nFROM alpine AS base\nRUN echo "base" > /foo\nFROM busybox AS otherstage\nFROM scratch\nCOPY --from=base /foo /foo\n',
  });
  const out = await b.tree(dir, [
    '--build-context',
    'notused=docker-image://127.0.0.1:1/library/nosuchimage:latest',
    '--build-context',
    'busybox=docker-image://127.0.0.1:1/library/dontexist:latest',
  ]);
  assert.equal(await readFile(join(out, 'foo'), 'utf8'), 'base\n');
});

test('testEagerNamedContextLookup (the half without a replaced stage): an image alias only an unused stage names is not resolved', async () => {
  const dir = await b.context({ Dockerfile: 'FROM alpine AS base\nRUN echo "base" > /foo\nFROM busybox AS otherstage\nFROM scratch\nCOPY --from=base /foo /foo\n' });
  const out = await b.tree(dir, ['--build-context', 'busybox=docker-image://127.0.0.1:1/library/dontexist:latest']);
  assert.equal(await readFile(join(out, 'foo'), 'utf8'), 'base\n');
});
