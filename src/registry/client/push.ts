import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Store, StoredImage } from '../../store/store.js';
import { compress } from '../../archive/index.js';
import { MediaType, layerCompression } from '../../oci/mediatypes.js';
import type { Descriptor, Index, Manifest } from '../../oci/types.js';
import { DigestMismatch, UsageError } from '../../errors.js';
import { formatReference, normalize, parseNamed, type Reference } from '../../reference/reference.js';
import { loadRegistriesConfig, pushEndpoint, type Endpoint, type RegistriesConfig } from './config.js';
import { RegistrySession, pullScope, pushScope } from './session.js';
import { uploadBlob } from './blobs.js';
import { fetchManifest, putManifest } from './manifests.js';
import { ManifestUnknown } from './errors.js';
import { forEachBounded } from './pool.js';
import { addBlobSource, blobSources, compressedVariant, setCompressedVariant } from './records.js';
import type { RetryPolicy } from './http.js';
import type { ProgressListener } from './progress.js';
import { DefaultConcurrency } from './pull.js';

// Push (distribution-spec "Push"): every blob first (skipped when the registry has it, mounted
// when another repository of the same registry does, else uploaded), the manifest last, so the
// registry never holds a manifest whose blobs are missing. Layers the store keeps uncompressed are
// gzip-compressed once for the registry, and the compressed image replaces the uncompressed one in
// the store, so that an image has one digest, here and in every registry it is pushed to.

export interface PushOptions {
  /** Blobs uploaded at once (default 4). */
  concurrency?: number;
  onProgress?: ProgressListener;
  env?: NodeJS.ProcessEnv;
  config?: RegistriesConfig;
  retry?: RetryPolicy;
  /** Blobs up to this many bytes go in one PUT (default 64 MiB); larger ones in chunks. */
  monolithicMax?: number;
  /** Bytes per PATCH of a chunked upload (default 16 MiB). */
  chunkSize?: number;
}

export interface PushResult {
  /** registry/repository pushed to: localhost:5000/team/app. */
  repository: string;
  /** The tag pushed (or the digest, for a push by digest). */
  reference: string;
  /** Digest and size of the manifest as the registry stores it. */
  digest: string;
  size: number;
  mediaType: string;
  endpoint: Endpoint;
  /** Digests of the artifacts pushed with the image as its referrers (an SBOM). */
  referrers: string[];
}

export const DefaultMonolithicMax = 64 << 20;
export const DefaultChunkSize = 16 << 20;
/** Distinct repositories we ask a token to read for mounts: tokens with many scopes get large. */
const MaxMountSources = 4;

/** Push the stored image `source` to `destination` (default: the name `source` itself). */
export async function pushImage(store: Store, source: string, destination?: string, opts: PushOptions = {}): Promise<PushResult> {
  const emit = opts.onProgress ?? (() => {});
  const img = await store.resolveImage(source);
  if (!destination && !isName(source, img.names)) {
    throw new UsageError(`"${source}" is not a name of the image: give the name to push to (kiln push ${source} REGISTRY/REPOSITORY:TAG)`);
  }
  const dest: Reference = parseNamed(destination ?? source);
  // A name of an image index (kiln build --platform A,B): the index and every image in it, when
  // the store holds them all (a pull keeps only the platform it pulled: then that image alone).
  if (img.index && (await holdsAll(store, img.index))) return pushIndex(store, img.index, dest, opts);
  const configBlob = img.manifest.config;
  for (const b of [configBlob, ...img.manifest.layers]) emit({ type: 'blob', digest: b.digest, kind: b === configBlob ? 'config' : 'layer', state: 'waiting', current: 0, total: b.size });
  const pushed = await distributableImage(store, img, opts);
  const bytes = await store.content.read(pushed.manifestDescriptor.digest);
  // An image without names is not recorded compressed: its referrers are still the stored manifest's.
  const referrersOf = (pushed.names.length ? pushed : img).manifestDescriptor.digest;
  return pushManifest(store, dest, { blobs: [configBlob, ...pushed.manifest.layers], bytes, mediaType: pushed.manifestDescriptor.mediaType, referrersOf }, opts);
}

async function holdsAll(store: Store, index: Descriptor): Promise<boolean> {
  const doc = await store.content.readJSON<Index>(index.digest);
  for (const m of doc.manifests) if (!(await store.content.has(m.digest))) return false;
  return true;
}

