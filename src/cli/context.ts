import { Store } from '../store/store.js';
import { defaultRoot } from '../store/root.js';

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
