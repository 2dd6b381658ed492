// Long-running server processes for tests (PostgreSQL, Ceph): each one's output goes to a file,
// never to a pipe (a pipe nobody drains fills up and stalls the daemon), it runs in the foreground
// so the PID we hold is the daemon's own, and it is stopped by that PID.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { after } from 'node:test';

export interface TestContextLike {
  after: (fn: () => Promise<void> | void) => void;
}

/**
 * For one server shared by a describe(): call this in the describe body and pass the result to the
 * start function in before(). (node:test's after() called inside a before hook attaches to the
 * hook itself and runs as soon as the hook ends, which would stop the server before any test.)
 */
export function suiteScope(): TestContextLike {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return { after: (fn) => void cleanups.push(fn) };
}

export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  readonly exited: Promise<number | string>;
  running(): boolean;
  /** Sends `signal`, then SIGKILL if the process has not ended within `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  logFile: string;
  uid?: number;
  gid?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the process's standard input, which is otherwise closed. */
  input?: string;
}

// Daemons still running when the test process ends (a crash, a hook that never ran) are killed
// here, synchronously, so that no cluster outlives the run.
const live = new Set<Daemon>();
process.on('exit', () => {
  for (const d of live) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Fails with a message naming the Debian package when a server's binary is not installed. */
export function requireBinary(path: string, debianPackage: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${debianPackage} (scripts/setup.sh does, as root)`);
}

/** Starts `command` in the background with stdout and stderr appended to `opts.logFile`. */
export function startDaemon(name: string, command: string, args: string[], opts: SpawnOptions): Daemon {
  const fd = openSync(opts.logFile, 'a');
  let child;
  try {
    child = spawn(command, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', fd, fd], uid: opts.uid, gid: opts.gid, env: opts.env ?? process.env, cwd: opts.cwd });
    child.stdin?.on('error', () => {}); // a process that exits without reading its input
    child.stdin?.end(opts.input);
  } finally {
    closeSync(fd);
  }
  let ended = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (err) => {
      ended = true;
      resolve(`spawn error: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      ended = true;
      resolve(code ?? signal ?? -1);
    });
  });
  if (child.pid === undefined) {
    // the command could not be started (ENOENT arrives as an 'error' event): no PID to hold
    return { name, pid: -1, logFile: opts.logFile, exited, running: () => false, stop: async () => {} };
  }
  const pid = child.pid;
  const daemon: Daemon = {
    name,
    pid,
    logFile: opts.logFile,
    exited,
    running: () => !ended,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (ended) return;
      process.kill(pid, signal);
      const timer = setTimeout(() => {
        if (!ended) process.kill(pid, 'SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(daemon);
  void exited.then(() => live.delete(daemon));
  return daemon;
}

/** Runs `command` to completion with its output appended to `opts.logFile`; fails with the log's tail. */
export async function runToLog(command: string, args: string[], opts: SpawnOptions & { timeoutMs?: number }): Promise<void> {
  const d = startDaemon(command, command, args, opts);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void d.stop('SIGKILL');
  }, timeoutMs);
  const result = await d.exited;
  clearTimeout(timer);
  if (result !== 0) {
    const why = timedOut ? `did not finish within ${timeoutMs} ms` : `ended with ${result}`;
    throw new Error(`${command} ${args.join(' ')} ${why}; end of ${opts.logFile}:\n${await logTail(opts.logFile)}`);
  }
}

/** The last lines of a log file, for error messages. */
export async function logTail(file: string, lines = 30): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '(no log)');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A loopback TCP port that was free a moment ago (the server binding it may still lose a race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `ready` every `intervalMs` until it returns true; fails early when `daemon` ends. */
export async function waitUntil(daemon: Daemon, what: string, ready: () => Promise<boolean>, timeoutMs = 30_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!daemon.running()) {
      throw new Error(`${daemon.name} ended (${await daemon.exited}) before ${what}; end of ${daemon.logFile}:\n${await logTail(daemon.logFile)}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${daemon.name} not ${what} after ${timeoutMs} ms; end of ${daemon.logFile}:\n${await logTail(daemon.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
