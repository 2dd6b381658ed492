import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { decompress } from '../archive/index.js';
import { ArchiveInvalid, ManifestInvalid, KilnError } from '../errors.js';
import { MediaType, isIndex, isManifest } from '../oci/mediatypes.js';
import { RefNameAnnotation, type Descriptor, type ImageConfig, type Index, type Manifest } from '../oci/types.js';
import { DigestingStream, isDigest } from '../oci/digest.js';
import { parseReference, formatReference } from '../reference/reference.js';
import type { Store } from './store.js';

/** Annotation containerd and docker (since 25) use for the full image name inside OCI archives. */
export const ContainerdImageNameAnnotation = 'io.containerd.image.name';

export interface LoadedImage {
  manifest: Descriptor;
  names: string[];
  id: string;
}

/**
 * `kiln load`: read an OCI archive (oci-layout + index.json + blobs/) or a docker-archive
 * (manifest.json + config + layer tars), gzip-compressed or not, in one streaming pass. Blobs are
 * verified and stored as they arrive; images become visible only after the whole archive checked out.
 */
export async function loadArchive(store: Store, input: Readable, source = 'archive'): Promise<LoadedImage[]> {
  const entries = await ingestEntries(store, input, source);
  if (entries.json.has('index.json') && entries.json.has('oci-layout')) return loadOci(store, entries, source);
  if (entries.json.has('manifest.json')) return loadDocker(store, entries, source);
  throw new ArchiveInvalid(`${source}: neither an OCI archive (oci-layout, index.json) nor a docker-archive (manifest.json)`);
}

export async function loadArchiveFile(store: Store, path: string): Promise<LoadedImage[]> {
  return loadArchive(store, createReadStream(path), path);
}

interface Entries {
  /** Small JSON-ish files kept in memory by path (index.json, manifest.json, *.json configs, repositories). */
  json: Map<string, Buffer>;
  /** Every regular file stored as a blob: path → digest, size. */
  blobs: Map<string, { digest: string; size: number }>;
}

const SmallFileLimit = 4 << 20;

async function ingestEntries(store: Store, input: Readable, source: string): Promise<Entries> {
  const json = new Map<string, Buffer>();
  const blobs = new Map<string, { digest: string; size: number }>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const path = posix.normalize(header.name).replace(/^(\.\/)+/, '').replace(/\/$/, '');
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        stream.resume();
        stream.on('end', next);
        return;
      }
      if (isArchiveMetadata(path) && (header.size ?? 0) <= SmallFileLimit) {
        // Read, never stored: no image references these files, so as blobs they would only be garbage.
        const chunks: Buffer[] = [];
        stream.on('data', (c) => chunks.push(c as Buffer));
        stream.on('error', (e: Error) => next(e));
        stream.on('end', () => {
          json.set(path, Buffer.concat(chunks));
          next();
        });
        return;
      }
      const named = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(path);
      const expect = named ? { digest: `${named[1]}:${named[2]}`, size: header.size, what: `${source}: ${path}` } : { size: header.size, what: `${source}: ${path}` };
      if (named && !isDigest(expect.digest!)) {
        stream.resume();
        next(new ArchiveInvalid(`${source}: ${path} is not named by a valid digest`));
        return;
      }
      const small = (header.size ?? 0) <= SmallFileLimit && (path.endsWith('.json') || path === 'repositories' || path === 'oci-layout' || !!named);
      const chunks: Buffer[] = [];
      store.content
        .put(small ? keepChunks(stream as unknown as AsyncIterable<Buffer>, chunks) : (stream as unknown as AsyncIterable<Buffer>), expect)
        .then((info) => {
          blobs.set(path, info);
          if (small) json.set(path, Buffer.concat(chunks));
          next();
        })
        .catch((e) => next(e));
    });
    extract.on('finish', resolve);
    extract.on('error', (e: Error) => reject(e instanceof KilnError ? e : new ArchiveInvalid(`${source}: ${e.message}`)));
  });
  const plain = decompress(input);
  plain.on('error', (e: Error) => extract.destroy(e));
  plain.pipe(extract);
  await done;
  if (blobs.size === 0 && json.size === 0) throw new ArchiveInvalid(`${source}: empty or not a tar archive`);
  return { json, blobs };
}

