import type { Store, StoredImage } from './store.js';
import { familiarString, parseReference } from '../reference/reference.js';

// Read-only views of stored images shaped like docker's: `docker image inspect` JSON and
// `docker history` rows. Kept apart from the store so the store stays about storage.

export function familiarName(full: string): string {
  return familiarString(parseReference(full));
}

export async function inspectImage(store: Store, img: StoredImage) {
  const c = img.config;
  return {
    Id: img.id,
    Digest: img.manifestDescriptor.digest,
    RepoTags: img.names.filter((n) => !n.includes('@')).map(familiarName),
    RepoDigests: img.names.filter((n) => n.includes('@')).map(familiarName),
    Parent: '',
    Comment: c.history?.[c.history.length - 1]?.comment ?? '',
    Created: c.created ?? '',
    Author: c.author ?? '',
    Config: c.config ?? {},
    Architecture: c.architecture,
    ...(c.variant ? { Variant: c.variant } : {}),
    Os: c.os,
    Size: await store.imageSize(img),
    RootFS: { Type: 'layers', Layers: c.rootfs?.diff_ids ?? [] },
    History: c.history ?? [],
    ManifestMediaType: img.manifestDescriptor.mediaType,
    Layers: img.manifest.layers.map((l) => ({ MediaType: l.mediaType, Digest: l.digest, Size: l.size })),
  };
}

export interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
  emptyLayer: boolean;
}

/**
 * Newest first, as docker prints it. The top row carries the image ID; the rows below show
 * <missing>, since kiln, like BuildKit, keeps no intermediate images.
 */
export async function historyRows(store: Store, img: StoredImage): Promise<HistoryRow[]> {
  const history = img.config.history ?? [];
  const layers = img.manifest.layers;
  const rows: HistoryRow[] = [];
  let layerIndex = 0;
  for (const h of history) {
    let size = 0;
    if (!h.empty_layer) {
      const l = layers[layerIndex++];
      if (l) size = (await store.layerInfo(l.digest))?.size ?? l.size;
    }
    rows.push({ id: '<missing>', created: h.created, createdBy: h.created_by ?? '', size, comment: h.comment ?? '', emptyLayer: !!h.empty_layer });
  }
  // Layers without history entries (images written by tools that omit history) still show.
  for (; layerIndex < layers.length; layerIndex++) {
    const l = layers[layerIndex]!;
    rows.push({ id: '<missing>', createdBy: '', size: (await store.layerInfo(l.digest))?.size ?? l.size, comment: '', emptyLayer: false });
  }
  rows.reverse();
  if (rows[0]) rows[0].id = img.id;
  return rows;
}
