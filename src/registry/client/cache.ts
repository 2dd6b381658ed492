import { existsSync } from 'node:fs';
import { applyLayer, packDirectory, writeLayer } from '../../archive/index.js';
import { MediaType, isIndex } from '../../oci/mediatypes.js';
import type { Descriptor, ImageConfig, Manifest } from '../../oci/types.js';
import { createHash } from 'node:crypto';
import { DigestMismatch, KilnError } from '../../errors.js';
import { hostPlatform, selectPlatform, type Store } from '../../store/store.js';
import { parseNamed, type Reference } from '../../reference/reference.js';
import type { CacheRecord, CacheSource } from '../../build/cache.js';
import type { LayerRef } from '../../snapshot/snapshotter.js';
import { loadRegistriesConfig, pullEndpoints } from './config.js';
import { RegistrySession, pullScope } from './session.js';
import { fetchManifest } from './manifests.js';
import { downloadBlob, fetchSmallBlob } from './blobs.js';
import { fetchBlobInThread } from './blob-thread.js';
import { pushManifest, type PushOptions, type PushResult } from './push.js';

// The build cache in a registry (kiln build --cache-to / --cache-from).
//
// Registry cache: an OCI image manifest (image-spec manifest.md, "artifactType" for artifacts) whose
// config blob (CacheConfigType) lists the cache records and whose layers are the records' layer
// blobs, followed by the saved contents of RUN --mount=type=cache directories, each annotated with
// its cache id. A record is: the step's cache key, the index of its layer in the manifest (or null
// for a step that changed nothing) with that layer's diffID and uncompressed size, and the time the
// step first ran (the image config's history times come from it, so a rebuild from the cache gives
// the same image digest).
//
// Inline cache: the same records, for the final image's layers only, in the pushed image's config
// under InlineCacheField, their layer indexes pointing into the image's own layers (as BuildKit's
// moby.buildkit.cache.v0 does).

export const CacheArtifactType = 'application/vnd.kiln.buildcache.v1';
export const CacheConfigType = 'application/vnd.kiln.buildcache.config.v1+json';
export const InlineCacheField = 'kiln.buildcache.v0';
/** Annotation naming the cache mount a layer of the cache artifact holds. */
export const CacheMountAnnotation = 'dev.kiln.buildcache.mount.id';

/** Cache layers from this size on are downloaded on a thread of their own (see fetchBlobInThread). */
export const ThreadedDownloadMin = 16 << 20;

interface WireRecord {
  key: string;
  layer: number | null;
  diffId?: string;
  size?: number;
  created: string;
  /** The key of the step before, when known: lets an importer fetch a layer one step ahead. */
  parent?: string;
}

interface CacheDocument {
  records: WireRecord[];
  mounts?: { id: string; layer: number }[];
}

export interface CacheExportOptions extends PushOptions {
  /** Export the contents of these cache mounts (cache id → directory), each at most mountsMaxSize bytes uncompressed. */
  mounts?: Map<string, string>;
  mountsMaxSize?: number;
  /** Told about cache mounts left out (too large). */
  onWarning?: (message: string) => void;
}

