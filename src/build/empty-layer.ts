import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MediaType } from '../oci/mediatypes.js';
import type { Store } from '../store/store.js';
import type { LayerRef } from '../snapshot/snapshotter.js';

// The layer of a RUN that changed nothing. BuildKit exports one all the same: dockerfile2llb
// commits every RUN to the history with a layer (convert.go:1822, EmptyLayer: !withLayer, and
// dispatchRun passes withLayer true), so testExportedHistory expects `RUN ls` to have a diff_id.
// It is the same blob for every such RUN: a tar with nothing in it (the end-of-archive marker,
// 1024 zero bytes), gzipped.

const tar = Buffer.alloc(1024);
const gzipped = gzipSync(tar, { level: 6 });
const diffId = 'sha256:' + createHash('sha256').update(tar).digest('hex');

/** The empty layer, written to the store's content once. */
export async function emptyLayer(store: Store): Promise<LayerRef> {
  const blob = await store.content.put(gzipped);
  await store.setLayerInfo(blob.digest, { diffId, size: tar.length });
  return { digest: blob.digest, diffId, mediaType: MediaType.OciLayerGzip, size: gzipped.length };
}
