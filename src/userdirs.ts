import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$XDG_CACHE_HOME/kiln/…` (by default `~/.cache/kiln/…`): compiled helpers, the CLI's code cache. */
export function kilnCacheDir(...parts: string[]): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln', ...parts);
}

/**
 * Whether a file kiln will run from a cache (a compiled helper, V8's cached code) is this user's and
 * writable by no one else: anything else could have been planted by another user.
 */
export function ownedByMeAlone(st: { uid: number; mode: number }): boolean {
  return st.uid === process.geteuid?.() && (st.mode & 0o022) === 0;
}
