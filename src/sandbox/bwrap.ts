import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { abortError, collect, onAbort, spawnAttached } from './attach.js';
import { defaultInitCacheDir, initArgs, sandboxInit } from './bwrap-init.js';
import { SandboxFailed } from './errors.js';
import type { Executor, Mount, RunRequest, RunResult } from './executor.js';
import { defaultCapabilities, defaultCapabilityMask, defaultHostname, insecureCapabilities, maskedPaths } from './layout.js';
import { isBind } from './mountpoints.js';
import { defaultStateDir, finishRun, prepareRun, type PreparedRun } from './prepare.js';
import { findProgram } from './program.js';
import { homeDirectory } from './user.js';

// A lighter executor on bubblewrap: no bundle, no runtime state, no cgroup — one bwrap process that
// builds the namespaces and mounts and then execs kiln's init program (bwrap-init.ts) for the user,
// group and capability switch that bwrap itself cannot do as real root.
//
// Differences from the runc executor, all from bwrap's design:
// - /sys is always the host's sysfs, bound read-only (recursively), also with network 'none';
// - no device cgroup; instead every bind bwrap makes is nodev, so a node made with CAP_MKNOD in the
//   rootfs cannot be opened;
// - masked /proc files are bind mounts of /dev/null, masked directories read-only tmpfs; /proc/sys,
//   sysrq-trigger, irq and bus are made read-only by bwrap's --proc itself, /proc/fs is bound from the host;
// - no terminal allocation.

export interface BwrapExecutorOptions {
  /** bwrap binary; default 'bwrap' from PATH. */
  bwrap?: string;
  /** Per-run work directories (generated /etc files). Default $TMPDIR/kiln-sandbox. */
  stateDir?: string;
  /** Where the compiled init program is kept. Default $XDG_CACHE_HOME/kiln/sandbox. */
  initCacheDir?: string;
}

// File descriptors of the bwrap process, after stdin/stdout/stderr.
const initStatusFd = 3;
const bwrapStatusFd = 4;
const initProgramFd = 5;

/** How long an aborted run waits for bwrap to report the sandbox's pid before killing bwrap itself. */
const killPatience = 2000;

export function createBwrapExecutor(opts: BwrapExecutorOptions = {}): Executor {
  const bwrap = opts.bwrap ?? 'bwrap';
  const command = findProgram(bwrap) ?? bwrap;
  const stateDir = opts.stateDir ?? defaultStateDir();
  const cacheDir = opts.initCacheDir ?? defaultInitCacheDir();
  return {
    name: 'bwrap',
    run: (req) => runInBwrap(command, stateDir, cacheDir, req),
  };
}

async function runInBwrap(command: string, stateDir: string, cacheDir: string, req: RunRequest): Promise<RunResult> {
  if (req.signal?.aborted) throw abortError(req.signal);
  if (req.process.terminal) throw new SandboxFailed('the bwrap executor cannot allocate a terminal; use runc');
  // bwrap has no option for them, and a limit set on kiln's side would bind kiln too.
  if (req.rlimits) throw new SandboxFailed('the bwrap executor cannot set resource limits (--ulimit); use runc');
  const init = await sandboxInit(cacheDir);
  const run = await prepareRun(req, stateDir);
  let exitCode: number;
  try {
    exitCode = await runSandbox(command, init, req, run);
  } finally {
    run.createdMountpoints = await finishRun(req, run);
  }
  return { exitCode, createdMountpoints: run.createdMountpoints };
}

