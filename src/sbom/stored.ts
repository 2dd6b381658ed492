// An SBOM kept beside its image in the local store, as an OCI artifact (image-spec manifest.md,
// "Guidelines for Artifact Usage"): artifactType application/spdx+json, an empty config, the SPDX
// document and kiln's catalog as its two layers, and the image manifest as its `subject`, so the
// store keeps it exactly as long as the image and a push can hand it to a registry's referrers API.

import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';
import { familiarName } from '../store/describe.js';
import { catalogImage, type Catalog } from './catalog.js';
import type { SbomSubject } from './document.js';
import { SPDX_MEDIA_TYPE, toSpdx } from './spdx.js';

export const SBOM_ARTIFACT_TYPE = SPDX_MEDIA_TYPE;
/** kiln's catalog as JSON (the `json` format's packages, distro and problems), so every format can be rendered again. */
export const CATALOG_MEDIA_TYPE = 'application/vnd.kiln.sbom.catalog.v1+json';

/** image-spec manifest.md: the empty JSON object `{}` as a config for artifacts that need none. */
const EMPTY_CONFIG: Descriptor & { data: string } = {
  mediaType: MediaType.OciEmpty,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
  data: 'e30=',
};

export function sbomSubject(image: StoredImage): SbomSubject {
  const tag = image.names.find((n) => !n.includes('@'));
  return { name: tag ? familiarName(tag) : image.manifestDescriptor.digest, digest: image.manifestDescriptor.digest, created: image.config.created };
}

/** Catalogue `image`, store the SBOM artifact beside it, and return the catalog and the artifact's descriptor. */
export async function storeSbom(store: Store, image: StoredImage, catalog?: Catalog): Promise<{ catalog: Catalog; descriptor: Descriptor }> {
  catalog ??= await catalogImage(store, image);
  const spdx = await store.putJSON(toSpdx(catalog, sbomSubject(image)), SPDX_MEDIA_TYPE);
  const cat = await store.putJSON(catalog, CATALOG_MEDIA_TYPE);
  await store.content.put(Buffer.from('{}'));
  const s = image.manifestDescriptor;
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: SBOM_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: [spdx, cat],
    subject: { mediaType: s.mediaType, digest: s.digest, size: s.size },
  };
  if (image.config.created) manifest.annotations = { 'org.opencontainers.image.created': image.config.created };
  const descriptor = { ...(await store.putJSON(manifest, MediaType.OciManifest)), artifactType: SBOM_ARTIFACT_TYPE };
  await store.addReferrer(descriptor);
  return { catalog, descriptor };
}

/** The catalog of the SBOM stored beside `image`, if there is one. */
export async function storedCatalog(store: Store, image: StoredImage): Promise<Catalog | undefined> {
  for (const desc of await store.referrers(image.manifestDescriptor.digest, SBOM_ARTIFACT_TYPE)) {
    try {
      const m = await store.content.readJSON<Manifest>(desc.digest);
      const layer = m.layers.find((l) => l.mediaType === CATALOG_MEDIA_TYPE);
      if (layer) return await store.content.readJSON<Catalog>(layer.digest);
    } catch {
      // an unreadable artifact is no SBOM: catalogue again
    }
  }
  return undefined;
}

/** The image's catalog: the stored SBOM's when there is one, else catalogued now. */
export async function imageCatalog(store: Store, image: StoredImage): Promise<{ catalog: Catalog; stored: boolean }> {
  const stored = await storedCatalog(store, image);
  if (stored) return { catalog: stored, stored: true };
  return { catalog: await catalogImage(store, image), stored: false };
}
