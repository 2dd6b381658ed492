import type { Store, StoredImage } from '../store/store.js';
import { familiarName } from '../store/describe.js';
import { BaseDigestAnnotation, BaseNameAnnotation, RefNameAnnotation, type Descriptor, type Manifest } from '../oci/types.js';
import { isSbomMediaType, readSbomPackages, sbomPackage, type SbomPackage } from './sbom-document.js';
import { SbomUnreadable } from './errors.js';
import { packageMatches, type VersionRange } from './version-range.js';
import { CATALOG_MEDIA_TYPE, storeSbom } from './stored.js';
import type { Catalog, Package } from './catalog.js';
import { byCodeUnits } from '../order.js';

// "Which images are affected?" over the local store: images whose SBOM lists a package, and images
// built on an image (org.opencontainers.image.base.digest, image-spec annotations.md), directly or
// through images built on it. SBOMs are the artifacts index.json lists with the image as `subject`
// (image-spec image-layout.md allows artifacts there; kiln build --sbom stores them so); an image
// without one is catalogued, and the SBOM stored beside it as build --sbom would have, for next time.

export interface AffectedImage {
  /** Manifest digest. */
  digest: string;
  /** Image ID (config digest). */
  id: string;
  /** Names in docker's short form ("busybox:latest"). */
  names: string[];
}
export interface PackageMatch extends AffectedImage {
  packages: SbomPackage[];
  /** Where the package list came from: a stored SBOM, or cataloguing the image's filesystem. */
  from: 'sbom' | 'catalog';
}
export interface BaseMatch extends AffectedImage {
  base: { digest: string; name?: string };
  /** 1: built directly on the base; 2: on an image built on it; and so on. */
  depth: number;
}

interface Surveyed {
  image: StoredImage;
  /** Every digest the image is known by: its index.json entry (possibly an index) and its manifest. */
  digests: Set<string>;
}

/** The images of the store (artifacts left out) and the SBOM artifacts by subject digest. */
interface StoredSbom {
  artifact: string;
  /** The SPDX or CycloneDX document. */
  layer: Descriptor;
  /** kiln's catalog, stored beside the document by kiln build --sbom; it also has source packages. */
  catalog?: Descriptor;
}

async function survey(store: Store): Promise<{ images: Surveyed[]; sboms: Map<string, StoredSbom[]> }> {
  const images: Surveyed[] = [];
  const sboms = new Map<string, StoredSbom[]>();
  for (const { desc, names } of await store.indexedManifests()) {
    const doc = await store.content.readJSON<Partial<Manifest>>(desc.digest).catch(() => undefined);
    if (!doc) continue;
    if (doc.subject) {
      const layer = doc.layers?.find((l) => isSbomMediaType(l.mediaType)) ?? (isSbomMediaType(doc.artifactType ?? desc.artifactType) && doc.layers?.length === 1 ? doc.layers[0] : undefined);
      if (layer) {
        const list = sboms.get(doc.subject.digest) ?? [];
        list.push({ artifact: desc.digest, layer, catalog: doc.layers?.find((l) => l.mediaType === CATALOG_MEDIA_TYPE) });
        sboms.set(doc.subject.digest, list);
      }
      continue;
    }
    const image = await store.loadImage(desc, names).catch(() => undefined);
    if (image) images.push({ image, digests: new Set([desc.digest, image.manifestDescriptor.digest]) });
  }
  return { images, sboms };
}

const describe = (img: StoredImage): AffectedImage => ({ digest: img.manifestDescriptor.digest, id: img.id, names: img.names.map(familiarName).sort() });

/** A catalogued package as an SBOM would list it. */
function listed(p: Package): SbomPackage | undefined {
  const e = sbomPackage(p.name, p.version, p.purl);
  if (e && p.source) e.source = p.source.name;
  return e;
}

