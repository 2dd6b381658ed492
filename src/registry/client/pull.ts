import { formatPlatform, hostPlatform, selectPlatform, validateManifest, type Store, type StoredImage } from '../../store/store.js';
import { isIndex, layerCompression } from '../../oci/mediatypes.js';
import { isDigest } from '../../oci/digest.js';
import type { Descriptor, Index, Manifest, Platform } from '../../oci/types.js';
import { KilnError, ManifestInvalid } from '../../errors.js';
import { parseNamed, repositoryOf, formatReference, type Reference } from '../../reference/reference.js';
import { loadRegistriesConfig, pullEndpoints, type Endpoint, type RegistriesConfig } from './config.js';
import { RegistrySession } from './session.js';
import { fetchManifest, listTags, type RemoteManifest } from './manifests.js';
import { downloadBlob, fetchSmallBlob } from './blobs.js';
import { forEachBounded } from './pool.js';
import { addBlobSource } from './records.js';
import { NoMatchingPlatform } from './errors.js';
import type { RetryPolicy } from './http.js';
import type { ProgressListener } from './progress.js';

// Pull (distribution-spec "Pull"): resolve the reference to a manifest (through an index to the
// wanted platform's entry), download the config and the layers the store lacks, several at once,
// each streamed into the content store and verified against its digest on the way, then record the
// image. Until that last step nothing of the pull is visible as an image, and a blob whose content
// does not match its digest is never visible at all.

export interface PullOptions {
  /** Platform to choose from an index; default: the host's. */
  platform?: Platform;
  /** Blobs downloaded at once (default 4). */
  concurrency?: number;
  onProgress?: ProgressListener;
  /** Where HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR and KILN_CONFIG come from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Mirrors and insecure registries; default: read from kiln's config file. */
  config?: RegistriesConfig;
  retry?: RetryPolicy;
  /**
   * Record the index under the name even for another platform than the host's: a build for several
   * platforms pulls each platform's entry of one base, and the name must keep meaning the index.
   */
  keepIndex?: boolean;
  /** Every platform's image of an index, not only `platform`'s (kiln pull --all-platforms). */
  allPlatforms?: boolean;
  /**
   * Called with what the reference resolved to (the index first, then the chosen manifest) before
   * any blob is downloaded; throws to refuse the image (the client-side trust policy).
   */
  admit?: (digests: string[]) => Promise<void>;
}

export interface PullResult {
  image: StoredImage;
  /** Digest of what the reference names on the registry: the index when it is one. */
  digest: string;
  /** The name recorded in the store: docker.io/library/busybox:latest, or repo@sha256:… for a digest reference. */
  name: string;
  /** Blobs actually downloaded; 0 means the store had everything. */
  downloaded: number;
  /** Where the image came from (a mirror or the registry). */
  endpoint: Endpoint;
}

export const DefaultConcurrency = 4;

/**
 * Pull `reference` into the store and return the stored image (for an index, the entry of the
 * platform asked for). `name@sha256:…` must match that digest. This is what `kiln build` calls for
 * a FROM image the store does not have. The image is recorded under the reference's name; the blobs
 * stay in this process's store lease until the caller releases it (store.content.releaseLease()).
 */
export async function pullImage(store: Store, reference: string, opts: PullOptions = {}): Promise<StoredImage> {
  return (await pull(store, reference, opts)).image;
}

export async function pull(store: Store, reference: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseNamed(reference);
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const endpoints = pullEndpoints(ref.domain, config);
  for (const [i, endpoint] of endpoints.entries()) {
    try {
      return await pullFrom(store, ref, endpoint, opts, env, i < endpoints.length - 1);
    } catch (e) {
      // A mirror is a shortcut, never the authority: whatever goes wrong there, ask the next one.
      if (!(e instanceof MirrorFailed)) throw e;
      opts.onProgress?.({ type: 'warning', message: `mirror ${endpoint.host}: ${e.cause instanceof Error ? e.cause.message : String(e.cause)}; trying ${endpoints[i + 1]!.host}` });
    }
  }
  throw new KilnError('unreachable');
}

/** Every tag of the reference's repository. */
export async function listRemoteTags(reference: string, opts: Pick<PullOptions, 'env' | 'config' | 'retry'> = {}): Promise<string[]> {
  const ref = parseNamed(reference);
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const endpoint = pullEndpoints(ref.domain, config).pop()!;
  return listTags(new RegistrySession(endpoint, { env, retry: opts.retry }), ref.path);
}

class MirrorFailed extends Error {}

interface Resolved {
  top: RemoteManifest;
  image: RemoteManifest;
  manifest: Manifest;
  /** The index entry chosen, when the reference named an index. */
  entry?: Descriptor;
}

