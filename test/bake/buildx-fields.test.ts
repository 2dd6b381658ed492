// kiln bake's targets take what docker buildx bake's do and kiln build already does, through the
// same build entry point: platforms, cache-from / cache-to, secret, ssh, contexts, attest, and
// output / tags as buildx reads them. One bake of a file with a target per field, then a test per
// field on what it left; a second bake on an empty store reads the first one's registry cache.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { arch, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fixture, kiln, kilnOk, type KilnResult } from '../support/env.js';
import { hostOf, startRegistry, type TestRegistry } from '../registry/client/support.js';
import { Store } from '../../src/store/store.js';
import type { Manifest } from '../../src/oci/types.js';
import { parseBakeFile } from '../../src/bake/file.js';
import { parsePlatform } from '../../src/oci/platform.js';

const host = arch() === 'arm64' ? 'arm64' : 'amd64';
const foreign = host === 'amd64' ? 'arm64' : 'amd64';
const qemuEntry = `/proc/sys/fs/binfmt_misc/qemu-${foreign === 'arm64' ? 'aarch64' : 'x86_64'}`;
const emulation = existsSync(qemuEntry) && /^enabled/.test(readFileSync(qemuEntry, 'utf8')) && /^flags:.*F/m.test(readFileSync(qemuEntry, 'utf8'));

let work: string;
let root: string;
let reg: TestRegistry;
let registry: string;
let agent: Server;
let baked: KilnResult;
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-bake-buildx-'));
  root = join(work, 'store');
  reg = await startRegistry({ after: (fn) => void cleanups.push(fn) });
  registry = hostOf(reg.url);
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox-multi')]);
  // An SSH agent socket: the build only needs it to be one (RUN --mount=type=ssh bind-mounts a relay to it).
  agent = createServer((s) => s.end());
  await new Promise<void>((r) => agent.listen(join(work, 'agent.sock'), r));
  const platformTargets = emulation
    ? [
        `  plat: {context: plat, tags: [kiln.test/plat:1], platforms: [linux/${host}, "linux/${foreign}"]}`,
        '  platchild: {context: platchild, tags: [kiln.test/platchild:1], platforms: [linux/' + host + ', linux/' + foreign + ']}',
      ]
    : [];
  const files: Record<string, string> = {
    'plat/Dockerfile': 'FROM busybox\nARG TARGETARCH\nRUN echo "$TARGETARCH $(uname -m)" > /arch\n',
    'platchild/Dockerfile': 'FROM kiln.test/plat:1\nLABEL child=1\n',
    'secret/Dockerfile': 'FROM busybox\nRUN --mount=type=secret,id=tok --mount=type=secret,id=fromenv --mount=type=ssh cat /run/secrets/tok /run/secrets/fromenv | sha256sum > /checked && test -S "$SSH_AUTH_SOCK" && echo ssh-ok >> /checked\n',
    'secret/tok.txt': 's3cret',
    'ctx/Dockerfile': 'FROM base\nCOPY --from=src hello.txt /hello.txt\n',
    'ctx-src/hello.txt': 'hello from a named context\n',
    'att/Dockerfile': 'FROM busybox\nRUN echo attested > /a\n',
    'cache/Dockerfile': 'FROM busybox\nRUN echo cached-step > /c\n',
    'out/Dockerfile': 'FROM busybox\nRUN echo out > /o\n',
    'kiln-bake.yaml': [
      'target:',
      ...platformTargets,
      `  secret: {context: secret, tags: [kiln.test/secret:1], secret: ["id=tok,src=secret/tok.txt", {id: fromenv, env: KILN_BAKE_TEST_SECRET}], ssh: ["default=${join(work, 'agent.sock')}"]}`,
      '  ctx: {context: ctx, tags: [kiln.test/ctx:1], contexts: {src: ctx-src, base: "docker-image://busybox"}}',
      '  att: {context: att, tags: [kiln.test/att:1], attest: [type=sbom, "type=provenance,mode=max"]}',
      `  cache: {context: cache, tags: [kiln.test/cache:1], cache-to: ["type=registry,ref=${registry}/bake/cache:main,mode=max"]}`,
      `  out: {context: out, tags: [kiln.test/out:1], output: ["type=oci,dest=out.oci.tar"]}`,
      `  pushed: {context: out, tags: ["${registry}/bake/pushed:1"], output: [type=registry]}`,
      '',
    ].join('\n'),
  };
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(work, 'p', p)), { recursive: true });
    await writeFile(join(work, 'p', p), content);
  }
  // The store the cache-from test bakes into (empty of build cache) is loaded meanwhile.
  [baked] = await Promise.all([
    kiln(root, ['bake', '-f', join(work, 'p', 'kiln-bake.yaml'), '--parallel', '4', '--progress', 'quiet'], { env: { KILN_BAKE_TEST_SECRET: 'env-value' } }),
    kilnOk(join(work, 'store2'), ['load', '-q', '-i', fixture('busybox-multi')]),
  ]);
});

