// BuildKit's frontend/dockerfile/dockerfile_dockerignore_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('dockerignore');
});
after(() => b.close());

test('testDockerignore: patterns, an exception, and the Dockerfile and .dockerignore themselves left out of COPY .', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM scratch\nCOPY . .\n',
    '.dockerignore': '\nba*\nDockerfile\n!bay\n.dockerignore\n',
    foo: 'foo-contents',
    bar: 'bar-contents',
    baz: 'baz-contents',
    bay: 'bay-contents',
  });
  const out = await b.tree(dir);
  assert.equal(await readFile(join(out, 'foo'), 'utf8'), 'foo-contents');
  assert.equal(await readFile(join(out, 'bay'), 'utf8'), 'bay-contents');
  for (const gone of ['.dockerignore', 'Dockerfile', 'bar', 'baz']) await assert.rejects(stat(join(out, gone)), gone);
});

test('testDockerignoreInvalid: a lone "!" in .dockerignore fails the build (and does not hang it)', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nCOPY . .\n', '.dockerignore': '!\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0, r.stderr);
});

test('testDockerignoreOverride: <Dockerfile>.dockerignore beside the Dockerfile wins over the context one', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox\nCOPY . .\nRUN [ -f foo ] && [ ! -f bar ]\n',
    'Dockerfile.dockerignore': '\nbar\n',
    Dockerfile2: 'FROM busybox\nCOPY . .\nRUN [ ! -f foo ] && [ -f bar ]\n',
    'Dockerfile2.dockerignore': '\nfoo\n',
    foo: 'contents0',
    bar: 'contents0',
  });
  const one = await b.build(dir);
  assert.equal(one.code, 0, one.stderr);
  const two = await b.build(dir, ['-f', join(dir, 'Dockerfile2')]);
  assert.equal(two.code, 0, two.stderr);
});
