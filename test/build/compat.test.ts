// The compatibility suite: every Dockerfile of the corpus in test/build/compat/<case>/ is built
// with kiln and with `buildah bud --runtime runc --layers` (both from the same busybox fixture,
// loaded into buildah's store with skopeo), then the image config fields and the flattened file
// trees are compared. buildah is the independent peer; kiln follows BuildKit, so where buildah
// keeps the classic builder's behaviour (or lacks a feature) the difference is accepted below,
// case by case, with its reason. An accepted difference that no longer occurs fails the case, so
// the list stays true. buildah's result for a case whose inputs have not changed since an earlier
// run comes from peer-results.ts; kiln builds every case on every run.
//
// Special files git does not keep well (hardlinks, symlinks, setuid bits, empty directories,
// archives) are made by each case's `setup` in a temporary copy of its folder.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, cp, link, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir, cpus } from 'node:os';
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
import { archiveIdentity, buildahIdentity, peerResult, treeIdentity, type PeerResult } from './peer-results.js';

const run = promisify(execFile);
const corpus = join(repoRoot, 'test', 'build', 'compat');

/** A difference the suite accepts, with the reason. `path` matches tree paths; `config` a field. */
interface Accepted {
  config?: keyof ComparedConfig;
  path?: string | RegExp;
  /** Tree fields allowed to differ at that path ('present' when one side lacks it); default any. */
  fields?: string[];
  reason: string;
}

interface CompatCase {
  /** Folder under test/build/compat (and the image name compat-<name>). */
  name: string;
  /** What the case shows, as the test's name. */
  title: string;
  /** Folder when several cases share one (default: name). */
  dir?: string;
  /** Dockerfile inside the folder (default: Dockerfile). */
  file?: string;
  /**
   * buildah 1.28 (Debian bookworm's) rejects some BuildKit syntax (COPY --link/--exclude/--parents);
   * such cases give buildah an equivalent Dockerfile that spells the same result the long way.
   */
  buildahFile?: string;
  /** Build args; `{{http}}` becomes the loopback server's base URL. */
  buildArgs?: Record<string, string>;
  target?: string;
  /** Images built first with both tools, tagged so the case's FROM finds them. */
  before?: { file: string; tag: string }[];
  /** Makes special files in the temporary copy of the case's folder. */
  setup?: (ctx: string) => Promise<void>;
  /** Both tools must refuse to build it. */
  fails?: boolean;
  /**
   * kiln fails this case for a reason outside the files the suite may change: kiln must still fail
   * with a message matching `message` (buildah must build it), until the fix lands and this goes.
   */
  kilnFails?: { message: RegExp; reason: string };
  accepted?: Accepted[];
}

// Reasons that recur.
const classicShellForm = 'buildah (like the classic builder) wraps a shell-form CMD/ENTRYPOINT in /bin/sh -c even after SHELL; BuildKit uses the SHELL';
const chmodParents = 'BuildKit creates the missing parents of a --chmod destination file with the --chmod permission bits (fsutil copy: MkdirAll(ensureDstPath, *ci.Mode); moby/buildkit#6801 says so on purpose); buildah 1.28 creates them 0755';
const scratchWorkdir = 'BuildKit gives FROM scratch an empty config with WorkingDir "/" (dockerfile2llb emptyImage); buildah leaves it unset: the same directory';
const eagerWorkdir = 'BuildKit creates every WORKDIR when the instruction runs (dispatchWorkdir commits an llb.Mkdir); buildah only when a later instruction uses it';
const classicArgAfterEnv = 'an ARG with a default after an ENV of the same name: BuildKit puts the ARG value in the build state\'s env (dispatchArg: d.state.AddEnv), so later expansion and RUN see it; buildah (classic builder) keeps the ENV value';

/** Accepted in every case. */
const everywhere: Accepted[] = [
  {
    path: '/run',
    fields: ['present'],
    reason: 'buildah mounts a tmpfs on /run for RUN and leaves the directory in the image; BuildKit removes that default mount (executor/oci/spec_linux.go: withRemovedMount("/run")), so no /run appears',
  },
];

