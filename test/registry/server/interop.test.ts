import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../../support/env.js';
import { admin } from '../../../src/registry/server/admin.js';
import { indexOf, randomImage, sha256, startRegistry, type TestImage } from './support.js';

// Independent clients against kiln's registry: skopeo (with and without auth, --creds and an auth
// file, a multi-layer image and an index), podman login/push/pull, and buildah push.

const run = promisify(execFile);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sh = async (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    return (await run(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr || err.message}`);
  }
};
const hostOf = (url: string) => url.replace(/^https?:\/\//, '');

/** An OCI layout with a 3-layer image and an index of two images, written by hand (no kiln code). */
async function writeLayout(dir: string): Promise<{ multi: TestImage; index: { digest: string } }> {
  const multi = randomImage({ layers: 3, layerSize: 50_000 });
  const [a, b] = [randomImage({ layers: 1 }), randomImage({ layers: 2 })];
  const idx = indexOf([a, b]);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const img of [multi, a, b]) for (const blob of [img.config, ...img.layers, img.manifest]) await writeFile(join(dir, 'blobs', 'sha256', sha256(blob).slice(7)), blob);
  await writeFile(join(dir, 'blobs', 'sha256', idx.digest.slice(7)), idx.body);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: multi.mediaType, digest: multi.digest, size: multi.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'multi' } },
        { mediaType: idx.mediaType, digest: idx.digest, size: idx.body.length, annotations: { 'org.opencontainers.image.ref.name': 'index' } },
      ],
    }),
  );
  return { multi, index: idx };
}

test('skopeo copies busybox, a multi-layer image and an index into and out of the registry without auth', { skip: !has('skopeo') && 'skopeo missing', timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t);
  const dir = await tempDir(t);
  const host = hostOf(reg.url);
  await sh('skopeo', ['copy', '-q', `oci-archive:${fixture('busybox')}`, `docker://${host}/lib/busybox:latest`, '--dest-tls-verify=false']);
  await sh('skopeo', ['copy', '-q', `docker://${host}/lib/busybox:latest`, `oci:${dir}/out:busybox`, '--src-tls-verify=false']);
  const inspect = JSON.parse(await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/lib/busybox:latest`]));
  assert.equal(inspect.Os, 'linux');

  const { multi, index } = await writeLayout(join(dir, 'layout'));
  await sh('skopeo', ['copy', '-q', `oci:${dir}/layout:multi`, `docker://${host}/lib/multi:v1`, '--dest-tls-verify=false']);
  await sh('skopeo', ['copy', '-q', '--all', `oci:${dir}/layout:index`, `docker://${host}/lib/index:v1`, '--dest-tls-verify=false']);
  // skopeo compresses uncompressed layers on the way to a registry, so compare with what it pushed.
  const raw = (await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/lib/multi:v1`])).replace(/\n$/, '');
  assert.equal(JSON.parse(raw).layers.length, multi.layers.length);
  assert.equal((await reg.client().req('GET', '/v2/lib/multi/manifests/v1')).text(), raw, 'the manifest bytes are stored exactly');
  const rawIndex = JSON.parse(await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/lib/index:v1`]));
  assert.equal(rawIndex.manifests.length, 2);
  void index;
  // skopeo verifies every digest while copying back.
  await sh('skopeo', ['copy', '-q', '--all', `docker://${host}/lib/index:v1`, `oci:${dir}/back:index`, '--src-tls-verify=false']);
  await sh('skopeo', ['copy', '-q', `docker://${host}/lib/multi:v1`, `oci:${dir}/back:multi`, '--src-tls-verify=false']);
});

test('skopeo with token auth: --creds, an auth file, and a refusal without credentials', { skip: !has('skopeo') && 'skopeo missing', timeout: 120_000 }, async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('ci', 'ci-password', false);
  await ops.grant('ci', 'team', 'developer');
  const dir = await tempDir(t);
  const host = hostOf(reg.url);
  await sh('skopeo', ['copy', '-q', '--dest-creds', 'ci:ci-password', `oci-archive:${fixture('busybox')}`, `docker://${host}/team/busybox:latest`, '--dest-tls-verify=false']);
  const authfile = join(dir, 'auth.json');
  await writeFile(authfile, JSON.stringify({ auths: { [host]: { auth: Buffer.from('ci:ci-password').toString('base64') } } }));
  await sh('skopeo', ['copy', '-q', '--authfile', authfile, `docker://${host}/team/busybox:latest`, `oci:${dir}/out:x`, '--src-tls-verify=false']);
  await assert.rejects(sh('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${host}/team/busybox:latest`]), /unauthorized|authentication required/i);
  await assert.rejects(sh('skopeo', ['inspect', '--tls-verify=false', '--creds', 'ci:wrong-password', `docker://${host}/team/busybox:latest`]), /unauthorized|invalid username or password|401/i);
});

test('podman login, push and pull against the registry with token auth', { skip: !has('podman') && 'podman missing', timeout: 180_000 }, async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('pat', 'pat-password', false);
  await ops.grant('pat', 'team', 'developer');
  const dir = await tempDir(t);
  const host = hostOf(reg.url);
  await writeFile(join(dir, 'auth.json'), '{}');
  const podman = (...args: string[]) =>
    sh('podman', ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', ...args], { REGISTRY_AUTH_FILE: join(dir, 'auth.json') });
  await podman('pull', '-q', `oci-archive:${fixture('busybox')}`);
  await podman('tag', 'localhost/busybox:latest', `${host}/team/busybox:podman`).catch(async () => {
    const id = (await podman('images', '-q')).trim().split('\n')[0]!;
    await podman('tag', id, `${host}/team/busybox:podman`);
  });
  await podman('login', '--tls-verify=false', '-u', 'pat', '-p', 'pat-password', host);
  await podman('push', '-q', '--tls-verify=false', `${host}/team/busybox:podman`);
  await podman('rmi', '-f', `${host}/team/busybox:podman`);
  await podman('pull', '-q', '--tls-verify=false', `${host}/team/busybox:podman`);
  assert.match(await podman('images', '--format', '{{.Repository}}:{{.Tag}}'), new RegExp(`${host}/team/busybox:podman`));
  await podman('logout', host);
  await assert.rejects(podman('pull', '-q', '--tls-verify=false', `${host}/team/busybox:podman`), /unauthorized|authentication required/i);
});

test('buildah pushes to the registry', { skip: !has('buildah') && 'buildah missing', timeout: 180_000 }, async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('bob', 'bob-password', false);
  await ops.grant('bob', 'team', 'maintainer');
  const dir = await tempDir(t);
  const host = hostOf(reg.url);
  const buildah = (...args: string[]) => sh('buildah', ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', ...args]);
  await buildah('pull', '-q', `oci-archive:${fixture('busybox')}`);
  const id = (await buildah('images', '-q')).trim().split('\n')[0]!;
  await buildah('push', '-q', '--tls-verify=false', '--creds', 'bob:bob-password', id, `docker://${host}/team/buildah:v1`);
  const r = await reg.client({ user: 'bob', password: 'bob-password' }).req('GET', '/v2/team/buildah/tags/list');
  assert.deepEqual(r.json().tags, ['v1']);
});
