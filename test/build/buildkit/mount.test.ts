// BuildKit's frontend/dockerfile/dockerfile_mount_test.go, behaviour by behaviour. The RUN --mount
// cases that only need the build to succeed share one Dockerfile; each test names the BuildKit test
// function whose assertions it repeats.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
let out: string;
before(async () => {
  b = await openBuilder('mount');
  const dockerfile = [
    'ARG META_PATH=/tmp/meta',
    'FROM busybox AS stage1',
    // testMountContext: the default mount is a bind of the context
    'RUN --mount=target=/context [ "$(cat /context/testfile)" = "contents0" ]',
    // testMountTmpfs
    'RUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo',
    'RUN [ ! -f /mytmp/foo ]',
    // testCacheMountUser: 41e9 is a directory with mode 0751
    'RUN --mount=type=cache,target=/mycache-user,uid=1001,gid=1002,mode=0751 [ "$(stat -c "%u %g %f" /mycache-user)" = "1001 1002 41e9" ]',
    // testCacheMountDefaultID: the id defaults to the target
    'RUN --mount=type=cache,target=/mycache touch /mycache/foo',
    'RUN --mount=type=cache,target=/mycache2 [ ! -f /mycache2/foo ]',
    'RUN --mount=type=cache,target=/mycache [ -f /mycache/foo ]',
    // testMountEnvVar
    'ENV SOME_PATH=/mycache',
    'RUN --mount=type=cache,target=$SOME_PATH [ -f $SOME_PATH/foo ]',
    // testMountArg
    'ARG MNT_TYPE=cache',
    'RUN --mount=type=$MNT_TYPE,target=/mycache3 touch /mycache3/foo',
    'RUN --mount=type=cache,target=/mycache3 [ -f /mycache3/foo ]',
    // testMountEnvAcrossStages
    'ENV MNT_ID=sharedcache',
    'ENV MNT_TYPE2=cache',
    'RUN --mount=type=cache,id=sharedcache,target=/abcabc touch /abcabc/foo',
    'RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/cbacba [ -f /cbacba/foo ]',
    'FROM stage1 AS stage2',
    'RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/whatever [ -f /whatever/foo ]',
    // testMountMetaArg
    'ARG META_PATH',
    'RUN --mount=type=cache,id=metacache,target=/tmp/meta touch /tmp/meta/foo',
    'RUN --mount=type=cache,id=metacache,target=$META_PATH [ -f /tmp/meta/foo ]',
    // testMountTmpfsSize
    'RUN --mount=type=tmpfs,target=/dev/shm,size=128m mount | grep /dev/shm > /tmpfssize',
    'FROM scratch',
    'COPY --from=stage2 /tmpfssize /',
    '',
  ].join('\n');
  out = await b.tree(await b.context({ Dockerfile: dockerfile, testfile: 'contents0' }));
});
after(() => b.close());

test('testMountContext: RUN --mount with only a target binds the build context', () => {
  // asserted inside the build: the RUN fails unless /context/testfile holds the context's file
});

test('testMountTmpfs: a tmpfs mount is empty and leaves nothing in the layer', () => {
  // asserted inside the build by RUN [ ! -f /mytmp/foo ]
});

test('testCacheMountUser: a new cache directory gets the uid, gid and mode the mount asks for', () => {
  // asserted inside the build by stat -c "%u %g %f"
});

test('testCacheMountDefaultID, testMountEnvVar, testMountArg, testMountEnvAcrossStages, testMountMetaArg: cache ids default to the target and mount options expand ENV, ARG and global ARGs, also in a child stage', () => {
  // asserted inside the build: each RUN tests for the file an earlier RUN left in the cache
});

test('testMountTmpfsSize: size= limits the tmpfs', async () => {
  assert.match(await readFile(join(out, 'tmpfssize'), 'utf8'), /size=131072k/);
});

test('testMountInvalid: misspelt flags, keys and mount types are refused with a suggestion', async () => {
  const cases: [string, RegExp[]][] = [
    ['RUN --mont=target=/mytmp,type=tmpfs /bin/true', [/unknown flag:? --mont/, /did you mean mount\?/]],
    ['RUN --mount=typ=tmpfs /bin/true', [/unexpected key 'typ'/, /did you mean type\?/]],
    ['RUN --mount=type=tmp /bin/true', [/unsupported mount type "tmp"/, /did you mean tmpfs\?/]],
  ];
  for (const [run, expected] of cases) {
    const r = await b.build(await b.context({ Dockerfile: `FROM scratch\n${run}\n` }));
    assert.notEqual(r.code, 0, run);
    for (const e of expected) assert.match(r.stderr, e, run);
  }
});

