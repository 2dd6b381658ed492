/**
 * Failed logins per key (a user name, a client address) within a window. Past the limit the key is
 * refused with 429 until the window that started with its first failure ends.
 */
export interface LoginLimiter {
  /** Seconds to wait when any key is over the limit, else 0. */
  retryAfter(keys: string[]): number;
  failed(keys: string[]): void;
  succeeded(keys: string[]): void;
}

export function loginLimiter(maxFailures: number, windowSeconds: number): LoginLimiter {
  const windows = new Map<string, { start: number; failures: number }>();
  const current = (k: string, now: number) => {
    const w = windows.get(k);
    if (w && now - w.start < windowSeconds * 1000) return w;
    if (w) windows.delete(k);
    return undefined;
  };
  return {
    retryAfter(keys) {
      const now = Date.now();
      let wait = 0;
      for (const k of keys) {
        const w = current(k, now);
        if (w && w.failures >= maxFailures) wait = Math.max(wait, Math.ceil((w.start + windowSeconds * 1000 - now) / 1000));
      }
      return wait;
    },
    failed(keys) {
      const now = Date.now();
      if (windows.size > 100_000) windows.clear();
      for (const k of keys) {
        const w = current(k, now);
        if (w) w.failures++;
        else windows.set(k, { start: now, failures: 1 });
      }
    },
    succeeded(keys) {
      for (const k of keys) if (k.startsWith('user:')) windows.delete(k);
    },
  };
}
