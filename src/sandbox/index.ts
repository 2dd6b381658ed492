import { basename } from 'node:path';
import { SandboxFailed } from './errors.js';
import type { Executor } from './executor.js';
import { findProgram } from './program.js';

// Choosing an executor by name. Everything else of the sandbox is reached through the Executor
// interface (executor.ts) and the user resolution in user.ts.

export type { Executor, Mount, NetworkMode, ProcessSpec, ProcessUser, RunRequest, RunResult } from './executor.js';
export { AbortError, InvalidUserSpec, SandboxFailed, UnknownUser } from './errors.js';
export { resolveChown, resolveUser, type Ownership } from './user.js';

/** 'runc', 'crun', 'bwrap', or the path of an OCI runtime with runc's command line. */
export function createExecutor(name: 'runc' | 'crun' | 'bwrap' | string, opts: { stateDir?: string } = {}): Executor {
  if (name === 'bwrap') return bwrap(opts);
  if (name === 'runc' || name === 'crun' || name.includes('/')) {
    if (!findProgram(name)) throw new SandboxFailed(`OCI runtime ${name} not found`);
    return runc({ ...opts, runtime: name });
  }
  throw new SandboxFailed(`unknown executor "${name}": use runc, crun, bwrap or the path of an OCI runtime`);
}

/** runc when it is installed, else bubblewrap. */
export function defaultExecutor(opts: { stateDir?: string } = {}): Executor {
  if (findProgram('runc')) return runc(opts);
  if (findProgram('bwrap')) return bwrap(opts);
  throw new SandboxFailed('no sandbox available: install runc (or bubblewrap)');
}

// The executors' code is imported when the first process runs: a build whose every step is cached,
// or a command that never runs one, does not load it.

function runc(opts: { stateDir?: string; runtime?: string }): Executor {
  return loadedOnFirstRun(basename(opts.runtime ?? 'runc'), async () => (await import('./runc.js')).createRuncExecutor(opts));
}

function bwrap(opts: { stateDir?: string }): Executor {
  return loadedOnFirstRun('bwrap', async () => (await import('./bwrap.js')).createBwrapExecutor(opts));
}

function loadedOnFirstRun(name: string, load: () => Promise<Executor>): Executor {
  let loaded: Promise<Executor> | undefined;
  return { name, run: async (req) => (await (loaded ??= load())).run(req) };
}