after(async () => {
  agent?.close();
  for (const c of cleanups.reverse()) await c();
  await rm(work, { recursive: true, force: true });
});

const descriptorOf = async (name: string) => {
  const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: { mediaType: string; digest: string; annotations?: Record<string, string> }[] };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
};
/** A file of an image (of one platform's entry), from the topmost layer that has it: read in the store, no kiln process. */
const fileOf = async (image: string, path: string, platform?: string) => {
  const store = await Store.open(root);
  const img = await store.resolveImage(image, platform ? parsePlatform(platform) : undefined);
  for (const l of [...img.manifest.layers].reverse()) {
    const blob = join(root, 'blobs', 'sha256', l.digest.slice(7));
    if (execFileSync('tar', ['-tzf', blob], { encoding: 'utf8', maxBuffer: 1 << 24 }).split('\n').includes(path)) return execFileSync('tar', ['-xzOf', blob, path], { encoding: 'utf8' });
  }
  throw new Error(`${image}: no ${path}`);
};

test('every target of the file is built and reported with its digest', () => {
  assert.equal(baked.code, 0, baked.stderr);
  for (const t of ['secret', 'ctx', 'att', 'cache', 'out', 'pushed', ...(emulation ? ['plat', 'platchild'] : [])]) assert.match(baked.stdout, new RegExp(`^${t}\\t\\S+\\tsha256:[a-f0-9]{64}$`, 'm'), baked.stdout);
});