/**
 * Push an image index: each manifest (by digest, with its blobs, as stored, so that the index's
 * digests stay true), then the index under the tag (distribution-spec: manifests an index names
 * must exist first).
 */
async function pushIndex(store: Store, index: Descriptor, dest: Reference, opts: PushOptions): Promise<PushResult> {
  const doc = await store.content.readJSON<Index>(index.digest);
  for (const m of doc.manifests) {
    const child = await store.content.readJSON<Partial<Manifest & Index>>(m.digest);
    if (child.manifests) {
      await pushIndex(store, m, { ...dest, tag: undefined, digest: m.digest }, opts);
      continue;
    }
    const blobs = [child.config!, ...(child.layers ?? [])];
    await pushManifest(store, { ...dest, tag: undefined, digest: m.digest }, { blobs, bytes: await store.content.read(m.digest), mediaType: m.mediaType, referrersOf: m.digest }, opts);
  }
  return pushManifest(store, dest, { blobs: [], bytes: await store.content.read(index.digest), mediaType: doc.mediaType ?? index.mediaType, referrersOf: index.digest }, opts);
}

/**
 * The image as a registry gets it, recorded in the store: with layers stored uncompressed, the
 * compressed image (see distributableManifest) takes the image's names and its referrers (an SBOM,
 * with the new subject), so that the local digest, the pushed digest and the digest `kiln sign`
 * signs are one. Signatures of the old digest do not follow (they would no longer verify); they are
 * left behind with a warning. An image without names is pushed compressed but not recorded.
 */
