// BuildKit's frontend/dockerfile/dockerfile_copy_test.go, behaviour by behaviour: each test names
// the BuildKit test function(s) it mirrors. Checks that need a shell run as RUN steps inside the
// build (a failing check fails the build); the others read the exported file tree.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, lstat, stat, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('copy');
});
after(() => b.close());

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');
/** A RUN that fails the build unless `path` is owned by `want` (uid:gid). */
const owned = (path: string, want: string) => `RUN [ "$(stat -c %u:%g ${path})" = "${want}" ] || { echo "${path}: $(stat -c %u:%g ${path}), expected ${want}"; exit 1; }\n`;

test('testDockerfileCopyFromArgs: COPY --from does not expand variables', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nCOPY --from=$FOO . .\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround/);
});

test('testEmptyDestDir, testPreserveDestDirSlash, testCopyLinkDotDestDir, testCopyLinkEmptyDestDir, testCopyRelative, testCopyChownCreateDest: destinations relative to WORKDIR, empty, or ending in /', async () => {
  const dir = await b.context({
    Dockerfile: [
      'FROM busybox AS emptydest\nENV empty=""\nCOPY testfile $empty\nRUN [ "$(cat testfile)" = "hello" ] && touch /ok',
      'FROM busybox AS slash\nCOPY testfile /sample/\nRUN [ "$(cat /sample/testfile)" = "hello" ] && touch /ok',
      'FROM busybox AS linkdot\nWORKDIR /var/www\nCOPY --link testfile .\nRUN [ "$(cat testfile)" = "hello" ] && touch /ok',
      'FROM busybox AS linkempty\nWORKDIR /var/www\nENV empty=""\nCOPY --link testfile $empty\nRUN [ "$(cat testfile)" = "hello" ] && touch /ok',
      'FROM busybox AS relative\nWORKDIR /test1\nWORKDIR test2\nRUN [ "$PWD" = /test1/test2 ]\nCOPY testfile ./\nRUN [ "$(cat /test1/test2/testfile)" = hello ]\n' +
        'ADD testfile ./bar/baz\nRUN [ "$(cat /test1/test2/bar/baz)" = hello ]\nCOPY testfile ./bar/baz2\nRUN [ "$(cat /test1/test2/bar/baz2)" = hello ]\n' +
        'WORKDIR ..\nCOPY testfile ./\nRUN [ "$(cat /test1/testfile)" = hello ]\nCOPY testfile /test3/\nRUN [ "$(cat /test3/testfile)" = hello ]\n' +
        'WORKDIR /test4\nCOPY . .\nRUN [ "$(cat /test4/testfile)" = hello ]\nWORKDIR /test5/test6\nCOPY testfile ../\nRUN [ "$(cat /test5/testfile)" = hello ] && touch /ok',
      'FROM busybox AS chowncreate\nARG group\nENV owner user01\nRUN echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd && echo user01:x:1001:1001::/home/user01:/bin/sh >> /etc/passwd && echo user:x:1000: >> /etc/group && echo user01:x:1001: >> /etc/group\nCOPY --chown=user:user . /dest\nCOPY --chown=${owner}:${group} . /dest01\n' +
        'RUN [ "$(stat -c "%U %G" /dest)" = "user user" ]\nRUN [ "$(stat -c "%U %G" /dest01)" = "user01 user" ] && touch /ok',
      'FROM scratch\n' + ['emptydest', 'slash', 'linkdot', 'linkempty', 'relative', 'chowncreate'].map((s) => `COPY --from=${s} /ok /${s}`).join('\n'),
    ].join('\n') + '\n',
    testfile: 'hello',
  });
  const out = await b.tree(dir, ['--build-arg', 'group=user']);
  for (const s of ['emptydest', 'slash', 'linkdot', 'linkempty', 'relative', 'chowncreate']) await stat(join(out, s));
});

