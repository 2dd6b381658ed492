// BuildKit's frontend/dockerfile/dockerfile_parents_test.go, behaviour by behaviour. BuildKit builds
// each target on its own; here a last stage needs every checking stage, so one build runs them all
// (each stage's RUN fails the build when a path is not as BuildKit's test expects).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('parents');
});
after(() => b.close());

/** A stage that copies with --parents, then checks with shell tests. */
const checking = (name: string, copy: string, checks: string[]) => [`FROM busybox AS ${name}`, copy, 'RUN <<eot', '\tset -ex', ...checks.map((c) => `\t${c}`), 'eot'];
/** A last stage that needs every stage named. */
const needAll = (names: string[]) => ['FROM scratch', ...names.map((n) => `COPY --from=${n} /etc/passwd /${n}`)];

test('testCopyParents: COPY --parents keeps the source path under the destination, also for a glob and a relative destination', async () => {
  const dir = await b.context({
    'foo1/foo2/bar': 'testing',
    'foo1/foo2/baz': 'testing2',
    Dockerfile: 'FROM scratch\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n',
  });
  const out = await b.tree(dir);
  assert.equal(await readFile(join(out, 'foo1/foo2/bar'), 'utf8'), 'testing');
  assert.equal(await readFile(join(out, 'test/foo1/foo2/bar'), 'utf8'), 'testing');
  assert.equal(await readFile(join(out, 'test/foo1/foo2/baz'), 'utf8'), 'testing2');
});

test('testCopyRelativeParents: /./ in a --parents source is the pivot: what is above it is left out, globs and ** on both sides', async () => {
  const stages: [string, string, string[]][] = [
    ['middle', 'COPY --from=base --parents /test/a/b/./c/d /out/', ['[ -d /out/c/d/e ]', '[ -f /out/c/d/foo ]', '[ ! -d /out/a ]', '[ ! -d /out/e ]']],
    ['end', 'COPY --from=base --parents /test/a/b/c/d/. /out/', ['[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/foo ]']],
    ['start', 'COPY --from=base --parents ./test/a/b/c/d /out/', ['[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/foo ]']],
    ['double', 'COPY --from=base --parents /test/a/./b/./c /out/', ['[ -d /out/b/c/d/e ]', '[ -f /out/b/c/d/foo ]']],
    ['wildcard', 'COPY --from=base --parents /test/a/./*/c /out/', ['[ -d /out/b/c/d/e ]', '[ -f /out/b2/c/d/e/bar ]']],
    ['doublewildcard', 'COPY --from=base --parents /test/a/b*/./c/**/e /out/', ['[ -d /out/c/d/e ]', '[ -f /out/c/d/e/bay ]', '[ -f /out/c/d/e/bar ]']],
    ['doubleinputs', 'COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /out/', ['[ -f /out/d/e/baz ]', '[ ! -f /out/d/e/bay ]', '[ -f /out/d/e2/baz ]', '[ -f /out/c/d/e/bar ]']],
  ];
  const dockerfile = [
    'FROM busybox AS base',
    'WORKDIR /test',
    'RUN <<eot',
    '\tset -ex',
    '\tmkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2',
    '\ttouch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz',
    'eot',
    ...stages.flatMap(([n, c, checks]) => checking(n, c, checks)),
    ...needAll(stages.map(([n]) => n)),
    '',
  ].join('\n');
  const r = await b.build(await b.context({ Dockerfile: dockerfile }));
  assert.equal(r.code, 0, r.stderr);
});

test('testCopyParentsMissingDirectory: a missing --parents source fails; globs that match nothing copy nothing', async () => {
  const base = ['FROM busybox AS base', 'WORKDIR /test', 'RUN mkdir -p a/b/c/d/e && touch a/b/c/d/foo a/b/c/d/e/bay'];
  const stages: [string, string, string[]][] = [
    ['normal', 'COPY --from=base --parents /test/a/b/c/d /out/', ['[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/e/bay ]', '[ ! -d /out/e ]', '[ ! -d /out/a ]']],
    ['withpivot', 'COPY --from=base --parents /test/a/b/./c/d /out/', ['[ -d /out/c/d/e ]', '[ -f /out/c/d/foo ]', '[ ! -d /out/a ]', '[ ! -d /out/e ]']],
    ['wildcard-nonexistent', 'COPY --from=base --parents /test/a/b2*/c /out/', ['[ -d /out ]', '[ ! -d /out/a ]']],
    ['wildcard-afterpivot', 'COPY --from=base --parents /test/a/b/./c2* /out/', ['[ -d /out ]', '[ ! -d /out/a ]', '[ ! -d /out/c2 ]']],
  ];
  const ok = [...base, ...stages.flatMap(([n, c, checks]) => checking(n, c, checks)), ...needAll(stages.map(([n]) => n)), ''].join('\n');
  const r = await b.build(await b.context({ Dockerfile: ok }));
  assert.equal(r.code, 0, r.stderr);
  const missing = [...base, 'FROM busybox AS nonexistentfile', 'COPY --from=base --parents /test/nonexistent-file /out/', ''].join('\n');
  const bad = await b.build(await b.context({ Dockerfile: missing }));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /"\/test\/nonexistent-file":? not found/);
});
