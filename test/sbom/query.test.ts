import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';
import { admin } from '../../src/registry/server/admin.js';
import { pushImage, randomImage, startRegistry } from '../registry/server/support.js';
import { CDX, cyclonedx, imageVariant, pushSbom, spdx, storeSbomDocument } from './support.js';

// kiln query over the local store (SBOM artifacts beside images, base annotations written by
// kiln build --annotation) and over a kiln registry's search API (--registry).

const BaseDigest = 'org.opencontainers.image.base.digest';
const BaseName = 'org.opencontainers.image.base.name';

async function digestOf(root: string, image: string): Promise<string> {
  return (await kilnOk(root, ['inspect', '-f', '{{.Digest}}', image])).trim();
}

/** Build `tag` FROM `from` with one COPY (no sandbox needed); kiln build records `from` as its base. */
async function buildOn(root: string, from: string, tag: string): Promise<string> {
  const ctx = join(root, tag.replace(/[:/]/g, '_'));
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), `FROM ${from}\nCOPY file /${tag.replace(/[:/]/g, '_')}\n`);
  await writeFile(join(ctx, 'file'), tag);
  await kilnOk(root, ['build', '-q', '-t', tag, ctx]);
  return digestOf(root, tag);
}

test('kiln query --base finds images built on an image, directly and transitively, by digest or by name', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const busybox = await digestOf(root, 'busybox');
  const runtime = await buildOn(root, 'busybox', 'runtime:1');
  const framework = await buildOn(root, 'runtime:1', 'framework:1');
  const app = await buildOn(root, 'framework:1', 'app:1');
  // Same layers as busybox, another manifest: what is built on it is not built on busybox.
  await imageVariant(root, 'busybox', 'sibling:1');
  await buildOn(root, 'sibling:1', 'unrelated:1');

  const r = JSON.parse(await kilnOk(root, ['query', '--base', busybox, '--format', 'json']));
  assert.deepEqual(
    r.results.map((x: { names: string[]; depth: number; digest: string }) => [x.names, x.depth, x.digest]),
    [
      [['runtime:1'], 1, runtime],
      [['framework:1'], 2, framework],
      [['app:1'], 3, app],
    ],
  );
  assert.equal(r.results[1].base.digest, runtime);
  assert.match(r.results[1].base.name, /runtime:1$/);

  const byName = await kilnOk(root, ['query', '--base', 'framework:1']);
  assert.match(byName, /^IMAGE\s+DIGEST\s+BASE\s+DEPTH\n/);
  assert.match(byName, /app:1\s+\w{12}\s+\S*framework:1@\w{12}\s+1/);
  assert.doesNotMatch(byName, /runtime|unrecorded/);
});