export async function distributableImage(store: Store, img: StoredImage, opts: Pick<PushOptions, 'concurrency' | 'onProgress'> = {}): Promise<StoredImage> {
  const { bytes, changed } = await distributableManifest(store, img, opts);
  if (!changed) return img;
  const descriptor: Descriptor = { mediaType: img.manifestDescriptor.mediaType, digest: 'sha256:' + createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  if (img.names.length === 0) return { ...img, manifestDescriptor: descriptor, manifest: JSON.parse(bytes.toString('utf8')) as Manifest };
  await store.addImage(descriptor, img.names);
  await carryReferrers(store, img.manifestDescriptor.digest, descriptor, (r) =>
    opts.onProgress?.({ type: 'warning', message: `signature ${r.digest} signs ${img.manifestDescriptor.digest}, the image before its layers were compressed: sign the image again` }),
  );
  return store.loadImage(descriptor, img.names);
}

/**
 * Give `to`, a new manifest of the same image (compressed layers, added annotations), copies of
 * the stored referrers of `from` (SBOMs, unsigned attestations) with `to` as their subject.
 * Signatures are not copied: they sign `from`'s digest; `onSignature` hears of each.
 */
export async function carryReferrers(store: Store, from: string, to: Descriptor, onSignature: (referrer: Descriptor) => void = () => {}): Promise<void> {
  for (const r of await store.referrers(from)) {
    if (SignsDigest.some((t) => (r.artifactType ?? '').startsWith(t))) {
      onSignature(r);
      continue;
    }
    const doc = await store.content.readJSON<Manifest>(r.digest);
    const moved = await store.putJSON({ ...doc, subject: { mediaType: to.mediaType, digest: to.digest, size: to.size } }, r.mediaType);
    await store.addReferrer({ ...moved, artifactType: r.artifactType! });
  }
}

/**
 * The manifest of `img` as it goes to a registry: layers stored uncompressed gzip-compressed (as
 * docker and BuildKit send them; the compressed blob is remembered for the next push), else the
 * stored manifest's exact bytes, so that the pushed digest is the local one.
 */
async function distributableManifest(store: Store, img: StoredImage, opts: Pick<PushOptions, 'concurrency' | 'onProgress'> = {}): Promise<{ layers: Descriptor[]; bytes: Buffer; mediaType: string; changed: boolean }> {
  const emit = opts.onProgress ?? (() => {});
  const docker = (img.manifest.mediaType ?? img.manifestDescriptor.mediaType) === MediaType.DockerManifest;
  const layers: Descriptor[] = [...img.manifest.layers];
  await forEachBounded(layers.map((_, i) => i), opts.concurrency ?? DefaultConcurrency, async (i) => {
    const l = layers[i]!;
    if (layerCompression(l.mediaType) !== 'none') return;
    layers[i] = await gzipVariant(store, l, docker, () => emit({ type: 'blob', digest: l.digest, kind: 'layer', state: 'compressing', current: 0, total: l.size }));
    emit({ type: 'blob', digest: layers[i]!.digest, kind: 'layer', state: 'waiting', current: 0, total: layers[i]!.size, replaces: l.digest });
  });
  const changed = layers.some((l, i) => l.digest !== img.manifest.layers[i]!.digest);
  const mediaType = img.manifest.mediaType ?? img.manifestDescriptor.mediaType;
  if (!changed) return { layers, bytes: await store.content.read(img.manifestDescriptor.digest), mediaType, changed };
  const bytes = Buffer.from(JSON.stringify({ ...img.manifest, layers } satisfies Manifest));
  await store.content.put(bytes);
  return { layers, bytes, mediaType, changed };
}

/**
 * Push a manifest and the blobs it names (all in the store) to `dest`: blobs first, each skipped,
 * mounted or uploaded, then the manifest. Images and build cache artifacts both go up this way.
 */
export async function pushManifest(
  store: Store,
  dest: Reference,
  content: { blobs: Descriptor[]; bytes: Buffer; mediaType: string; /** Local manifest whose stored referrers (an SBOM) follow it. */ referrersOf?: string },
  opts: PushOptions = {},
): Promise<PushResult> {
  const emit = opts.onProgress ?? (() => {});
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const endpoint = pushEndpoint(dest.domain, config);
  const repo = dest.path;
  const here = `${endpoint.host}/${repo}`;
  const { blobs, bytes, mediaType } = content;
  const configBlob = blobs[0];

  // Cross-repository mounts need pull access to the source repository in the same token.
  const mountFrom = new Map<string, string[]>();
  const sources = new Set<string>();
  for (const b of blobs) {
    const candidates = (await blobSources(store, b.digest)).filter((s) => s.startsWith(endpoint.host + '/') && s !== here).map((s) => s.slice(endpoint.host.length + 1));
    for (const c of candidates) if (sources.size < MaxMountSources) sources.add(c);
    mountFrom.set(b.digest, candidates.filter((c) => sources.has(c)));
  }
  const scopes = [pushScope(repo), ...[...sources].map(pullScope)];
  const session = new RegistrySession(endpoint, { env, retry: opts.retry, onRetry: (why) => emit({ type: 'retry', why }) });

  await forEachBounded(blobs, opts.concurrency ?? DefaultConcurrency, async (blob, signal) => {
    const kind = blob === configBlob ? 'config' : 'layer';
    let current = 0;
    // Large reads: fewer, bigger writes to the socket than the default 64 KiB.
    const open = (start?: number, end?: number) => createReadStream(store.content.blobPath(blob.digest), { start, end, highWaterMark: 1 << 20 });
    const outcome = await uploadBlob(session, repo, blob, open, {
      scopes,
      mountFrom: mountFrom.get(blob.digest) ?? [],
      monolithicMax: opts.monolithicMax ?? DefaultMonolithicMax,
      chunkSize: opts.chunkSize ?? DefaultChunkSize,
      onBytes: (n) => {
        current += n;
        emit({ type: 'blob', digest: blob.digest, kind, state: 'pushing', current, total: blob.size });
      },
      onRetry: (why) => emit({ type: 'retry', digest: blob.digest, why }),
      signal,
    });
    await addBlobSource(store, blob.digest, here);
    if (outcome.result === 'exists') emit({ type: 'blob', digest: blob.digest, kind, state: 'exists', current: blob.size, total: blob.size });
    else if (outcome.result === 'mounted') emit({ type: 'blob', digest: blob.digest, kind, state: 'mounted', current: blob.size, total: blob.size, from: outcome.from });
    else emit({ type: 'blob', digest: blob.digest, kind, state: 'pushed', current: blob.size, total: blob.size });
  });

  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  if (dest.digest && dest.digest !== digest) throw new DigestMismatch(`cannot push to ${formatReference(dest)}: the manifest's digest is ${digest}`);
  const reference = dest.tag ?? dest.digest!;
  const reported = (await putManifest(session, repo, reference, bytes, mediaType, scopes)).digest;
  if (reported && reported !== digest) throw new DigestMismatch(`${here}:${reference}: the registry stored the manifest as ${reported}, kiln sent ${digest}`);
  await addBlobSource(store, digest, here);
  const referrers = content.referrersOf ? await pushReferrers(store, session, repo, scopes, content.referrersOf, { mediaType, digest, size: bytes.length }, opts) : [];
  return { repository: `${endpoint.registry}/${repo}`, reference, digest, size: bytes.length, mediaType, endpoint, referrers };
}

/**
 * The artifacts the store keeps beside the image (an SBOM from `kiln build --sbom`) follow it, their
 * subject now the manifest as pushed (its digest differs when layers were compressed for the
 * registry). distribution-spec "Pushing Manifests with Subject": a registry that indexed the
 * subject answers OCI-Subject; for one that did not, the client keeps the referrers tag schema
 * itself, an index tagged sha256-<hex of the subject> listing the referrers.
 */
async function pushReferrers(store: Store, session: RegistrySession, repo: string, scopes: string[], local: string, pushed: Descriptor, opts: PushOptions): Promise<string[]> {
  const out: string[] = [];
  for (const r of await store.referrers(local)) {
    const doc = await store.content.readJSON<Manifest>(r.digest);
    if (doc.subject?.digest !== pushed.digest && SignsDigest.some((t) => (r.artifactType ?? '').startsWith(t))) {
      opts.onProgress?.({ type: 'warning', message: `signature ${r.digest} signs ${local}, not the pushed ${pushed.digest}: not pushed (sign the image again)` });
      continue;
    }
    const bytes = doc.subject?.digest === pushed.digest ? await store.content.read(r.digest) : Buffer.from(JSON.stringify({ ...doc, subject: pushed }));
    for (const blob of [doc.config, ...doc.layers]) {
      await uploadBlob(session, repo, blob, (start, end) => createReadStream(store.content.blobPath(blob.digest), { start, end }), {
        scopes,
        mountFrom: [],
        monolithicMax: opts.monolithicMax ?? DefaultMonolithicMax,
        chunkSize: opts.chunkSize ?? DefaultChunkSize,
        onBytes: () => {},
        onRetry: () => {},
      });
    }
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    const mediaType = doc.mediaType ?? MediaType.OciManifest;
    const put = await putManifest(session, repo, digest, bytes, mediaType, scopes);
    if (put.subject !== pushed.digest) {
      await addToReferrersTag(session, repo, scopes, pushed.digest, { mediaType, digest, size: bytes.length, artifactType: doc.artifactType ?? doc.config.mediaType, ...(doc.annotations ? { annotations: doc.annotations } : {}) });
    }
    out.push(digest);
  }
  return out;
}

/** Referrers that sign their subject's digest: moved to another subject they would no longer verify. */
const SignsDigest = ['application/vnd.dev.sigstore.bundle', 'application/vnd.dev.cosign.simplesigning', 'application/vnd.cncf.notary.signature'];

/** distribution-spec "Referrers Tag Schema": the index tagged <alg>-<hex> of the subject gains `desc`. */
export async function addToReferrersTag(session: RegistrySession, repo: string, scopes: string[], subject: string, desc: Descriptor): Promise<void> {
  const tag = subject.replace(':', '-');
  let index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  try {
    const found = await fetchManifest(session, repo, tag);
    if (Array.isArray((found.doc as Index).manifests)) index = found.doc as Index;
  } catch (e) {
    if (!(e instanceof ManifestUnknown)) throw e;
  }
  if (index.manifests.some((m) => m.digest === desc.digest)) return;
  index.manifests.push(desc);
  await putManifest(session, repo, tag, Buffer.from(JSON.stringify(index)), MediaType.OciIndex, scopes);
}

function isName(source: string, names: string[]): boolean {
  try {
    return names.includes(normalize(source));
  } catch {
    return false;
  }
}

/** The gzip blob of an uncompressed layer: remembered from an earlier push, else made now. */
async function gzipVariant(store: Store, layer: Descriptor, docker: boolean, onCompress: () => void): Promise<Descriptor> {
  const mediaType = docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
  const known = await compressedVariant(store, layer.digest);
  if (known) return { ...layer, mediaType, digest: known.digest, size: known.size };
  onCompress();
  const info = await store.content.put(compress(store.content.open(layer.digest), 'gzip'));
  await setCompressedVariant(store, layer.digest, { mediaType, digest: info.digest, size: info.size });
  await store.setLayerInfo(info.digest, { diffId: layer.digest, size: layer.size });
  return { ...layer, mediaType, digest: info.digest, size: info.size };
}
