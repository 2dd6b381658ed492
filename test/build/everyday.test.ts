// The everyday corpus: Dockerfiles written the way popular projects write them (multi-stage Go,
// Node and Python builds with Debian's own toolchains, apt-get with cleanup and cache mounts,
// useradd and USER, heredocs, ONBUILD, FROM scratch, ...), each in test/build/everyday/<case>/.
// Every case is built with kiln and with `buildah bud --format docker` from the same fixtures, and
// the image config and the flattened file tree are compared with the helpers of compat-image.ts.
//
// Unlike the compatibility suite, all cases share one kiln store and one buildah store (with
// --layers), so the toolchain line every Go case starts with (`FROM debian:bookworm` + the same
// apt-get RUN) is built once per tool. Cases that share such a line form a chain and run one after
// another; two chains run at a time. buildah's result for a case whose inputs have not changed
// since an earlier run comes from peer-results.ts; kiln builds every case on every run.
//
// buildah is the independent peer, kiln follows BuildKit: where buildah departs from BuildKit the
// case accepts the difference, citing the BuildKit source that decides. An accepted difference
// that no longer occurs fails the case, so the list stays true. Paths that legitimately differ
// from one run to the next (logs, caches with timestamps) are ignored, each with its reason.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fixture, kiln, repoRoot } from '../support/env.js';
import type { ContainerConfig } from '../../src/oci/types.js';
import {
  comparableConfig,
  diffConfigs,
  diffTrees,
  flattenTree,
  formatDifference,
  type ComparedConfig,
  type Difference,
  type Tree,
} from './compat-image.js';
import { archiveIdentity, buildahIdentity, mirrorIdentity, peerResult, treeIdentity, type PeerResult } from './peer-results.js';

const run = promisify(execFile);
const corpus = join(repoRoot, 'test', 'build', 'everyday');
const buildah = '/usr/bin/buildah';

/** A difference the case accepts, with the reason. `path` matches tree paths; `config` a field. */
interface Accepted {
  config?: keyof ComparedConfig;
  path?: string | RegExp;
  /** Tree fields allowed to differ at that path ('present' when one side lacks it); default any. */
  fields?: string[];
  reason: string;
}

/** Paths left out of the comparison because they differ from one run to the next. */
interface Ignored {
  path: RegExp;
  reason: string;
}

interface EverydayCase {
  /** Folder under test/build/everyday (and the image name everyday-<name>). */
  name: string;
  /** The pattern the case shows, as the test's name. */
  title: string;
  /** The base image its FROM lines need. */
  base: 'busybox' | 'debian';
  /** Cases with the same chain run one after another, so a shared first steps come from the cache. */
  chain?: string;
  /** Folder when several cases share one (default: name). */
  dir?: string;
  /**
   * buildah 1.28 (Debian bookworm's) has no heredocs: such cases give buildah an equivalent
   * Dockerfile that spells the same result the long way.
   */
  buildahFile?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  /** Images built first with both tools, tagged so the case's FROM finds them. */
  before?: { file: string; tag: string }[];
  /** Makes files git does not keep (logs, node_modules, archives) in the temporary copy. */
  setup?: (ctx: string) => Promise<void>;
  /**
   * kiln fails this case for a reason in an area another change owns: kiln must still fail with
   * a message matching `message` (buildah must build it), until the fix lands and this goes.
   */
  kilnFails?: { message: RegExp; reason: string };
  accepted?: Accepted[];
}

