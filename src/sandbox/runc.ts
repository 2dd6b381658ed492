import { execFile } from 'node:child_process';
import { inUserNamespace } from './userns.js';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { abortError, delay, onAbort, spawnAttached } from './attach.js';
import { SandboxFailed } from './errors.js';
import type { Executor, Mount, RunRequest, RunResult } from './executor.js';
import { defaultCapabilities, defaultHostname, insecureCapabilities, maskedPaths, readonlyPaths } from './layout.js';
import { defaultStateDir, finishRun, prepareRun, type PreparedRun } from './prepare.js';
import { findProgram } from './program.js';

// An executor on an OCI runtime (runc, crun, or any runtime with runc's command line): one bundle
// per run, `<runtime> run` in the foreground so the container's stdio are our pipes, and the
// runtime's own messages in a JSON log so a failure to start is told apart from the process exiting.
//
// Cgroups: no linux.resources and no cgroupsPath. runc then creates a cgroup named after the
// container id under each v1 hierarchy (removed with the container) and still installs its default
// device rules (deny all but /dev/null, zero, full, random, urandom, tty, ptmx, pts), which matters
// because CAP_MKNOD is in the default set.

export interface RuncExecutorOptions {
  /** 'runc', 'crun', or an absolute path to an OCI runtime. Default 'runc'. */
  runtime?: string;
  /** Where bundles are made (one private directory per run). Default $TMPDIR/kiln-sandbox. */
  stateDir?: string;
}

/** Global options for every runtime invocation (the state root in rootless mode). */
let runtimeGlobalArgs: string[] = [];

/** How long `<runtime> kill` is retried (the container may not exist yet) before the runtime itself is killed. */
const killPatience = 2000;

export function createRuncExecutor(opts: RuncExecutorOptions = {}): Executor {
  const runtime = opts.runtime ?? 'runc';
  const command = findProgram(runtime) ?? runtime;
  const stateDir = opts.stateDir ?? defaultStateDir();
  // Rootless (inside kiln's own user namespace) the runtime cannot use /run/runc, which belongs to
  // the real root: keep its state beside kiln's.
  if (inUserNamespace()) runtimeGlobalArgs = ['--root', path.join(stateDir, 'runtime-state')];
  return {
    name: path.basename(runtime),
    run: (req) => runInRuntime(command, stateDir, req),
  };
}

async function runInRuntime(command: string, stateDir: string, req: RunRequest): Promise<RunResult> {
  if (req.signal?.aborted) throw abortError(req.signal);
  if (req.process.terminal && !process.stdin.isTTY) throw new SandboxFailed('a terminal was requested but kiln is not attached to one');
  const run = await prepareRun(req, stateDir);
  let exitCode: number;
  try {
    exitCode = await runBundle(command, req, run);
  } finally {
    run.createdMountpoints = await finishRun(req, run);
  }
  return { exitCode, createdMountpoints: run.createdMountpoints };
}

async function runBundle(command: string, req: RunRequest, run: PreparedRun): Promise<number> {
  const bundle = run.workDir;
  const log = path.join(bundle, 'runtime.log');
  // RLIM_INFINITY is 2^64-1, more than a JavaScript number holds exactly: written as a literal.
  await writeFile(path.join(bundle, 'config.json'), JSON.stringify(runtimeConfig(req, run), null, 2).replaceAll(`"${unlimited}"`, '18446744073709551615'));

  const args = [...runtimeGlobalArgs, '--log', log, '--log-format', 'json', 'run', '--bundle', bundle, req.id];
  const attached = spawnAttached(command, args, req, [], req.process.terminal === true);
  let settled = false;
  let aborted = false;
  const stopListening = onAbort(req.signal, () => {
    aborted = true;
    void (async () => {
      // The container may not exist yet (runc still creating it): retry, then kill runc itself.
      const start = Date.now();
      while (!settled) {
        if ((await runtimeCommand(command, ['kill', req.id, 'KILL'])).ok) return;
        if (Date.now() - start > killPatience) {
          attached.child.kill('SIGKILL');
          return;
        }
        await delay(20);
      }
    })();
  });

  let exit;
  try {
    exit = await attached.exited;
  } catch (err) {
    throw new SandboxFailed(`cannot run ${command}: ${(err as Error).message}`);
  } finally {
    settled = true;
    stopListening();
  }

  // A foreground `run` deletes its container when it returns normally; in every other case make sure.
  if (aborted) {
    await runtimeCommand(command, ['delete', '--force', req.id]);
    throw abortError(req.signal);
  }
  if (exit.code === null) {
    await runtimeCommand(command, ['delete', '--force', req.id]);
    throw new SandboxFailed(`${path.basename(command)} was killed by ${exit.signal}`);
  }
  if (exit.code !== 0) {
    const failure = await runtimeFailure(log);
    if (failure !== undefined) {
      await runtimeCommand(command, ['delete', '--force', req.id]);
      const code = execFailureExitCode(failure);
      if (code !== undefined) return code;
      throw new SandboxFailed(failure);
    }
  }
  return exit.code;
}