test('platforms: an index of one image per platform, and a child target is built on each platform\'s entry', { skip: !emulation && 'no binfmt_misc entry for the foreign platform' }, async () => {
  const d = await descriptorOf('kiln.test/plat:1');
  assert.equal(d?.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.match(baked.stdout, new RegExp(`^plat\\t\\S+\\t${d!.digest}$`, 'm'), 'the index digest is what bake reports');
  assert.equal(await fileOf('kiln.test/plat:1', 'arch', `linux/${foreign}`), `${foreign} ${foreign === 'arm64' ? 'aarch64' : 'x86_64'}\n`);
  // The child's image of each platform is on the parent's image of that platform.
  assert.equal(await fileOf('kiln.test/platchild:1', 'arch', `linux/${foreign}`), `${foreign} ${foreign === 'arm64' ? 'aarch64' : 'x86_64'}\n`);
  assert.equal(await fileOf('kiln.test/platchild:1', 'arch', `linux/${host}`), `${host} ${host === 'arm64' ? 'aarch64' : 'x86_64'}\n`);
});

test('secret and ssh: RUN mounts the secrets (from a file beside the bake file and from the environment) and the agent', async () => {
  assert.equal(await fileOf('kiln.test/secret:1', 'checked'), `${createHash('sha256').update('s3cretenv-value').digest('hex')}  -\nssh-ok\n`);
  const config = JSON.stringify(JSON.parse(await kilnOk(root, ['inspect', 'kiln.test/secret:1'])));
  assert.doesNotMatch(config, /s3cret|env-value/, 'the secrets are in no layer and no config');
});

test('contexts: a directory and a docker-image:// alias as named contexts', async () => {
  assert.equal(await fileOf('kiln.test/ctx:1', 'hello.txt'), 'hello from a named context\n');
  assert.ok((await fileOf('kiln.test/ctx:1', 'etc/passwd')).includes('root:'), 'built on the aliased image');
});

test('attest: type=sbom and type=provenance are referrers of the image', async () => {
  const store = await Store.open(root);
  const image = await store.resolveImage('kiln.test/att:1');
  const sboms = await store.referrers(image.manifestDescriptor.digest, 'application/spdx+json');
  assert.equal(sboms.length, 1, 'one SBOM');
  const statements = await store.referrers(image.manifestDescriptor.digest, 'application/vnd.in-toto+json');
  assert.equal(statements.length, 1, 'one provenance statement');
  const m = await store.content.readJSON<Manifest>(statements[0]!.digest);
  const statement = await store.content.readJSON<{ predicateType: string; predicate: { buildDefinition: { externalParameters: { configSource: { path: string } } } } }>(m.layers[0]!.digest);
  assert.equal(statement.predicateType, 'https://slsa.dev/provenance/v1');
  assert.equal(statement.predicate.buildDefinition.externalParameters.configSource.path, 'Dockerfile');
});

test('cache-to pushes the registry cache; cache-from on an empty store reuses its steps', async () => {
  assert.match(baked.stderr, new RegExp(`^\\[cache\\] exporting cache to ${registry}/bake/cache:main: \\d+ records`, 'm'));
  const other = join(work, 'store2');
  await writeFile(join(work, 'p', 'from-cache.yaml'), `target:\n  again: {context: cache, tags: [kiln.test/again:1], cache-from: ["type=registry,ref=${registry}/bake/cache:main"]}\n`);
  const r = await kiln(other, ['bake', '-f', join(work, 'p', 'from-cache.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^\[again\] #\d+ CACHED$/m, r.stderr);
});

test('output and tags as buildx: type=oci,dest writes an archive named by the tags; type=registry pushes the tags; both are tagged in the store', async () => {
  const names = execFileSync('tar', ['-xOf', join(work, 'p', 'out.oci.tar'), 'index.json'], { encoding: 'utf8' });
  assert.match(names, /"io\.containerd\.image\.name":"kiln\.test\/out:1"/);
  assert.ok(await descriptorOf('kiln.test/out:1'), 'tagged in the store too, where children find it');
  const pushed = await reg.client().req('GET', '/v2/bake/pushed/manifests/1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(pushed.status, 200);
  assert.equal(pushed.headers.get('docker-content-digest'), (await descriptorOf(`${registry}/bake/pushed:1`))?.digest);
});

test('bad values of these fields name the file, line and field', () => {
  const cases: [string, RegExp][] = [
    ['target:\n  a:\n    tags: [x:1]\n    platforms: [windows/amd64]\n', /kiln-bake\.yaml:4: target\.a\.platforms: platform windows\/amd64: kiln builds linux images only$/],
    ['target:\n  a:\n    tags: [x:1]\n    cache-to: ["type=s3"]\n', /kiln-bake\.yaml:4: target\.a\.cache-to\.0: .*type must be registry or inline$/],
    ['target:\n  a:\n    tags: [x:1]\n    secret: ["src=f"]\n', /kiln-bake\.yaml:4: target\.a\.secret\.0: secret src=f: needs id=$/],
    ['target:\n  a:\n    tags: [x:1]\n    attest: ["type=sbom,mode=max"]\n', /kiln-bake\.yaml:4: target\.a\.attest\.0: "type=sbom,mode=max": unknown field "mode" for type=sbom$/],
    ['target:\n  a:\n    tags: [x:1]\n    contexts: {src: "ftp://x"}\n', /kiln-bake\.yaml:4: target\.a\.contexts\.src: .*unsupported source "ftp:\/\/x"/],
    ['target:\n  a:\n    tags: [x:1]\n    platforms: [linux/amd64, linux/arm64]\n    output: ["type=docker,dest=x.tar"]\n', /kiln-bake\.yaml:5: target\.a\.output: type=docker holds one platform/],
    ['target:\n  a:\n    tags: [x:1]\n    output: ["type=tar"]\n', /kiln-bake\.yaml:4: target\.a\.output\.0: --output type=tar needs dest=PATH$/],
  ];
  for (const [text, want] of cases) assert.throws(() => parseBakeFile(text, 'kiln-bake.yaml'), want, text);
});

test('a secret file that cannot be read stops the bake before any target builds, naming the target', async () => {
  await writeFile(join(work, 'p', 'bad-secret.yaml'), 'target:\n  fine: {context: out, tags: [kiln.test/fine:1]}\n  a: {context: secret, tags: [kiln.test/a:1], secret: ["id=tok,src=nope.txt"]}\n');
  const r = await kiln(root, ['bake', '-f', join(work, 'p', 'bad-secret.yaml')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad-secret\.yaml: target "a": secret id=tok: cannot read nope\.txt$/m);
  assert.equal(await descriptorOf('kiln.test/fine:1'), undefined, 'nothing was built');
});
