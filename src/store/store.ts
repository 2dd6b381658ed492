import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ContentStore } from './content.js';
import { withStoreLock } from './lock.js';
import { createFileIfAbsent, writeFileAtomic } from './atomic.js';
import { defaultRoot } from './root.js';
import { ImageUnknown, ManifestInvalid, UnsupportedMediaType, ImageInUse, KilnError } from '../errors.js';
import { MediaType, isIndex, isManifest, isConfig, layerCompression } from '../oci/mediatypes.js';
import { RefNameAnnotation, type Descriptor, type ImageConfig, type Index, type Manifest, type Platform } from '../oci/types.js';
import { formatPlatform, hostPlatform, selectPlatform } from '../oci/platform.js';
import { isDigest } from '../oci/digest.js';
import { normalize, parseReference, formatReference } from '../reference/reference.js';

/** An image as the store knows it: its manifest, its config, and the names that point at it. */
export interface StoredImage {
  /** Image ID: the config digest, as docker defines it. */
  id: string;
  manifestDescriptor: Descriptor;
  manifest: Manifest;
  config: ImageConfig;
  /** Fully qualified names (docker.io/library/busybox:latest) tagged to this image. */
  names: string[];
  /** The image index this image was chosen from by platform, when the names name an index. */
  index?: Descriptor;
}

/** An image in the store (or a registry) has no entry for the platform asked for. */
export class PlatformUnknown extends ImageUnknown {}

// The platform kiln builds for and picks from indexes, and index matching: oci/platform's.
export { formatPlatform, hostPlatform, selectPlatform } from '../oci/platform.js';
/**
 * The local store: an OCI image layout (oci-layout, index.json, blobs/) at its root. index.json lists
 * every image; entries carrying org.opencontainers.image.ref.name are tags, entries without it are
 * dangling images (docker's <none>:<none>). index.json is only ever replaced whole, under a lock.
 */
export class Store {
  readonly content: ContentStore;

  private constructor(readonly root: string) {
    this.content = new ContentStore(root);
  }

  static async open(root: string = defaultRoot()): Promise<Store> {
    // Absolute from here on: mount(8), runc and the overlay options are given paths below the store,
    // and a relative --root (or KILN_ROOT) would name another place from their working directories.
    root = resolve(root);
    await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    // A new store's two files are not fsynced: every later index.json is, so an empty one can only
    // be this first one after a crash, and reads as the empty index it was (readIndex); an empty
    // oci-layout is written again here. (On ext4 the fsync cost a first pull 40–50 ms.)
    if (!((await stat(join(root, 'oci-layout')).catch(() => undefined))?.size ?? 0)) {
      await writeFileAtomic(join(root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), { durable: false });
    }
    if (!existsSync(join(root, 'index.json'))) await createFileIfAbsent(join(root, 'index.json'), JSON.stringify(emptyIndex()));
    return new Store(root);
  }

  async readIndex(): Promise<Index> {
    try {
      const text = await readFile(join(this.root, 'index.json'), 'utf8');
      return text === '' ? emptyIndex() : (JSON.parse(text) as Index); // empty: see Store.open
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyIndex();
      throw new KilnError(`${join(this.root, 'index.json')}: ${(e as Error).message}`);
    }
  }

  /** Apply `change` to index.json atomically with respect to other kiln processes. */
  async updateIndex<T>(change: (index: Index) => T | Promise<T>): Promise<T> {
    return withStoreLock(this.root, 'index', async () => {
      const index = await this.readIndex();
      const result = await change(index);
      await writeIndexFile(this.root, index);
      return result;
    });
  }

