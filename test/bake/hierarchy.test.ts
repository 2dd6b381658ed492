import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { tags, writeSeedHierarchy, type SeedTarget } from './seed.js';

// The seed's image hierarchy, baked: order from the FROM lines, children built on their parents'
// exact new digests (recorded as base annotations), --changed rebuilding a branch and nothing else.

let work: string;
let root: string;
let bakeFile: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-bake-test-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  bakeFile = await writeSeedHierarchy(join(work, 'seed'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function inspect(name: string): Promise<any> {
  return JSON.parse(await kilnOk(root, ['inspect', name]))[0];
}

/** The manifest annotations of an image, read from the store's own OCI layout. */
async function annotations(name: string): Promise<Record<string, string>> {
  const digest = (await inspect(name)).Digest as string;
  const { readFile } = await import('node:fs/promises');
  const manifest = JSON.parse(await readFile(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
  return manifest.annotations ?? {};
}

const parentOf: Partial<Record<SeedTarget, SeedTarget>> = { pyenv: 'alpine', 'python-3-7': 'pyenv', 'python-3-8': 'pyenv', flask: 'python-3-7', app: 'flask' };

/** Order in which targets reported "built" on stderr. */
function builtOrder(stderr: string): string[] {
  return [...stderr.matchAll(/^\[([\w-]+)\] built sha256:/gm)].map((m) => m[1]!);
}

async function assertChildrenOnParents(): Promise<void> {
  for (const [child, parent] of Object.entries(parentOf)) {
    const a = await annotations(tags[child as SeedTarget]);
    const p = await inspect(tags[parent]);
    assert.equal(a['org.opencontainers.image.base.digest'], p.Digest, `${child} records ${parent}'s digest`);
    assert.equal(a['org.opencontainers.image.base.name'], tags[parent], `${child} records ${parent}'s tag`);
  }
}

test('bake builds the seed hierarchy in FROM order, each image on its parent\'s digest, with the article\'s labels and a non-root user', async () => {
  const r = await kiln(root, ['bake', '-f', bakeFile, '--progress', 'quiet']);
  assert.equal(r.code, 0, r.stderr);
  const order = builtOrder(r.stderr);
  assert.equal(order.length, 7, r.stderr);
  for (const [child, parent] of Object.entries(parentOf)) assert.ok(order.indexOf(parent) < order.indexOf(child), `${parent} before ${child}: ${order}`);
  for (const name of Object.keys(tags)) assert.match(r.stdout, new RegExp(`^${name}\\t\\S+\\tsha256:[0-9a-f]{64}$`, 'm'));

  const alpine = await inspect(tags.alpine);
  assert.equal(alpine.Config.User, 'alpine');
  assert.equal(alpine.Config.Labels['relenteny.alpine.version'], '3.10.2');
  const python = await inspect(tags['python-3-8']);
  assert.equal(python.Config.Labels['relenteny.python.version'], '3.8.0', 'the build arg reaches the label');
  const app = await inspect(tags.app);
  assert.equal(app.Config.Labels['relenteny.repository.url'], 'https://github.com/relenteny/flask-helloworld');
  assert.equal(app.Config.Labels['relenteny.flask.version'], '1.1.1', 'labels are inherited down the hierarchy');
  assert.equal(app.Config.WorkingDir, '/home/alpine/microblog');

  const busybox = await inspect('busybox');
  const base = await annotations(tags.alpine);
  assert.equal(base['org.opencontainers.image.base.name'], 'docker.io/library/busybox:latest');
  assert.equal(base['org.opencontainers.image.base.digest'], busybox.Digest);
  await assertChildrenOnParents();

  const tree = await kilnOk(root, ['images', '--tree']);
  assert.match(tree, /^busybox:latest {2}sha256:/m);
  assert.match(tree, /^├── kiln\.test\/alpine:3\.10\.2 .*\n│ {3}└── kiln\.test\/pyenv:1\.2\.14 .*\n│ {7}├── kiln\.test\/python:3\.7\.4 .*\n│ {7}│ {3}└── kiln\.test\/flask:1\.1\.1 .*\n│ {7}│ {7}└── kiln\.test\/flask-helloworld:1\.0\.0 .*\n│ {7}└── kiln\.test\/python:3\.8\.0 /m, tree);
  assert.match(tree, /^└── kiln\.test\/tools:1 /m, tree);
});

test('--dry-run prints the branch as a tree and builds nothing', async () => {
  const before = await kilnOk(root, ['images', '--format', 'json']);
  const out = await kilnOk(root, ['bake', '-f', bakeFile, '--changed', 'python-3-7', '--dry-run']);
  assert.equal(
    out.replace(/sha256:[0-9a-f]{64}/g, 'DIGEST'),
    `${bakeFile}: 3 targets to build\n` +
      'pyenv  kiln.test/pyenv:1.2.14  (unchanged: DIGEST)\n' +
      '└── python-3-7  kiln.test/python:3.7.4\n' +
      '    └── flask  kiln.test/flask:1.1.1\n' +
      '        └── app  kiln.test/flask-helloworld:1.0.0\n' +
      'build order: python-3-7, flask, app\n',
  );
  assert.equal(await kilnOk(root, ['images', '--format', 'json']), before, 'the store is unchanged');
});

test('changing the base rebuilds all its descendants in order on the new digests and leaves the unrelated branch untouched', async () => {
  const ids = Object.fromEntries(await Promise.all(Object.entries(tags).map(async ([k, v]) => [k, (await inspect(v)).Id])));
  await appendFile(join(work, 'seed', 'alpine', 'Dockerfile'), 'LABEL org.example.base-revision=2\n');
  const r = await kiln(root, ['bake', '-f', bakeFile, '--changed', 'alpine', '--progress', 'quiet']);
  assert.equal(r.code, 0, r.stderr);
  const order = builtOrder(r.stderr);
  assert.deepEqual([...order].sort(), ['alpine', 'app', 'flask', 'pyenv', 'python-3-7', 'python-3-8']);
  for (const [child, parent] of Object.entries(parentOf)) assert.ok(order.indexOf(parent) < order.indexOf(child), `${parent} before ${child}: ${order}`);
  assert.doesNotMatch(r.stdout, /^tools/m);
  for (const name of Object.keys(tags) as SeedTarget[]) {
    const id = (await inspect(tags[name])).Id;
    if (name === 'tools') assert.equal(id, ids[name], 'tools is not rebuilt');
    else assert.notEqual(id, ids[name], `${name} is rebuilt`);
  }
  assert.equal((await inspect(tags.app)).Config.Labels['org.example.base-revision'], '2', 'the change reaches the application image');
  await assertChildrenOnParents();
  const stale = await kilnOk(root, ['bake', '-f', bakeFile, '--stale']);
  assert.equal(stale, '', 'nothing is stale after the bake');
});

test('--stale lists the image whose base moved; --since-digest rebuilds what was built on the old base and below', async () => {
  const oldBase = (await inspect(tags.alpine)).Digest;
  const oldTools = (await inspect(tags.tools)).Id;
  await appendFile(join(work, 'seed', 'alpine', 'Dockerfile'), 'LABEL org.example.base-revision=3\n');
  await kilnOk(root, ['build', '-q', '-t', tags.alpine, join(work, 'seed', 'alpine')]);
  const newBase = (await inspect(tags.alpine)).Digest;
  const stale = await kilnOk(root, ['bake', '-f', bakeFile, '--stale']);
  assert.equal(stale, `pyenv  ${tags.pyenv}  built on ${tags.alpine}@${oldBase}, which is now ${newBase}\n`);

  const r = await kiln(root, ['bake', '-f', bakeFile, '--since-digest', oldBase, '--progress', 'quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(builtOrder(r.stderr).sort(), ['app', 'flask', 'pyenv', 'python-3-7', 'python-3-8']);
  assert.equal((await annotations(tags.pyenv))['org.opencontainers.image.base.digest'], newBase);
  await assertChildrenOnParents();
  assert.equal((await inspect(tags.tools)).Id, oldTools);
  assert.equal(await kilnOk(root, ['bake', '-f', bakeFile, '--stale']), '');
});

test('kiln build records no base annotations for FROM scratch, and the base of the final stage through FROM <stage>', async () => {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const dir = join(work, 'scratch');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'f'), 'x');
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY f /f\n');
  await kilnOk(root, ['build', '-q', '-t', 'kiln.test/scratch:1', dir]);
  const a = await annotations('kiln.test/scratch:1');
  assert.equal(a['org.opencontainers.image.base.name'], undefined);
  assert.equal(a['org.opencontainers.image.base.digest'], undefined);

  await writeFile(join(dir, 'Dockerfile'), 'FROM busybox AS first\nRUN echo 1 > /one\nFROM first\nCOPY f /f\n');
  await kilnOk(root, ['build', '-q', '-t', 'kiln.test/staged:1', dir]);
  const b = await annotations('kiln.test/staged:1');
  assert.equal(b['org.opencontainers.image.base.name'], 'docker.io/library/busybox:latest');
  assert.equal(b['org.opencontainers.image.base.digest'], (await inspect('busybox')).Digest);
});
