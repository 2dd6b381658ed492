// BuildKit's frontend/dockerfile/dockerfile_cache_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. Registry cache round trips are in
// test/registry/client/cache.test.ts; the cache loop below reuses its in-process registry.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk } from '../../support/env.js';
import { hostOf, startRegistry, testEnv } from '../../registry/client/support.js';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('cache');
});
after(() => b.close());

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

test('testNoCache: --no-cache runs every stage again, --no-cache-filter only the stages it names', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS s0\nRUN head -c 100 /dev/urandom | sha256sum | tee unique\nFROM busybox AS s1\nRUN head -c 100 /dev/urandom | sha256sum | tee unique2\nFROM scratch\nCOPY --from=s0 unique /\nCOPY --from=s1 unique2 /\n',
  });
  const one = await b.tree(dir);
  const two = await b.tree(dir, ['--no-cache']);
  assert.notEqual(await read(one, 'unique'), await read(two, 'unique'));
  assert.notEqual(await read(one, 'unique2'), await read(two, 'unique2'));
  const three = await b.tree(dir, ['--no-cache-filter', 's1']);
  assert.equal(await read(three, 'unique'), await read(two, 'unique'));
  assert.notEqual(await read(three, 'unique2'), await read(two, 'unique2'));
});

test('testCacheMountModeNoCache: --no-cache starts a cache mount empty; a cached build keeps adding to it', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS base\nARG FOO=abc\nRUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && ls -l /cache | wc -l > /out\nFROM scratch\nCOPY --from=base /out /\n',
  });
  assert.equal(await read(await b.tree(dir, ['--no-cache']), 'out'), '2\n');
  assert.equal(await read(await b.tree(dir, ['--no-cache', '--build-arg', 'FOO=def']), 'out'), '2\n');
  assert.equal(await read(await b.tree(dir, ['--build-arg', 'FOO=ghi']), 'out'), '3\n');
});

test('testWildcardRenameCache: renaming the file a wildcard COPY matched invalidates it', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nCOPY file* /files/\nRUN ls /files/file1\n', file1: 'foo' });
  assert.equal((await b.build(dir)).code, 0);
  await rename(join(dir, 'file1'), join(dir, 'file2'));
  const r = await b.build(dir);
  assert.notEqual(r.code, 0, 'the renamed file must not come from the cache');
});

test('testReproducibleIDs: the same build under two names gives one image ID', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n', foo: 'foo-contents' });
  assert.equal((await b.build(dir, ['-t', 'ids:one'])).code, 0);
  assert.equal((await b.build(dir, ['-t', 'ids:two'])).code, 0);
  assert.equal((await b.inspect('ids:one')).Id, (await b.inspect('ids:two')).Id);
});

test('testExportCacheLoop: exporting and importing the cache of stages built on a common base that copy from each other', { timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  const e = await testEnv(t);
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS base\nRUN echo aa > /foo\nWORKDIR /bar\nFROM base AS base1\nCOPY hello.txt .\nFROM base AS base2\nCOPY --from=base1 /bar/hello.txt .\nRUN true\nFROM scratch\nCOPY --from=base2 /foo /f\n',
    'hello.txt': 'hello',
  });
  const cache = `type=registry,ref=${host}/loop/cache:1,mode=max`;
  const first = join(e.dir, 'store-a');
  await kilnOk(first, ['load', '-q', '-i', fixture('busybox')], { env: e.env });
  const r1 = await kiln(first, ['build', '-q', '--cache-to', cache, dir], { env: e.env });
  assert.equal(r1.code, 0, r1.stderr);
  // A second machine exports and imports the same cache at once.
  const second = join(e.dir, 'store-b');
  await kilnOk(second, ['load', '-q', '-i', fixture('busybox')], { env: e.env });
  const r2 = await kiln(second, ['build', '--progress', 'plain', '--cache-to', cache, '--cache-from', `type=registry,ref=${host}/loop/cache:1`, dir], { env: e.env });
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r2.stderr, /RUN true\n#\d+ DONE/, 'the RUN came from the imported cache');
});
