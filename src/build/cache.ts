import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../store/atomic.js';
import type { Store } from '../store/store.js';
import type { LayerRef } from '../snapshot/snapshotter.js';

/**
 * The build cache: cache key → the layer the step produced (or none, for a step that changed nothing).
 * Records live in <root>/cache/<key>.json; the store's GC treats the digests in them as roots.
 */
export interface CacheRecord {
  layer: LayerRef | null;
  created: string;
}

/**
 * Cache records from elsewhere (--cache-from: a registry's cache artifact or an image's inline
 * cache). A hit here costs nothing until its layer is needed: `fetchLayer` then brings the blob
 * into the store. `mounts` are saved contents of RUN --mount=type=cache directories, by cache id.
 */
export interface CacheSource {
  readonly name: string;
  readonly records: ReadonlyMap<string, CacheRecord>;
  fetchLayer(store: Store, layer: LayerRef): Promise<void>;
  readonly mounts?: ReadonlyMap<string, { restore(store: Store, dir: string): Promise<void> }>;
}

/** Cache keys are data: the hash of the parent's key and the step's full definition. */
export function cacheKey(parent: string, definition: unknown): string {
  return 'sha256:' + createHash('sha256').update(parent).update('\0').update(JSON.stringify(definition)).digest('hex');
}

export class BuildCache {
  /** Layers of imported hits whose blobs are not in the store yet, by digest. */
  private readonly pending = new Map<string, { source: CacheSource; key: string; record: CacheRecord }>();
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(private readonly store: Store, private readonly sources: readonly CacheSource[] = []) {}

  private path(key: string): string {
    return join(this.store.root, 'cache', key.replace(':', '-') + '.json');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const local = await this.getLocal(key);
    if (local) return local;
    for (const source of this.sources) {
      const rec = source.records.get(key);
      if (!rec) continue;
      if (rec.layer && !(await this.store.content.has(rec.layer.digest))) this.pending.set(rec.layer.digest, { source, key, record: rec });
      else await this.write(key, rec);
      return rec;
    }
    return undefined;
  }

  private async getLocal(key: string): Promise<CacheRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.path(key), 'utf8')) as CacheRecord;
      if (rec.layer && !(await this.store.content.has(rec.layer.digest))) return undefined;
      return rec;
    } catch {
      return undefined;
    }
  }

  async put(key: string, layer: LayerRef | undefined): Promise<CacheRecord> {
    const rec: CacheRecord = { layer: layer ?? null, created: new Date().toISOString() };
    await this.write(key, rec);
    return rec;
  }

  private write(key: string, rec: CacheRecord): Promise<void> {
    return writeFileAtomic(this.path(key), JSON.stringify(rec));
  }

  /** The local record of `key` (its layer fetched first if it came from a cache source). */
  async record(key: string): Promise<CacheRecord | undefined> {
    const local = await this.getLocal(key);
    if (local) return local;
    const rec = await this.get(key);
    if (rec?.layer) await this.ensure([rec.layer]);
    return rec;
  }

  /**
   * Bring the blobs of imported hits among `layers` into the store, once each, and record them
   * locally. Called just before the layers are used, so a hit whose layer nothing reads is never
   * downloaded.
   */
  async ensure(layers: readonly LayerRef[]): Promise<void> {
    await Promise.all(
      layers.map((l) => {
        const p = this.pending.get(l.digest);
        if (!p) return undefined;
        let f = this.fetching.get(l.digest);
        if (!f) {
          f = (async () => {
            await p.source.fetchLayer(this.store, l);
            await this.write(p.key, p.record);
            this.pending.delete(l.digest);
          })();
          this.fetching.set(l.digest, f);
        }
        return f;
      }),
    );
  }

  /** The first cache source holding saved contents for the cache mount `id`. */
  mountSource(id: string): { restore(store: Store, dir: string): Promise<void> } | undefined {
    for (const s of this.sources) {
      const m = s.mounts?.get(id);
      if (m) return m;
    }
    return undefined;
  }
}