/** config.json per the OCI runtime spec 1.0.2, with Docker's defaults. */
export function runtimeConfig(req: RunRequest, run: PreparedRun): object {
  const insecure = req.security === 'insecure';
  const caps = insecure ? insecureCapabilities().names : [...defaultCapabilities];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  // runc brings lo up in a network namespace it creates.
  if (req.network === 'none') namespaces.push({ type: 'network' });
  const user = req.process.user;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: req.process.terminal === true,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids?.length ? { additionalGids: user.additionalGids } : {}) },
      args: req.process.args,
      env: req.process.env,
      cwd: req.process.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(insecure ? { inheritable: caps, ambient: caps } : {}) },
      // --ulimit replaces the default, as BuildKit's rlimits do (executor/oci/spec_linux.go:132-155).
      rlimits: req.rlimits ? req.rlimits.map(({ type, soft, hard }) => ({ type, soft: rlimitValue(soft), hard: rlimitValue(hard) })) : [{ type: 'RLIMIT_NOFILE', hard: nofileLimit(), soft: nofileLimit() }],
      noNewPrivileges: true,
    },
    root: { path: req.rootfs, readonly: req.readonlyRootfs === true },
    hostname: req.hostname ?? defaultHostname,
    mounts: [...pseudoFilesystemMounts(req), ...run.etcMounts, ...run.mounts],
    linux: {
      namespaces,
      maskedPaths: insecure ? [] : maskedPaths,
      readonlyPaths: insecure ? [] : readonlyPaths,
      // Every device, as BuildKit's insecure spec; runc refuses device rules without cgroups (rootless).
      ...(insecure && !inUserNamespace() ? { resources: { devices: [{ allow: true, type: 'c', access: 'rwm' }, { allow: true, type: 'b', access: 'rwm' }] } } : {}),
    },
  };
}

const unlimited = 'RLIM_INFINITY';
const rlimitValue = (v: number): number | string => (v < 0 ? unlimited : v);

/**
 * Docker's RLIMIT_NOFILE of 1048576, but no more than kiln's own hard limit: raising a hard limit needs
 * CAP_SYS_RESOURCE, which kiln may lack even as root (inside another container), and runc then fails.
 */
function nofileLimit(): number {
  const wanted = 1048576;
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    if (hard === undefined || hard === 'unlimited') return wanted;
    return Math.min(wanted, Number(hard));
  } catch {
    return wanted;
  }
}

function pseudoFilesystemMounts(req: RunRequest): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', req.shmSize ? `size=${req.shmSize}` : 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    req.network === 'none'
      ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ...(req.security === 'insecure' ? [] : ['ro'])] }
      : // Sharing the host's network namespace: a fresh sysfs needs a netns of its own when rootless, so
        // bind the host's. Not rbind: submounts such as /sys/fs/cgroup would stay writable under a plain
        // "ro" and a writable cgroup v1 release_agent is a way out of the container.
        // Rootless, the kernel refuses a non-recursive bind of /sys (its submounts are locked), and the
        // user namespace's root cannot write the host's cgroup files anyway: rbind there.
        // An insecure step's /sys is writable (BuildKit: oci.WithWriteableSysfs, executor/oci/spec_linux.go:66).
        { destination: '/sys', type: 'bind', source: '/sys', options: [inUserNamespace() ? 'rbind' : 'bind', ...(req.security === 'insecure' ? [] : ['ro']), 'nosuid', 'noexec', 'nodev'] },
  ];
}

/** The runtime's own error, if it reported one in its log (so the process never ran or the runtime broke). */
async function runtimeFailure(log: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(log, 'utf8');
  } catch {
    return undefined;
  }
  let failure: string | undefined;
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg) failure = entry.msg;
    } catch {
      // not a JSON line
    }
  }
  return failure;
}

/**
 * When the runtime could not exec the command, the exit code a shell (and `docker run`) gives:
 * 127 for a command that does not exist, 126 for one that cannot be executed.
 */
function execFailureExitCode(message: string): number | undefined {
  const m = /exec: "[^"]*": (.*)$/.exec(message);
  if (!m) return undefined;
  return /not found|no such file or directory/.test(m[1]!) ? 127 : 126;
}

function runtimeCommand(command: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...runtimeGlobalArgs, ...args], { timeout: 10_000 }, (err, _stdout, stderr) => resolve({ ok: !err, stderr }));
  });
}
