import { readFileSync } from 'node:fs';
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
  /** Key of the step before (the parent's), so an importer knows which record may come next. */
  parent?: string;
}

/**
 * Cache records from elsewhere (--cache-from: a registry's cache artifact or an image's inline
 * cache). A hit here costs nothing until its layer is needed: `fetchLayer` then brings the blob
 * into the store. `mounts` are saved contents of RUN --mount=type=cache directories, by cache id.
 */
export interface CacheSource {
  readonly name: string;
  readonly records: ReadonlyMap<string, CacheRecord>;
  /**
   * `started` is called once the transfer is under way (a big layer's thread is running), or with
   * the failure before that: a caller looking ahead waits that long and no longer.
   */
  fetchLayer(store: Store, layer: LayerRef, started?: () => void): Promise<void>;
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
  /** Blob downloads from cache sources, by digest: one each, shared by ensure and lookahead. */
  private readonly downloads = new Map<string, Promise<void>>();
  /** Imported records with a layer, by the key of the step before them. */
  private readonly next = new Map<string, { source: CacheSource; layer: LayerRef }[]>();

  constructor(private readonly store: Store, private readonly sources: readonly CacheSource[] = []) {
    for (const source of sources) {
      for (const rec of source.records.values()) {
        if (rec.parent === undefined || !rec.layer) continue;
        let list = this.next.get(rec.parent);
        if (!list) this.next.set(rec.parent, (list = []));
        list.push({ source, layer: rec.layer });
      }
    }
  }

  private path(key: string): string {
    return join(this.store.root, 'cache', key.replace(':', '-') + '.json');
  }

  /**
   * The record of `key`, local or imported. `lookAhead`: the step's layer ends up in the image, so
   * the layer recorded after it will be needed too if its key hits (see lookAhead below).
   */
  async get(key: string, lookAhead = false): Promise<CacheRecord | undefined> {
    const local = await this.getLocal(key);
    if (local) {
      if (lookAhead) await this.lookAhead(key);
      return local;
    }
    for (const source of this.sources) {
      const rec = source.records.get(key);
      if (!rec) continue;
      if (rec.layer && !(await this.store.content.has(rec.layer.digest))) this.pending.set(rec.layer.digest, { source, key, record: rec });
      else await this.write(key, rec);
      if (lookAhead) await this.lookAhead(key);
      return rec;
    }
    return undefined;
  }

  /**
   * A hit on `key`: start downloading the layers the imported caches recorded right after it. The
   * next step's own key may take a while (a COPY hashes its sources first), and when it hits too,
   * its layer is then already coming. At most one step ahead of the last hit is fetched for nothing
   * when the next key misses. Only for steps of the final image: the layers of another stage are
   * needed only by a step that is not cached, and then ensure() fetches them. A failed download here
   * is forgotten: ensure() tries again and reports.
   *
   * Resolves once the downloads are under way, not done: the next step's work (a walk of 20,000
   * files that gives the event loop a turn only now and then) would otherwise delay each of the
   * few asynchronous calls that start a download, which cost a --cache-from rebuild some 40 ms.
   */
  private async lookAhead(key: string): Promise<void> {
    const starts: Promise<void>[] = [];
    for (const { source, layer } of this.next.get(key) ?? []) {
      let started!: () => void;
      starts.push(new Promise<void>((r) => (started = r)));
      this.download(source, layer, started).then(started, started);
    }
    await Promise.all(starts);
  }

  private download(source: CacheSource, layer: LayerRef, started?: () => void): Promise<void> {
    let d = this.downloads.get(layer.digest);
    if (!d) {
      d = source.fetchLayer(this.store, layer, started);
      this.downloads.set(layer.digest, d);
      d.catch(() => this.downloads.delete(layer.digest));
    } else started?.();
    return d;
  }

  private async getLocal(key: string): Promise<CacheRecord | undefined> {
    try {
      // Read synchronously: a record is a few hundred bytes, and a fully cached build looks up one per
      // step in turn, each a round trip through the thread pool otherwise.
      const rec = JSON.parse(readFileSync(this.path(key), 'utf8')) as CacheRecord;
      if (rec.layer && !(await this.store.content.has(rec.layer.digest))) return undefined;
      return rec;
    } catch {
      return undefined;
    }
  }

  async put(key: string, layer: LayerRef | undefined, parent?: string): Promise<CacheRecord> {
    const rec: CacheRecord = { layer: layer ?? null, created: new Date().toISOString(), ...(parent !== undefined ? { parent } : {}) };
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
            // Once more if the download failed: it may have been started ahead, when nobody was waiting.
            await this.download(p.source, l).catch(() => this.download(p.source, l));
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
