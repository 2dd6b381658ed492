// The image an inspection looks at: a name or ID in the store, an OCI layout directory, or an archive
// (OCI or docker-archive). Layouts and archives are loaded into a private temporary store, so that
// looking at them never writes into the user's directory or store.

import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packDirectory } from '../archive/index.js';
import { ImageUnknown } from '../errors.js';
import type { LayerRef } from '../snapshot/index.js';
import { loadArchive, loadArchiveFile } from '../store/load.js';
import { Store, type StoredImage } from '../store/store.js';
import type { Platform } from '../oci/types.js';

export interface OpenedImage {
  store: Store;
  image: StoredImage;
  /** The layers, base first, as the snapshotter takes them. */
  layers: LayerRef[];
  /** What the user named. */
  ref: string;
  /** Removes the temporary store, if one was made. */
  close(): Promise<void>;
}

/** `platform`: the entry of an image index to open (--platform), the host's by default. */
export async function openImage(store: Store | (() => Promise<Store>), ref: string, platform?: Platform): Promise<OpenedImage> {
  // A path has a slash or an archive's extension and exists; anything else is a name in the store.
  const isPath = (ref.includes('/') || /\.(tar|tgz|tar\.gz)$/.test(ref)) && existsSync(ref);
  if (isPath) {
    const tmp = await mkdtemp(join(tmpdir(), 'kiln-inspect-'));
    try {
      const temp = await Store.open(tmp);
      const loaded = statSync(ref).isDirectory()
        ? existsSync(join(ref, 'oci-layout'))
          ? await loadArchive(temp, packDirectory(ref), ref)
          : failNotImage(ref)
        : await loadArchiveFile(temp, ref);
      if (loaded.length === 0) throw new ImageUnknown(`${ref}: holds no image`);
      const image = await temp.loadImage(loaded[0]!.manifest, loaded[0]!.names, platform);
      return { store: temp, image, layers: layersOf(image), ref, close: () => rm(tmp, { recursive: true, force: true }) };
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }
  const s = typeof store === 'function' ? await store() : store;
  const image = await s.resolveImage(ref, platform);
  return { store: s, image, layers: layersOf(image), ref, close: async () => {} };
}

function failNotImage(ref: string): never {
  throw new ImageUnknown(`${ref}: a directory that is not an OCI image layout (no oci-layout file)`);
}

export function layersOf(img: StoredImage): LayerRef[] {
  return img.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: img.config.rootfs.diff_ids[i]! }));
}