/** Packages of one stored SBOM: from kiln's catalog layer when there is one, else from the document. */
async function packagesOf(store: Store, s: StoredSbom, image: StoredImage): Promise<SbomPackage[]> {
  if (s.catalog) {
    const catalog = await store.content.readJSON<Catalog>(s.catalog.digest).catch(() => undefined);
    if (catalog && Array.isArray(catalog.packages)) return catalog.packages.flatMap((p) => listed(p) ?? []);
  }
  return readSbomPackages(await store.content.read(s.layer.digest), `SBOM ${s.artifact} of ${image.manifestDescriptor.digest}`);
}

/**
 * Images containing a package NAME (or one built from the source package NAME) whose version is in
 * `range`. `problems` collects SBOMs that could not be read (the search goes on without them).
 */
export async function imagesWithPackage(
  store: Store,
  name: string,
  range: VersionRange | undefined,
  opts: { catalogue?: boolean; problems?: string[] } = {},
): Promise<PackageMatch[]> {
  const { images, sboms } = await survey(store);
  const out: PackageMatch[] = [];
  for (const { image, digests } of images) {
    const documents = [...digests].flatMap((d) => sboms.get(d) ?? []);
    let packages: SbomPackage[] = [];
    let from: PackageMatch['from'] = 'sbom';
    for (const s of documents) {
      try {
        packages.push(...(await packagesOf(store, s, image)));
      } catch (e) {
        if (!(e instanceof SbomUnreadable)) throw e;
        opts.problems?.push(e.message);
      }
    }
    if (documents.length === 0) {
      if (!opts.catalogue) continue;
      const { catalog } = await storeSbom(store, image);
      for (const p of catalog.problems) opts.problems?.push(`${image.names[0] ? familiarName(image.names[0]) : image.manifestDescriptor.digest}: ${p.path}: ${p.message}`);
      packages = catalog.packages.flatMap((p) => listed(p) ?? []);
      from = 'catalog';
    }
    const matched: SbomPackage[] = [];
    for (const p of packages) {
      if (!packageMatches(p, name, range)) continue;
      // SPDX and CycloneDX documents of one image list the same packages.
      if (!matched.some((m) => m.name === p.name && m.version === p.version && m.type === p.type)) matched.push(p);
    }
    if (matched.length) out.push({ ...describe(image), packages: matched, from });
  }
  return out.sort((a, b) => byCodeUnits(a.names[0] ?? '\uffff', b.names[0] ?? '\uffff') || byCodeUnits(a.digest, b.digest));
}

/** Images built on the image known by `digests`, directly or transitively, nearest first. */
export async function imagesBuiltOn(store: Store, digests: string[]): Promise<BaseMatch[]> {
  const { images } = await survey(store);
  const out: BaseMatch[] = [];
  const reached = new Set<string>(digests);
  const done = new Set<Surveyed>();
  let frontier = new Set(digests);
  for (let depth = 1; frontier.size > 0; depth++) {
    const next = new Set<string>();
    for (const s of images) {
      const a = s.image.manifest.annotations ?? {};
      const base = a[BaseDigestAnnotation];
      if (done.has(s) || !base || !frontier.has(base)) continue;
      done.add(s);
      out.push({ ...describe(s.image), base: { digest: base, ...(a[BaseNameAnnotation] ? { name: a[BaseNameAnnotation] } : {}) }, depth });
      for (const d of s.digests) if (!reached.has(d)) next.add(d), reached.add(d);
    }
    frontier = next;
  }
  return out;
}

/** Every digest an image reference of the store is known by (for --base IMAGE). */
export async function digestsOf(store: Store, ref: string): Promise<string[]> {
  const img = await store.resolveImage(ref);
  const index = await store.readIndex();
  const entries = index.manifests.filter((m) => m.annotations?.[RefNameAnnotation] && img.names.includes(m.annotations[RefNameAnnotation]!)).map((m) => m.digest);
  return [...new Set([img.manifestDescriptor.digest, ...entries])];
}