/** Push the records of `keys` (their layers must be in the store) as a cache artifact to `ref`. */
export async function exportRegistryCache(store: Store, ref: string, records: Map<string, CacheRecord>, opts: CacheExportOptions = {}): Promise<PushResult> {
  const dest = parseNamed(ref);
  const layers: Descriptor[] = [];
  const index = new Map<string, number>();
  const doc: CacheDocument = { records: [] };
  for (const [key, rec] of records) {
    const parent = rec.parent !== undefined ? { parent: rec.parent } : {};
    if (!rec.layer) {
      doc.records.push({ key, layer: null, created: rec.created, ...parent });
      continue;
    }
    const l = rec.layer;
    let i = index.get(l.digest);
    if (i === undefined) {
      i = layers.push({ mediaType: l.mediaType, digest: l.digest, size: l.size }) - 1;
      index.set(l.digest, i);
    }
    doc.records.push({ key, layer: i, diffId: l.diffId, size: (await store.layerInfo(l.digest))?.size, created: rec.created, ...parent });
  }
  for (const [id, dir] of opts.mounts ?? []) {
    if (!existsSync(dir)) continue;
    let blob: { digest: string; size: number } | undefined;
    const d = await writeLayer(packDirectory(dir), async (b) => {
      blob = await store.content.put(b);
    }, 'gzip');
    if (opts.mountsMaxSize !== undefined && d.uncompressedSize > opts.mountsMaxSize) {
      opts.onWarning?.(`cache mount "${id}" not exported: ${d.uncompressedSize} bytes is more than mounts-max-size=${opts.mountsMaxSize}`);
      continue;
    }
    doc.mounts ??= [];
    doc.mounts.push({ id, layer: layers.length });
    layers.push({ mediaType: MediaType.OciLayerGzip, digest: blob!.digest, size: blob!.size, annotations: { [CacheMountAnnotation]: id } });
  }
  const config = await store.putJSON(doc, CacheConfigType);
  const manifest: Manifest & { artifactType: string } = { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: CacheArtifactType, config, layers };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await store.content.put(bytes);
  return pushManifest(store, dest, { blobs: [config, ...layers], bytes, mediaType: MediaType.OciManifest }, opts);
}

/** The inline cache of an image: its config with the records of its own layers added. */
export async function withInlineCache(store: Store, config: ImageConfig, layers: LayerRef[], records: Map<string, CacheRecord>): Promise<ImageConfig> {
  const doc: CacheDocument = { records: [] };
  for (const [key, rec] of records) {
    const i = rec.layer ? layers.findIndex((l) => l.digest === rec.layer!.digest) : -1;
    if (rec.layer && i < 0) continue;
    const parent = rec.parent !== undefined ? { parent: rec.parent } : {};
    doc.records.push(rec.layer ? { key, layer: i, size: (await store.layerInfo(rec.layer.digest))?.size, created: rec.created, ...parent } : { key, layer: null, created: rec.created, ...parent });
  }
  return { ...config, [InlineCacheField]: doc } as ImageConfig;
}

/**
 * --cache-from REF: read a cache artifact, or an image's inline cache, from the registry. Only the
 * manifest and config are fetched now; layers come when the build needs them. Undefined (with the
 * reason given to onWarning) when REF has no cache: a first build is not an error.
 */