test('testCopyChownExistingDir: COPY into an existing directory keeps its owner, new entries keep the source owners or take --chown', async () => {
  const checksPlain =
    owned('/file', '100:200') + owned('/dir', '0:0') + owned('/dir/subdir', '101:201') + owned('/dir/subdir/nestedfile', '102:202') +
    owned('/existingdir', '500:600') + owned('/existingdir/existingsubdir', '501:601') + owned('/existingdir/existingfile', '501:601') +
    owned('/existingdir/subdir', '101:201') + owned('/existingdir/subdir/nestedfile', '102:202');
  const checksChowned =
    owned('/file', '300:400') + owned('/dir', '300:400') + owned('/dir/subdir', '300:400') + owned('/dir/subdir/nestedfile', '300:400') +
    owned('/existingdir', '500:600') + owned('/existingdir/existingsubdir', '501:601') + owned('/existingdir/existingfile', '501:601') +
    owned('/existingdir/subdir', '300:400') + owned('/existingdir/subdir/nestedfile', '300:400');
  // The Dockerfile is a symbolic link to the file that holds it, as in BuildKit's test.
  const dir = await b.context({
    'Dockerfile.web':
      'FROM busybox AS source\nRUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile\n' +
      'FROM busybox AS test_base\nRUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir && chown 501:601 /existingdir/existingfile\n' +
      'FROM test_base AS copy_from\nCOPY --from=source /file .\nCOPY --from=source /dir /dir\nCOPY --from=source /dir/. /existingdir\n' + checksPlain +
      'FROM test_base AS copy_from_chowned\nCOPY --from=source --chown=300:400 /file .\nCOPY --from=source --chown=300:400 /dir /dir\nCOPY --from=source --chown=300:400 /dir/. /existingdir\n' + checksChowned,
    Dockerfile: { symlink: 'Dockerfile.web' },
  });
  const last = await b.build(dir);
  assert.equal(last.code, 0, last.stderr);
  const target = await b.build(dir, ['--target', 'copy_from']);
  assert.equal(target.code, 0, target.stderr);
});

test('testCopyWildcardCache: a wildcard COPY is re-run only when a file it matches changes', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS base\nCOPY foo* files/\nRUN head -c 100 /dev/urandom | sha256sum > unique\nCOPY bar files/\nFROM scratch\nCOPY --from=base unique /\n',
    foo1: 'foo1-data',
    foo2: 'foo2-data',
    bar: 'bar-data',
  });
  const first = await read(await b.tree(dir), 'unique');
  await writeFile(join(dir, 'bar'), 'bar-data-mod');
  assert.equal(await read(await b.tree(dir), 'unique'), first);
  await writeFile(join(dir, 'foo2'), 'foo2-data-mod');
  assert.notEqual(await read(await b.tree(dir), 'unique'), first);
});

