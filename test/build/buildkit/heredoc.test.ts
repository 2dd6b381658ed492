// BuildKit's frontend/dockerfile/dockerfile_heredoc_test.go, behaviour by behaviour. The RUN and COPY
// heredoc cases share one build (one Dockerfile, exported as files) to keep the run short; each test
// names the BuildKit test function whose assertions it repeats.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
let out: string;
const read = (name: string) => readFile(join(out, name), 'utf8');

before(async () => {
  b = await openBuilder('heredoc');
  const dockerfile = [
    'FROM busybox AS build',
    // busybox-static has no adduser
    "RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group",
    'WORKDIR /dest',
    'RUN mkdir -p run ind var',
    // testCopyHeredoc
    'COPY <<EOF cp/single',
    'single file',
    'EOF',
    'COPY <<EOF <<EOF2 cp/double/',
    'first file',
    'EOF',
    'second file',
    'EOF2',
    'RUN mkdir -p /permfiles',
    'COPY --chmod=777 <<EOF /permfiles/all',
    'x',
    'EOF',
    'COPY --chmod=0644 <<EOF /permfiles/rw',
    'x',
    'EOF',
    'COPY --chown=user:user <<EOF /permfiles/owned',
    'x',
    'EOF',
    'RUN stat -c "%04a" /permfiles/all >> cp/perms && stat -c "%04a" /permfiles/rw >> cp/perms && stat -c "%U:%G" /permfiles/owned >> cp/perms',
    // testCopyHeredocSpecialSymbols
    'COPY <<EOF sym/quote',
    '"quoted text"',
    'EOF',
    'COPY <<EOF sym/s1',
    '\\',
    'EOF',
    'COPY <<EOF sym/s2',
    '\\\\',
    'EOF',
    'COPY <<EOF sym/s3',
    '\\$',
    'EOF',
    'COPY <<"EOF" sym/raw1',
    '\\',
    'EOF',
    'COPY <<"EOF" sym/raw2',
    '\\\\',
    'EOF',
    'COPY <<"EOF" sym/raw3',
    '\\$',
    'EOF',
    // testRunBasicHeredoc
    'RUN <<EOF',
    'echo "running as" >> /dest/run/basic',
    'whoami >> /dest/run/basic',
    'EOF',
    // testRunShebangHeredoc
    'RUN <<EOF',
    '#!/usr/bin/awk -f',
    '\tBEGIN { print "one" >> "/dest/run/shebang1"; print "two" >> "/dest/run/shebang1" }',
    'EOF',
    'RUN <<-EOF',
    '\t#!/usr/bin/awk -f',
    '\t\tBEGIN { print "one" >> "/dest/run/shebang2"; print "two" >> "/dest/run/shebang2" }',
    'EOF',
    // testRunComplexHeredoc
    "RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > /dest/run/lower; \\",
    "\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > /dest/run/upper",
    'Mixed CASE',
    'EOF1',
    'Other Case',
    'EOF2',
    'RUN <<EOF 3<<IN1 4<<IN2 awk -f -',
    '\tBEGIN { while ((getline l < "/proc/self/fd/3") > 0) print tolower(l) > "/dest/run/fd3"',
    '\twhile ((getline l < "/proc/self/fd/4") > 0) print toupper(l) > "/dest/run/fd4" }',
    'EOF',
    'Mixed CASE',
    'IN1',
    'Other Case',
    'IN2',
    // testHeredocIndent
    'COPY <<EOF /dest/ind/foo-copy',
    '\tfoo',
    'EOF',
    'COPY <<-EOF /dest/ind/bar-copy',
    '\tbar',
    'EOF',
    'RUN <<EOF',
    'echo "',
    '\tfoo" > /dest/ind/foo-run',
    'EOF',
    'RUN <<-EOF',
    'echo "',
    '\tbar" > /dest/ind/bar-run',
    'EOF',
    'RUN <<EOF',
    '#!/bin/sh',
    'echo "',
    '\tfoo" > /dest/ind/foo2-run',
    'EOF',
    'RUN <<-EOF',
    '#!/bin/sh',
    'echo "',
    '\tbar" > /dest/ind/bar2-run',
    'EOF',
    'RUN <<EOF sh > /dest/ind/foo3-run',
    'echo "',
    '\tfoo"',
    'EOF',
    'RUN <<-EOF sh > /dest/ind/bar3-run',
    'echo "',
    '\tbar"',
    'EOF',
    // testHeredocVarSubstitution
    'ARG who=world',
    'COPY <<EOF /dest/var/c1',
    'Hi ${who}!',
    'EOF',
    "COPY <<'EOF' /dest/var/c2",
    'Hi ${who}!',
    'EOF',
    'COPY <<"EOF" /dest/var/c3',
    'Hi ${who}!',
    'EOF',
    'COPY <<EOF /dest/var/q1',
    "Hi '${who}'!",
    'EOF',
    'COPY <<EOF /dest/var/q2',
    'Hi "${who}"!',
    'EOF',
    "COPY <<'EOF' /dest/var/qs",
    'Hi "${who}"!',
    'EOF',
    'RUN <<EOF',
    'greeting="Hi"',
    'echo "${greeting} ${who}!" > /dest/var/r1',
    'EOF',
    'RUN <<EOF',
    'who="shadowed"',
    'echo "Hi ${who}!" > /dest/var/r2',
    'EOF',
    'FROM busybox AS fake',
    // testRunFakeHeredoc
    'SHELL ["/usr/bin/awk"]',
    'RUN <<EOF',
    '\tBEGIN { print "from awk" > "/fake" }',
    'EOF',
    'FROM scratch',
    'COPY --from=build /dest /',
    'COPY --from=fake /fake /run/fake',
    '',
  ].join('\n');
  out = await b.tree(await b.context({ Dockerfile: dockerfile }));
});
after(() => b.close());

