/**
 * A map bounded by the bytes of its values, evicting the oldest insertions first. Hot manifests and
 * small blobs are served from here without touching storage or the database.
 */
export interface ByteCache<V> {
  get(key: string): V | undefined;
  set(key: string, value: V, bytes: number): void;
  delete(key: string): void;
  /** Drop every key starting with prefix (all entries of one repository). */
  deletePrefix(prefix: string): void;
  clear(): void;
  readonly bytes: number;
}

export function byteCache<V>(limit: number): ByteCache<V> {
  const entries = new Map<string, { value: V; bytes: number }>();
  let total = 0;
  const remove = (key: string) => {
    const e = entries.get(key);
    if (e) {
      total -= e.bytes;
      entries.delete(key);
    }
  };
  return {
    get: (key) => entries.get(key)?.value,
    set(key, value, bytes) {
      if (bytes > limit) return;
      remove(key);
      entries.set(key, { value, bytes });
      total += bytes;
      while (total > limit) {
        const oldest = entries.keys().next().value as string;
        remove(oldest);
      }
    },
    delete: remove,
    deletePrefix(prefix) {
      for (const k of [...entries.keys()]) if (k.startsWith(prefix)) remove(k);
    },
    clear() {
      entries.clear();
      total = 0;
    },
    get bytes() {
      return total;
    },
  };
}
