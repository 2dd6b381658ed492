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

/** Cache keys are data: the hash of the parent's key and the step's full definition. */
export function cacheKey(parent: string, definition: unknown): string {
  return 'sha256:' + createHash('sha256').update(parent).update('\0').update(JSON.stringify(definition)).digest('hex');
}

export class BuildCache {
  constructor(private readonly store: Store) {}

  private path(key: string): string {
    return join(this.store.root, 'cache', key.replace(':', '-') + '.json');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
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
    await writeFileAtomic(this.path(key), JSON.stringify(rec));
    return rec;
  }
}