test('testEmptyWildcard, testCopyVarSubstitution, testCopyOverrideFiles, testCopyWildcards, testCopyUnicodePath: what lands where', async () => {
  const dir = await b.context({
    Dockerfile:
      'FROM scratch\nCOPY foo nomatch* /\nENV FOO=bar\nCOPY $FOO baz\n' +
      'COPY sub sub\nCOPY sub sub\nCOPY files/foo.go dest/foo.go\nCOPY files/foo.go dest/foo.go\nCOPY files dest\n' +
      'COPY *.go /gofiles/\nCOPY f*.go foo2.go\nCOPY sub/* /subdest/\nCOPY sub/*/dir2/foo /subdest2/\nCOPY sub/*/dir2/foo /subdest3/bar\nCOPY . all/\n' +
      'COPY sub/dir1/ subdest4\nCOPY sub/dir1/. subdest5\nCOPY sub/dir1 subdest6\n' +
      'COPY test-äöü.txt /\nCOPY test-%C3%A4%C3%B6%C3%BC.txt /\nCOPY test+aou.txt /\n',
    foo: 'contents0',
    bar: 'bar-contents',
    'foo.go': 'foo-contents',
    'bar.go': 'bar-contents',
    'sub/dir1/dir2/foo': 'foo-contents',
    'files/foo.go': 'foo.go-contents',
    'test-äöü.txt': 'foo',
    'test-%C3%A4%C3%B6%C3%BC.txt': 'bar',
    'test+aou.txt': 'baz',
  });
  const out = await b.tree(dir);
  const want: Record<string, string> = {
    foo: 'contents0',
    baz: 'bar-contents',
    'sub/dir1/dir2/foo': 'foo-contents',
    'dest/foo.go': 'foo.go-contents',
    'gofiles/foo.go': 'foo-contents',
    'gofiles/bar.go': 'bar-contents',
    'foo2.go': 'foo-contents',
    'subdest/dir2/foo': 'foo-contents',
    'subdest2/foo': 'foo-contents',
    'subdest3/bar': 'foo-contents',
    'all/foo.go': 'foo-contents',
    'subdest4/dir2/foo': 'foo-contents',
    'subdest5/dir2/foo': 'foo-contents',
    'subdest6/dir2/foo': 'foo-contents',
    'test-äöü.txt': 'foo',
    'test-%C3%A4%C3%B6%C3%BC.txt': 'bar',
    'test+aou.txt': 'baz',
  };
  for (const [p, content] of Object.entries(want)) assert.equal(await read(out, p), content, p);
});

test('testCopyThroughSymlinkContext, testCopyFollowAllSymlinks, testCopySymlinks, testCopySocket: symbolic links in the context and in the source path, and a socket', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM scratch\nCOPY link/foo .\nCOPY dir /\nCOPY dir/sub bar\nCOPY foolink /\nCOPY sub/l* alllinks/\nCOPY sock/ /sock/\n',
    link: { symlink: 'through' },
    'through/foo': 'contents',
    'bar-target': 'bar-contents',
    'dir/sub': { symlink: '../bar-target' },
    foolink: { symlink: 'bar-target' },
    'sub/lfile': 'lfile-contents',
    'sub/l0': { symlink: 'subfile' },
    'sub/subfile': 'subfile-contents',
    'sub/l1': { symlink: 'second' },
    'sub/second': { symlink: 'baz' },
    'sub/baz': 'baz-contents',
  });
  await mkdir(join(dir, 'sock'));
  // A bound Unix socket left on disk (Python does not unlink it when the process ends).
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(dir, 'sock', 'socket.sock')]);
  const out = await b.tree(dir);
  assert.equal(await read(out, 'foo'), 'contents');
  // COPY dir / copies the link as a link; COPY dir/sub follows it.
  assert.ok((await lstat(join(out, 'sub'))).isSymbolicLink());
  assert.equal(await read(out, 'bar'), 'bar-contents');
  assert.ok((await lstat(join(out, 'bar'))).isFile());
  assert.equal(await read(out, 'foolink'), 'bar-contents');
  assert.ok((await lstat(join(out, 'foolink'))).isFile());
  assert.equal(await read(out, 'alllinks/l0'), 'subfile-contents');
  assert.equal(await read(out, 'alllinks/lfile'), 'lfile-contents');
  assert.equal(await read(out, 'alllinks/l1'), 'baz-contents');
  assert.ok((await lstat(join(out, 'sock/socket.sock'))).isFile(), 'a socket becomes an empty regular file');
});

test('testCopyThroughSymlinkMultiStage: COPY --from follows absolute and relative links in the source path inside the stage', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS build\nRUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && echo -n "data" > /sub/foo\nFROM scratch\nCOPY --from=build /sub/foo .\nCOPY --from=build /sub2/foo bar\n',
  });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'foo'), 'data');
  assert.equal(await read(out, 'bar'), 'data');
});

