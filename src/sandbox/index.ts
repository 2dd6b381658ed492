import { createBwrapExecutor } from './bwrap.js';
import { SandboxFailed } from './errors.js';
import type { Executor } from './executor.js';
import { findProgram } from './program.js';
import { createRuncExecutor } from './runc.js';

// Choosing an executor by name. Everything else of the sandbox is reached through the Executor
// interface (executor.ts) and the user resolution in user.ts.

export type { Executor, Mount, NetworkMode, ProcessSpec, ProcessUser, RunRequest, RunResult } from './executor.js';
export { AbortError, InvalidUserSpec, SandboxFailed, UnknownUser } from './errors.js';
export { resolveChown, resolveUser, type Ownership } from './user.js';
export { createBwrapExecutor } from './bwrap.js';
export { createRuncExecutor } from './runc.js';

/** 'runc', 'crun', 'bwrap', or the path of an OCI runtime with runc's command line. */
export function createExecutor(name: 'runc' | 'crun' | 'bwrap' | string, opts: { stateDir?: string } = {}): Executor {
  if (name === 'bwrap') return createBwrapExecutor(opts);
  if (name === 'runc' || name === 'crun' || name.includes('/')) {
    if (!findProgram(name)) throw new SandboxFailed(`OCI runtime ${name} not found`);
    return createRuncExecutor({ ...opts, runtime: name });
  }
  throw new SandboxFailed(`unknown executor "${name}": use runc, crun, bwrap or the path of an OCI runtime`);
}

/** runc when it is installed, else bubblewrap. */
export function defaultExecutor(opts: { stateDir?: string } = {}): Executor {
  if (findProgram('runc')) return createRuncExecutor(opts);
  if (findProgram('bwrap')) return createBwrapExecutor(opts);
  throw new SandboxFailed('no sandbox available: install runc (or bubblewrap)');
}
