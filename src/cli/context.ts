import type { Writable } from 'node:stream';
import { ImageUnknown, KilnError, UsageError } from '../errors.js';
import { Store, type StoredImage } from '../store/store.js';
import { defaultRoot } from '../store/root.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';

/** Shared by every command: where the store is. `--root` (global) wins over $KILN_ROOT. */
export interface GlobalOptions {
  root?: string;
  /** The client-side trust policy file (--policy), for pull, build and run. */
  policy?: string;
}

/**
 * The admission check of the trust policy (--policy, $KILN_POLICY or ~/.config/kiln/policy.yaml)
 * for pulls of `reference`; undefined when there is no policy file.
 */
export async function policyAdmission(opts: GlobalOptions, reference: string): Promise<((digests: string[]) => Promise<void>) | undefined> {
  const { loadImagePolicy } = await import('../sign/policy.js');
  const policy = await loadImagePolicy(opts.policy);
  if (!policy) return undefined;
  const { admitPull } = await import('../sign/admit.js');
  return (digests) => admitPull(policy, reference, digests);
}

let opened: Store | undefined;

export async function openStore(opts: GlobalOptions): Promise<Store> {
  opened ??= await Store.open(opts.root ?? defaultRoot());
  return opened;
}

/** kiln run's check of the trust policy on a stored image; an image the store lacks is left to the caller's error. */
export async function admitStoredImage(opts: GlobalOptions, store: Store, reference: string): Promise<void> {
  const admit = await storedAdmission(opts, store);
  if (!admit) return;
  const image = await store.resolveImage(reference).catch((e: unknown) => {
    if (e instanceof ImageUnknown) return undefined;
    throw e;
  });
  if (image) await admit(image, reference);
}

/** The trust policy's check of images already in the store (kiln run, kiln build's FROM); undefined without a policy file. */
export async function storedAdmission(opts: GlobalOptions, store: Store): Promise<((image: StoredImage, reference: string) => Promise<void>) | undefined> {
  const { loadImagePolicy } = await import('../sign/policy.js');
  const policy = await loadImagePolicy(opts.policy);
  if (!policy) return undefined;
  const { admitStored } = await import('../sign/admit.js');
  return (image, reference) => admitStored(policy, store, image, reference);
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