  /** Store a JSON document as a blob, with its canonical bytes. */
  async putJSON(value: unknown, mediaType: string): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(value));
    const info = await this.content.put(bytes);
    return { mediaType, digest: info.digest, size: info.size };
  }

  /** Write config and manifest for already-stored layers, record the image, tag it with `names`. */
  async writeImage(config: ImageConfig, layers: Descriptor[], names: string[] = [], annotations?: Record<string, string>): Promise<StoredImage> {
    const configDesc = await this.putJSON(config, MediaType.OciConfig);
    const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers };
    if (annotations && Object.keys(annotations).length) manifest.annotations = annotations;
    const manifestDescriptor = await this.putJSON(manifest, MediaType.OciManifest);
    await this.addImage(manifestDescriptor, names);
    return { id: configDesc.digest, manifestDescriptor, manifest, config, names: names.map(normalize) };
  }

  /**
   * Record an image whose blobs are all in the store and point `names` at it. Checks completeness first,
   * so that an image with a missing blob is never visible. A name moved away from another image leaves
   * that image dangling, as docker does.
   */
  async addImage(desc: Descriptor, names: string[]): Promise<void> {
    const full = names.map(normalize);
    const plain: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (desc.platform) plain.platform = desc.platform;
    // Already so (a fully cached rebuild under the same tags): nothing to write, no lock to take.
    // The names already reference the image, so gc keeps its blobs; a concurrent rmi is ordered after.
    if (full.length > 0 && alreadyNamed(await this.readIndex(), plain, full)) return;
    await this.updateIndex(async (index) => {
      // Checked under the index lock, which gc holds too: checked outside it, a concurrent rmi and gc
      // could delete the blobs between the check and the write, leaving a name on a missing image.
      await this.verifyComplete(desc);
      const previous = new Map<string, Descriptor>();
      index.manifests = index.manifests.filter((m) => {
        const name = m.annotations?.[RefNameAnnotation];
        if (name && full.includes(name)) {
          if (m.digest !== desc.digest) previous.set(m.digest, { mediaType: m.mediaType, digest: m.digest, size: m.size });
          return false;
        }
        // an untagged entry of this very image is replaced by its new tags
        if (!name && m.digest === desc.digest && full.length > 0) return false;
        return true;
      });
      for (const name of full) index.manifests.push({ ...plain, annotations: { [RefNameAnnotation]: name } });
      if (full.length === 0 && !index.manifests.some((m) => m.digest === desc.digest)) index.manifests.push(plain);
      // The same image (same config, so same image ID) under another manifest, such as one loaded
      // again from a docker-archive, is replaced rather than left dangling beside it, as in docker.
      const id = await this.configDigestOf(desc.digest);
      for (const [digest, old] of previous) {
        if (id !== undefined && (await this.configDigestOf(digest)) === id) continue;
        if (!index.manifests.some((m) => m.digest === digest)) index.manifests.push(old);
      }
    });
  }

  /** The config digest (image ID) of a manifest; undefined for an index or an unreadable blob. */
  private async configDigestOf(manifestDigest: string): Promise<string | undefined> {
    try {
      return (await this.content.readJSON<Partial<Manifest>>(manifestDigest)).config?.digest;
    } catch {
      return undefined;
    }
  }

  /** Throw unless the manifest (or index) and every blob it references are present. */
  async verifyComplete(desc: Descriptor): Promise<void> {
    if (!(await this.content.has(desc.digest))) throw new ManifestInvalid(`manifest ${desc.digest} is not in the store`);
    const doc = await this.content.readJSON<Manifest & Index>(desc.digest);
    const mt = doc.mediaType ?? desc.mediaType;
    if (isIndex(mt) || (!doc.config && Array.isArray(doc.manifests))) {
      for (const m of doc.manifests) if (await this.content.has(m.digest)) await this.verifyComplete(m);
      return;
    }
    if (!isManifest(mt) && !doc.config) throw new UnsupportedMediaType(`unsupported manifest media type "${mt}"`);
    validateManifest(doc, desc.digest);
    for (const d of [doc.config, ...doc.layers]) {
      if (!(await this.content.has(d.digest))) {
        throw new ManifestInvalid(`manifest ${desc.digest} references blob ${d.digest} (${d.mediaType}) which is missing`);
      }
    }
  }

  /** index.json's entries grouped by manifest: one per distinct digest, with every name it has. */
  async indexedManifests(): Promise<{ desc: Descriptor; names: string[] }[]> {
    const index = await this.readIndex();
    const byDigest = new Map<string, { desc: Descriptor; names: string[] }>();
    for (const m of index.manifests) {
      const entry = byDigest.get(m.digest) ?? { desc: m, names: [] };
      const name = m.annotations?.[RefNameAnnotation];
      if (name) entry.names.push(name);
      byDigest.set(m.digest, entry);
    }
    return [...byDigest.values()];
  }

  /** All images, one record per distinct manifest, with their names; an index as its `platform` entry. */
  async listImages(platform?: Platform | 'any'): Promise<StoredImage[]> {
    const out: StoredImage[] = [];
    for (const { desc, names } of await this.indexedManifests()) {
      const img = await this.loadImage(desc, names, platform).catch(() => undefined);
      if (img) out.push(img);
    }
    return out;
  }

  /**
   * Read manifest and config behind a descriptor; an index resolves to its `platform` entry (the
   * host's by default; 'any': the host's, else the first the store holds, for listings). With a
   * platform given, a single image of another OS or architecture is no match.
   */
  async loadImage(desc: Descriptor, names: string[] = [], platform?: Platform | 'any'): Promise<StoredImage> {
    const doc = await this.content.readJSON<Manifest & Index>(desc.digest);
    const mt = doc.mediaType ?? desc.mediaType;
    if (platform === 'any') {
      const host = await this.loadImage(desc, names).catch((e: Error) => e);
      if (!(host instanceof Error) || !Array.isArray(doc.manifests)) {
        if (host instanceof Error) throw host;
        return host;
      }
      for (const m of doc.manifests) {
        if (!m.platform) continue;
        const img = await this.loadImage(desc, names, m.platform).catch(() => undefined);
        if (img) return img;
      }
      throw host;
    }
    if (isIndex(mt) || (!doc.config && Array.isArray(doc.manifests))) {
      const want = platform ?? hostPlatform();
      const chosen = selectPlatform(doc.manifests, want);
      if (!chosen) throw new ImageUnknown(`index ${desc.digest} has no manifest for ${formatPlatform(want)}`);
      const inner = await this.loadImage(chosen, names);
      return { ...inner, index: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size } };
    }
    validateManifest(doc, desc.digest);
    const config = await this.content.readJSON<ImageConfig>(doc.config.digest);
    if (platform && (config.os !== platform.os || config.architecture !== platform.architecture)) {
      throw new ImageUnknown(`image ${desc.digest} is ${formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) })}, not ${formatPlatform(platform)}`);
    }
    return { id: doc.config.digest, manifestDescriptor: desc, manifest: doc, config, names };
  }

  /**
   * The platforms of the image `ref` names: every entry of an index, or the one of a single image
   * (from its config). Undefined when nothing of that name is in the store.
   */
  async platformsOf(ref: string): Promise<{ index?: Descriptor; platforms: Platform[] } | undefined> {
    const img = await this.resolveImage(ref).catch(() => undefined);
    const any = img ?? (await this.resolveAnyPlatform(ref));
    if (!any) return undefined;
    if (!any.index) return { platforms: [{ os: any.config.os, architecture: any.config.architecture, ...(any.config.variant ? { variant: any.config.variant } : {}) }] };
    const doc = await this.content.readJSON<Index>(any.index.digest);
    return { index: any.index, platforms: doc.manifests.filter((m) => m.platform).map((m) => m.platform!) };
  }

  /** `ref` as the first platform its index has, when it has none for the host. */
  private async resolveAnyPlatform(ref: string): Promise<StoredImage | undefined> {
    const name = (() => {
      try {
        return normalize(ref);
      } catch {
        return undefined;
      }
    })();
    for (const { desc, names } of await this.indexedManifests()) {
      if (!(name && names.includes(name)) && desc.digest !== ref) continue;
      const doc = await this.content.readJSON<Partial<Index>>(desc.digest).catch(() => undefined);
      for (const m of doc?.manifests ?? []) {
        if (!m.platform) continue;
        const img = await this.loadImage(desc, names, m.platform).catch(() => undefined);
        if (img) return img;
      }
    }
    return undefined;
  }

  /**
   * Find an image by name (busybox, busybox:1, name@sha256:…), by image ID or a unique prefix of it,
   * or by manifest digest. Names win over ID prefixes, as in docker.
   */
  async resolveImage(ref: string, platform?: Platform): Promise<StoredImage> {
    if (platform) {
      // An image of that name without the platform is an error naming both (not "not found").
      try {
        return await this.resolveImageIn(await this.listImages(platform), ref);
      } catch (e) {
        if (!(e instanceof ImageUnknown)) throw e;
        const has = await this.platformsOf(ref);
        if (!has) throw e;
        // Listed but not here: an index pulled for other platforms, whose entry can still be pulled.
        if (has.platforms.some((p) => selectPlatform([{ mediaType: MediaType.OciManifest, digest: '', size: 0, platform: p }], platform))) throw e;
        throw new PlatformUnknown(`image "${ref}" has no ${formatPlatform(platform)} variant (it has ${has.platforms.map(formatPlatform).join(', ') || 'no platform'})`);
      }
    }
    return this.resolveImageIn(await this.listImages(), ref);
  }

  private async resolveImageIn(images: StoredImage[], ref: string): Promise<StoredImage> {
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed) {
      if (parsed.digest) {
        // NAME@sha256:… of an image index (what kiln push prints for a multi-platform image) names it too.
        const hit = images.find((i) => i.manifestDescriptor.digest === parsed.digest || i.id === parsed.digest || i.index?.digest === parsed.digest);
        if (hit) return hit;
      } else {
        const name = normalize(ref);
        const hit = images.find((i) => i.names.includes(name));
        if (hit) return hit;
      }
    }
    const id = ref.startsWith('sha256:') ? ref : /^[a-f0-9]{1,64}$/.test(ref) ? `sha256:${ref}` : undefined;
    if (id) {
      const hits = images.filter((i) => i.id.startsWith(id) || i.manifestDescriptor.digest === id || i.index?.digest === id);
      const ids = new Set(hits.map((h) => h.id));
      if (ids.size === 1) return hits[0]!;
      if (ids.size > 1) throw new ImageUnknown(`image ID prefix "${ref}" is ambiguous: it matches ${ids.size} images`);
    }
    throw new ImageUnknown(`image "${ref}" not found in the store`);
  }

  /** Point `target` (a name) at the image `source` names. */
  async tag(source: string, target: string): Promise<void> {
    const img = await this.resolveImage(source);
    await this.addImage(img.manifestDescriptor, [target]);
  }

  /**
   * docker rmi semantics: a name untags (and deletes the image when it was its last name); an ID
   * deletes the image, refusing when it has several names unless forced.
   */
  async removeImage(ref: string, force = false): Promise<{ untagged: string[]; deleted?: string }> {
    const img = await this.resolveImage(ref);
    let byName: string | undefined;
    try {
      const p = parseReference(ref);
      const n = formatReference({ ...p, tag: p.tag ?? (p.digest ? undefined : 'latest') });
      if (img.names.includes(n)) byName = n;
    } catch {
      /* an ID */
    }
    if (!byName && img.names.length > 1 && !force) {
      throw new ImageInUse(`unable to delete ${img.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`);
    }
    const untag = byName ? [byName] : img.names;
    return this.updateIndex((index) => {
      index.manifests = index.manifests.filter((m) => {
        if (m.digest !== img.manifestDescriptor.digest) return true;
        const name = m.annotations?.[RefNameAnnotation];
        return name !== undefined && !untag.includes(name);
      });
      const stillThere = index.manifests.some((m) => m.digest === img.manifestDescriptor.digest);
      return { untagged: untag, deleted: stillThere ? undefined : img.id };
    });
  }

  /**
   * Delete blobs that no index entry, cache record or live lease references. Runs under the index lock,
   * so no image can be recorded halfway through; blobs being written are protected by their writer's lease.
   */
  async gc(extraRoots: Iterable<string> = []): Promise<{ removed: number; bytes: number }> {
    return withStoreLock(this.root, 'index', async () => {
      const live = new Set<string>(extraRoots);
      for (const d of await this.content.leasedDigests()) live.add(d);
      for (const d of await this.cacheRecordDigests()) live.add(d);
      const index = await this.readIndex();
      const walked = new Set<string>();
      const referrers: { desc: Descriptor; subject: string }[] = [];
      for (const m of index.manifests) {
        const subject = m.artifactType ? await this.subjectOf(m.digest) : undefined;
        if (subject) referrers.push({ desc: m, subject });
        else await this.markReachable(m.digest, live, walked);
      }
      // A referrer lives as long as its subject does (distribution-spec: referrers follow their
      // subject), a referrer of a referrer too; the others leave index.json with their subject.
      let orphans = referrers;
      for (let progress = true; progress; ) {
        progress = false;
        const left: typeof orphans = [];
        for (const r of orphans) {
          if (!live.has(r.subject)) left.push(r);
          else {
            await this.markReachable(r.desc.digest, live, walked);
            progress = true;
          }
        }
        orphans = left;
      }
      if (orphans.length) {
        index.manifests = index.manifests.filter((m) => !orphans.some((o) => o.desc === m));
        await writeIndexFile(this.root, index);
      }
      const swept = await this.content.sweep(live);
      await this.content.cleanIngest();
      return swept;
    });
  }

  /**
   * Record `desc`, an artifact manifest (already stored) whose `subject` is a manifest of the store,
   * in index.json as the OCI image layout allows; it replaces an earlier referrer of the same subject
   * with the same artifactType (an SBOM made again), unless `replace` is false (signatures by
   * several keys). gc keeps it as long as its subject lives.
   */
  async addReferrer(desc: Descriptor & { artifactType: string }, replace = true): Promise<void> {
    const subject = await this.subjectOf(desc.digest);
    if (!subject) throw new ManifestInvalid(`manifest ${desc.digest} has no subject`);
    const plain: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, artifactType: desc.artifactType };
    await this.updateIndex(async (index) => {
      const doc = await this.content.readJSON<Manifest>(desc.digest);
      for (const d of [doc.config, ...doc.layers]) {
        if (!(await this.content.has(d.digest))) throw new ManifestInvalid(`manifest ${desc.digest} references blob ${d.digest} which is missing`);
      }
      const kept: Descriptor[] = [];
      for (const m of index.manifests) {
        if (m.digest === desc.digest) continue;
        if (replace && m.artifactType === desc.artifactType && (await this.subjectOf(m.digest)) === subject) continue;
        kept.push(m);
      }
      index.manifests = [...kept, plain];
    });
  }

  /** The artifact manifests index.json lists whose subject is `digest`, optionally of one artifactType. */
  async referrers(digest: string, artifactType?: string): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const m of (await this.readIndex()).manifests) {
      if (!m.artifactType || (artifactType && m.artifactType !== artifactType)) continue;
      if ((await this.subjectOf(m.digest)) === digest) out.push(m);
    }
    return out;
  }

  private async subjectOf(digest: string): Promise<string | undefined> {
    try {
      return (await this.content.readJSON<Partial<Manifest>>(digest)).subject?.digest;
    } catch {
      return undefined;
    }
  }

  /**
   * Mark a manifest or index and everything below it. Whether it was walked is tracked apart from
   * `live`: a manifest already live because a loading process leased it must still have its layers
   * marked, or a concurrent load of an image already tagged would let gc delete that image's layers.
   */
  private async markReachable(digest: string, live: Set<string>, walked: Set<string>): Promise<void> {
    if (walked.has(digest)) return;
    walked.add(digest);
    live.add(digest);
    let doc: Partial<Manifest & Index>;
    try {
      doc = await this.content.readJSON(digest);
    } catch {
      return;
    }
    if (doc.config) live.add(doc.config.digest);
    for (const l of doc.layers ?? []) live.add(l.digest);
    if (doc.subject) live.add(doc.subject.digest);
    for (const m of doc.manifests ?? []) await this.markReachable(m.digest, live, walked);
  }

  /** Blobs the build cache still points at (cache/<key>.json files list their digests). */
  private async cacheRecordDigests(): Promise<string[]> {
    const dir = join(this.root, 'cache');
    const out: string[] = [];
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const text = await readFile(join(dir, name), 'utf8').catch(() => '');
      for (const m of text.matchAll(/"(sha256:[a-f0-9]{64})"/g)) out.push(m[1]!);
    }
    return out;
  }

  /** Uncompressed size of a layer, recorded when the layer was written or loaded; undefined if unknown. */
  async layerInfo(digest: string): Promise<{ diffId: string; size: number } | undefined> {
    try {
      return JSON.parse(await readFile(join(this.root, 'layers', digest.replace(':', '-') + '.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  async setLayerInfo(digest: string, info: { diffId: string; size: number }): Promise<void> {
    const path = join(this.root, 'layers', digest.replace(':', '-') + '.json');
    if (existsSync(path)) return;
    await writeFileAtomic(path, JSON.stringify(info));
  }

  /** Sum of the image's uncompressed layer sizes when known, else of the compressed ones (docker's Size). */
  async imageSize(img: StoredImage): Promise<number> {
    let total = 0;
    for (const l of img.manifest.layers) total += (await this.layerInfo(l.digest))?.size ?? l.size;
    return total;
  }
}

/** Every one of `names` is in the index on exactly this descriptor. */
function alreadyNamed(index: Index, desc: Descriptor, names: string[]): boolean {
  const same = (m: Descriptor) => m.digest === desc.digest && m.mediaType === desc.mediaType && m.size === desc.size && JSON.stringify(m.platform) === JSON.stringify(desc.platform);
  // An untagged entry of the image would be replaced by the names: that is a change to make.
  if (index.manifests.some((m) => !m.annotations?.[RefNameAnnotation] && m.digest === desc.digest)) return false;
  return names.every((name) => {
    const entries = index.manifests.filter((m) => m.annotations?.[RefNameAnnotation] === name);
    return entries.length === 1 && same(entries[0]!) && Object.keys(entries[0]!.annotations!).length === 1;
  });
}

function emptyIndex(): Index {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

async function writeIndexFile(root: string, index: Index): Promise<void> {
  await writeFileAtomic(join(root, 'index.json'), JSON.stringify(index));
}

/** Reject manifests kiln cannot use, naming the field at fault. */
export function validateManifest(doc: Partial<Manifest>, digest: string): asserts doc is Manifest {
  if (doc.schemaVersion !== 2) throw new ManifestInvalid(`manifest ${digest}: schemaVersion must be 2`);
  if (!doc.config || typeof doc.config.digest !== 'string' || !isDigest(doc.config.digest)) {
    throw new ManifestInvalid(`manifest ${digest}: config.digest is missing or invalid`);
  }
  if (!isConfig(doc.config.mediaType)) {
    throw new UnsupportedMediaType(`manifest ${digest}: unsupported config media type "${doc.config.mediaType}"`);
  }
  if (!Array.isArray(doc.layers)) throw new ManifestInvalid(`manifest ${digest}: layers must be an array`);
  doc.layers.forEach((l, i) => {
    if (!l || !isDigest(l.digest)) throw new ManifestInvalid(`manifest ${digest}: layers[${i}].digest is missing or invalid`);
    if (layerCompression(l.mediaType) === undefined) {
      throw new UnsupportedMediaType(`manifest ${digest}: layers[${i}] has unsupported media type "${l.mediaType}"`);
    }
  });
}


