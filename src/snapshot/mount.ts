import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KilnError } from '../errors.js';

const run = promisify(execFile);

export class MountError extends KilnError {}

/** mount(8) with `cwd`, so that long option strings can use short relative paths. */
export async function mount(type: string, options: string, target: string, cwd?: string): Promise<void> {
  try {
    await run('mount', ['-t', type, type, '-o', options, target], { cwd });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new MountError(`mount ${type} on ${target}: ${(err.stderr || err.message).trim()}`);
  }
}

/** Unmount; if something still holds the mount (a lingering process), detach it lazily. */
export async function unmount(target: string): Promise<void> {
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch(() => {});
  }
}