const cases: CompatCase[] = [
  // ---- metadata instructions
  { name: 'meta-config', title: 'MAINTAINER, LABEL, EXPOSE, VOLUME, STOPSIGNAL, ENV and CMD set the config as docker does' },
  { name: 'healthcheck', title: 'HEALTHCHECK with every duration flag, the exec form and inheritance through stages' },
  { name: 'shell', title: 'SHELL changes the shell of later RUNs and shell-form CMD',
    accepted: [{ config: 'Cmd', reason: classicShellForm }] },
  { name: 'entrypoint-cmd', title: 'ENTRYPOINT resets an inherited CMD; a CMD after it in the same stage is kept' },
  { name: 'entrypoint-shell', title: 'shell-form ENTRYPOINT is wrapped in /bin/sh -c' },
  { name: 'env-arg', title: 'ARG before FROM, ARG defaults and build args feed ENV, RUN and LABEL; args are not persisted',
    buildArgs: { FROM_CLI: 'from-the-command-line' },
    accepted: [
      { config: 'Env', reason: 'ENV of a variable the base already has (PATH): BuildKit replaces it in place (addEnv), buildah 1.28 moves it to the end' },
      { config: 'Labels', reason: classicArgAfterEnv },
      { path: '/args.txt', fields: ['size', 'sha256'], reason: classicArgAfterEnv },
    ] },
  // ---- RUN, USER, WORKDIR
  { name: 'user', title: 'RUN runs as USER given by name, by ids, as name:group, and back as root' },
  { name: 'workdir', title: 'WORKDIR creates missing directories, relative to the previous one and with variables',
    accepted: [{ path: '/a/b/c/e', fields: ['present'], reason: eagerWorkdir }] },
  { name: 'workdir-user', title: 'WORKDIR creates a missing directory owned by the current USER' },
  { name: 'run-exec-form', title: 'RUN exec form runs without a shell and passes argv as written' },
  // ---- layers: whiteouts, opaque directories, links
  { name: 'whiteout-files', title: 'deleting files of the base image hides them in the flattened image' },
  { name: 'whiteout-dir', title: 'deleting directories of the base image and of an earlier layer' },
  { name: 'opaque-dir', title: 'rm -rf of a directory then recreating it leaves only the new contents (opaque directory)' },
  { name: 'same-layer-twice', title: 'the same layer twice in one image (a COPY repeated after a RUN removed its file, RUNs that change nothing)' },
  { name: 'hardlinks', title: 'hard links made by RUN and copied from the context stay hard links', setup: hardlinkContext,
    accepted: [
      { path: /^\/(bb-hard|bin\/busybox)$/, fields: ['hardlink'], reason: 'a RUN hard-links a file of the base image: overlayfs copies it up and links it, so the layer BuildKit (and kiln) commit holds both names as one inode; buildah\'s vfs diff writes them as two files' },
      { path: /^\/ctx-hardlinks\/(b|sub\/c|from-run)$/, fields: ['hardlink'], reason: 'a RUN hard-links one of three hard-linked files copied earlier: with overlayfs the link joins the copied-up file only (BuildKit and kiln: a+from-run, b+sub/c); buildah\'s vfs keeps a, b, sub/c together and from-run apart' },
    ] },
  { name: 'symlinks', title: 'context symlinks are copied as symlinks; a symlink named as the source is followed', setup: symlinkContext },
  // ---- COPY
  { name: 'copy-file-dest', title: 'COPY of a file: renamed, into a new directory with a trailing slash, into an existing directory, relative to WORKDIR' },
  { name: 'copy-several-sources', title: 'COPY of several sources into a directory destination' },
  { name: 'copy-dir', title: 'COPY of a directory copies its contents, not the directory' },
  { name: 'copy-wildcards', title: 'COPY with wildcards: *, ?, classes, matching directories and nested patterns' },
  { name: 'copy-wildcard-empty', title: 'COPY with a wildcard that matches nothing is allowed (BuildKit)',
    buildahFile: 'Dockerfile.buildah' },
  { name: 'copy-modes', title: 'COPY preserves modes, setuid, setgid and sticky bits', setup: modesContext,
    accepted: [{ path: /^\/(modes\/(suid|sgid|shared)|single-suid)$/, fields: ['mode'], reason: 'buildah 1.28\'s copier clears setuid/setgid bits of files and directories from the context; BuildKit keeps the whole mode (fsutil sends and restores st_mode)' }] },
  { name: 'copy-chown-names', title: 'COPY --chown with user and group names resolved in the image' },
  { name: 'copy-chown-ids', title: 'COPY --chown with numeric ids, a lone uid and variables' },
  { name: 'copy-chmod', title: 'COPY/ADD --chmod sets the mode of files and directories',
    accepted: [{ path: /^\/(m|chmod-parent|chmod-parent\/created)$/, fields: ['mode'], reason: chmodParents }] },
  { name: 'copy-link', title: 'COPY --link gives the files of COPY, with parents created afresh', buildahFile: 'Dockerfile.buildah' },
  { name: 'copy-exclude', title: 'COPY --exclude leaves out matching paths', buildahFile: 'Dockerfile.buildah', setup: (ctx) => writeFile(join(ctx, 'skipped.log'), 'excluded\n') },
  { name: 'copy-parents', title: 'COPY --parents keeps the source path below the destination, with /./ as pivot', buildahFile: 'Dockerfile.buildah' },
  { name: 'copy-over-existing', title: 'COPY into existing directories keeps their metadata and replaces files' },
  { name: 'copy-symlink-dest', title: 'COPY to a destination through a symlink of the image resolves it inside the image' },
  { name: 'dockerignore', title: '.dockerignore patterns with exceptions, ** and directories', setup: logFiles },
  { name: 'special-names', title: 'empty directories, empty files and unusual names are copied', setup: specialNamesContext },
  { name: 'scratch-copy', title: 'FROM scratch with COPY creates only what is copied', accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  // ---- ADD
  { name: 'add-archives', title: 'ADD unpacks local tar, gzip, bzip2 and xz archives; COPY and non-archives are copied', setup: archivesContext },
  { name: 'add-archive-chown', title: 'ADD of an archive into existing directories, with --chown and with --chmod', setup: archivesContext,
    accepted: [{ path: /^\/tmp\/(pkg(\/.*)?|top\.txt)$/, fields: ['uid', 'gid'], reason: 'ADD --chown of a local archive: BuildKit chowns every unpacked entry (unpack.go: TarOptions.ChownOpts); buildah 1.28 keeps the owners recorded in the archive' }] },
  { name: 'add-local', title: 'ADD of plain files and directories behaves as COPY' },
  { name: 'add-url', title: 'ADD of an http URL downloads the file with mode 0600 and does not unpack it', buildArgs: { BASE: '{{http}}' } },
  // ---- stages
  { name: 'multi-stage', title: 'multi-stage: COPY --from by name, index and image; unused stages are not run',
    accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
  { name: 'multi-stage-target', title: '--target builds the named stage and what it needs', target: 'b' },
  { name: 'from-stage-chain', title: 'FROM <stage> inherits config and files; parallel stages meet in the last one' },
  { name: 'onbuild-one-file', title: 'ONBUILD triggers of a stage run after FROM <stage>; the image keeps only its own' },
  { name: 'volume-write', title: 'RUN after VOLUME keeps what it writes below the volume (BuildKit)',
    accepted: [{ path: '/data/after', fields: ['present'], reason: 'the classic builder (and buildah) discard what a RUN writes below a declared VOLUME; BuildKit keeps it' }] },
  // ---- the seeds' Dockerfiles that run offline on busybox
  { name: 'seed-hello-world', title: 'seed: hello world CMD' },
  { name: 'seed-busybox-nc', title: 'seed: USER 1000:1000 with ENTRYPOINT and CMD' },
  { name: 'seed-busybox-user-touch', title: 'seed: a RUN as uid 1000 that may not touch /bin/busybox fails', fails: true },
  { name: 'seed-healthcheck', title: 'seed: HEALTHCHECK with interval and retries' },
  { name: 'seed-onbuild', title: 'seed: ONBUILD base and downstream give the book\'s file tree',
    before: [{ file: 'base.Dockerfile', tag: 'compat-seed-onbuild-base' }] },
  { name: 'seed-mailer', title: 'seed: mailer base (ADD . $APPROOT) and the logging mailer built on it',
    before: [{ file: 'base.Dockerfile', tag: 'compat-seed-mailer-base' }] },
  { name: 'seed-multi-stage-runtime', title: 'seed: multi-stage runtime image, default target', file: 'multi-stage-runtime.df',
    buildArgs: { BUILD_ID: '42', BUILD_DATE: '2019-06-01', VCS_REF: 'abc123' } },
  { name: 'seed-multi-stage-runtime-debug', title: 'seed: multi-stage runtime image, debug target', dir: 'seed-multi-stage-runtime', file: 'multi-stage-runtime.df',
    target: 'app-image-debug', buildArgs: { BUILD_ID: '43' } },
  { name: 'seed-http-client', title: 'seed: builder stage and a scratch runtime with COPY --from', accepted: [{ config: 'WorkingDir', reason: scratchWorkdir }] },
];

// ---- special files, made in the temporary copy of a case's folder

async function hardlinkContext(ctx: string): Promise<void> {
  await mkdir(join(ctx, 'hl', 'sub'), { recursive: true });
  await writeFile(join(ctx, 'hl', 'a'), 'hard-linked content\n');
  await link(join(ctx, 'hl', 'a'), join(ctx, 'hl', 'b'));
  await link(join(ctx, 'hl', 'a'), join(ctx, 'hl', 'sub', 'c'));
  await writeFile(join(ctx, 'hl', 'single'), 'not linked\n');
}

async function symlinkContext(ctx: string): Promise<void> {
  const links = join(ctx, 'links');
  await symlink('../a.txt', join(links, 'rel'));
  await symlink('/etc/passwd', join(links, 'abs'));
  await symlink('nowhere', join(links, 'dangling'));
  await symlink('sub', join(links, 'dir'));
  await symlink('../../outside-the-context', join(links, 'escape'));
}

async function modesContext(ctx: string): Promise<void> {
  const m = join(ctx, 'modes');
  await mkdir(m);
  const file = async (name: string, mode: number, content = `${name}\n`) => {
    await writeFile(join(m, name), content);
    await chmod(join(m, name), mode);
  };
  await file('exec', 0o755);
  await file('secret', 0o600);
  await file('readonly', 0o444);
  await file('suid', 0o4755);
  await file('sgid', 0o2755);
  await file('odd', 0o751);
  for (const [name, mode] of [['private', 0o700], ['shared', 0o2775], ['sticky', 0o1777], ['nox', 0o644]] as const) {
    await mkdir(join(m, name));
    await writeFile(join(m, name, 'inside'), 'x\n');
    await chmod(join(m, name), mode);
  }
}

async function specialNamesContext(ctx: string): Promise<void> {
  await mkdir(join(ctx, 'empty'));
  await mkdir(join(ctx, 'nested', 'empty', 'deeper'), { recursive: true });
  await writeFile(join(ctx, 'empty-file'), '');
  await writeFile(join(ctx, 'with space.txt'), 'space\n');
  await writeFile(join(ctx, 'ünïcödé.txt'), 'unicode\n');
  await writeFile(join(ctx, '-dash'), 'dash\n');
  await writeFile(join(ctx, 'no-newline'), 'no newline');
  await writeFile(join(ctx, '.hidden'), 'hidden\n');
  await writeFile(join(ctx, 'binary.bin'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
}

/** The payload every archive holds: modes, owners, an empty directory, a symlink and a hard link. */
async function archivePayload(dir: string): Promise<void> {
  await mkdir(join(dir, 'pkg', 'bin'), { recursive: true });
  await mkdir(join(dir, 'pkg', 'empty'));
  await mkdir(join(dir, 'pkg', 'private'));
  await writeFile(join(dir, 'pkg', 'README'), 'archive payload\n');
  await writeFile(join(dir, 'pkg', 'bin', 'tool'), '#!/bin/sh\necho tool\n');
  await chmod(join(dir, 'pkg', 'bin', 'tool'), 0o755);
  await writeFile(join(dir, 'pkg', 'private', 'key'), 'k\n');
  await chmod(join(dir, 'pkg', 'private'), 0o700);
  await chown(join(dir, 'pkg', 'private', 'key'), 1000, 1000);
  await symlink('bin/tool', join(dir, 'pkg', 'tool-link'));
  await link(join(dir, 'pkg', 'README'), join(dir, 'pkg', 'README.hard'));
  await writeFile(join(dir, 'top.txt'), 'top\n');
}

/** .log files for the dockerignore case: made here, since the repository's .gitignore keeps *.log out of git. */
async function logFiles(ctx: string): Promise<void> {
  await writeFile(join(ctx, 'keep.log'), 'kept by the exception\n');
  await writeFile(join(ctx, 'drop.log'), 'ignored\n');
  await writeFile(join(ctx, 'nested', 'deep', 'n.log'), 'ignored below too\n');
}

/**
 * The same bytes on every run (fixed mtimes, gzip without a name or time), so that the archives,
 * and the contexts and server that hold them, key the same buildah results (peer-results.ts).
 */
const reproducibleTar = ['--numeric-owner', '--sort=name', '--mtime=2015-10-21 07:28:00 UTC'];
const gzipNoName = '--use-compress-program=gzip -n';

async function archivesContext(ctx: string): Promise<void> {
  const payload = join(ctx, '..', 'payload');
  await mkdir(payload);
  await archivePayload(payload);
  const tar = (out: string, ...extra: string[]) => run('tar', [...reproducibleTar, ...extra, '-C', payload, '-cf', out, 'pkg', 'top.txt']);
  await tar(join(ctx, 'archive.tar.gz'), gzipNoName);
  if (existsSync(join(ctx, 'Dockerfile')) && (await readFile(join(ctx, 'Dockerfile'), 'utf8')).includes('plain.tar')) {
    await tar(join(ctx, 'plain.tar'));
    await tar(join(ctx, 'archive.tar.bz2'), '-j');
    await tar(join(ctx, 'archive.tar.xz'), '-J');
    await mkdir(join(ctx, 'dir-with-archive'));
    await tar(join(ctx, 'dir-with-archive', 'inner.tar'));
  }
}

// ---- the two builders

interface Built {
  config: ComparedConfig;
  tree: Tree;
}

/** Where one case builds: its own kiln store and buildah store (no cache shared between cases). */
interface Env {
  kilnRoot: string;
  storage: string[];
  http: string;
}

/** What every case shares: the fixture and the loopback server. */
interface Shared {
  base: string;
  busybox: string;
  http: string;
  /** What the buildah results depend on besides the case: the base, buildah, what the server serves. */
  identity: Record<string, string>;
}

/** Fresh stores for one case, each holding busybox:latest from the same fixture archive; buildah's is filled by loadBuildahBase. */
async function caseEnv(shared: Shared, work: string): Promise<Env> {
  const root = join(work, 'buildah-root');
  const runroot = join(work, 'buildah-run');
  const env: Env = { kilnRoot: join(work, 'kiln'), storage: ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'], http: shared.http };
  const loaded = await kiln(env.kilnRoot, ['load', '-i', shared.busybox]);
  assert.equal(loaded.code, 0, loaded.stderr);
  return env;
}

/** Only a case buildah builds on this run (not in the peer cache) needs busybox in buildah's store. */
async function loadBuildahBase(shared: Shared, env: Env): Promise<void> {
  const [root, runroot] = [env.storage[1], env.storage[3]];
  await run('skopeo', ['copy', '-q', `oci-archive:${shared.busybox}`, `containers-storage:[vfs@${root}+${runroot}]docker.io/library/busybox:latest`]);
}

const buildah = '/usr/bin/buildah';

function buildArgsOf(c: CompatCase, env: Env): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(c.buildArgs ?? {})) out.push('--build-arg', `${k}=${v.replace('{{http}}', env.http)}`);
  return out;
}

async function kilnBuild(env: Env, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await kiln(env.kilnRoot, ['build', '-q', ...args]);
  return { ok: r.code === 0, out: r.code === 0 ? r.stdout.trim() : r.stderr };
}

async function buildahRun(env: Env, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await run(buildah, [...env.storage, ...args], { maxBuffer: 64 << 20 });
    return { ok: true, out: stdout.trim() };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, out: err.stderr || err.message };
  }
}

async function buildahBuild(env: Env, args: string[]): Promise<{ ok: boolean; out: string }> {
  return buildahRun(env, ['bud', '--runtime', 'runc', '--layers', '--format', 'docker', '-q', ...args]);
}

async function builtByKiln(c: CompatCase, env: Env, ctx: string, work: string, common: string[]): Promise<Built> {
  const tag = `compat-${c.name}`;
  const image = await kilnBuild(env, ['-t', tag, ...common, ctx]);
  assert.ok(image.ok, `kiln build failed:\n${image.out}`);
  const inspected = await kiln(env.kilnRoot, ['inspect', tag]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const info = (JSON.parse(inspected.stdout) as { Config?: ContainerConfig; Author?: string }[])[0]!;
  // The file tree through kiln's local exporter (the same build again, all steps cached).
  const dest = join(work, 'kiln-rootfs');
  const local = await kilnBuild(env, ['-o', `type=local,dest=${dest}`, ...common, ctx]);
  assert.ok(local.ok, `kiln build -o type=local failed:\n${local.out}`);
  return { config: comparableConfig(info.Config, info.Author || undefined), tree: await flattenTree(dest) };
}

async function builtByBuildah(env: Env, tag: string, ctx: string, common: string[]): Promise<Built> {
  const image = await buildahBuild(env, ['-t', tag, ...common, ctx]);
  assert.ok(image.ok, `buildah bud failed:\n${image.out}`);
  const inspected = await buildahRun(env, ['inspect', '--type', 'image', tag]);
  assert.ok(inspected.ok, inspected.out);
  const docker = (JSON.parse(inspected.out) as { Docker: { config?: ContainerConfig; author?: string } }).Docker;
  const config = comparableConfig(docker.config, docker.author || undefined);
  if (config.Labels) {
    // buildah stamps its own version on every image it builds.
    delete config.Labels['io.buildah.version'];
    if (Object.keys(config.Labels).length === 0) delete config.Labels;
  }
  const container = await buildahRun(env, ['from', '--pull=never', '--name', `${tag}-ctr`, tag]);
  assert.ok(container.ok, container.out);
  try {
    const mounted = await buildahRun(env, ['mount', container.out]);
    assert.ok(mounted.ok, mounted.out);
    return { config, tree: await flattenTree(mounted.out) };
  } finally {
    await buildahRun(env, ['rm', container.out]);
  }
}

/** The case's files in a fresh directory with predictable modes (git keeps only the x bit). */
async function prepareContext(c: CompatCase, work: string): Promise<string> {
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

async function runCase(c: CompatCase, shared: Shared, t: TestContext): Promise<void> {
  const work = await mkdtemp(join(shared.base, `${c.name}-`));
  try {
    await compareBuilds(c, shared, await caseEnv(shared, work), await prepareContext(c, work), work, t);
  } finally {
    await run(buildah, ['--root', join(work, 'buildah-root'), '--runroot', join(work, 'buildah-run'), '--storage-driver', 'vfs', 'rm', '--all']).catch(() => {});
    // buildah's vfs driver may still be letting go of a layer directory: retry ENOTEMPTY/EBUSY.
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

async function compareBuilds(c: CompatCase, shared: Shared, env: Env, ctx: string, work: string, t: TestContext): Promise<void> {
  const before = (c.before ?? []).map((b) => ['-t', b.tag, '-f', join(ctx, b.file), ...buildArgsOf(c, env), ctx]);
  const common = (file: string) => ['-f', join(ctx, file), ...buildArgsOf(c, env), ...(c.target ? ['--target', c.target] : [])];
  const kilnArgs = common(c.file ?? 'Dockerfile');
  const buildahArgs = common(c.buildahFile ?? c.file ?? 'Dockerfile');
  const compares = !c.kilnFails && !c.fails;
  const kilnSide = async () => {
    for (const args of before) {
      const k = await kilnBuild(env, args);
      assert.ok(k.ok, `kiln build of ${args[3]} failed:\n${k.out}`);
    }
    return compares ? builtByKiln(c, env, ctx, work, kilnArgs) : kilnBuild(env, [...kilnArgs, ctx]);
  };
  const buildahSide = async (): Promise<PeerResult> => {
    await loadBuildahBase(shared, env);
    for (const args of before) {
      const bh = await buildahBuild(env, args);
      assert.ok(bh.ok, `buildah bud of ${args[3]} failed:\n${bh.out}`);
    }
    if (!compares) return buildahBuild(env, [...buildahArgs, ctx]);
    return { ok: true, out: '', built: await builtByBuildah(env, `compat-${c.name}`, ctx, buildahArgs) };
  };
  // Everything buildah's result depends on: the loopback server's port and the temporary context's
  // path change from run to run, so they are written as placeholders.
  const portable = (args: string[]) => args.map((x) => x.replaceAll(ctx, '<context>').replaceAll(env.http, '<http>'));
  const key = { case: c.name, context: await treeIdentity(ctx), before: before.map(portable), args: portable([...buildahArgs, ctx]), ...shared.identity };
  const [k, peer] = await Promise.all([kilnSide(), peerResult('compat', key, buildahSide, { keepFailure: c.fails === true })]);
  if (peer.cached) t.diagnostic('buildah: the result of an earlier run with the same inputs (peer-results.ts)');
  if (c.kilnFails) {
    const failed = k as { ok: boolean; out: string };
    assert.ok(peer.result.ok, `buildah bud failed:\n${peer.result.out}`);
    assert.ok(!failed.ok, `kiln builds it now: remove kilnFails (${c.kilnFails.reason}) so the case compares the images`);
    assert.match(failed.out, c.kilnFails.message);
    return;
  }
  if (c.fails) {
    assert.ok(!peer.result.ok, 'buildah built a Dockerfile expected to fail');
    assert.ok(!(k as { ok: boolean }).ok, 'kiln built a Dockerfile buildah refuses');
    return;
  }
  const bh = peer.result.built!;
  const kb = k as Built;
  const differences = [...diffConfigs(kb.config, bh.config), ...diffTrees(kb.tree, bh.tree)];
  const accepted = [...everywhere, ...(c.accepted ?? [])];
  const unexpected = differences.filter((d) => !accepted.some((a) => isAccepted(d, a)));
  // The accepted differences show in the test output, so the report says what was let through.
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

// ---- the loopback server ADD downloads from

async function startServer(dir: string): Promise<{ server: Server; url: string }> {
  const lastModified = 'Wed, 21 Oct 2015 07:28:00 GMT';
  const server = createServer(async (req, res) => {
    try {
      const body = await readFile(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'last-modified': lastModified });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${addr.port}` };
}

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (buildah with runc and kiln sandboxes)';
  for (const p of [buildah, '/usr/bin/skopeo']) if (!existsSync(p)) return `needs ${p}`;
  if (spawnSync('runc', ['--version']).status !== 0) return 'needs runc';
  return undefined;
}

const only = process.env.KILN_COMPAT_CASES?.split(',').filter(Boolean);
const selected = only ? cases.filter((c) => only.includes(c.name)) : cases;
const concurrency = Number(process.env.KILN_COMPAT_JOBS) || Math.max(2, Math.min(4, cpus().length + 1));

test('kiln builds the same images as buildah for the compatibility corpus', { skip: unavailable(), timeout: 15 * 60_000, concurrency }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'kiln-compat-'));
  const served = join(base, 'served');
  await mkdir(join(served, 'dir'), { recursive: true });
  await writeFile(join(served, 'hello.txt'), 'hello from the loopback server\n');
  await writeFile(join(served, 'dir', 'nested.txt'), 'nested\n');
  const payload = join(base, 'url-payload');
  await mkdir(payload);
  await archivePayload(payload);
  await run('tar', [...reproducibleTar, gzipNoName, '-C', payload, '-cf', join(served, 'archive.tar.gz'), 'pkg', 'top.txt']);
  const { server, url } = await startServer(served);
  t.after(async () => {
    server.close();
    await rm(base, { recursive: true, force: true });
  });
  const shared: Shared = {
    base,
    busybox: fixture('busybox'),
    http: url,
    identity: { busybox: await archiveIdentity(fixture('busybox')), buildah: await buildahIdentity(buildah), served: await treeIdentity(served) },
  };
  assert.ok(selected.length > 0, `no case named in KILN_COMPAT_CASES=${process.env.KILN_COMPAT_CASES}`);
  await Promise.all(selected.map((c) => t.test(`${c.name}: ${c.title}`, (st) => runCase(c, shared, st))));
});