// Where buildah (1.28, Debian bookworm's) departs from BuildKit; kiln takes BuildKit's side.
const bk = 'moby/buildkit frontend/dockerfile/dockerfile2llb';
const envInPlace = `ENV of a variable the base already has (PATH): BuildKit replaces it where it is (${bk}/convert.go:1752 addEnv: env[i] = k + "=" + v); buildah 1.28 removes it and appends it at the end`;
const shellForm = `a shell-form CMD/ENTRYPOINT after SHELL: BuildKit prefixes the image's SHELL (${bk}/convert.go:1912 withShell, used by dispatchCmd/dispatchEntrypoint at 1597/1613); buildah (as the classic builder) always uses /bin/sh -c`;
const eagerWorkdir = `BuildKit creates every WORKDIR when the instruction runs (${bk}/convert.go:1555 dispatchWorkdir: d.state.File(llb.Mkdir(wd, 0755, ...))), owned by the USER in force; buildah creates it only when a later instruction uses it`;
const scratchWorkdir = `BuildKit gives FROM scratch an empty config with WorkingDir "/" (${bk}/image.go:50 emptyImage: img.Config.WorkingDir = "/"); buildah leaves it unset: the same directory`;
const chmodParents = 'BuildKit creates the missing parents of a --chmod destination with the --chmod bits (tonistiigi/fsutil copy.go: MkdirAll(ensureDstPath, *ci.Mode), kept on purpose in moby/buildkit#6801); buildah 1.28 creates them 0755';
const escapeBackslash = 'under # escape=` a backslash is an ordinary character: BuildKit\'s word lexer treats only the escape token as escape (moby/buildkit frontend/dockerfile/shell/lex.go:219 `if ch == sw.escapeToken`), so ENV WINPATH=C:\\app\\bin keeps its backslashes; buildah 1.28 still drops them';
const mountStubs = 'a RUN mount whose target did not exist: BuildKit removes the empty directories it made for the mount point, parents too (moby/buildkit executor/stubs.go:15 MountStubsCleaner, recursive since client/llb/exec.go:225 RemoveMountStubsRecursive: true); buildah leaves /root/.cache behind';
const copyIntoExisting = 'COPY --chown of a directory\'s contents into a directory that exists: BuildKit leaves the existing destination as it is and applies the owner to what it copies (tonistiigi/fsutil copy/copy.go:138 calls copy() with overwriteTargetMetadata=false for the top, and :428 sets copyFileInfo = created); buildah 1.28 chowns the destination too';
const cacheTargetsKept = 'a RUN cache mount on a directory the image already has: BuildKit removes only the mount points it had to create (moby/buildkit executor/stubs.go:35-38 MountStubsCleaner records a path only when Lstat says it does not exist), so the base image\'s /var/cache/apt and /var/lib/apt stay; buildah 1.28 drops them';
const exposeRange = `EXPOSE of a port range: BuildKit expands it into one port per number (${bk}/convert_expose.go:76 parsePorts, nat.ParsePortSpec of the range); buildah 1.28 keeps "30000-30002/tcp" as one key`;

/** Accepted in every case. */
const everywhere: Accepted[] = [
  {
    path: '/run',
    fields: ['present'],
    reason: 'buildah mounts a tmpfs on /run for RUN and leaves the directory in the image; BuildKit removes that default mount (moby/buildkit executor/oci/spec_linux.go:47 withRemovedMount("/run")), so no /run appears',
  },
  {
    path: /^\/etc\/shadow-?$/,
    fields: ['sha256'],
    reason: "useradd, groupadd's shadow update and chpasswd write the day of the build (days since 1970) as an account's last password change (shadow(5), field 3), whatever the builder: a buildah result kept from a run on another day differs there. Size, mode and owner are still compared, and /etc/passwd, /etc/group and /etc/gshadow whole",
  },
];

/** Ignored in every case: what apt, dpkg and Python write differently on every run, whatever the tool. */
const ignored: Ignored[] = [
  { path: /^\/var\/log\/(dpkg\.log|alternatives\.log|apt\/.*)$/, reason: 'dpkg and apt logs: each line starts with the time of the step' },
  { path: /^\/var\/cache\/ldconfig\/aux-cache$/, reason: 'ldconfig\'s auxiliary cache records the inode and mtime of every library it scanned' },
  { path: /^\/var\/cache\/apt\/(src)?pkgcache\.bin$/, reason: 'apt-get update\'s binary package cache holds the mtimes of the lists it was made from (`rm -rf /var/lib/apt/lists/*` leaves it; Docker\'s debian image removes it with docker-clean, debootstrap\'s does not)' },
  { path: /\/__pycache__\/[^/]+\.pyc$/, reason: 'Python bytecode compiled by postinst (py3compile) and by the venv\'s pip: the header holds the source\'s mtime' },
  { path: /^\/var\/cache\/debconf\/(config|templates)\.dat(-old)?$/, reason: 'debconf\'s databases: the order of their records follows a Perl hash, which is randomised per process' },
];

