import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { parseBakeFile } from '../../src/bake/file.js';

// Bad input to kiln bake: a cycle, a FROM naming nothing known, a build failing in the middle of a
// hierarchy, failing structure tests, a malformed file. Clear errors naming the file and target,
// non-zero exits, and no tag on anything that did not fully succeed.

let work: string;
let root: string;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-bake-bad-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A directory with the given files; returns it. */
async function project(files: Record<string, string>): Promise<string> {
  const dir = join(work, `p${++n}`);
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

const names = async () => (await kilnOk(root, ['images', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l)).map((i) => `${i.Repository}:${i.Tag}`).sort();
const idOf = async (name: string) => JSON.parse(await kilnOk(root, ['inspect', name]))[0].Id as string;

test('a cycle between targets is an error naming the file and the targets, and nothing builds', async () => {
  const dir = await project({
    'a/Dockerfile': 'FROM kiln.test/cycle-b:1\nRUN true\n',
    'b/Dockerfile': 'FROM kiln.test/cycle-a:1\n',
    'c/Dockerfile': 'FROM busybox\nRUN echo c > /c\n',
    'kiln-bake.yaml': 'target:\n  c: {context: c, tags: [kiln.test/cycle-c:1]}\n  a: {context: a, tags: [kiln.test/cycle-a:1]}\n  b: {context: b, tags: [kiln.test/cycle-b:1]}\n',
  });
  const before = await names();
  const file = join(dir, 'kiln-bake.yaml');
  for (const extra of [[], ['--dry-run']]) {
    const r = await kiln(root, ['bake', '-f', file, ...extra]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^Error: .*kiln-bake\.yaml:3: target "a" is part of a cycle: "a" is built on "b" \(.*\/a\/Dockerfile:1: kiln\.test\/cycle-b:1\), "b" is built on "a" \(.*\/b\/Dockerfile:1: kiln\.test\/cycle-a:1\)$/m);
    assert.equal(r.stdout, '');
  }
  assert.deepEqual(await names(), before, 'not even the independent target was built');
});

test('a target built on its own tag is a cycle', async () => {
  const dir = await project({ 'Dockerfile': 'FROM kiln.test/self:1\n', 'kiln-bake.yaml': 'target:\n  self:\n    tags: [kiln.test/self:1]\n' });
  const r = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /kiln-bake\.yaml:2: target "self" is part of a cycle: "self" is built on "self"/);
});

test('a FROM that names no target, no stored image and nothing pullable fails before anything builds', async () => {
  const dir = await project({
    'good/Dockerfile': 'FROM busybox\nRUN echo good > /good\n',
    'bad/Dockerfile': '# the registry does not exist\nARG BASE=127.0.0.1:9/nothing/here:1\nFROM ${BASE}\nRUN true\n',
    'kiln-bake.yaml': 'target:\n  good: {context: good, tags: [kiln.test/unknown-good:1]}\n  bad: {context: bad, tags: [kiln.test/unknown-bad:1]}\n',
  });
  const before = await names();
  const r = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^Error: .*kiln-bake\.yaml: target "bad": .*bad\/Dockerfile:3: "127\.0\.0\.1:9\/nothing\/here:1" names nothing known: no target has this tag, it is not in the store, and it could not be pulled \(.+\)$/m);
  assert.deepEqual(await names(), before);
});

