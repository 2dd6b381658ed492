import { UsageError } from '../errors.js';
import { parseBytes } from '../ui/format.js';
import type { Store } from '../store/store.js';
import type { CacheRecord, CacheSource } from './cache.js';
import type { BuildCache } from './cache.js';
import type { BuildResult } from './solver.js';
import { normalize } from '../reference/reference.js';

// --cache-to / --cache-from of kiln build and kiln bake, in buildx's syntax:
//   --cache-to type=registry,ref=REF[,mode=min|max][,mounts=true][,mounts-max-size=SIZE]
//   --cache-to type=inline
//   --cache-from type=registry,ref=REF   or   --cache-from REF

/** Loaded only by builds that use a registry cache (see registryClient in cli/build.ts). */
const registryCache = () => import('../registry/client/cache.js');

export type CacheTo =
  | { type: 'registry'; ref: string; mode: 'min' | 'max'; mounts: boolean; mountsMaxSize?: number }
  | { type: 'inline' };

function fields(spec: string): Record<string, string> {
  return Object.fromEntries(spec.split(',').map((p) => {
    const i = p.indexOf('=');
    return i < 0 ? [p.trim(), ''] : [p.slice(0, i).trim(), p.slice(i + 1).trim()];
  }));
}

export function parseCacheTo(spec: string): CacheTo {
  const kv = fields(spec);
  const known = new Set(['type', 'ref', 'mode', 'mounts', 'mounts-max-size']);
  for (const k of Object.keys(kv)) if (!known.has(k)) throw new UsageError(`--cache-to ${spec}: unknown field "${k}"`);
  if (kv.type === 'inline') {
    const extra = Object.keys(kv).find((k) => k !== 'type');
    if (extra) throw new UsageError(`--cache-to ${spec}: type=inline takes no "${extra}"`);
    return { type: 'inline' };
  }
  if (kv.type !== 'registry') throw new UsageError(`--cache-to ${spec}: type must be registry or inline`);
  if (!kv.ref) throw new UsageError(`--cache-to ${spec}: type=registry needs ref=REGISTRY/REPOSITORY:TAG`);
  normalize(kv.ref);
  const mode = kv.mode ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new UsageError(`--cache-to ${spec}: mode must be min or max, not "${mode}"`);
  const mounts = kv.mounts === 'true' || kv.mounts === '';
  if (kv.mounts !== undefined && !['true', 'false', ''].includes(kv.mounts)) throw new UsageError(`--cache-to ${spec}: mounts must be true or false`);
  if (mounts && mode !== 'max') throw new UsageError(`--cache-to ${spec}: mounts=true needs mode=max`);
  let mountsMaxSize: number | undefined;
  if (kv['mounts-max-size'] !== undefined) {
    mountsMaxSize = parseBytes(kv['mounts-max-size']);
    if (mountsMaxSize === undefined) throw new UsageError(`--cache-to ${spec}: mounts-max-size "${kv['mounts-max-size']}" is not a size (bytes, 512MiB, 1GB)`);
  }
  return { type: 'registry', ref: kv.ref, mode, mounts, ...(mountsMaxSize !== undefined ? { mountsMaxSize } : {}) };
}

/** The image or cache reference of a --cache-from. */
export function parseCacheFrom(spec: string): string {
  if (!spec.includes('=')) return normalize(spec);
  const kv = fields(spec);
  if (kv.type !== undefined && kv.type !== 'registry') throw new UsageError(`--cache-from ${spec}: only type=registry is supported`);
  if (!kv.ref) throw new UsageError(`--cache-from ${spec}: needs ref=REGISTRY/REPOSITORY:TAG`);
  return normalize(kv.ref);
}

export async function importCaches(refs: string[], warn: (m: string) => void): Promise<CacheSource[]> {
  const sources: CacheSource[] = [];
  for (const ref of refs) {
    const s = await (await registryCache()).importCache(ref, { onWarning: warn });
    if (s) sources.push(s);
  }
  return sources;
}

async function recordsOf(cache: BuildCache, keys: string[]): Promise<Map<string, CacheRecord>> {
  const out = new Map<string, CacheRecord>();
  for (const k of keys) {
    const r = await cache.record(k);
    if (r) out.set(k, r);
  }
  return out;
}

/** --cache-to type=inline: the result's config gets the records of the final image's steps. */
export async function addInlineCache(store: Store, result: BuildResult): Promise<void> {
  result.config = await (await registryCache()).withInlineCache(store, result.config, result.layers, await recordsOf(result.cache, result.keys));
}

/**
 * --cache-to type=registry: push the cache artifact. Returns the line to print. A multi-platform
 * build gives every platform's result: one artifact carries the records of all (their keys differ
 * by platform, and the shared steps' are one record).
 */
export async function exportCache(store: Store, to: Extract<CacheTo, { type: 'registry' }>, result: BuildResult | BuildResult[], warn: (m: string) => void): Promise<string> {
  const results = Array.isArray(result) ? result : [result];
  const records = new Map<string, CacheRecord>();
  const cacheMounts = new Map<string, string>();
  for (const r of results) {
    for (const [k, v] of await recordsOf(r.cache, to.mode === 'max' ? r.allKeys : r.keys)) records.set(k, v);
    for (const [k, v] of r.cacheMounts) cacheMounts.set(k, v);
  }
  const pushed = await (await registryCache()).exportRegistryCache(store, to.ref, records, {
    mounts: to.mounts ? cacheMounts : undefined,
    mountsMaxSize: to.mountsMaxSize,
    onWarning: warn,
  });
  return `exporting cache to ${pushed.repository}:${pushed.reference}: ${records.size} records, digest: ${pushed.digest}`;
}