const cases: EverydayCase[] = [
  // ---- Go, with Debian's golang-go (the same toolchain line starts every Go case)
  { name: 'go-scratch', base: 'debian', chain: 'go', title: 'Go: a static binary (CGO off) in FROM scratch, go.mod copied before the source',
    accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  { name: 'go-nonroot-debian', base: 'debian', chain: 'go', title: 'Go: Debian runtime with a groupadd/useradd system user, COPY --from --chown, HEALTHCHECK, ENTRYPOINT + CMD' },
  { name: 'go-cache-mount', base: 'debian', chain: 'go', title: 'Go: cache mounts for the module and build caches, version through ARG before FROM and -ldflags -X, scratch with its own /etc/passwd',
    buildArgs: { VERSION: '1.2.3' }, accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  { name: 'go-vendored', base: 'debian', chain: 'go', title: 'Go: vendored dependencies (-mod=vendor), go vet in the build, an unused stage skipped' },
  // ---- Python, with Debian's python3 and python3-venv
  { name: 'python-venv', base: 'debian', chain: 'python', title: 'Python: a virtualenv built in one stage and copied into a runtime that shares the first line' },
  { name: 'python-app', base: 'debian', chain: 'python', title: 'Python: single-stage web app, PYTHONDONTWRITEBYTECODE, tests run in the build, non-root user, HEALTHCHECK' },
  // ---- Node, with Debian's nodejs
  { name: 'node-app', base: 'debian', chain: 'node', title: 'Node: the "dockerizing a web app" layout, package*.json first, the node user, COPY --chown, HEALTHCHECK' },
  { name: 'node-multistage', base: 'debian', chain: 'node', title: 'Node: build stage runs the build script, runtime copies dist/ with numeric --chown',
    accepted: [{ path: '/app', fields: ['uid', 'gid'], reason: eagerWorkdir }] },
  // ---- Debian images without a toolchain
  { name: 'apt-cache-mount', base: 'debian', title: 'apt-get with /var/cache/apt and /var/lib/apt cache mounts (sharing=locked), tini as ENTRYPOINT',
    accepted: [{ path: /^\/var\/(cache\/apt|lib\/apt)(\/.*)?$/, fields: ['present'], reason: cacheTargetsKept }] },
  { name: 'entrypoint-script', base: 'debian', title: 'official-image layout: fixed-uid user, VOLUME, entrypoint script that execs, STOPSIGNAL SIGINT' },
  { name: 'debian-heredoc', base: 'debian', title: 'heredocs on Debian: SHELL bash -o pipefail, RUN <<EOF, COPY <<EOF with expansion, quoted and shebang heredocs',
    buildahFile: 'Dockerfile.buildah' },
  { name: 'debian-useradd', base: 'debian', title: 'a dev user from build args: useradd -m with /etc/skel, usermod -aG, COPY --chown with variables, RUN as the user' },
  // ---- busybox
  { name: 'busybox-user', base: 'busybox', title: 'a user made by appending to /etc/passwd and /etc/group, COPY --chown by name, RUN as the user',
    accepted: [{ path: '/app', fields: ['uid', 'gid'], reason: copyIntoExisting }] },
  { name: 'arg-before-from', base: 'busybox', title: 'ARG before FROM picks the base; ARG redeclared in the stage; a build arg from the command line',
    buildArgs: { BUILD_REF: 'abc1234' } },
  { name: 'healthcheck-variants', base: 'busybox', title: 'HEALTHCHECK with every flag, replaced in a child stage, then NONE' },
  { name: 'heredoc-busybox', base: 'busybox', title: 'heredocs: RUN <<EOF, <<-EOF, two heredocs in one COPY, heredoc as stdin, COPY <<EOF --chown --chmod',
    buildahFile: 'Dockerfile.buildah' },
  { name: 'noop-runs', base: 'busybox', title: 'RUNs that change nothing, in a row and repeated, between real changes' },
  { name: 'repeated-copy', base: 'busybox', title: 'the same files copied twice, and again after a RUN removed them' },
  { name: 'onbuild', base: 'busybox', title: 'ONBUILD base image: COPY, RUN and LABEL triggers run in the child, which keeps only its own trigger',
    before: [{ file: 'base.Dockerfile', tag: 'everyday-onbuild-base' }] },
  { name: 'shell-instruction', base: 'busybox', title: 'SHELL with -eu -o pipefail, then shell-form ENTRYPOINT and CMD',
    accepted: [{ config: 'Cmd', reason: shellForm }, { config: 'Entrypoint', reason: shellForm }] },
  { name: 'expose-volume-stopsignal', base: 'busybox', title: 'EXPOSE ports, protocols and a range; VOLUME in both forms; STOPSIGNAL numeric then named',
    accepted: [{ config: 'ExposedPorts', reason: exposeRange }] },
  { name: 'labels-oci', base: 'busybox', title: 'OCI labels with quotes, spaces and an empty value, overridden in a later stage; MAINTAINER' },
  { name: 'dockerignore', base: 'busybox', title: '.dockerignore keeps out VCS, node_modules, logs, env files and docs, with exceptions', setup: dockerignoreContext },
  { name: 'env-path', base: 'busybox', title: 'ENV prepends to PATH, several variables at once, the legacy form, a variable redefined from itself',
    accepted: [{ config: 'Env', reason: envInPlace }] },
  { name: 'escape-backtick', base: 'busybox', title: '# escape=` with backslashes kept literally and backtick line continuations',
    accepted: [{ config: 'Env', reason: escapeBackslash }, { path: '/winpath.txt', fields: ['size', 'sha256'], reason: escapeBackslash }] },
  { name: 'workdir-unused', base: 'busybox', title: 'WORKDIRs changed before use, relative ones, and one after USER 1000',
    accepted: [
      { path: /^\/srv(\/default)?$/, fields: ['present'], reason: eagerWorkdir },
      { path: '/tmp/user-work', fields: ['present'], reason: eagerWorkdir },
      { path: /^\/usr\/src(\/app)?$/, fields: ['uid', 'gid'], reason: eagerWorkdir },
    ] },
  { name: 'copy-chmod-dirs', base: 'busybox', title: 'COPY --chmod into destinations whose parents do not exist yet, with --chown',
    accepted: [{ path: /^\/(usr\/local\/lib\/app|etc\/app|etc\/app\/conf\.d)$/, fields: ['mode'], reason: chmodParents }] },
  { name: 'copy-chmod-zero', base: 'busybox', title: 'COPY --chmod=0 gives a file with no permission bits (BuildKit takes any octal mode)' },
  { name: 'scratch-static', base: 'busybox', title: 'FROM scratch with a static binary from an image and a rootfs from a stage, numeric USER',
    accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  { name: 'scratch-rootfs', base: 'busybox', title: 'FROM scratch + ADD rootfs.tar.gz /, the way base images are written', setup: rootfsTarball,
    accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  { name: 'scratch-workdir', base: 'busybox', title: 'FROM scratch then WORKDIR before anything is copied' },
  { name: 'test-stage-target', base: 'busybox', chain: 'test-stage', title: 'test and release stages: the default target is the release and skips the tests' },
  { name: 'test-stage-target-test', dir: 'test-stage-target', base: 'busybox', chain: 'test-stage', target: 'test', title: 'test and release stages: --target test runs the tests' },
  { name: 'busybox-httpd', base: 'busybox', title: 'static site on busybox httpd: entrypoint that prepends the server, VOLUME for logs, HEALTHCHECK, STOPSIGNAL' },
  { name: 'run-mounts', base: 'busybox', title: 'RUN --mount: context bind, cache written only there, tmpfs, and a stage bind-mounted with from=',
    accepted: [{ path: '/root/.cache', fields: ['present'], reason: mountStubs }] },
];

// ---- files git does not keep, made in the temporary copy of a case's folder

async function dockerignoreContext(ctx: string): Promise<void> {
  await mkdir(join(ctx, '.git', 'refs'), { recursive: true });
  await writeFile(join(ctx, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  await mkdir(join(ctx, 'node_modules', 'left-pad'), { recursive: true });
  await writeFile(join(ctx, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
  await writeFile(join(ctx, 'npm-debug.log'), 'log\n');
  await mkdir(join(ctx, 'src', 'deep'), { recursive: true });
  await writeFile(join(ctx, 'src', 'deep', 'trace.log'), 'trace\n');
  await writeFile(join(ctx, 'src', '.main.sh.swp'), 'swap\n');
  await writeFile(join(ctx, '.env.local'), 'SECRET=do-not-ship\n');
}

/** A small root filesystem tarball: the host's static busybox, a shell link, passwd, /tmp 1777. */
async function rootfsTarball(ctx: string): Promise<void> {
  const root = join(ctx, '..', 'rootfs');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'etc'));
  await mkdir(join(root, 'tmp'));
  await chmod(join(root, 'tmp'), 0o1777);
  await cp(hostBusybox(), join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'ls', 'cat']) await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  // Fixed mtimes and a gzip header without a time: the same archive on every run (peer-results.ts).
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=2015-10-21 07:28:00 UTC', '--use-compress-program=gzip -n', '-C', root, '-cf', join(ctx, 'rootfs.tar.gz'), '.']);
}

function hostBusybox(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(p)) return p;
  throw new Error('scratch-rootfs needs a static busybox on the host (Debian busybox-static)');
}

// ---- the two builders, on one store each for the whole suite

interface Built {
  config: ComparedConfig;
  tree: Tree;
}

interface Stores {
  base: string;
  kilnRoot: string;
  /** buildah's global flags: its own store, overlay (vfs copies every layer of a 500 MB toolchain). */
  storage: string[];
  /** The base image archives by name (busybox:latest, debian:bookworm). */
  bases: Map<string, string>;
  /** Loads the bases into buildah's store, once, when a case is not in the peer cache. */
  buildahBases?: Promise<void>;
  /** What the buildah results depend on besides the case (see peer-results.ts). */
  identity: Record<string, string>;
}

async function loadKilnBase(stores: Stores, archive: string): Promise<void> {
  const loaded = await kiln(stores.kilnRoot, ['load', '-i', archive]);
  assert.equal(loaded.code, 0, loaded.stderr);
}

function buildahBases(stores: Stores): Promise<void> {
  const [root, runroot] = [stores.storage[1], stores.storage[3]];
  stores.buildahBases ??= Promise.all(
    [...stores.bases].map(([name, archive]) =>
      run('skopeo', ['copy', '-q', `oci-archive:${archive}`, `containers-storage:[overlay@${root}+${runroot}]docker.io/library/${name}`])),
  ).then(() => undefined);
  return stores.buildahBases;
}

async function kilnBuild(stores: Stores, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await kiln(stores.kilnRoot, ['build', '-q', ...args]);
  return { ok: r.code === 0, out: r.code === 0 ? r.stdout.trim() : r.stderr };
}

async function buildahRun(stores: Stores, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await run(buildah, [...stores.storage, ...args], { maxBuffer: 64 << 20 });
    return { ok: true, out: stdout.trim() };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, out: err.stderr || err.message };
  }
}

async function buildahBuild(stores: Stores, args: string[]): Promise<{ ok: boolean; out: string }> {
  // --format docker: an OCI-format image has no place for Healthcheck, OnBuild and Shell.
  return buildahRun(stores, ['bud', '--runtime', 'runc', '--layers', '--format', 'docker', '-q', ...args]);
}

async function builtByKiln(c: EverydayCase, stores: Stores, ctx: string, work: string, common: string[]): Promise<Built> {
  const tag = `everyday-${c.name}`;
  const image = await kilnBuild(stores, ['-t', tag, ...common, ctx]);
  assert.ok(image.ok, `kiln build failed:\n${image.out}`);
  const inspected = await kiln(stores.kilnRoot, ['inspect', tag]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const info = (JSON.parse(inspected.stdout) as { Config?: ContainerConfig; Author?: string }[])[0]!;
  // The file tree through kiln's local exporter (the same build again, every step cached).
  const dest = join(work, 'kiln-rootfs');
  const local = await kilnBuild(stores, ['-o', `type=local,dest=${dest}`, ...common, ctx]);
  assert.ok(local.ok, `kiln build -o type=local failed:\n${local.out}`);
  try {
    return { config: comparableConfig(info.Config, info.Author || undefined), tree: await flattenTree(dest) };
  } finally {
    await rm(dest, { recursive: true, force: true });
  }
}

async function builtByBuildah(stores: Stores, tag: string, ctx: string, common: string[]): Promise<Built> {
  const image = await buildahBuild(stores, ['-t', tag, ...common, ctx]);
  assert.ok(image.ok, `buildah bud failed:\n${image.out}`);
  // The config as written in the docker (v2s2) image: buildah inspect shows that document.
  const inspected = await buildahRun(stores, ['inspect', '--type', 'image', tag]);
  assert.ok(inspected.ok, inspected.out);
  const docker = (JSON.parse(inspected.out) as { Docker: { config?: ContainerConfig; author?: string } }).Docker;
  const config = comparableConfig(docker.config, docker.author || undefined);
  if (config.Labels) {
    // buildah stamps its own version on every image it builds.
    delete config.Labels['io.buildah.version'];
    if (Object.keys(config.Labels).length === 0) delete config.Labels;
  }
  // buildah from runs the image's ONBUILD triggers and prints their output before the name.
  const name = `${tag}-ctr`;
  const container = await buildahRun(stores, ['from', '--pull=never', '--name', name, tag]);
  assert.ok(container.ok, container.out);
  try {
    const mounted = await buildahRun(stores, ['mount', name]);
    assert.ok(mounted.ok, mounted.out);
    return { config, tree: await flattenTree(mounted.out) };
  } finally {
    await buildahRun(stores, ['rm', name]);
  }
}

/** The case's files in a fresh directory with predictable modes (git keeps only the x bit). */
async function prepareContext(c: EverydayCase, work: string): Promise<string> {
  const ctx = join(work, 'context');
  await cp(join(corpus, c.dir ?? c.name), ctx, { recursive: true });
  const normalise = async (dir: string) => {
    await chmod(dir, 0o755);
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await normalise(p);
      else if (e.isFile()) await chmod(p, (await stat(p)).mode & 0o100 ? 0o755 : 0o644);
    }
  };
  await normalise(ctx);
  await c.setup?.(ctx);
  return ctx;
}

function isAccepted(d: Difference, a: Accepted): boolean {
  if (d.kind === 'config') return a.config === d.where;
  if (a.path === undefined) return false;
  const pathMatches = typeof a.path === 'string' ? a.path === d.where : a.path.test(d.where);
  return pathMatches && (!a.fields || d.fields.every((f) => a.fields!.includes(f)));
}

function withoutIgnored(tree: Tree): Tree {
  return new Map([...tree].filter(([p]) => !ignored.some((i) => i.path.test(p))));
}

async function runCase(c: EverydayCase, stores: Stores, t: TestContext): Promise<void> {
  const work = await mkdtemp(join(stores.base, `${c.name}-`));
  try {
    await compareBuilds(c, stores, await prepareContext(c, work), work, t);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function compareBuilds(c: EverydayCase, stores: Stores, ctx: string, work: string, t: TestContext): Promise<void> {
  const buildArgs = Object.entries(c.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  const before = (c.before ?? []).map((b) => ['-t', b.tag, '-f', join(ctx, b.file), ...buildArgs, ctx]);
  const common = (file: string) => ['-f', join(ctx, file), ...buildArgs, ...(c.target ? ['--target', c.target] : [])];
  const kilnArgs = common('Dockerfile');
  const buildahArgs = common(c.buildahFile ?? 'Dockerfile');
  const kilnSide = async () => {
    for (const args of before) {
      const k = await kilnBuild(stores, args);
      assert.ok(k.ok, `kiln build of ${args[3]} failed:\n${k.out}`);
    }
    return c.kilnFails ? kilnBuild(stores, [...kilnArgs, ctx]) : builtByKiln(c, stores, ctx, work, kilnArgs);
  };
  const buildahSide = async (): Promise<PeerResult> => {
    await buildahBases(stores);
    for (const args of before) {
      const bh = await buildahBuild(stores, args);
      assert.ok(bh.ok, `buildah bud of ${args[3]} failed:\n${bh.out}`);
    }
    if (c.kilnFails) return buildahBuild(stores, [...buildahArgs, ctx]);
    return { ok: true, out: '', built: await builtByBuildah(stores, `everyday-${c.name}`, ctx, buildahArgs) };
  };
  // Everything buildah's result depends on; paths inside the temporary context are written relative to it.
  const key = {
    case: c.name,
    context: await treeIdentity(ctx),
    before: before.map((a) => a.map((x) => x.replace(ctx, '<context>'))),
    args: [...buildahArgs, ctx].map((x) => x.replace(ctx, '<context>')),
    base: c.base,
    ...stores.identity,
  };
  const [k, peer] = await Promise.all([kilnSide(), peerResult('everyday', key, buildahSide)]);
  if (peer.cached) t.diagnostic('buildah: the result of an earlier run with the same inputs (peer-results.ts)');
  if (c.kilnFails) {
    const failed = k as { ok: boolean; out: string };
    assert.ok(peer.result.ok, `buildah bud failed:\n${peer.result.out}`);
    assert.ok(!failed.ok, `kiln builds it now: remove kilnFails (${c.kilnFails.reason}) so the case compares the images`);
    assert.match(failed.out, c.kilnFails.message);
    t.diagnostic(`known failing: ${c.kilnFails.reason}`);
    return;
  }
  const bh = peer.result.built!;
  const kb = k as Built;
  const differences = [...diffConfigs(kb.config, bh.config), ...diffTrees(withoutIgnored(kb.tree), withoutIgnored(bh.tree))];
  const accepted = [...everywhere, ...(c.accepted ?? [])];
  const unexpected = differences.filter((d) => !accepted.some((a) => isAccepted(d, a)));
  for (const d of differences) {
    const a = accepted.find((x) => isAccepted(d, x));
    if (a) t.diagnostic(`accepted: ${formatDifference(d).replace(/\n\s*/g, ' | ')} — ${a.reason}`);
  }
  const stale = (c.accepted ?? []).filter((a) => !differences.some((d) => isAccepted(d, a)));
  const problems: string[] = [];
  if (unexpected.length) problems.push(`${unexpected.length} difference(s) between kiln and buildah:\n    ${unexpected.map(formatDifference).join('\n    ')}`);
  if (stale.length) problems.push(`accepted difference(s) that no longer occur (remove them):\n    ${stale.map((a) => `${String(a.config ?? a.path)}: ${a.reason}`).join('\n    ')}`);
  assert.ok(problems.length === 0, `${c.name}: ${problems.join('\n  ')}`);
}

// ---- what the suite needs from the machine

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (buildah with runc and kiln sandboxes)';
  for (const p of [buildah, '/usr/bin/skopeo']) if (!existsSync(p)) return `needs ${p}`;
  if (spawnSync('runc', ['--version']).status !== 0) return 'needs runc';
  return undefined;
}

/** The Debian mirror this machine's apt uses, read as scripts/fixtures.sh reads it. */
function aptMirror(): string | undefined {
  const read = (dir: string, ext: string) =>
    existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n') : '';
  const deb822 = [...read('/etc/apt/sources.list.d', '.sources').matchAll(/^URIs:\s*(\S+)/gm)].map((m) => m[1]!);
  const oneLine = [read('/etc/apt', 'sources.list'), read('/etc/apt/sources.list.d', '.list')]
    .join('\n')
    .split('\n')
    .map((l) => /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(l)?.[1])
    .filter((u): u is string => !!u);
  return [...deb822, ...oneLine].find((u) => !u.includes('security'));
}

/** The debian:bookworm fixture, or why the Debian cases cannot run here. */
async function debianFixture(): Promise<{ archive?: string; mirror?: string; skip?: string }> {
  const mirror = aptMirror();
  if (!mirror) return { skip: 'no Debian mirror in /etc/apt: the debian:bookworm fixture and apt-get in RUN need one' };
  try {
    const res = await fetch(`${mirror.replace(/\/$/, '')}/dists/bookworm/Release`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return { skip: `the Debian mirror ${mirror} answers ${res.status}: apt-get in RUN cannot install` };
  } catch (e) {
    return { skip: `the Debian mirror ${mirror} is unreachable (${(e as Error).message}): apt-get in RUN cannot install` };
  }
  const env = process.env.KILN_DEBIAN_OCI;
  if (env && existsSync(env)) return { archive: env, mirror };
  try {
    // Cached in ~/.cache/kiln-fixtures after the first run (debootstrap takes minutes).
    return { archive: execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(), mirror };
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return { skip: `scripts/fixtures.sh debian failed, so the debian:bookworm cases cannot run: ${stderr}` };
  }
}

/** Runs `jobs` on at most `width` workers, in the order given. */
async function pool<T>(items: T[], width: number, job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
  }));
}

const only = process.env.KILN_EVERYDAY_CASES?.split(',').filter(Boolean);
const selected = only ? cases.filter((c) => only.includes(c.name)) : cases;
const width = Number(process.env.KILN_EVERYDAY_JOBS) || 2;

test('kiln builds the same images as buildah for the everyday corpus', { skip: unavailable(), timeout: 20 * 60_000, concurrency: width }, async (t) => {
  assert.ok(selected.length > 0, `no case named in KILN_EVERYDAY_CASES=${process.env.KILN_EVERYDAY_CASES}`);
  const base = await mkdtemp(join(tmpdir(), 'kiln-everyday-'));
  const stores: Stores = {
    base,
    kilnRoot: join(base, 'kiln'),
    storage: ['--root', join(base, 'buildah-root'), '--runroot', join(base, 'buildah-run'), '--storage-driver', 'overlay'],
    bases: new Map([['busybox:latest', fixture('busybox')]]),
    identity: { buildah: await buildahIdentity(buildah), busybox: await archiveIdentity(fixture('busybox')) },
  };
  t.after(async () => {
    await buildahRun(stores, ['rm', '--all']);
    await buildahRun(stores, ['rmi', '--all', '--force']);
    await rm(base, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });
  await loadKilnBase(stores, fixture('busybox'));
  const debian = selected.some((c) => c.base === 'debian') ? await debianFixture() : {};
  if (debian.archive) {
    await loadKilnBase(stores, debian.archive);
    stores.bases.set('debian:bookworm', debian.archive);
    // What apt-get installs is the mirror's: a new point release is a new result.
    Object.assign(stores.identity, { debian: await archiveIdentity(debian.archive), mirror: await mirrorIdentity(debian.mirror!) });
  } else if (debian.skip) t.diagnostic(`debian cases skipped: ${debian.skip}`);

  // Chains in order of cost (the Go toolchain first), each case of a chain after the one before.
  const chains = new Map<string, EverydayCase[]>();
  for (const c of selected) chains.set(c.chain ?? c.name, [...(chains.get(c.chain ?? c.name) ?? []), c]);
  await pool([...chains.values()], width, async (chain) => {
    for (const c of chain) {
      const skip = c.base === 'debian' && !debian.archive ? debian.skip : undefined;
      await t.test(`${c.name}: ${c.title}`, { skip }, (st) => runCase(c, stores, st));
    }
  });
});
