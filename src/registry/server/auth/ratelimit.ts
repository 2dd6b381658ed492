import type { SharedRows } from '../metadata/metadata.js';

/**
 * Failed logins per key (a user name, a client address) within a window. Past the limit the key is
 * refused with 429 until the window that started with its first failure ends. The counts are kept
 * in the metadata, so every replica of a registry sees the same ones.
 */
export interface LoginLimiter {
  /** Seconds to wait when any key is over the limit, else 0. */
  retryAfter(keys: string[]): Promise<number>;
  failed(keys: string[]): Promise<void>;
  succeeded(keys: string[]): Promise<void>;
}

export function loginLimiter(rows: SharedRows, maxFailures: number, windowSeconds: number): LoginLimiter {
  const windowMs = windowSeconds * 1000;
  return {
    async retryAfter(keys) {
      const now = Date.now();
      let wait = 0;
      for (const w of await rows.loginFailures(keys, windowMs, now, false)) {
        if (w.failures >= maxFailures) wait = Math.max(wait, Math.ceil((w.start + windowMs - now) / 1000));
      }
      return wait;
    },
    async failed(keys) {
      await rows.loginFailures(keys, windowMs, Date.now(), true);
    },
    async succeeded(keys) {
      // A client address keeps its count: one good password must not reset an address that guesses.
      await rows.clearFailures(keys.filter((k) => k.startsWith('user:')));
    },
  };
}