async function runSandbox(command: string, init: string, req: RunRequest, run: PreparedRun): Promise<number> {
  const user = req.process.user;
  // runc sets HOME when the environment lacks it; so does this executor, for the same results.
  const env = req.process.env.some((e) => e.startsWith('HOME='))
    ? req.process.env
    : [...req.process.env, `HOME=${await homeDirectory(req.rootfs, user.uid)}`];
  const args = [
    ...bwrapArgs(req, run, env),
    '--',
    `/proc/self/fd/${initProgramFd}`,
    ...initArgs(initStatusFd, user.uid, user.gid, user.additionalGids, req.security === 'insecure' ? insecureCapabilities().mask : defaultCapabilityMask),
    ...req.process.args,
  ];
  const initFile = await open(init, 'r');
  let exit;
  let initStatus: string;
  let aborted = false;
  try {
    const attached = spawnAttached(command, args, req, ['pipe', 'pipe', initFile.fd]);
    const status = collect(attached.child.stdio[initStatusFd] as Readable);
    // bwrap reports the sandbox's pid 1 (a host pid) right after creating it; killing that pid ends the
    // whole pid namespace. Killing bwrap instead is not enough: its child arms --die-with-parent only
    // at the end of its setup, so a sandbox still being set up would outlive it.
    let sandboxPid: number | undefined;
    let bwrapExited = false;
    let bwrapStatus = '';
    const killSandbox = () => {
      if (sandboxPid === undefined || bwrapExited) return;
      try {
        process.kill(sandboxPid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const statusStream = attached.child.stdio[bwrapStatusFd] as Readable;
    statusStream.setEncoding('utf8');
    statusStream.on('data', (s: string) => {
      bwrapStatus += s;
      const m = /"child-pid":\s*(\d+)/.exec(bwrapStatus);
      if (m && sandboxPid === undefined) {
        sandboxPid = Number(m[1]);
        if (aborted) killSandbox();
      }
    });
    let fallback: NodeJS.Timeout | undefined;
    const stopListening = onAbort(req.signal, () => {
      aborted = true;
      killSandbox();
      // bwrap stuck before it made the sandbox: nothing else to wait for.
      fallback = setTimeout(() => sandboxPid === undefined && attached.child.kill('SIGKILL'), killPatience);
    });
    void attached.exited.finally(() => (bwrapExited = true)).catch(() => {});
    try {
      exit = await attached.exited;
    } catch (err) {
      throw new SandboxFailed(`cannot run ${command}: ${(err as Error).message}`);
    } finally {
      bwrapExited = true;
      clearTimeout(fallback);
      stopListening();
    }
    initStatus = await status;
    if (!aborted && !initStatus.startsWith('S') && exit.code !== null) {
      throw new SandboxFailed(`bwrap could not set up the sandbox: ${attached.stderrTail().trim() || `exit code ${exit.code}`}`);
    }
  } finally {
    await initFile.close();
  }

  if (aborted) throw abortError(req.signal);
  if (exit.code === null) throw new SandboxFailed(`bwrap was killed by ${exit.signal}`);
  const failed = /^SE(\d+) ([^]*)$/.exec(initStatus);
  if (failed) {
    const code = Number(failed[1]);
    if (code === 126 || code === 127) return code;
    throw new SandboxFailed(failed[2]!);
  }
  return exit.code;
}

function bwrapArgs(req: RunRequest, run: PreparedRun, env: string[]): string[] {
  const args = ['--die-with-parent', '--new-session', '--unshare-pid', '--as-pid-1', '--unshare-ipc', '--unshare-uts'];
  if (req.network === 'none') args.push('--unshare-net'); // bwrap brings lo up in it
  args.push('--hostname', req.hostname ?? defaultHostname, '--json-status-fd', String(bwrapStatusFd));
  args.push('--bind', req.rootfs, '/');
  args.push('--proc', '/proc', '--dev', '/dev');
  args.push('--perms', '1777', '--size', String(req.shmSize || 64 << 20), '--tmpfs', '/dev/shm');
  args.push('--mqueue', '/dev/mqueue');
  args.push('--ro-bind', '/sys', '/sys');
  for (const p of req.security === 'insecure' ? [] : maskedPaths) {
    const st = statOrUndefined(p); // the sandbox's /proc shows the same kernel
    if (!st) continue;
    if (st.isDirectory()) args.push('--tmpfs', p, '--remount-ro', p);
    else args.push('--dev-bind', '/dev/null', p);
  }
  if (existsSync('/proc/fs')) args.push('--ro-bind', '/proc/fs', '/proc/fs');
  for (const m of run.etcMounts) args.push('--ro-bind', m.source, m.destination);
  for (const m of run.mounts) args.push(...mountArgs(m));
  if (req.readonlyRootfs) args.push('--remount-ro', '/');
  args.push('--chdir', req.process.cwd, '--clearenv');
  for (const entry of env) {
    const eq = entry.indexOf('=');
    args.push('--setenv', entry.slice(0, eq), entry.slice(eq + 1));
  }
  args.push('--cap-drop', 'ALL');
  for (const cap of req.security === 'insecure' ? insecureCapabilities().names : defaultCapabilities) args.push('--cap-add', cap);
  return args;
}

/** An OCI mount as bwrap arguments: binds and tmpfs, which is what RUN --mount needs. */
function mountArgs(m: Mount): string[] {
  if (isBind(m)) return [m.options.includes('ro') ? '--ro-bind' : '--bind', m.source, m.destination];
  if (m.type === 'tmpfs') {
    const args: string[] = [];
    for (const o of m.options) {
      if (o.startsWith('mode=')) args.push('--perms', o.slice(5).padStart(4, '0'));
      else if (o.startsWith('size=')) args.push('--size', String(parseSize(o.slice(5))));
    }
    args.push('--tmpfs', m.destination);
    if (m.options.includes('ro')) args.push('--remount-ro', m.destination);
    return args;
  }
  throw new SandboxFailed(`the bwrap executor cannot mount ${m.type} on ${m.destination}`);
}

function parseSize(s: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(s);
  if (!m) throw new SandboxFailed(`invalid tmpfs size "${s}"`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}

function statOrUndefined(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