test('testCopyChown and testCopyChmod: --chown by name, by id and from variables; --chmod on files and on the parents it creates', async () => {
  // The fixture's
  // busybox calls group 65534 "nogroup" (docker's: "nobody"): the build renames it, and no adduser: /etc/passwd is written.
  const dir = await b.context({
    Dockerfile:
      'FROM busybox AS base\nENV owner 1000\nRUN mkdir -m 0777 /out && sed -i s/^nogroup:/nobody:/ /etc/group\nCOPY --chown=daemon foo /\nCOPY --chown=1000:nobody bar /baz\nARG group\nCOPY --chown=${owner}:${group} foo /foobis\n' +
      'COPY --chmod=0644 foo /foomode\nCOPY --chmod=777 bar /bazmode\nCOPY --chmod=777 foo /parent/foo\nCOPY --chmod=770 foo /parent/sub/foo\nARG mode\nCOPY --chmod=${mode} foo /footer\nCOPY --chmod=0 foo /zero\n' +
      'RUN stat -c "%U %G" /foo > /out/fooowner && stat -c "%u %G" /baz/sub > /out/subowner && stat -c "%u %G" /foobis > /out/foobisowner\n' +
      'RUN for p in foomode bazmode parent parent/sub footer zero; do stat -c "%04a" /$p; done > /out/modes\n' +
      'FROM scratch\nCOPY --from=base /out /\n',
    foo: { content: 'foo-contents', mode: 0o600 },
    'bar/sub': { content: '', mode: 0o600 },
  });
  const out = await b.tree(dir, ['--build-arg', 'group=nobody', '--build-arg', 'mode=755']);
  assert.equal(await read(out, 'fooowner'), 'daemon daemon\n');
  assert.equal(await read(out, 'subowner'), '1000 nobody\n');
  assert.equal(await read(out, 'foobisowner'), '1000 nobody\n');
  assert.equal(await read(out, 'modes'), '0644\n0777\n0777\n0770\n0755\n0000\n');
});

test('testCopyInvalidChmod: a mode that is not octal or above 07777 is refused', async () => {
  for (const mode of ['64a', '10000']) {
    const dir = await b.context({ Dockerfile: `FROM scratch\nCOPY --chmod=${mode} foo /\n`, foo: 'foo-contents' });
    const r = await b.build(dir);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`invalid chmod parameter: '${mode}'. it should be octal string and between 0 and 07777`), r.stderr);
  }
});

test('testChmodNonOctal: --chmod takes symbolic modes as chmod(1) does, X only for directories or executables', async () => {
  const cases = [
    { src: 'file', dst: 'f1', mode: 'go-w' },
    { src: 'file', dst: 'f2', mode: 'u=rw,g=r,o=r' },
    { src: 'file', dst: 'f3', mode: 'a+X' },
    { src: 'dir', dst: 'd1', mode: 'go-w', dir: true },
    { src: 'dir', dst: 'd2', mode: 'u+rw,g+r,o-x,o+w', dir: true },
    { src: 'dir', dst: 'd3', mode: 'a+X', dir: true },
  ];
  const expected = cases
    .map((c) => (c.dir ? `RUN mkdir -p /input/dirs/${c.dst} && cp -a /input/${c.src} /input/dirs/${c.dst}/${c.dst}\nRUN cp -a /input/dirs/${c.dst}/. /expected/ && chmod ${c.mode} /expected/${c.dst}` : `RUN cp -a /input/${c.src} /expected/${c.dst} && chmod ${c.mode} /expected/${c.dst}`))
    .join('\n');
  const copies = cases.map((c) => (c.dir ? `COPY --from=base --chmod=${c.mode} /input/dirs/${c.dst} /` : `COPY --from=base --chmod=${c.mode} /input/${c.src} /${c.dst}`)).join('\n');
  const verify = cases.map((c) => `RUN [ "$(stat -c %A /actual/${c.dst})" = "$(stat -c %A /expected/${c.dst})" ] || { stat -c '%n %A' /actual/${c.dst} /expected/${c.dst}; exit 1; }`).join('\n');
  const dir = await b.context({
    Dockerfile: `FROM busybox AS base\nRUN mkdir /input && touch /input/file && chmod 666 /input/file && mkdir /input/dir && chmod 124 /input/dir && mkdir /expected\n${expected}\nFROM scratch AS result\n${copies}\nFROM base\nCOPY --from=result / /actual/\n${verify}\n`,
  });
  const r = await b.build(dir);
  assert.equal(r.code, 0, r.stderr);
});