test('testCopyHeredoc: COPY writes heredocs as files (named after the delimiter into a directory), with --chmod and --chown', async () => {
  assert.equal(await read('cp/single'), 'single file\n');
  assert.equal(await read('cp/double/EOF'), 'first file\n');
  assert.equal(await read('cp/double/EOF2'), 'second file\n');
  assert.equal(await read('cp/perms'), '0777\n0644\nuser:user\n');
});

test('testCopyHeredocSpecialSymbols: an unquoted heredoc processes backslashes, a quoted one keeps them', async () => {
  assert.equal(await read('sym/quote'), '"quoted text"\n');
  assert.equal(await read('sym/s1'), '\n');
  assert.equal(await read('sym/s2'), '\\\n');
  assert.equal(await read('sym/s3'), '$\n');
  assert.equal(await read('sym/raw1'), '\\\n');
  assert.equal(await read('sym/raw2'), '\\\\\n');
  assert.equal(await read('sym/raw3'), '\\$\n');
});

test('testRunBasicHeredoc: RUN <<EOF runs the body in the shell, as root', async () => {
  assert.equal(await read('run/basic'), 'running as\nroot\n');
});

test('testRunFakeHeredoc: a RUN heredoc body goes to the SHELL, not to /bin/sh', async () => {
  assert.equal(await read('run/fake'), 'from awk\n');
});

test('testRunShebangHeredoc: a body starting with #! runs with that interpreter; <<- strips the tabs first', async () => {
  assert.equal(await read('run/shebang1'), 'one\ntwo\n');
  assert.equal(await read('run/shebang2'), 'one\ntwo\n');
});

test('testRunComplexHeredoc: heredocs piped into commands, two in one RUN, and on file descriptors 3 and 4', async () => {
  assert.equal(await read('run/lower'), 'mixed case\n');
  assert.equal(await read('run/upper'), 'OTHER CASE\n');
  assert.equal(await read('run/fd3'), 'mixed case\n');
  assert.equal(await read('run/fd4'), 'OTHER CASE\n');
});

test('testHeredocIndent: <<EOF keeps leading tabs, <<-EOF removes them, in COPY and in RUN', async () => {
  assert.equal(await read('ind/foo-copy'), '\tfoo\n');
  assert.equal(await read('ind/bar-copy'), 'bar\n');
  for (const n of ['foo-run', 'foo2-run', 'foo3-run']) assert.equal(await read(`ind/${n}`), '\n\tfoo\n', n);
  for (const n of ['bar-run', 'bar2-run', 'bar3-run']) assert.equal(await read(`ind/${n}`), '\nbar\n', n);
});

test('testHeredocVarSubstitution: an unquoted COPY heredoc expands ARGs, a quoted one does not; RUN bodies are left to the shell', async () => {
  assert.equal(await read('var/c1'), 'Hi world!\n');
  assert.equal(await read('var/c2'), 'Hi ${who}!\n');
  assert.equal(await read('var/c3'), 'Hi ${who}!\n');
  assert.equal(await read('var/q1'), "Hi 'world'!\n");
  assert.equal(await read('var/q2'), 'Hi "world"!\n');
  assert.equal(await read('var/qs'), 'Hi "${who}"!\n');
  assert.equal(await read('var/r1'), 'Hi world!\n');
  assert.equal(await read('var/r2'), 'Hi shadowed!\n');
});

test('testOnBuildHeredoc: an ONBUILD RUN heredoc runs in the child build (the base stored locally instead of pushed)', async () => {
  const base = await b.context({ Dockerfile: 'FROM busybox\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n' });
  const r = await b.build(base, ['-t', 'onbuildheredoc:base']);
  assert.equal(r.code, 0, r.stderr);
  const child = await b.tree(await b.context({ Dockerfile: 'FROM onbuildheredoc:base AS base\nFROM scratch\nCOPY --from=base /dest /dest\n' }));
  assert.equal(await readFile(join(child, 'dest'), 'utf8'), 'hello world\n');
});
