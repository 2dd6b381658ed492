import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fixture, kilnOk } from '../../support/env.js';
import { has, startDistribution, testEnv } from './support.js';

// Independent clients: an image kiln pushes is pulled by skopeo and podman with the same digest,
// and an image skopeo pushes is pulled by kiln with the same digest.

const run = promisify(execFile);
const sh = async (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    return (await run(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: 120_000 })).stdout;
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(e as { stderr?: string }).stderr || (e as Error).message}`);
  }
};

test('an image kiln pushes is pulled by skopeo and podman with identical digests', { skip: !(has('skopeo') && has('podman') && has('docker-registry')) && 'skopeo, podman or docker-registry missing', timeout: 120_000 }, async (t) => {
  const reg = await startDistribution(t);
  const e = await testEnv(t);
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  await kilnOk(e.root, ['tag', 'busybox', `${reg.host}/lib/busybox:kiln`], { env: e.env });
  const pushed = await kilnOk(e.root, ['push', `${reg.host}/lib/busybox:kiln`], { env: e.env });
  const digest = /^kiln: digest: (sha256:[0-9a-f]{64})/m.exec(pushed)![1]!;
  const inspected = JSON.parse(await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/lib/busybox:kiln`]));
  assert.equal(inspected.Digest, digest);
  // skopeo verifies every blob while copying
  await sh('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/lib/busybox:kiln`, `oci:${join(e.dir, 'skopeo')}:x`]);
  const podman = (...args: string[]) => sh('podman', ['--root', join(e.dir, 'podman'), '--runroot', join(e.dir, 'podman-run'), '--storage-driver', 'vfs', ...args]);
  await podman('pull', '-q', '--tls-verify=false', `${reg.host}/lib/busybox:kiln`);
  const digests = await podman('images', '--digests', '--format', '{{.Digest}}');
  assert.equal(digests.trim(), digest);
});

test('an image skopeo pushes is pulled by kiln with an identical digest', { skip: !(has('skopeo') && has('docker-registry')) && 'skopeo or docker-registry missing', timeout: 120_000 }, async (t) => {
  const reg = await startDistribution(t);
  const e = await testEnv(t);
  await sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${fixture('busybox')}`, `docker://${reg.host}/lib/busybox:skopeo`]);
  const digest = JSON.parse(await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/lib/busybox:skopeo`])).Digest;
  const out = await kilnOk(e.root, ['pull', `${reg.host}/lib/busybox:skopeo`], { env: e.env });
  assert.match(out, new RegExp(`^Digest: ${digest}$`, 'm'));
  const inspect = JSON.parse(await kilnOk(e.root, ['inspect', `${reg.host}/lib/busybox:skopeo`], { env: e.env }))[0];
  assert.equal(inspect.Digest, digest);
  // and kiln's store (an OCI layout) hands the same image back to skopeo unchanged
  const back = JSON.parse(await sh('skopeo', ['inspect', `oci:${e.root}:${reg.host}/lib/busybox:skopeo`]));
  assert.equal(back.Digest, digest);
});
