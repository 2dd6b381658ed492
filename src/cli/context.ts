import type { Writable } from 'node:stream';
import { KilnError, UsageError } from '../errors.js';
import { Store } from '../store/store.js';
import { defaultRoot } from '../store/root.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';

/** Shared by every command: where the store is. `--root` (global) wins over $KILN_ROOT. */
export interface GlobalOptions {
  root?: string;
}

let opened: Store | undefined;

export async function openStore(opts: GlobalOptions): Promise<Store> {
  opened ??= await Store.open(opts.root ?? defaultRoot());
  return opened;
}

export function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}

/** commander's accumulator for a repeatable option (`-t a -t b` → ['a', 'b']). */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * Write `noun` (an archive, a tar archive) to standard output: refused when that is a terminal, and
 * a reader that goes away early (EPIPE) is a one-line error rather than a crash.
 */
export async function writeToStdout(noun: string, write: (out: Writable) => Promise<void>): Promise<void> {
  if (process.stdout.isTTY) throw new UsageError(`cowardly refusing to write ${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun} to a terminal: use -o FILE or redirect output`);
  await write(process.stdout).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'EPIPE' ? new KilnError(`standard output was closed before the ${noun} was complete`) : e;
  });
}

/** A command's --platform os/arch[/variant] (containerd's syntax), normalised; undefined when not given. */
export function platformFlag(value: string | undefined): Platform | undefined {
  if (value === undefined) return undefined;
  try {
    const p = parsePlatform(value);
    // arm64's v8 is its default variant (containerd platforms.Normalize).
    return p.architecture === 'arm64' && p.variant === 'v8' ? { os: p.os, architecture: p.architecture } : p;
  } catch (e) {
    throw new UsageError(`--platform ${value}: ${(e as Error).message}`);
  }
}