async function pullFrom(store: Store, ref: Reference, endpoint: Endpoint, opts: PullOptions, env: NodeJS.ProcessEnv, isFallback: boolean): Promise<PullResult> {
  const emit = opts.onProgress ?? (() => {});
  const session = new RegistrySession(endpoint, { env, retry: opts.retry, onRetry: (why) => emit({ type: 'retry', why }) });
  const repo = endpoint.prefix ? `${endpoint.prefix}/${ref.path}` : ref.path;
  const platform = opts.platform ?? hostPlatform();
  let resolved: Resolved;
  try {
    resolved = await resolve(session, repo, ref.digest ?? ref.tag!, platform);
  } catch (e) {
    if (isFallback) throw new MirrorFailed('mirror failed', { cause: e });
    throw e;
  }
  const { top, image, manifest, entry } = resolved;
  await opts.admit?.(top === image ? [top.digest] : [top.digest, image.digest]);
  // --all-platforms: every other image of the index too (their blobs first, as the chosen one's),
  // and the index recorded under the name.
  const others: { digest: string; bytes: Buffer; manifest: Manifest }[] = [];
  if (opts.allPlatforms && top !== image) {
    for (const m of (top.doc as Index).manifests) {
      if (m.digest === image.digest || !m.platform || m.platform.os === 'unknown' || !isDigest(m.digest)) continue; // attestations: unknown/unknown
      const fetched = await fetchManifest(session, repo, m.digest, m);
      if (isIndex(fetched.mediaType)) continue;
      validateManifest(fetched.doc as Manifest, fetched.digest);
      others.push({ digest: fetched.digest, bytes: fetched.bytes, manifest: fetched.doc as Manifest });
    }
  }
  const blobs = uniqueByDigest([manifest.config, ...manifest.layers, ...others.flatMap((o) => [o.manifest.config, ...o.manifest.layers])]);
  for (const b of blobs) emit({ type: 'blob', digest: b.digest, kind: b === manifest.config ? 'config' : 'layer', state: 'waiting', current: 0, total: b.size });
  let downloaded = 0;
  const source = `${endpoint.host}/${repo}`;
  await forEachBounded(blobs, opts.concurrency ?? DefaultConcurrency, async (b, signal) => {
    const kind = b === manifest.config ? 'config' : 'layer';
    const what = `${kind} ${b.digest} of ${source}`;
    if ((await store.content.size(b.digest)) === b.size) {
      emit({ type: 'blob', digest: b.digest, kind, state: 'exists', current: b.size, total: b.size });
      await addBlobSource(store, b.digest, source);
      return;
    }
    let current = 0;
    emit({ type: 'blob', digest: b.digest, kind, state: 'downloading', current, total: b.size });
    if (kind === 'config') {
      await store.content.put(await fetchSmallBlob(session, repo, b), { digest: b.digest, size: b.size, what });
    } else {
      const stream = downloadBlob(
        session,
        repo,
        b,
        (n) => {
          current += n;
          emit({ type: 'blob', digest: b.digest, kind, state: 'downloading', current, total: b.size });
        },
        (why) => emit({ type: 'retry', digest: b.digest, why }),
        signal,
      );
      await store.content.put(stream, { digest: b.digest, size: b.size, what });
    }
    downloaded++;
    await addBlobSource(store, b.digest, source);
    emit({ type: 'blob', digest: b.digest, kind, state: 'downloaded', current: b.size, total: b.size });
  });

  // Manifests last, then the image: verifyComplete inside addImage sees every blob in place.
  for (const o of others) await store.content.put(o.bytes, { digest: o.digest, size: o.bytes.length, what: `manifest ${o.digest}` });
  await store.content.put(image.bytes, { digest: image.digest, size: image.bytes.length, what: `manifest ${image.digest}` });
  const imageDesc: Descriptor = { mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, ...(entry?.platform ? { platform: entry.platform } : {}) };
  let recorded = imageDesc;
  if (top !== image) {
    await store.content.put(top.bytes, { digest: top.digest, size: top.bytes.length, what: `index ${top.digest}` });
    // The store resolves an index to the host's entry; an index pulled for another platform is
    // recorded as that platform's manifest instead, so that the name means what was pulled.
    const host = hostPlatform();
    if (opts.keepIndex || opts.allPlatforms || (platform.os === host.os && platform.architecture === host.architecture && (platform.variant ?? host.variant) === host.variant)) {
      recorded = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    }
  }
  const name = ref.digest ? `${repositoryOf(ref)}@${ref.digest}` : formatReference(ref);
  await store.addImage(recorded, [name]);
  const config = await store.content.readJSON<{ rootfs?: { diff_ids?: string[] } }>(manifest.config.digest);
  for (const [i, l] of manifest.layers.entries()) {
    // An uncompressed layer's digest is its diffID: its uncompressed size is known for free.
    if (layerCompression(l.mediaType) === 'none' && config.rootfs?.diff_ids?.[i] === l.digest) await store.setLayerInfo(l.digest, { diffId: l.digest, size: l.size });
  }
  const stored = await store.loadImage(recorded, [name], recorded === imageDesc ? undefined : platform);
  return { image: stored, digest: top.digest, name, downloaded, endpoint };
}

async function resolve(session: RegistrySession, repo: string, reference: string, platform: Platform): Promise<Resolved> {
  const top = await fetchManifest(session, repo, reference);
  let image = top;
  let entry: Descriptor | undefined;
  if (isIndex(top.mediaType)) {
    const manifests = (top.doc as Index).manifests;
    entry = selectPlatform(manifests, platform);
    if (!entry) {
      const offered = manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
      throw new NoMatchingPlatform(
        `${session.endpoint.host}/${repo}:${reference}: no matching manifest for ${formatPlatform(platform)} in the manifest list entries${offered.length ? ` (it has ${[...new Set(offered)].join(', ')})` : ''}`,
      );
    }
    if (!isDigest(entry.digest)) throw new ManifestInvalid(`${session.endpoint.host}/${repo}: index entry has invalid digest "${entry.digest}"`);
    image = await fetchManifest(session, repo, entry.digest, entry);
    if (isIndex(image.mediaType)) throw new ManifestInvalid(`${session.endpoint.host}/${repo}@${entry.digest}: an index inside an index is not supported`);
  }
  const manifest = image.doc as Manifest;
  validateManifest(manifest, image.digest);
  for (const d of [manifest.config, ...manifest.layers]) {
    if (!Number.isSafeInteger(d.size) || d.size < 0) throw new ManifestInvalid(`manifest ${image.digest}: blob ${d.digest} has invalid size ${JSON.stringify(d.size)}`);
  }
  return { top, image, manifest, entry };
}

function uniqueByDigest(descs: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return descs.filter((d) => !seen.has(d.digest) && (seen.add(d.digest), true));
}