test('a failing build in the middle stops its branch, the other branch goes on, and nothing failed is tagged', async () => {
  const dir = await project({
    'base/Dockerfile': 'FROM busybox\nARG REV=1\nRUN echo $REV > /rev\n',
    'mid/Dockerfile': 'FROM kiln.test/mid-base:1\nARG FAIL=0\nRUN test "$FAIL" = 0 || { echo mid breaks; exit 3; }\n',
    'leaf/Dockerfile': 'FROM kiln.test/mid:1\nRUN echo leaf > /leaf\n',
    'other/Dockerfile': 'FROM kiln.test/mid-base:1\nRUN echo other > /other\n',
    'kiln-bake.yaml': 'target:\n  base: {context: base, tags: [kiln.test/mid-base:1]}\n  mid: {context: mid, tags: [kiln.test/mid:1]}\n  leaf: {context: leaf, tags: [kiln.test/mid-leaf:1]}\n  other: {context: other, tags: [kiln.test/mid-other:1]}\n',
  });
  const file = join(dir, 'kiln-bake.yaml');
  await kilnOk(root, ['bake', '-f', file, '--progress', 'quiet']);
  const old = { mid: await idOf('kiln.test/mid:1'), leaf: await idOf('kiln.test/mid-leaf:1'), other: await idOf('kiln.test/mid-other:1') };

  // The base changes and mid breaks: base and other are rebuilt, mid fails, leaf is left stale.
  await writeFile(join(dir, 'kiln-bake.yaml'), 'target:\n  base: {context: base, tags: [kiln.test/mid-base:1], args: {REV: 2}}\n  mid: {context: mid, tags: [kiln.test/mid:1], args: {FAIL: 1}}\n  leaf: {context: leaf, tags: [kiln.test/mid-leaf:1]}\n  other: {context: other, tags: [kiln.test/mid-other:1]}\n');
  const r = await kiln(root, ['bake', '-f', file, '--changed', 'base', '--progress', 'quiet']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^Error: .*kiln-bake\.yaml: 1 target failed: "mid" \(.*mid\/Dockerfile:3: RUN failed: .*exit code: 3\); left stale \(not rebuilt\): leaf$/m);
  assert.match(r.stdout, /^base\tkiln\.test\/mid-base:1\tsha256:[0-9a-f]{64}$/m);
  assert.match(r.stdout, /^other\tkiln\.test\/mid-other:1\tsha256:[0-9a-f]{64}$/m);
  assert.match(r.stdout, /^mid\tkiln\.test\/mid:1\tFAILED$/m);
  assert.match(r.stdout, /^leaf\tkiln\.test\/mid-leaf:1\tSTALE \(below mid\)$/m);
  assert.notEqual(await idOf('kiln.test/mid-other:1'), old.other, 'the other branch was rebuilt on the new base');
  assert.equal(await idOf('kiln.test/mid:1'), old.mid, 'the failed target keeps its previous image under its tag');
  assert.equal(await idOf('kiln.test/mid-leaf:1'), old.leaf);
  const stale = await kilnOk(root, ['bake', '-f', file, '--stale']);
  assert.match(stale, /^mid {2}kiln\.test\/mid:1 {2}built on kiln\.test\/mid-base:1@sha256:[0-9a-f]{64}, which is now sha256:[0-9a-f]{64}$/m);
  assert.doesNotMatch(stale, /^other/m);
});

test('an image failing its structure tests is not tagged and its children are left stale', async () => {
  const dir = await project({
    'base/Dockerfile': 'FROM busybox\nRUN echo hello > /greeting\n',
    'child/Dockerfile': 'FROM kiln.test/tested:1\n',
    'tests/base.yaml': 'schemaVersion: 2.0.0\nfileContentTests:\n  - name: greeting\n    path: /greeting\n    expectedContents: ["goodbye"]\n',
    'kiln-bake.yaml': 'target:\n  base: {context: base, tags: [kiln.test/tested:1], test: tests/base.yaml}\n  child: {context: child, tags: [kiln.test/tested-child:1]}\n',
  });
  const r = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml'), '--progress', 'quiet']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /1 target failed: "base" \(structure tests failed: 1 of 1 \(greeting: .*\); not tagged\); left stale \(not rebuilt\): child$/m);
  const all = await names();
  assert.ok(!all.includes('kiln.test/tested:1') && !all.includes('kiln.test/tested-child:1'), all.join(' '));
});

