// BuildKit's frontend/dockerfile/dockerfile_multistage_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('multistage');
});
after(() => b.close());

test('testMultiStageImplicitFrom: COPY --from=IMAGE reads an image that no stage names; a stage of that name masks it', async () => {
  const image = await b.tree(await b.context({ Dockerfile: 'FROM scratch\nCOPY --from=busybox /etc/passwd test\n' }));
  assert.match(await readFile(join(image, 'test'), 'utf8'), /root/);
  const masked = await b.tree(await b.context({ Dockerfile: 'FROM busybox AS busybox\nRUN mkdir -p /usr/bin && echo -n foo > /etc/passwd\nFROM scratch\nCOPY --from=busybox /etc/passwd go\n' }));
  assert.equal(await readFile(join(masked, 'go'), 'utf8'), 'foo');
});

test('testMultiStageCaseInsensitive: stage names in --from and --target match whatever their case', async () => {
  const dir = await b.context({ foo: 'foo-contents', Dockerfile: 'FROM scratch AS STAge0\nCOPY foo bar\nFROM scratch AS staGE1\nCOPY --from=staGE0 bar baz\nFROM scratch\nCOPY --from=stage1 baz bax\n' });
  const out = await b.tree(dir, ['--target', 'Stage1']);
  assert.equal(await readFile(join(out, 'baz'), 'utf8'), 'foo-contents');
});

test('testOutOfOrderStage: COPY --from a stage defined later is refused, whatever the source path', async () => {
  for (const src of ['/', '/d2']) {
    const dir = await b.context({ Dockerfile: `FROM busybox AS target\nCOPY --from=build ${src} /out\nFROM busybox AS build\nCOPY /Dockerfile /d2\nFROM target\n` });
    const r = await b.build(dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot copy from stage/);
    assert.match(r.stderr, /needs to be defined before current stage/);
  }
});

test('testEmptyStages: a Dockerfile with only a global ARG has no stage to build', async () => {
  const r = await b.build(await b.context({ Dockerfile: 'ARG foo=bar\n' }));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /dockerfile contains no stages to build/);
});