/** The files that describe an archive rather than being part of an image. */
function isArchiveMetadata(path: string): boolean {
  return path === 'index.json' || path === 'oci-layout' || path === 'manifest.json' || path === 'repositories';
}

async function* keepChunks(src: AsyncIterable<Buffer>, into: Buffer[]): AsyncIterable<Buffer> {
  for await (const c of src) {
    into.push(c);
    yield c;
  }
}

function parseJSON<T>(entries: Entries, path: string, source: string): T {
  const buf = entries.json.get(path);
  if (!buf) throw new ArchiveInvalid(`${source}: ${path} is missing`);
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (e) {
    throw new ArchiveInvalid(`${source}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

/** Names an index entry carries: io.containerd.image.name, else a ref.name that is a full reference. */
function namesOf(desc: Descriptor): string[] {
  const full = desc.annotations?.[ContainerdImageNameAnnotation];
  const ref = desc.annotations?.[RefNameAnnotation];
  for (const candidate of [full, ref]) {
    if (!candidate) continue;
    // A bare tag ("latest") names no repository; it cannot become an image name on its own.
    if (candidate === ref && !/[:/@]/.test(candidate)) continue;
    try {
      const p = parseReference(candidate);
      return [formatReference({ ...p, tag: p.tag ?? (p.digest ? undefined : 'latest') })];
    } catch {
      /* not a reference */
    }
  }
  return [];
}

async function loadOci(store: Store, entries: Entries, source: string): Promise<LoadedImage[]> {
  const layout = parseJSON<{ imageLayoutVersion?: string }>(entries, 'oci-layout', source);
  if (!layout.imageLayoutVersion) throw new ArchiveInvalid(`${source}: oci-layout has no imageLayoutVersion`);
  const index = parseJSON<Index>(entries, 'index.json', source);
  if (!Array.isArray(index.manifests)) throw new ManifestInvalid(`${source}: index.json has no manifests array`);
  const out: LoadedImage[] = [];
  // Check every image before recording any, so a bad archive leaves the store as it was.
  for (const desc of index.manifests) if (!isReferrer(desc)) await checkDescriptor(store, desc, source);
  const images = index.manifests.filter((d) => !isReferrer(d));
  for (const desc of images) {
    const names = namesOf(desc);
    await store.addImage({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size, ...(desc.platform ? { platform: desc.platform } : {}) }, names);
    const img = await store.loadImage(desc, names);
    await recordLayerInfo(store, img.manifest, img.config);
    out.push({ manifest: desc, names, id: img.id });
  }
  // Artifacts whose subject is an image (signatures, SBOMs, as kiln save writes them) become its referrers again.
  for (const desc of index.manifests) if (isReferrer(desc)) await store.addReferrer({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size, artifactType: desc.artifactType! }, false);
  return out;
}

/** An index.json entry with an artifactType and no name: an artifact, not an image. */
function isReferrer(desc: Descriptor): boolean {
  return !!desc.artifactType && namesOf(desc).length === 0;
}

async function checkDescriptor(store: Store, desc: Descriptor, source: string): Promise<void> {
  if (!isDigest(desc.digest)) throw new ManifestInvalid(`${source}: index.json entry has invalid digest "${desc.digest}"`);
  if (!isManifest(desc.mediaType) && !isIndex(desc.mediaType)) {
    throw new ManifestInvalid(`${source}: index.json entry ${desc.digest} has unsupported media type "${desc.mediaType}"`);
  }
  if (!(await store.content.has(desc.digest))) throw new ManifestInvalid(`${source}: manifest ${desc.digest} is missing from blobs/`);
  try {
    await store.verifyComplete(desc);
  } catch (e) {
    throw new (e as { constructor: new (m: string) => Error }).constructor(`${source}: ${(e as Error).message}`);
  }
}

/** Remember each layer's diffID and uncompressed size when the layer is stored uncompressed. */
async function recordLayerInfo(store: Store, manifest: Manifest, config: ImageConfig): Promise<void> {
  for (const [i, l] of manifest.layers.entries()) {
    const diffId = config.rootfs?.diff_ids?.[i];
    if (diffId && diffId === l.digest) await store.setLayerInfo(l.digest, { diffId, size: l.size });
  }
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function loadDocker(store: Store, entries: Entries, source: string): Promise<LoadedImage[]> {
  const list = parseJSON<DockerManifestEntry[]>(entries, 'manifest.json', source);
  if (!Array.isArray(list)) throw new ArchiveInvalid(`${source}: manifest.json is not an array`);
  const prepared: { config: ImageConfig; configDesc: Descriptor; layers: Descriptor[]; names: string[] }[] = [];
  for (const [n, item] of list.entries()) {
    const where = `${source}: manifest.json[${n}]`;
    if (typeof item?.Config !== 'string' || !Array.isArray(item.Layers)) throw new ArchiveInvalid(`${where}: needs Config and Layers`);
    const cfgBlob = entries.blobs.get(posix.normalize(item.Config));
    if (!cfgBlob) throw new ArchiveInvalid(`${where}: config ${item.Config} is missing from the archive`);
    const config = parseJSON<ImageConfig>(entries, posix.normalize(item.Config), source);
    if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) throw new ManifestInvalid(`${where}: config has no rootfs.diff_ids`);
    if (config.rootfs.diff_ids.length !== item.Layers.length) {
      throw new ManifestInvalid(`${where}: ${item.Layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`);
    }
    const layers: Descriptor[] = [];
    for (const [i, path] of item.Layers.entries()) {
      const blob = entries.blobs.get(posix.normalize(path));
      if (!blob) throw new ArchiveInvalid(`${where}: layer ${path} is missing from the archive`);
      const diffId = config.rootfs.diff_ids[i]!;
      // Layer tars in a docker-archive are usually uncompressed, and then their digest is the diffID.
      // Docker 25+ may gzip them; then the diffID is checked by decompressing once.
      if (blob.digest !== diffId) {
        const check = new DigestingStream({ digest: diffId, what: `${where}: layer ${path}` });
        const plain = decompress(store.content.open(blob.digest));
        await new Promise<void>((resolve, reject) => {
          plain.on('error', reject);
          check.on('error', reject);
          check.on('finish', resolve);
          plain.pipe(check).resume();
        });
        const mediaType = (await isGzipBlob(store, blob.digest)) ? MediaType.OciLayerGzip : MediaType.OciLayer;
        layers.push({ mediaType, digest: blob.digest, size: blob.size });
        await store.setLayerInfo(blob.digest, { diffId, size: check.size });
      } else {
        layers.push({ mediaType: MediaType.OciLayer, digest: blob.digest, size: blob.size });
        await store.setLayerInfo(blob.digest, { diffId, size: blob.size });
      }
    }
    const names = (item.RepoTags ?? []).map((t) => {
      const p = parseReference(t);
      return formatReference({ ...p, tag: p.tag ?? 'latest' });
    });
    prepared.push({ config, configDesc: { mediaType: MediaType.OciConfig, digest: cfgBlob.digest, size: cfgBlob.size }, layers, names });
  }
  const out: LoadedImage[] = [];
  for (const p of prepared) {
    const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: p.configDesc, layers: p.layers };
    const desc = await store.putJSON(manifest, MediaType.OciManifest);
    await store.addImage(desc, p.names);
    out.push({ manifest: desc, names: p.names, id: p.configDesc.digest });
  }
  return out;
}

async function isGzipBlob(store: Store, digest: string): Promise<boolean> {
  const s = store.content.open(digest, { start: 0, end: 1 });
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  const b = Buffer.concat(chunks);
  return b[0] === 0x1f && b[1] === 0x8b;
}