export async function importCache(ref: string, opts: Pick<PushOptions, 'env' | 'config' | 'retry'> & { onWarning?: (message: string) => void } = {}): Promise<CacheSource | undefined> {
  const r: Reference = parseNamed(ref);
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const endpoint = pullEndpoints(r.domain, config).pop()!;
  const session = new RegistrySession(endpoint, { env, retry: opts.retry });
  const repo = r.path;
  const where = `${endpoint.host}/${repo}`;
  const bad = (why: string) => new KilnError(`--cache-from ${ref}: invalid cache: ${why}`);
  let top;
  try {
    top = await fetchManifest(session, repo, r.digest ?? r.tag!);
  } catch (e) {
    opts.onWarning?.(`--cache-from ${ref}: ${(e as Error).message}; building without it`);
    return undefined;
  }
  let manifest = top.doc as Manifest & { artifactType?: string };
  if (isIndex(top.mediaType)) {
    const entry = selectPlatform((top.doc as { manifests: Descriptor[] }).manifests, hostPlatform());
    if (!entry) {
      opts.onWarning?.(`--cache-from ${ref}: no entry for this platform; building without it`);
      return undefined;
    }
    manifest = (await fetchManifest(session, repo, entry.digest, entry)).doc as Manifest;
  }
  if (!Array.isArray(manifest.layers)) throw bad('the manifest has no layer list');
  const artifact = manifest.artifactType === CacheArtifactType || manifest.config?.mediaType === CacheConfigType;
  if (!manifest.config?.digest) throw bad('the manifest has no config');
  const configBytes = await fetchSmallBlob(session, repo, manifest.config);
  const got = 'sha256:' + createHash('sha256').update(configBytes).digest('hex');
  if (got !== manifest.config.digest) throw new DigestMismatch(`--cache-from ${ref}: config ${manifest.config.digest} of ${where}: digest ${got}, expected ${manifest.config.digest}`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(configBytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad(`config ${manifest.config.digest} is not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null) throw bad(`config ${manifest.config.digest} is not a JSON object`);
  const cache = (artifact ? doc : doc[InlineCacheField]) as CacheDocument | undefined;
  if (!cache) {
    opts.onWarning?.(`--cache-from ${ref}: the image has no inline cache (build it with --cache-to type=inline); building without it`);
    return undefined;
  }
  const diffIds = artifact ? [] : ((doc as unknown as ImageConfig).rootfs?.diff_ids ?? []);
  if (!Array.isArray(cache.records)) throw bad('"records" is not a list');
  const layerAt = (i: number): Descriptor => {
    const l = manifest.layers?.[i];
    if (!Number.isInteger(i) || !l) throw bad(`layer index ${i} is not a layer of the manifest`);
    return l;
  };
  const records = new Map<string, CacheRecord>();
  const sizes = new Map<string, number>();
  for (const w of cache.records) {
    if (typeof w?.key !== 'string' || typeof w.created !== 'string') throw bad('a record lacks "key" or "created"');
    if (w.parent !== undefined && typeof w.parent !== 'string') throw bad(`record ${w.key}: "parent" is not a string`);
    const parent = w.parent !== undefined ? { parent: w.parent } : {};
    if (w.layer === null) {
      records.set(w.key, { layer: null, created: w.created, ...parent });
      continue;
    }
    const l = layerAt(w.layer);
    const diffId = artifact ? w.diffId : diffIds[w.layer];
    if (typeof diffId !== 'string') throw bad(`record ${w.key} has no diffID`);
    if (typeof w.size === 'number') sizes.set(l.digest, w.size);
    records.set(w.key, { layer: { digest: l.digest, size: l.size, mediaType: l.mediaType, diffId }, created: w.created, ...parent });
  }
  const download = async (store: Store, d: Descriptor, started?: () => void) => {
    if ((await store.content.size(d.digest)) === d.size) return;
    const what = `cache layer ${d.digest} of ${where}`;
    // A big layer on a thread of its own: the build is meanwhile hashing the context for the key
    // that will use it (see fetchBlobInThread). Any failure there falls back to the download here.
    if (d.size >= ThreadedDownloadMin) {
      try {
        const headers = await session.authHeaders([pullScope(repo)]);
        const url = session.url(`/v2/${repo}/blobs/${d.digest}`).href;
        await store.content.putWritten({ digest: d.digest, size: d.size }, (path) => {
          const fetched = fetchBlobInThread({ url, headers, digest: d.digest, size: d.size, path, what });
          started?.(); // the thread is running
          return fetched;
        });
        return;
      } catch {
        /* downloaded again below, with retries, resumes and the error reported */
      }
    }
    started?.();
    await store.content.put(downloadBlob(session, repo, d, () => {}, () => {}), { digest: d.digest, size: d.size, what });
  };
  const mounts = new Map<string, { restore(store: Store, dir: string): Promise<void> }>();
  if (cache.mounts !== undefined && !Array.isArray(cache.mounts)) throw bad('"mounts" is not a list');
  for (const m of cache.mounts ?? []) {
    if (typeof m?.id !== 'string') throw bad('a cache mount lacks "id"');
    const l = layerAt(m.layer);
    mounts.set(m.id, {
      restore: async (store, dir) => {
        await download(store, l);
        await applyLayer(store.content.open(l.digest), dir, { whiteouts: 'delete' });
      },
    });
  }
  return {
    name: ref,
    records,
    mounts,
    async fetchLayer(store, layer, started) {
      await download(store, layer, started);
      const size = sizes.get(layer.digest);
      if (size !== undefined) await store.setLayerInfo(layer.digest, { diffId: layer.diffId, size });
    },
  };
}
