import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KilnError } from '../errors.js';
import { MountHelper } from './mount-helper.js';

const run = promisify(execFile);

export class MountError extends KilnError {}

/**
 * This process's mount helper (see mount-helper.ts), started on the first mount. Without a C
 * compiler, or once the helper has died, mounts go through mount(8) and umount(8) as before.
 * KILN_MOUNT_HELPER=0 keeps to those.
 */
let helper: Promise<MountHelper | undefined> | undefined;

async function mountHelper(): Promise<MountHelper | undefined> {
  if (process.env.KILN_MOUNT_HELPER === '0') return undefined;
  const h = await (helper ??= MountHelper.start().catch(() => undefined));
  return h?.alive ? h : undefined;
}

/** mount(2) of an overlay (or other) filesystem on `target`; relative paths in `options` are from `cwd`. */
export async function mount(type: string, options: string, target: string, cwd?: string): Promise<void> {
  const h = await mountHelper();
  try {
    if (h) await h.mount(type, options, target, cwd ?? process.cwd());
    else await run('mount', ['-t', type, type, '-o', options, target], { cwd });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new MountError(`mount ${type} on ${target}: ${(err.stderr || err.message).trim()}`);
  }
}

/** Unmount; if something still holds the mount (a lingering process), detach it lazily. */
export async function unmount(target: string): Promise<void> {
  const h = await mountHelper();
  if (h) {
    try {
      return await h.unmount(target);
    } catch {
      /* the helper died: umount(8) below */
    }
  }
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch(() => {});
  }
}