// A named context of a stage's name replaces that stage (dockerfile2llb/convert.go:460-474): BuildKit's
// test gives it a local directory of the client's session, here a --build-context directory.
test('testLocalCustomSessionID: a stage name given a local directory (--build-context) is read from that directory', async () => {
  const other = await b.context({ another: 'contents2' });
  const dir = await b.context({ Dockerfile: 'FROM scratch AS base\nFROM scratch\nCOPY out /out1\nCOPY --from=base /another /out2\n', out: 'contents1' });
  const out = await b.tree(dir, ['--build-context', `base=${other}`]);
  assert.equal(await read(out, 'out1'), 'contents1');
  assert.equal(await read(out, 'out2'), 'contents2');
});

test('testMergeOpCache (client_mergeop_test.go), testCopyLinkDotDestDir: COPY --link is a copy on scratch merged over its base, cached and the same layer under another base; a plain COPY, --link --chmod and --link --chown=NAME run again', async () => {
  // A file no other test copies, so the first build runs every COPY.
  const dir = await b.context({
    Dockerfile:
      'ARG BASE=one\nFROM busybox AS one\nWORKDIR /one\nFROM busybox AS two\nWORKDIR /two\n' +
      'FROM ${BASE} AS plain\nCOPY f /f\nFROM ${BASE} AS chmodded\nCOPY --link --chmod=0640 f /f\nFROM ${BASE} AS named\nCOPY --link --chown=nobody f /f\n' +
      'FROM ${BASE} AS linked\nCOPY --link f /f\nCOPY --from=plain /f /plain\nCOPY --from=chmodded /f /chmodded\nCOPY --from=named /f /named\n',
    f: `linked ${process.hrtime.bigint()}`,
  });
  /** Whether the build served the step titled `title` from the cache. */
  const cached = (stderr: string, title: string) => {
    const id = new RegExp(`^#(\\d+) ${title.replace(/[[\]/]/g, '\\$&')}$`, 'm').exec(stderr)?.[1];
    assert.ok(id, `no step ${title} in:\n${stderr}`);
    return new RegExp(`^#${id} CACHED$`, 'm').test(stderr);
  };
  const one = await b.build(dir, ['-t', 'link:one']);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(cached(one.stderr, '[linked 1/4] COPY --link f /f'), false);
  const two = await b.build(dir, ['-t', 'link:two', '--build-arg', 'BASE=two']);
  assert.equal(two.code, 0, two.stderr);
  assert.equal(cached(two.stderr, '[linked 1/4] COPY --link f /f'), true, two.stderr);
  // Not merged: their layers depend on the base (BuildKit merges only without --chmod; a --chown
  // name is looked up in the base's /etc/passwd).
  for (const s of ['[plain 1/1] COPY f /f', '[chmodded 1/1] COPY --link --chmod=0640 f /f', '[named 1/1] COPY --link --chown=nobody f /f']) assert.equal(cached(two.stderr, s), false, `${s}:\n${two.stderr}`);
  // busybox, the WORKDIR's layer, the linked copy's: the same layer over either base.
  const [l1, l2] = [(await b.inspect('link:one')).RootFS.Layers, (await b.inspect('link:two')).RootFS.Layers];
  assert.equal(l1.length, 6);
  assert.notEqual(l1[1], l2[1]);
  assert.equal(l1[2], l2[2]);
  const out = await b.tree(dir, ['--build-arg', 'BASE=two']);
  assert.equal(await read(out, 'f'), await read(out, 'plain'));
  assert.equal((await stat(join(out, 'chmodded'))).mode & 0o777, 0o640);
  await stat(join(out, 'two'));
});
