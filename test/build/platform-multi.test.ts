// Multi-platform builds (issue 22): kiln build --platform linux/amd64,linux/arm64 gives an OCI image
// index, a foreign RUN runs under QEMU through binfmt_misc, a FROM --platform=$BUILDPLATFORM stage
// runs once and natively. BuildKit's frontend/dockerfile/dockerfile_platform_test.go and
// dockerfile2llb/convert.go (platformOpt, the TARGET*/BUILD* args) are the reference.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, arch } from 'node:os';
import { spawn, execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk, kilnMain } from '../support/env.js';
import { freePort, waitFor } from '../registry/server/support.js';
import { isRoot, unprivileged } from '../support/unprivileged.js';
import { has, startDistribution } from '../registry/client/support.js';
import { copyFile } from 'node:fs/promises';

const host = arch() === 'arm64' ? 'arm64' : 'amd64';
const foreign = host === 'amd64' ? 'arm64' : 'amd64';
const foreignUname = foreign === 'arm64' ? 'aarch64' : 'x86_64';
const hostUname = host === 'arm64' ? 'aarch64' : 'x86_64';
const qemuEntry = `/proc/sys/fs/binfmt_misc/qemu-${foreignUname}`;
// Emulated RUNs need the interpreter (scripts/setup.sh registers it); without it those tests say why.
const emulation = existsSync(qemuEntry) && /^enabled/.test(readFileSync(qemuEntry, 'utf8')) && /^flags:.*F/m.test(readFileSync(qemuEntry, 'utf8'));
const skipNoQemu = emulation ? false : `no qemu-${foreignUname} binfmt_misc entry with the F flag (run scripts/setup.sh as root)`;
const both = `linux/${host},linux/${foreign}`;

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-platform-multi-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox-multi')]);
});
after(() => rm(work, { recursive: true, force: true }));