test('a malformed bake file is a usage error naming the file, line and field', async () => {
  const dir = await project({ 'Dockerfile': 'FROM busybox\n' });
  const cases: [string, RegExp][] = [
    ['target:\n  a:\n    tags: [x:1]\n    network: host\n', /kiln-bake\.yaml:4: target\.a\.network: not supported by kiln bake$/],
    ['target:\n  a:\n    tag: [x:1]\n', /kiln-bake\.yaml:3: target\.a\.tag: unknown field \(known: context, dockerfile, tags, args, target, labels, no-cache, test, platforms, output, cache-from, cache-to, secret, ssh, contexts, attest, inherits\)$/],
    ['target:\n  a: {context: .}\n', /kiln-bake\.yaml:2: target\.a\.tags: a target needs at least one tag/],
    ['target:\n  a: {tags: [x:1]}\n  b: {tags: ["docker.io/library/x:1"]}\n', /kiln-bake\.yaml:3: target\.b\.tags\.0: "docker\.io\/library\/x:1" is also a tag of target "a"$/],
    ['target:\n  a: {tags: ["Bad Name"]}\n', /target\.a\.tags\.0: invalid reference "Bad Name"/],
    ['target:\n  a: {tags: [x:1], args: {A: [1]}}\n', /target\.a\.args\.A: expected a string, got a list$/],
    ['target: [\n', /kiln-bake\.yaml:\d+: not valid YAML or JSON/],
    ['{"target": {"a": {"tags": ["x:1"]}}, "group": {"default": {"targets": ["nope"]}}}', /group\.default\.targets: "nope" is neither a target nor a group$/],
  ];
  for (const [text, want] of cases) assert.throws(() => parseBakeFile(text, 'kiln-bake.yaml'), want, text);

  await writeFile(join(dir, 'kiln-bake.yaml'), cases[0]![0]);
  const r = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^Error: .*kiln-bake\.yaml:4: target\.a\.network: not supported by kiln bake\n$/);
  const missing = await kiln(root, ['bake', '-f', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml: cannot read the bake file: no such file/);
  await writeFile(join(dir, 'kiln-bake.yaml'), 'target:\n  a: {tags: [kiln.test/x:1], dockerfile: Nope.Dockerfile}\n');
  const nodf = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml')]);
  assert.equal(nodf.code, 1);
  assert.match(nodf.stderr, /kiln-bake\.yaml: target "a": cannot read Dockerfile .*Nope\.Dockerfile: no such file/);
  await writeFile(join(dir, 'kiln-bake.yaml'), 'target:\n  a: {tags: [kiln.test/x:1]}\n');
  const unknown = await kiln(root, ['bake', '-f', join(dir, 'kiln-bake.yaml'), '--changed', 'zz']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--changed: "zz" is not a target of/);
});

test('the buildx JSON form is read, groups select targets, and a parent that is neither rebuilt nor stored is named', async () => {
  const dir = await project({
    'a/Dockerfile': 'FROM busybox\n',
    'b/Dockerfile': 'FROM kiln.test/json-a:1\n',
    'docker-bake.json': JSON.stringify({ group: { default: { targets: ['b'] } }, target: { a: { context: 'a', tags: ['kiln.test/json-a:1'] }, b: { context: 'b', tags: ['kiln.test/json-b:1'] } } }),
  });
  const r = await kiln(root, ['bake', '-f', join(dir, 'docker-bake.json'), '--dry-run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /docker-bake\.json: target "b" is built on target "a", which is not rebuilt and has no image kiln\.test\/json-a:1 in the store \(bake "a" first\)/);
  const all = await kilnOk(root, ['bake', '-f', join(dir, 'docker-bake.json'), 'a', 'b', '--dry-run']);
  assert.match(all, /^a {2}kiln\.test\/json-a:1 {2}FROM busybox\n└── b {2}kiln\.test\/json-b:1\nbuild order: a, b$/m);
});
