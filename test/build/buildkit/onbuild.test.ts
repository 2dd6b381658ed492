// BuildKit's frontend/dockerfile/dockerfile_onbuild_test.go, behaviour by behaviour. BuildKit pushes
// each base image to a registry; here it is tagged in the store, which FROM reads first. Each test
// names the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('onbuild');
});
after(() => b.close());

async function image(name: string, dockerfile: string): Promise<void> {
  const r = await b.build(await b.context({ Dockerfile: dockerfile }), ['-t', name]);
  assert.equal(r.code, 0, r.stderr);
}

test('testOnBuildCleared: triggers run once, in the first child; its image carries none', async () => {
  await image('onbuild-cleared:base', 'FROM busybox\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n');
  await image('onbuild-cleared:child', 'FROM onbuild-cleared:base\n');
  assert.equal((await b.inspect('onbuild-cleared:child')).Config.OnBuild ?? null, null);
  const out = await b.tree(await b.context({ Dockerfile: 'FROM onbuild-cleared:child AS base\nFROM scratch\nCOPY --from=base /out /\n' }));
  assert.equal(await readFile(join(out, 'foo'), 'utf8'), '11');
});

test('testOnBuildWithChildStage: a stage built FROM a stage that ran the triggers does not run them again', async () => {
  await image('onbuild-childstage:base', 'FROM busybox\nONBUILD RUN mkdir -p /out && echo -n yes >> /out/didrun\n');
  const dockerfile = [
    'FROM onbuild-childstage:base AS base',
    'RUN [ -f /out/didrun ] && touch /step1',
    'RUN rm /out/didrun',
    'RUN [ ! -f /out/didrun ] && touch /step2',
    'FROM base AS child',
    'RUN [ ! -f /out/didrun ] && touch /step3',
    'FROM scratch',
    'COPY --from=child /step* /',
    '',
  ].join('\n');
  const out = await b.tree(await b.context({ Dockerfile: dockerfile }));
  for (const f of ['step1', 'step2', 'step3']) assert.ok((await stat(join(out, f))).isFile(), f);
});

test('testOnBuildNamedContext: the triggers of an OCI-layout named context may COPY --from a stage of the child Dockerfile', async () => {
  const archive = join(b.work, 'onbuild-named.tar');
  const r = await b.build(await b.context({ Dockerfile: 'FROM busybox\nONBUILD COPY --from=otherstage /testfile /out/foo\n' }), ['-o', `type=oci,dest=${archive}`]);
  assert.equal(r.code, 0, r.stderr);
  const layout = join(b.work, 'onbuild-layout');
  await mkdir(layout);
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const dockerfile = [
    'FROM busybox AS otherstage',
    'RUN echo -n "hello" > /testfile',
    'FROM base AS inputstage',
    'FROM scratch',
    'COPY --from=inputstage /out/foo /bar',
    '',
  ].join('\n');
  const out = await b.tree(await b.context({ Dockerfile: dockerfile }), ['--build-context', `base=oci-layout://${layout}`]);
  assert.equal(await readFile(join(out, 'bar'), 'utf8'), 'hello');
});

test('testOnBuildInheritedStageRun: ONBUILD of a stage runs in a stage built FROM it', async () => {
  const dockerfile = 'FROM busybox AS base\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\nFROM base AS mid\nRUN cp /out/foo /out/bar\nFROM scratch\nCOPY --from=mid /out/bar /\n';
  const out = await b.tree(await b.context({ Dockerfile: dockerfile }));
  assert.equal(await readFile(join(out, 'bar'), 'utf8'), '11');
});

test('testOnBuildInheritedStageWithFrom: an inherited ONBUILD COPY --from names another stage', async () => {
  const dockerfile = [
    'FROM busybox AS src',
    'RUN mkdir -p /in && echo -n 12 > /in/file',
    'FROM busybox AS base',
    'ONBUILD COPY --from=src /in/file /out/foo',
    'FROM base AS mid',
    'RUN cp /out/foo /out/bar',
    'FROM scratch',
    'COPY --from=mid /out/bar /',
    '',
  ].join('\n');
  const out = await b.tree(await b.context({ Dockerfile: dockerfile }));
  assert.equal(await readFile(join(out, 'bar'), 'utf8'), '12');
});

test('testOnBuildNewDeps: triggers bring their own inputs: COPY --from an image, RUN --mount from= a stage of the child', async () => {
  await image('onbuild-deps:one', 'FROM busybox\nONBUILD COPY --from=busybox /etc/passwd /out/passwd2\n');
  let out = await b.tree(await b.context({ Dockerfile: 'FROM onbuild-deps:one AS base\nRUN cat /out/passwd2 > /out/passwd3\nFROM scratch\nCOPY --from=base /out /\n' }));
  assert.match(await readFile(join(out, 'passwd3'), 'utf8'), /^root:/);

  await image('onbuild-deps:two', 'FROM busybox\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage mkdir /out && cat /in/foo > /out/bar && cat /in/out/passwd2 > /out/bar2\n');
  const dockerfile = [
    'FROM onbuild-deps:one AS inputstage',
    'RUN cat /out/passwd2 > /out/passwd4',
    'RUN echo -n foo > /foo',
    'FROM onbuild-deps:two AS base',
    'RUN echo -n bar3 > /out/bar3',
    'FROM scratch',
    'COPY --from=base /out /',
    '',
  ].join('\n');
  out = await b.tree(await b.context({ Dockerfile: dockerfile }));
  assert.equal(await readFile(join(out, 'bar'), 'utf8'), 'foo');
  assert.match(await readFile(join(out, 'bar2'), 'utf8'), /^root:/);
  assert.equal(await readFile(join(out, 'bar3'), 'utf8'), 'bar3');
});

test('testOnBuildWithCacheMount: an ONBUILD RUN with a cache mount fills the cache the child reads', async () => {
  await image('onbuild-cache:base', 'FROM busybox\nONBUILD RUN --mount=type=cache,target=/cache echo -n 42 >> /cache/foo && echo -n 11 >> /bar\n');
  const r = await b.build(await b.context({ Dockerfile: 'FROM onbuild-cache:base\nRUN --mount=type=cache,target=/cache [ "$(cat /cache/foo)" = "42" ] && [ "$(cat /bar)" = "11" ]\n' }));
  assert.equal(r.code, 0, r.stderr);
});