test('kiln query --package finds images whose stored SBOM lists the package, within a version range', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  for (const name of ['old:1', 'new:1', 'none:1']) await imageVariant(root, 'busybox', name);
  await storeSbomDocument(root, 'old:1', spdx([
    ['bash', '5.2.15-2+b2', 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64'],
    ['libssl3', '3.0.11-1~deb12u2', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl'],
  ]));
  // Two SBOM formats of one image: its packages are listed once.
  await storeSbomDocument(root, 'old:1', cyclonedx([['bash', '5.2.15-2+b2', 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64']]), CDX);
  await storeSbomDocument(root, 'new:1', cyclonedx([
    ['bash', '5.2.21-2', 'pkg:deb/debian/bash@5.2.21-2?arch=amd64'],
    ['musl', '1.2.4_git20230717-r4', 'pkg:apk/alpine/musl@1.2.4_git20230717-r4'],
  ]), CDX);
  await storeSbomDocument(root, 'none:1', spdx([['zlib1g', '1:1.2.13.dfsg-1']]));

  const all = JSON.parse(await kilnOk(root, ['query', '--package', 'bash', '--format', 'json']));
  assert.equal(all.package, 'bash');
  assert.deepEqual(all.results.map((r: { names: string[]; packages: { version: string }[] }) => [r.names[0], r.packages.map((p) => p.version)]), [
    ['new:1', ['5.2.21-2']],
    ['old:1', ['5.2.15-2+b2']],
  ]);
  const old = JSON.parse(await kilnOk(root, ['query', '--package', 'bash@<5.2.15-3', '--format', 'json']));
  assert.deepEqual(old.results.map((r: { names: string[] }) => r.names), [['old:1']]);
  assert.equal(old.version, '<5.2.15-3');

  const table = await kilnOk(root, ['query', '--package', 'openssl@>=3.0,<3.0.11-1']);
  assert.match(table, /old:1\s+\w{12}\s+libssl3\s+3\.0\.11-1~deb12u2\s+deb\s+sbom/);
  assert.doesNotMatch(table, /new:1/);
  // apk order: _git is after the bare version, -r4 after -r3.
  assert.equal(JSON.parse(await kilnOk(root, ['query', '--package', 'musl@>1.2.4-r9', '--format', 'json'])).results.length, 1);
  assert.equal(JSON.parse(await kilnOk(root, ['query', '--package', 'musl@>=1.2.5', '--format', 'json'])).results.length, 0);
});

test('kiln query: bad input is a clear error; an unreadable stored SBOM is a warning and the search goes on', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  for (const name of ['good:1', 'bad:1']) await imageVariant(root, 'busybox', name);
  await storeSbomDocument(root, 'good:1', spdx([['curl', '7.88.1-10', 'pkg:deb/debian/curl@7.88.1-10']]));
  await storeSbomDocument(root, 'bad:1', { neither: 'spdx nor cyclonedx' });

  const r = await kiln(root, ['query', '--package', 'curl']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /good:1/);
  assert.match(r.stderr, /warning: SBOM sha256:\w+ of sha256:\w+: unknown SBOM format/);

  for (const [args, message] of [
    [['query', '--package', 'curl@>>1'], /version range ">>1": ">>1" is not OPERATOR VERSION/],
    [['query', '--package', 'curl@'], /empty version range/],
    [['query'], /exactly one of --package/],
    [['query', '--package', 'a', '--base', 'sha256:00'], /exactly one of --package/],
    [['query', '--package', 'curl', '--format', 'yaml'], /--format "yaml": expected table or json/],
    [['query', '--base', 'nosuchimage'], /image "nosuchimage" not found/],
    [['query', '--registry', 'http://127.0.0.1:1', '--base', 'busybox'], /searched by manifest digest/],
  ] as const) {
    const x = await kiln(root, [...args]);
    assert.notEqual(x.code, 0, `${args.join(' ')} fails`);
    assert.match(x.stderr, message);
    assert.equal(x.stderr.trim().split('\n').length, 1, `one line: ${x.stderr}`);
  }
});

test('kiln query --registry asks the registry search API with the stored credentials and sees what the user may pull', async (t) => {
  const root = await tempDir(t);
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', 'password-root', true);
  await ops.addUser('dev', 'password-dev', false);
  await ops.grant('dev', 'team', 'developer');
  const rootC = reg.client({ user: 'root', password: 'password-root' });
  const base = randomImage({ layers: 1 });
  const teamApp = randomImage({ layers: 1, annotations: { [BaseDigest]: base.digest, [BaseName]: 'secret/base:v1' } });
  const secretApp = randomImage({ layers: 1, annotations: { [BaseDigest]: base.digest } });
  for (const [repo, img] of [
    ['secret/base', base],
    ['team/app', teamApp],
    ['secret/app', secretApp],
  ] as const) {
    assert.equal((await pushImage(rootC, repo, 'v1', img)).status, 201);
    await pushSbom(rootC, repo, img, spdx([['openssl', '3.0.9-1', 'pkg:deb/debian/openssl@3.0.9-1']]));
  }
  const env = { DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: join(root, 'auth.json'), XDG_RUNTIME_DIR: root };
  const host = new URL(reg.url).host;
  await kilnOk(root, ['login', '-u', 'dev', '--password-stdin', host], { input: 'password-dev\n', env });

  const pkg = JSON.parse(await kilnOk(root, ['query', '--registry', reg.url, '--package', 'openssl@<3.0.11', '--format', 'json'], { env }));
  assert.deepEqual(pkg.results.map((r: { repository: string; tags: string[] }) => `${r.repository}:${r.tags.join(',')}`), ['team/app:v1']);
  assert.equal(pkg.results[0].packages[0].version, '3.0.9-1');
  const table = await kilnOk(root, ['query', '--registry', host, '--base', base.digest], { env });
  assert.match(table, /team\/app:v1\s+\w{12}\s+secret\/base:v1@\w{12}\s+1/);
  assert.doesNotMatch(table, /secret\/app/);

  // Without credentials the client gets an anonymous token: only public namespaces, here none.
  const anonEnv = { DOCKER_CONFIG: join(root, 'nobody'), REGISTRY_AUTH_FILE: join(root, 'none.json'), XDG_RUNTIME_DIR: join(root, 'nobody') };
  assert.deepEqual(JSON.parse(await kilnOk(root, ['query', '--registry', reg.url, '--package', 'openssl', '--format', 'json'], { env: anonEnv })).results, []);
});

test('end to end: build --sbom, push to kiln registry, and the same package query answers locally and from the registry', async (t) => {
  const root = await tempDir(t);
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const ctx = join(root, 'ctx');
  await mkdir(ctx, { recursive: true });
  const status = [
    ['bash', '5.2.15-2+b2', 'bash (5.2.15-2)'],
    ['libssl3', '3.0.11-1~deb12u2', 'openssl'],
  ]
    .map(([p, v, s]) => `Package: ${p}\nStatus: install ok installed\nVersion: ${v}\nArchitecture: amd64\nSource: ${s}\n`)
    .join('\n');
  await writeFile(join(ctx, 'status'), status);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY status /var/lib/dpkg/status\n');
  await kilnOk(root, ['build', '-q', '--sbom', '-t', 'debianish:1', ctx]);
  const unscanned = await imageVariant(root, 'debianish:1', 'unscanned:1');

  const local = JSON.parse(await kilnOk(root, ['query', '--package', 'bash@<5.2.15-3', '--format', 'json']));
  const byName = new Map(local.results.map((r: { names: string[]; from: string }) => [r.names[0], r.from]));
  assert.equal(byName.get('debianish:1'), 'sbom', 'read from the SBOM build --sbom stored');
  assert.equal(byName.get('unscanned:1'), 'catalog', 'an image without an SBOM is catalogued');
  // ...and its SBOM is kept beside it, so the next query reads it.
  const again = JSON.parse(await kilnOk(root, ['query', '--package', 'openssl', '--format', 'json', '--no-catalog']));
  assert.deepEqual(again.results.map((r: { digest: string; from: string; packages: { name: string }[] }) => [r.digest === unscanned, r.from, r.packages[0]!.name]).sort(), [
    [false, 'sbom', 'libssl3'],
    [true, 'sbom', 'libssl3'],
  ]);

  const reg = await startRegistry(t);
  const host = new URL(reg.url).host;
  await kilnOk(root, ['push', '-q', 'debianish:1', `${host}/team/debianish:1`]);
  const remote = JSON.parse(await kilnOk(root, ['query', '--registry', reg.url, '--package', 'bash@<5.2.15-3', '--format', 'json']));
  assert.deepEqual(remote.results.map((r: { repository: string; tags: string[]; packages: { version: string }[] }) => [r.repository, r.tags, r.packages.map((p) => p.version)]), [
    ['team/debianish', ['1'], ['5.2.15-2+b2']],
  ]);
  assert.deepEqual(JSON.parse(await kilnOk(root, ['query', '--registry', reg.url, '--package', 'bash@>=5.2.15-3', '--format', 'json'])).results, []);
});