let n = 0;
async function context(files: Record<string, string>): Promise<string> {
  const dir = join(work, `ctx-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) await writeFile(join(dir, p), content);
  return dir;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

const blob = async <T>(digest: string): Promise<T> => JSON.parse(await readFile(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as T;

/** The descriptor index.json tags `name` with. */
async function tagged(name: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
  assert.ok(d, `${name} in index.json`);
  return d;
}

/** A file of the flattened image for one platform, read through kiln export --platform. */
async function fileOf(image: string, platform: string, path: string): Promise<string> {
  const out = join(work, `export-${++n}.tar`);
  await kilnOk(root, ['export', '--platform', platform, image, '-o', out]);
  return execFileSync('tar', ['-xOf', out, path], { encoding: 'utf8' });
}

test('a two-platform build stores an index with one image per platform; the foreign image\'s RUN uname -m ran emulated', { skip: skipNoQemu, timeout: 120_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nARG TARGETARCH BUILDARCH TARGETPLATFORM\nRUN echo "$(uname -m) $TARGETARCH $BUILDARCH $TARGETPLATFORM" > /info\n' });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '-t', 'multi:1', dir]);
  const desc = await tagged('docker.io/library/multi:1');
  assert.equal(desc.mediaType, 'application/vnd.oci.image.index.v1+json');
  const index = await blob<{ manifests: Descriptor[] }>(desc.digest);
  assert.deepEqual(index.manifests.map((m) => m.platform), [{ os: 'linux', architecture: host }, { os: 'linux', architecture: foreign }]);
  for (const m of index.manifests) {
    const config = await blob<{ architecture: string; os: string }>((await blob<{ config: Descriptor }>(m.digest)).config.digest);
    assert.equal(config.architecture, m.platform!.architecture, 'the config says the platform too');
  }
  assert.equal(await fileOf('multi:1', `linux/${foreign}`, 'info'), `${foreignUname} ${foreign} ${host} linux/${foreign}\n`);
  assert.equal(await fileOf('multi:1', `linux/${host}`, 'info'), `${hostUname} ${host} ${host} linux/${host}\n`);
  // kiln run --platform runs the foreign entry (under QEMU); without it, the host's.
  assert.equal((await kilnOk(root, ['run', '--rm', '--platform', `linux/${foreign}`, 'multi:1', 'uname', '-m'])).trim(), foreignUname);
  assert.equal((await kilnOk(root, ['run', '--rm', 'multi:1', 'uname', '-m'])).trim(), hostUname);
  assert.equal((await kilnOk(root, ['inspect', '--platform', `linux/${foreign}`, '-f', '{{.Architecture}}', 'multi:1'])).trim(), foreign);
  // The index's digest names it as well (kiln push and the build print it).
  assert.equal((await kilnOk(root, ['inspect', '--platform', `linux/${foreign}`, '-f', '{{.Architecture}}', desc.digest])).trim(), foreign);
  assert.equal((await kilnOk(root, ['inspect', '-f', '{{.Architecture}}', `multi@${desc.digest}`])).trim(), host);
  assert.match(await kilnOk(root, ['images', 'multi']), new RegExp(`PLATFORMS[\\s\\S]*linux/${host},linux/${foreign}`));
  // Its digest is the index's, the one NAME@DIGEST pulls (podman images --digests shows it so).
  assert.equal((JSON.parse((await kilnOk(root, ['images', '--format', 'json', 'multi'])).trim()) as { Digest: string }).Digest, desc.digest);
  // The image commands take --platform too: a structure test's command runs emulated.
  const cst = join(work, 'cst.yaml');
  await writeFile(cst, `schemaVersion: 2.0.0\ncommandTests:\n  - name: arch\n    command: uname\n    args: ["-m"]\n    expectedOutput: ["${foreignUname}"]\n`);
  assert.match(await kilnOk(root, ['test', '--platform', `linux/${foreign}`, '-i', 'multi:1', '-c', cst]), /PASS/);
  const id = (p: string) => kilnOk(root, ['analyze', '--platform', p, '--format', 'json', 'multi:1']).then((t) => (JSON.parse(t) as { id: string }).id);
  assert.notEqual(await id(`linux/${foreign}`), await id(`linux/${host}`));
});

test('cross-compilation: a FROM --platform=$BUILDPLATFORM stage runs once, natively, and its output is copied into each target', { skip: skipNoQemu, timeout: 120_000 }, async () => {
  const dir = await context({
    Dockerfile: [
      'FROM --platform=$BUILDPLATFORM busybox AS build',
      'ARG BUILDPLATFORM',
      'RUN echo "compiled on $(uname -m) for $BUILDPLATFORM at $(cat /proc/sys/kernel/random/uuid)" > /out',
      'FROM busybox',
      'ARG TARGETARCH',
      'COPY --from=build /out /out',
      'RUN echo "$TARGETARCH $(uname -m)" > /arch',
      '',
    ].join('\n'),
  });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '-t', 'cross:1', dir]);
  const outHost = await fileOf('cross:1', `linux/${host}`, 'out');
  assert.match(outHost, new RegExp(`^compiled on ${hostUname} for linux/${host} at `));
  assert.equal(await fileOf('cross:1', `linux/${foreign}`, 'out'), outHost, 'one run of the build stage (its random id) in both images');
  assert.equal(await fileOf('cross:1', `linux/${foreign}`, 'arch'), `${foreign} ${foreignUname}\n`);
});

test('TARGETARCH names each target and BUILDARCH the machine, also in a FROM --platform=$BUILDPLATFORM stage', { timeout: 60_000 }, async () => {
  // No RUN for the foreign platform: the values come out by COPY of heredocs, so no QEMU is needed.
  const dir = await context({
    Dockerfile: [
      'FROM --platform=$BUILDPLATFORM busybox AS tools',
      'ARG TARGETARCH BUILDARCH',
      'RUN echo "tools $BUILDARCH->$TARGETARCH" > /tools',
      'FROM scratch',
      'ARG TARGETARCH TARGETOS TARGETPLATFORM BUILDPLATFORM',
      'COPY --from=tools /tools /tools',
      'COPY <<EOF /args',
      '$TARGETOS $TARGETARCH $TARGETPLATFORM $BUILDPLATFORM',
      'EOF',
      '',
    ].join('\n'),
  });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '--sbom', '-t', 'args:1', dir]);
  // --sbom: an SBOM per platform's image, each with that image as its subject.
  const index = await blob<{ manifests: Descriptor[] }>((await tagged('docker.io/library/args:1')).digest);
  const stored = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: (Descriptor & { artifactType?: string })[] };
  const subjects = [];
  for (const m of stored.manifests.filter((d) => d.artifactType === 'application/spdx+json')) subjects.push((await blob<{ subject: Descriptor }>(m.digest)).subject.digest);
  for (const m of index.manifests) assert.ok(subjects.includes(m.digest), `an SBOM for ${m.platform?.architecture}`);
  for (const a of [host, foreign]) {
    assert.equal(await fileOf('args:1', `linux/${a}`, 'args'), `linux ${a} linux/${a} linux/${host}\n`);
    assert.equal(await fileOf('args:1', `linux/${a}`, 'tools'), `tools ${host}->${a}\n`, 'the build stage sees the TARGETARCH of the target it is built for');
  }
});

test("--on-error=shell with several platforms: the failed platform's step opens the shell (emulated), the other platform is cancelled", { skip: skipNoQemu, timeout: 60_000 }, async () => {
  // The foreign platform fails at once; the host's would sleep for a minute unless it is stopped.
  const dir = await context({ Dockerfile: `FROM busybox\nARG TARGETARCH\nRUN if [ "$TARGETARCH" = ${foreign} ]; then echo half-done > /partial; exit 3; fi; sleep 60\n` });
  const started = Date.now();
  const r = await kiln(root, ['build', '--on-error=shell', '--progress', 'plain', '--platform', both, '-t', 'shell:1', dir], { input: 'cat /partial; uname -m; exit\n' });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, `half-done\n${foreignUname}\n`, "the shell ran in the foreign step's sandbox, under QEMU");
  assert.match(r.stderr, new RegExp(`Dockerfile:3: RUN failed \\(exit code 3\\) for linux/${foreign}: a shell in its sandbox follows`));
  assert.match(r.stderr, /^Error: Dockerfile:3: RUN failed/m, 'the error is the failure, not the cancellation');
  assert.equal((r.stderr.match(/a shell in its sandbox follows/g) ?? []).length, 1, 'one shell');
  assert.ok(Date.now() - started < 45_000, 'the host platform\'s sleep was cancelled');
  assert.ok(!JSON.parse(await readFile(join(root, 'index.json'), 'utf8')).manifests.some((m: Descriptor) => m.annotations?.['org.opencontainers.image.ref.name'] === 'docker.io/library/shell:1'), 'nothing tagged');
});

test('one foreign --platform gives a single-platform image of it, not an index', { skip: skipNoQemu, timeout: 60_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN uname -m > /m\n' });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', `linux/${foreign}`, '-t', 'single:1', dir]);
  const desc = await tagged('docker.io/library/single:1');
  assert.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const config = await blob<{ architecture: string }>((await blob<{ config: Descriptor }>(desc.digest)).config.digest);
  assert.equal(config.architecture, foreign);
  assert.equal(await fileOf('single:1', `linux/${foreign}`, 'm'), `${foreignUname}\n`);
});

test('a base image without a requested platform is an error naming both', { timeout: 60_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nCOPY Dockerfile /\n' });
  const r = await kiln(root, ['build', '--progress', 'plain', '--pull', 'never', '--platform', `linux/${host},linux/s390x`, dir]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /busybox.*no linux\/s390x.*it has linux\/amd64, linux\/arm64/);
});

test('a foreign RUN without a usable QEMU interpreter fails before any step, with the command that fixes it', { timeout: 60_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo must-not-run\n' });
  const binfmt = join(work, 'binfmt');
  await mkdir(binfmt, { recursive: true });
  await writeFile(join(binfmt, 'status'), 'enabled\n');
  const entry = `qemu-${foreignUname}`;
  const build = () => kiln(root, ['build', '--progress', 'plain', '--platform', both, dir], { env: { KILN_BINFMT_MISC: binfmt } });
  let r = await build();
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`Dockerfile:2: .*no ${entry} interpreter is registered .*apt-get install qemu-user-static binfmt-support && update-binfmts --enable ${entry}`));
  assert.doesNotMatch(r.stderr, /must-not-run/);
  // Registered without F: the kernel would look for the interpreter inside the sandbox.
  await writeFile(join(binfmt, entry), `enabled\ninterpreter /usr/libexec/qemu-binfmt/${foreignUname}-binfmt-P\nflags: P\noffset 0\n`);
  r = await build();
  assert.match(r.stderr, new RegExp(`without the F flag.*echo -1 > /proc/sys/fs/binfmt_misc/${entry} && update-binfmts --import ${entry}`));
  await writeFile(join(binfmt, entry), `disabled\ninterpreter /x\nflags: PF\n`);
  r = await build();
  assert.match(r.stderr, new RegExp(`registered but disabled: run \\(as root\\) update-binfmts --enable ${entry}`));
});

test('bad --platform values are usage errors', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\n' });
  for (const [p, why] of [['linux/', /invalid component|invalid argument|--platform/], ['windows/amd64', /linux images only/], ['linux/amd64,linux/foo(', /--platform/]] as const) {
    const r = await kiln(root, ['build', '--platform', p, dir]);
    assert.equal(r.code, 2, `${p}: ${r.stderr}`);
    assert.match(r.stderr, why);
  }
  const docker = await kiln(root, ['build', '--platform', both, '--output', `type=docker,dest=${join(work, 'x.tar')}`, dir]);
  assert.ok(!existsSync(join(work, 'x.tar')));
  assert.equal(docker.code, 2);
  assert.match(docker.stderr, /holds one platform/);
});

// BuildKit's local and tar exporters put each platform under a directory of its own, "/" written
// "_" (exporter/local/export.go: platformDirStat), or merge them with platform-split=false and
// refuse a file both have ("cannot overwrite … when split option is disabled").
test('-o type=local and type=tar of two platforms: a directory per platform, or merged with platform-split=false', { timeout: 60_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY <<EOF /arch\n$TARGETARCH\nEOF\nCOPY <<EOF /only-$TARGETARCH\nx\nEOF\n' });
  const local = join(work, 'split-local');
  await kilnOk(root, ['build', '-q', '--platform', both, '-o', `type=local,dest=${local}`, dir]);
  for (const p of [host, foreign]) assert.equal(await readFile(join(local, `linux_${p}`, 'arch'), 'utf8'), `${p}\n`);
  const tar = join(work, 'split.tar');
  await kilnOk(root, ['build', '-q', '--platform', both, '-o', `type=tar,dest=${tar}`, dir]);
  const listed = execFileSync('tar', ['tf', tar], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  assert.deepEqual(listed, [`linux_${host}/`, `linux_${host}/arch`, `linux_${host}/only-${host}`, `linux_${foreign}/`, `linux_${foreign}/arch`, `linux_${foreign}/only-${foreign}`].sort());
  // Merged: /arch is in both trees, so nothing is written and the file is named.
  const merged = join(work, 'merged');
  const clash = await kiln(root, ['build', '-q', '--platform', both, '-o', `type=local,dest=${merged},platform-split=false`, dir]);
  assert.equal(clash.code, 2, clash.stderr);
  assert.match(clash.stderr, new RegExp(`/arch is in both linux/${host} and linux/${foreign}`));
  assert.ok(!existsSync(merged));
  const apart = await context({ Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY <<EOF /only-$TARGETARCH\nx\nEOF\n' });
  await kilnOk(root, ['build', '-q', '--platform', both, '-o', `type=local,dest=${merged},platform-split=false`, apart]);
  assert.deepEqual(execFileSync('ls', [merged], { encoding: 'utf8' }).split('\n').filter(Boolean).sort(), [`only-${host}`, `only-${foreign}`].sort());
  const bad = await kiln(root, ['build', '--platform', both, '-o', `type=tar,dest=${tar},platform-split=maybe`, dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /platform-split must be true or false, not "maybe"/);
});

test('kiln run --platform of an image that lacks it names what it has', async () => {
  const r = await kiln(root, ['run', '--rm', '--platform', 'linux/ppc64le', 'busybox', 'true']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no linux\/ppc64le variant \(it has linux\/amd64, linux\/arm64\)/);
});

test('save --format oci and load keep every platform of an index; --output type=oci writes the index too', { timeout: 60_000 }, async () => {
  const dir = await context({ Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY <<EOF /a\n$TARGETARCH\nEOF\n' });
  const direct = join(work, 'direct.oci.tar');
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '-t', 'saved:1', '-o', `type=oci,dest=${direct}`, dir]);
  const before = await tagged('docker.io/library/saved:1');
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${direct}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Descriptor[] };
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(raw.manifests.map((m) => m.platform?.architecture), [host, foreign]);
  const archive = join(work, 'saved.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'saved:1']);
  const other = join(work, 'store2');
  await kilnOk(other, ['load', '-i', archive]);
  const index = JSON.parse(await readFile(join(other, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const after = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'docker.io/library/saved:1');
  assert.equal(after?.digest, before.digest, 'the same index');
  const out = join(work, 'loaded.tar');
  for (const a of [host, foreign]) {
    await kilnOk(other, ['export', '--platform', `linux/${a}`, 'saved:1', '-o', out]);
    assert.equal(execFileSync('tar', ['-xOf', out, 'a'], { encoding: 'utf8' }), `${a}\n`);
  }
});

test("push sends the index and every image to kiln's registry; skopeo inspect --raw shows the index", { timeout: 120_000 }, async (t) => {
  const dir = await context({ Dockerfile: 'FROM busybox\nARG TARGETARCH\nCOPY <<EOF /a\n$TARGETARCH\nEOF\n' });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '-t', 'pushed:1', dir]);
  const local = await tagged('docker.io/library/pushed:1');
  const port = await freePort();
  const server = spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', join(work, 'registry'), '--addr', `127.0.0.1:${port}`], { stdio: 'ignore' });
  t.after(() => void server.kill('SIGKILL'));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 200, 15_000, 'registry serve');
  const ref = `127.0.0.1:${port}/team/pushed:1`;
  const pushed = await kilnOk(root, ['push', 'pushed:1', ref]);
  assert.match(pushed, new RegExp(local.digest));
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Descriptor[] };
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(raw.manifests.map((m) => m.platform?.architecture), [host, foreign]);
  // Every image of it is there: pulled back per platform, with the digests of the index.
  for (const m of raw.manifests) {
    const one = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://127.0.0.1:${port}/team/pushed@${m.digest}`], { encoding: 'utf8' })) as { layers: unknown[] };
    assert.ok(one.layers.length >= 2);
  }
  if (emulation) {
    // --cache-to carries every platform's steps: a fresh store with --cache-from runs nothing, the
    // emulated RUN included.
    const cached = await context({ Dockerfile: 'FROM busybox\nRUN uname -m > /m\nRUN echo two > /two\n' });
    const cacheRef = `127.0.0.1:${port}/team/cache:multi`;
    await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '--cache-to', `type=registry,ref=${cacheRef},mode=max`, '-t', 'cached:1', cached]);
    const fresh = join(work, 'store5');
    await kilnOk(fresh, ['load', '-i', fixture('busybox-multi')]);
    const again = await kiln(fresh, ['build', '--progress', 'plain', '--platform', both, '--cache-from', `type=registry,ref=${cacheRef}`, '-t', 'cached:1', cached]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr.match(/^#\d+ CACHED$/gm)?.length, 4, again.stderr);
    assert.equal(again.stderr.match(/^#\d+ DONE /gm)?.length, 2, 'only the two FROM lines are done, nothing ran');
    const out = join(work, 'cached.tar');
    await kilnOk(fresh, ['export', '--platform', `linux/${foreign}`, 'cached:1', '-o', out]);
    assert.equal(execFileSync('tar', ['-xOf', out, 'm'], { encoding: 'utf8' }), `${foreignUname}\n`);
  }
  const other = join(work, 'store3');
  await kilnOk(other, ['pull', '--platform', `linux/${foreign}`, ref]);
  assert.equal((await kilnOk(other, ['inspect', '-f', '{{.Architecture}}', ref])).trim(), foreign);
  // --all-platforms: the index under the name, every image of it in the store.
  const all = join(work, 'store4');
  assert.match(await kilnOk(all, ['pull', '--all-platforms', ref]), new RegExp(`Digest: ${local.digest}`));
  const out = join(work, 'pulled.tar');
  for (const a of [host, foreign]) {
    await kilnOk(all, ['export', '--platform', `linux/${a}`, ref, '-o', out]);
    assert.equal(execFileSync('tar', ['-xOf', out, 'a'], { encoding: 'utf8' }), `${a}\n`);
  }
});

test('rootless: a non-root user builds both platforms, the foreign RUN emulated', { skip: skipNoQemu || (isRoot ? false : 'needs root to create the user'), timeout: 180_000 }, async (t) => {
  const u = await unprivileged(t);
  const multi = join(u.dir, 'busybox-multi.tar');
  await copyFile(fixture('busybox-multi'), multi);
  execFileSync('chmod', ['a+r', multi]);
  const ctx = join(u.dir, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN uname -m > /m && chown 1:1 /m\n');
  execFileSync('chmod', ['-R', 'a+rX', ctx]);
  u.kiln(`load -i ${multi}`);
  u.kiln(`build --progress plain --platform ${both} -t rl:1 ${ctx}`);
  const out = join(u.userOut, 'rl.tar');
  u.kiln(`export --platform linux/${foreign} rl:1 -o ${out}`);
  assert.equal(execFileSync('tar', ['-xOf', out, 'm'], { encoding: 'utf8' }), `${foreignUname}\n`);
  assert.match(execFileSync('tar', ['-tvf', out, 'm'], { encoding: 'utf8' }), /daemon\/daemon|1\/1/, 'the emulated chown kept its owner in the rootless layer');
});

test("Debian's docker-registry takes the index and gives each platform's image back with the index's digests", { skip: !has('docker-registry') && 'docker-registry not installed', timeout: 60_000 }, async (t) => {
  const dir = await context({ Dockerfile: 'FROM busybox\nARG TARGETARCH\nCOPY <<EOF /a\n$TARGETARCH\nEOF\n' });
  await kilnOk(root, ['build', '--progress', 'plain', '--platform', both, '-t', 'dist:1', dir]);
  const pushedIndex = (await tagged('docker.io/library/dist:1')).digest;
  const index = await blob<{ manifests: Descriptor[] }>(pushedIndex);
  const reg = await startDistribution(t);
  const ref = `${reg.host}/team/dist:1`;
  assert.match(await kilnOk(root, ['push', 'dist:1', ref]), new RegExp(`digest: ${pushedIndex}`), 'the registry stored the index under its own digest');
  for (const m of index.manifests) {
    const other = join(work, `dist-${m.platform!.architecture}`);
    await kilnOk(other, ['pull', '--platform', `linux/${m.platform!.architecture}`, ref]);
    const got = JSON.parse(await kilnOk(other, ['inspect', ref])) as { RepoDigests?: string[]; Architecture: string; Id: string }[];
    assert.equal(got[0]!.Architecture, m.platform!.architecture);
    // The host's pull records the index itself, another platform's that platform's manifest; either
    // way the manifest is the very one of the index.
    const stored = JSON.parse(await readFile(join(other, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.ok(existsSync(join(other, 'blobs', 'sha256', m.digest.slice(7))), `the ${m.platform!.architecture} manifest came back as ${m.digest}`);
    assert.ok(stored.manifests.some((d) => d.digest === m.digest || d.digest === pushedIndex), JSON.stringify(stored));
  }
});
