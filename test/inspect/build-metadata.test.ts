import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk } from '../support/env.js';

// The pipeline around kiln build: lint first (--check), metadata and annotations, tag schemes, and
// promotion by digest.

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-pipeline-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

let n = 0;
async function context(dockerfile: string): Promise<string> {
  const dir = join(work, `ctx-${++n}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

const tagsOf = async (repo: string) =>
  (await kilnOk(root, ['images', '--format', 'json']))
    .trim()
    .split('\n')
    .flatMap((l) => {
      const j = JSON.parse(l);
      return (Array.isArray(j) ? j : [j]) as { Repository: string; Tag: string; ID: string }[];
    })
    .filter((i) => i.Repository === repo);

async function manifestOf(name: string): Promise<{ annotations?: Record<string, string> }> {
  const digest = JSON.parse(await kilnOk(root, ['inspect', name]))[0].Digest as string;
  return JSON.parse(await readFile(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
}

test('build --check stops the build on lint findings at or above the threshold, and builds a clean file', async () => {
  const bad = await context('FROM busybox\nRUN sudo true\n');
  const r = await kiln(root, ['build', '--check', '-t', 'checked:bad', bad], { env: { KILN_LINT_SHELLCHECK: 'none' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /DL3004 error: Do not use sudo/);
  assert.match(r.stderr, /build stopped by --check: \d+ lint findings? at or above info/);
  assert.equal((await tagsOf('checked')).length, 0, 'nothing was built');
  const good = await context('FROM busybox:latest\nCMD ["true"]\n');
  await writeFile(join(good, '.hadolint.yaml'), 'ignored: [DL3007]\n');
  const ok = await kiln(root, ['build', '-q', '--check', '-t', 'checked:good', good], { cwd: good, env: { KILN_LINT_SHELLCHECK: 'none' } });
  assert.equal(ok.code, 0, ok.stderr);
});

test('--tag-scheme semver tags V, MAJOR.MINOR, MAJOR and latest; an older version or a prerelease only gets its own tag', async () => {
  const dir = await context('FROM busybox\nARG V\nRUN echo $V > /version\n');
  const build = (v: string) => kilnOk(root, ['build', '-q', '--build-arg', `V=${v}`, '--tag-scheme', 'semver', '--version', v, '-t', 'svc', dir]);
  const id123 = (await build('1.2.3')).trim();
  const tags = async () => Object.fromEntries((await tagsOf('svc')).map((t) => [t.Tag, t.ID]));
  assert.deepEqual(Object.keys(await tags()).sort(), ['1', '1.2', '1.2.3', 'latest']);
  await build('1.1.9'); // older: keeps latest, 1 and 1.2 where they are
  const after119 = await tags();
  assert.deepEqual(Object.keys(after119).sort(), ['1', '1.1', '1.1.9', '1.2', '1.2.3', 'latest']);
  assert.equal(after119.latest, id123);
  assert.equal(after119['1'], id123);
  await build('2.0.0-rc.1');
  const afterRc = await tags();
  assert.ok('2.0.0-rc.1' in afterRc);
  assert.ok(!('2' in afterRc) && !('2.0' in afterRc));
  assert.equal(afterRc.latest, id123);
  const bad = await kiln(root, ['build', '--tag-scheme', 'semver', '--version', '1.2', '-t', 'svc', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"1.2" is not a semantic version/);
});

test('--tag-scheme build-id adds YYYYMMDD-HHMMSS-<short sha> from the context repository', async () => {
  const dir = await context('FROM busybox\nRUN echo build-id > /id\n');
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
  git('init', '-q');
  git('-c', 'user.email=ci@example.invalid', '-c', 'user.name=ci', 'commit', '-q', '--allow-empty', '-m', 'x');
  const sha = git('rev-parse', 'HEAD');
  await kilnOk(root, ['build', '-q', '--tag-scheme', 'build-id', '-t', 'bid', dir]);
  const [tag] = (await tagsOf('bid')).map((t) => t.Tag);
  assert.match(tag!, new RegExp(`^\\d{8}-\\d{6}-${sha.slice(0, 7)}$`));
});

test('--metadata adds OCI annotations and label-schema labels from SOURCE_DATE_EPOCH, git and --version; --annotation adds its own', async () => {
  const dir = await context('FROM busybox\nRUN echo meta > /m\n');
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
  git('init', '-q');
  git('remote', 'add', 'origin', 'https://git.example.invalid/team/app.git');
  git('-c', 'user.email=ci@example.invalid', '-c', 'user.name=ci', 'commit', '-q', '--allow-empty', '-m', 'x');
  const sha = git('rev-parse', 'HEAD');
  await kilnOk(root, ['build', '-q', '--metadata', '--version', '3.1.4', '--annotation', 'com.example.team=core', '-t', 'meta:1', dir], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  const labels = JSON.parse(await kilnOk(root, ['inspect', 'meta:1']))[0].Config.Labels;
  assert.deepEqual(
    Object.fromEntries(Object.entries(labels).filter(([k]) => k.startsWith('org.label-schema.'))),
    {
      'org.label-schema.schema-version': '1.0',
      'org.label-schema.build-date': '2023-11-14T22:13:20Z',
      'org.label-schema.vcs-ref': sha,
      'org.label-schema.vcs-url': 'https://git.example.invalid/team/app.git',
      'org.label-schema.version': '3.1.4',
    },
  );
  const annotations = (await manifestOf('meta:1')).annotations;
  assert.deepEqual(annotations, {
    'org.opencontainers.image.created': '2023-11-14T22:13:20Z',
    'org.opencontainers.image.revision': sha,
    'org.opencontainers.image.source': 'https://git.example.invalid/team/app.git',
    'org.opencontainers.image.version': '3.1.4',
    'com.example.team': 'core',
    // kiln build records the base as BuildKit does, beside what --metadata and --annotation add
    'org.opencontainers.image.base.name': 'docker.io/library/busybox:latest',
    'org.opencontainers.image.base.digest': JSON.parse(await kilnOk(root, ['inspect', 'busybox']))[0].Digest,
  });
});

test('promote resolves the source to its digest and tags exactly that image', async () => {
  const dir = await context('FROM busybox\nARG V\nRUN echo $V > /v\n');
  await kilnOk(root, ['build', '-q', '--build-arg', 'V=1', '-t', 'web:staging', dir]);
  const digest = JSON.parse(await kilnOk(root, ['inspect', 'web:staging']))[0].Digest as string;
  const printed = await kilnOk(root, ['promote', 'web:staging', 'web:prod']);
  assert.equal(printed.trim(), `web:prod -> ${digest}`);
  await kilnOk(root, ['build', '-q', '--build-arg', 'V=2', '-t', 'web:staging', dir]); // staging moves on
  assert.equal(JSON.parse(await kilnOk(root, ['inspect', 'web:prod']))[0].Digest, digest);
  const missing = await kiln(root, ['promote', 'web:nope', 'web:prod']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /image "web:nope" not found/);
});