test('testMountRWCache: a rw bind of another stage keeps the RUN cached by that stage\'s content, not its inputs', async () => {
  const dockerfile = [
    'FROM busybox AS build',
    'COPY cachebust /',
    'RUN mkdir out && echo foo > out/foo',
    'FROM busybox AS second',
    'RUN --mount=from=build,src=out,target=/out,rw touch /out/bar && cat /dev/urandom | head -c 100 | sha256sum > /unique',
    'FROM scratch',
    'COPY --from=second /unique /unique',
    '',
  ].join('\n');
  const first = await b.tree(await b.context({ Dockerfile: dockerfile, cachebust: '0' }));
  const second = await b.tree(await b.context({ Dockerfile: dockerfile, cachebust: '1' }));
  assert.equal(await readFile(join(second, 'unique'), 'utf8'), await readFile(join(first, 'unique'), 'utf8'));
});

test('testMountFromError: --mount from= is not expanded', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox AS test\nRUN touch /tmp/test\nFROM busybox\nENV ttt=test\nRUN --mount=from=$ttt,type=cache,target=/tmp ls\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /'from' doesn't support variable expansion, define alias stage instead/);
});

test('testMountDuplicate: a bind of the context and a bind of a file in it both follow context changes', async () => {
  const dockerfile = [
    'FROM busybox AS base',
    'RUN --mount=source=.,target=/tmp/test \\',
    '  --mount=source=b.txt,target=/tmp/b.txt \\',
    '  cat /tmp/test/a.txt /tmp/b.txt > /combined.txt',
    'FROM scratch',
    'COPY --from=base /combined.txt /',
    '',
  ].join('\n');
  for (const text of ['foo\n', 'updated\n']) {
    const o = await b.tree(await b.context({ Dockerfile: dockerfile, 'a.txt': text, 'b.txt': 'bar\n' }));
    assert.equal(await readFile(join(o, 'combined.txt'), 'utf8'), `${text}bar\n`);
  }
});

test('testCacheMountParallel: two stages with nested cache mounts run side by side, uncached, build after build', async () => {
  const dir = await b.context({
    Dockerfile: [
      'FROM busybox AS b1',
      'RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 1',
      'FROM busybox AS b2',
      'RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 2',
      'FROM scratch',
      'COPY --from=b1 /etc/passwd p1',
      'COPY --from=b2 /etc/passwd p2',
      '',
    ].join('\n'),
  });
  // BuildKit repeats it 20 times for a runc race; three keep the CI budget.
  for (let i = 0; i < 3; i++) {
    const r = await b.build(dir, ['--no-cache']);
    assert.equal(r.code, 0, r.stderr);
  }
});

test('testCacheMountSourceEscape: a cache mount source= is a directory in the cache; one that is a symbolic link out of the cache is refused', async () => {
  const inside = await b.context({
    Dockerfile: [
      'FROM busybox',
      'RUN --mount=type=cache,id=sourcesub,target=/cache mkdir -p /cache/sel && echo benign > /cache/sel/benign.txt',
      'RUN --mount=type=cache,id=sourcesub,source=sel,target=/sub [ "$(cat /sub/benign.txt)" = benign ]',
      '',
    ].join('\n'),
  });
  const ok = await b.build(inside, ['--no-cache']);
  assert.equal(ok.code, 0, ok.stderr);
  const dir = await b.context({
    Dockerfile: [
      'FROM busybox AS init',
      'RUN --mount=type=cache,id=sourceescape,target=/cache mkdir -p /cache/sel && echo benign > /cache/sel/benign.txt',
      'FROM init AS link',
      'RUN --mount=type=cache,id=sourceescape,target=/cache rm -rf /cache/sel && ln -s /etc /cache/sel',
      'FROM link AS victim',
      'RUN --mount=type=cache,id=sourceescape,source=sel,target=/victim cat /victim/hostname',
      'FROM scratch',
      'COPY --from=victim /etc/hostname /hostname',
      '',
    ].join('\n'),
  });
  const r = await b.build(dir, ['--no-cache']);
  assert.notEqual(r.code, 0, 'a cache source= resolving through a link outside the cache must fail the build');
  assert.match(r.stderr, /cache mount source "\/?sel" is not a directory in cache/);
});
