// BuildKit's frontend/dockerfile/dockerfile_args_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('args');
});
after(() => b.close());

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

test('testGlobalArg: an ARG before FROM names the base image, and --build-arg overrides its default', async () => {
  const dir = await b.context({ Dockerfile: 'ARG tag=nosuchtag\nFROM busybox:${tag}\n' });
  const r = await b.build(dir, ['--build-arg', 'tag=latest']);
  assert.equal(r.code, 0, r.stderr);
});

test('testGlobalArgErrors: ${VAR:?message} in a global ARG fails the build with the message unless the variable is given', async () => {
  const dir = await b.context({ Dockerfile: 'ARG FOO=${FOO:?"custom error"}\nFROM busybox\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /FOO: custom error/);
  const ok = await b.build(dir, ['--build-arg', 'FOO=bar']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('testArgDefaultExpansion: an ARG default that requires an unset ARG fails, unless either is given', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /FOO: foo missing/);
  for (const given of ['FOO=123', 'BAR=123']) {
    const ok = await b.build(dir, ['--build-arg', given]);
    assert.equal(ok.code, 0, `${given}: ${ok.stderr}`);
  }
});

test('testMultiArgs and testQuotedMetaArgs: one ARG line declares several, quoted values keep spaces, global defaults refer to earlier ones', async () => {
  const dir = await b.context({
    Dockerfile:
      'ARG a1="foo bar" a2=box\nARG a3="$a2-foo"\nFROM busy$a2 AS build\nARG a3 a4="123 456" a1\nARG a5="bar-$a3"\n' +
      'RUN echo -n "$a1:$a3:$a4" > /out && echo -n $a5 > /quoted\nFROM scratch\nCOPY --from=build /out /quoted .\n',
  });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'out'), 'foo bar:box-foo:123 456');
  assert.equal(await read(out, 'quoted'), 'bar-box-foo');
});

test('testTargetStageNameArg: TARGETSTAGE is the target stage name once declared, "default" for an unnamed last stage', async () => {
  const base = 'FROM busybox AS base\nWORKDIR /out\nRUN echo -n "value:$TARGETSTAGE" > /out/first\nARG TARGETSTAGE\nRUN echo -n "value:$TARGETSTAGE" > /out/second\n' + 'FROM scratch AS foo\nCOPY --from=base /out/ /\nFROM scratch\nCOPY --from=base /out/ /\n';
  const dir = await b.context({ Dockerfile: base });
  const foo = await b.tree(dir, ['--target', 'foo']);
  assert.equal(await read(foo, 'first'), 'value:');
  assert.equal(await read(foo, 'second'), 'value:foo');
  const last = await b.tree(dir);
  assert.equal(await read(last, 'first'), 'value:');
  assert.equal(await read(last, 'second'), 'value:default');
  const named = await b.context({ Dockerfile: base + 'FROM scratch AS final\nCOPY --from=base /out/ /\n' });
  const final = await b.tree(named);
  assert.equal(await read(final, 'second'), 'value:final');
});

test('testBuiltinArgs: proxy variables reach RUN without a declaration and do not change its cache key', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox AS build\nARG FOO\nARG BAR\nARG BAZ=bazcontent\nRUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\nFROM scratch\nCOPY --from=build /out /\n',
  });
  const first = await b.tree(dir, ['--build-arg', 'FOO=foocontents', '--build-arg', 'http_proxy=hpvalue', '--build-arg', 'NO_PROXY=npvalue']);
  assert.equal(await read(first, 'out'), 'hpvalue::npvalue::foocontents::::bazcontent');
  // Only a proxy changed: the RUN is the cached one.
  const cached = await b.tree(dir, ['--build-arg', 'FOO=foocontents', '--build-arg', 'http_proxy=hpvalue2']);
  assert.equal(await read(cached, 'out'), 'hpvalue::npvalue::foocontents::::bazcontent');
  const rerun = await b.tree(dir, ['--build-arg', 'FOO=foocontents2', '--build-arg', 'http_proxy=hpvalue2']);
  assert.equal(await read(rerun, 'out'), 'hpvalue2::::foocontents2::::bazcontent');
});

test('testDefaultEnvWithArgs: ENV from an ARG with ${x:-default} and ${x%%pattern}, for no, empty and given values', async () => {
  const dir = await b.context({
    Dockerfile:
      'ARG image=idlebox\nFROM busy${image#idle} AS build\nARG my_arg\nENV my_arg "my_arg=${my_arg:-def_val}"\nENV my_trimmed_arg "${my_arg%%e*}"\n' +
      'COPY myscript.sh myscript.sh\nRUN ./myscript.sh $my_arg $my_trimmed_arg\nFROM scratch\nCOPY --from=build /out /out\n',
    'myscript.sh': { content: '#!/usr/bin/env sh\necho -n $my_arg $* > /out\n', mode: 0o700 },
  });
  for (const [args, expected] of [
    [[], 'my_arg=def_val my_arg=def_val my_arg=d'],
    [['--build-arg', 'my_arg='], 'my_arg=def_val my_arg=def_val my_arg=d'],
    [['--build-arg', 'my_arg=override'], 'my_arg=override my_arg=override my_arg=ov'],
  ] as const) {
    assert.equal(await read(await b.tree(dir, [...args]), 'out'), expected, args.join(' '));
  }
});

test('testEmptyStringArgInEnv and testEnvEmptyFormatting: ARG X= is in the environment empty, ARG X unset is not; ENV keeps a literal %s', async () => {
  const dir = await b.context({
    Dockerfile: "FROM busybox AS build\nARG FOO\nARG BAR=\nENV myenv foo%sbar\nRUN [ \"$myenv\" = 'foo%sbar' ]\nRUN env > env.txt\nFROM scratch\nCOPY --from=build env.txt .\n",
  });
  const env = await read(await b.tree(dir), 'env.txt');
  assert.match(env, /^BAR=$/m);
  assert.doesNotMatch(env, /^FOO=/m);
});
