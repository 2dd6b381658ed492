// An independent runtime reads kiln's multi-platform images (issue 22): podman runs each platform's
// entry of an index kiln built, the foreign one under the same QEMU user-mode emulation kiln's RUN
// used. The image has the cross-compilation pattern (a FROM --platform=$BUILDPLATFORM stage whose
// output is copied into each target) and an emulated RUN, so what podman prints shows both worked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { arch } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fixture, kilnOk, tempDir } from '../support/env.js';
import { has } from '../registry/client/support.js';

const run = promisify(execFile);
const host = arch() === 'arm64' ? 'arm64' : 'amd64';
const foreign = host === 'amd64' ? 'arm64' : 'amd64';
const uname = { amd64: 'x86_64', arm64: 'aarch64' } as const;
const qemuEntry = `/proc/sys/fs/binfmt_misc/qemu-${uname[foreign]}`;
const emulation = existsSync(qemuEntry) && /^enabled/.test(readFileSync(qemuEntry, 'utf8')) && /^flags:.*F/m.test(readFileSync(qemuEntry, 'utf8'));
const skip = !has('podman') ? 'podman not installed' : !emulation ? `no qemu-${uname[foreign]} binfmt_misc entry with the F flag (run scripts/setup.sh as root)` : false;

test('podman runs both platforms of an index kiln built: the cross-compiled file and the emulated RUN', { skip, timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t, 'kiln-platform-podman-');
  const root = join(dir, 'store');
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  await writeFile(
    join(ctx, 'Dockerfile'),
    [
      'FROM --platform=$BUILDPLATFORM busybox AS compile',
      'ARG TARGETARCH',
      'RUN mkdir /out && echo "compiled on $(uname -m) for $TARGETARCH" > /out/hello',
      'FROM busybox',
      'COPY --from=compile /out/hello /hello',
      'RUN uname -m > /ran-on',
      'CMD ["cat", "/hello", "/ran-on"]',
      '',
    ].join('\n'),
  );
  await kilnOk(root, ['load', '-i', fixture('busybox-multi')]);
  const built = (await kilnOk(root, ['build', '-q', '--platform', `linux/amd64,linux/arm64`, '-t', 'multi:1', ctx])).trim();
  const archive = join(dir, 'multi.oci.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'multi:1']);

  // podman's own store in the temporary directory. It gives a container RLIMIT_NOFILE and NPROC of
  // its own choosing, above the hard limits of a machine without CAP_SYS_RESOURCE (runc then fails
  // with "error setting rlimit type 6"), so the limits are named here, below what any machine has.
  const podman = (...args: string[]) =>
    run('podman', ['--root', join(dir, 'podman'), '--runroot', join(dir, 'podman-run'), '--storage-driver', 'vfs', ...args], { maxBuffer: 16 << 20 });
  t.after(() => podman('rm', '-af').catch(() => {}));
  for (const platform of ['amd64', 'arm64'] as const) {
    const { stdout } = await podman('run', '--rm', '--platform', `linux/${platform}`, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', `oci-archive:${archive}`);
    assert.equal(stdout, `compiled on ${uname[host]} for ${platform}\n${uname[platform]}\n`, `podman run --platform linux/${platform}`);
  }
  // What podman stored is what kiln built: each image's ID is the config digest of the index's
  // entry for its platform, and the digest it records is the index's.
  const blob = async <T>(digest: string): Promise<T> => JSON.parse(await readFile(join(root, 'blobs', 'sha256', digest.replace(/^sha256:/, '')), 'utf8')) as T;
  const index = await blob<{ manifests: { digest: string; platform: { architecture: string } }[] }>(built);
  const configs = Object.fromEntries(await Promise.all(index.manifests.map(async (m) => [m.platform.architecture, (await blob<{ config: { digest: string } }>(m.digest)).config.digest])));
  const stored = (await podman('images', '--digests', '--format', '{{.ID}} {{.Digest}}', '--no-trunc')).stdout.trim().split('\n');
  const inspected = JSON.parse((await podman('image', 'inspect', ...stored.map((l) => l.split(' ')[0]!))).stdout) as { Id: string; Architecture: string; Digest: string }[];
  assert.deepEqual(
    Object.fromEntries(inspected.map((i) => [i.Architecture, `sha256:${i.Id.replace(/^sha256:/, '')}`])),
    configs,
    'podman image IDs are the configs of the index entries',
  );
  for (const i of inspected) assert.equal(i.Digest, built, 'podman records the index digest kiln printed');
});
