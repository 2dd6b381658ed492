import { lstat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import type { Executor, RunRequest } from '../sandbox/executor.js';
import { hostPathInRoot } from '../sandbox/rootpath.js';

// `kiln build --on-error=shell`: when a RUN fails, a shell in that step's sandbox — the parent
// snapshot with what the failed command wrote, the step's environment, user, working directory and
// mounts — until the user exits it. What the shell changes is thrown away with the step's snapshot;
// the build fails as it would have. (BuildKit offers this only through the experimental `buildx debug`.)

export interface FailedStep {
  file: string;
  line: number;
  exitCode: number;
  /** The platform the step ran for, in a multi-platform build ("linux/arm64"). */
  platform?: string;
  sandbox: Omit<RunRequest, 'stdin' | 'stdout' | 'stderr' | 'signal'>;
}

export interface ShellIO {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
}

// Two stages failing at once would fight over the terminal: one shell at a time.
let queue: Promise<void> = Promise.resolve();

/** Open the shell and wait for it to end. Failures to open it are reported, never thrown: the build's own error matters more. */
export function debugShell(executor: Executor, failed: FailedStep, io: ShellIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  const run = queue.then(() => openShell(executor, failed, io));
  queue = run.catch(() => {});
  return run;
}

async function openShell(executor: Executor, failed: FailedStep, io: ShellIO): Promise<void> {
  const shell = await findShell(failed.sandbox.rootfs);
  if (!shell) {
    io.stderr.write(`kiln: ${failed.file}:${failed.line}: RUN failed (exit code ${failed.exitCode}); the image has no /bin/sh to debug it with\n`);
    return;
  }
  io.stderr.write(
    `kiln: ${failed.file}:${failed.line}: RUN failed (exit code ${failed.exitCode})${failed.platform ? ` for ${failed.platform}` : ''}: a shell in its sandbox follows; ` +
      `changes made here are discarded, exit the shell to end the build\n`,
  );
  const terminal = io.stdin.isTTY === true;
  try {
    await executor.run({
      ...failed.sandbox,
      id: `${failed.sandbox.id}-shell`,
      process: { ...failed.sandbox.process, args: [shell], terminal },
      ...(terminal ? {} : { stdin: io.stdin }),
      stdout: io.stdout,
      stderr: io.stderr,
    });
  } catch (e) {
    io.stderr.write(`kiln: cannot open a shell in the failed step's sandbox: ${(e as Error).message}\n`);
  } finally {
    if (!terminal) io.stdin.unpipe?.();
  }
}

async function findShell(rootfs: string): Promise<string | undefined> {
  for (const candidate of ['/bin/sh', '/bin/bash', '/busybox/sh']) {
    if (await lstat(await hostPathInRoot(rootfs, candidate)).catch(() => undefined)) return candidate;
  }
  return undefined;
}
