import { PassThrough, type Readable } from 'node:stream';
import type { LayerDigests, LayerEntry } from '../../archive/index.js';
import { MediaType } from '../../oci/mediatypes.js';
import type { LayerRef } from '../../snapshot/snapshotter.js';
import { BuildCancelled } from '../errors.js';
import type { OpContext } from './op.js';

/**
 * Write a COPY's entries as a layer blob; meanwhile the snapshotter extracts the same layer (a
 * small one from the very tar being written, a big one on a thread of its own from the entries),
 * so the next step's root filesystem does not decompress and extract the blob all over again.
 */
export async function writeEntries(ctx: OpContext, entries: LayerEntry[]): Promise<LayerRef> {
  const { req, snapshotter } = ctx;
  ctx.checkAbort();
  let stored: { digest: string; size: number } | undefined;
  const packOpts = { sourceDateEpoch: req.sourceDateEpoch };
  // Layer code is loaded by the first step that writes a layer (see createSnapshotter).
  const { packEntries, writeLayer } = await import('../../archive/index.js');
  const tar = packEntries(entries, packOpts);
  let extracted: Promise<string | undefined> = Promise.resolve(undefined);
  let layerTar: Readable = tar;
  const bytes = entries.reduce((n, e) => n + (e.size ?? (typeof e.content === 'string' ? Buffer.byteLength(e.content) : (e.content?.length ?? 0))), 0);
  let written: (diffId: string | undefined) => void = () => {};
  if (snapshotter.extractEntries && (bytes >= 16 << 20 || entries.length >= 1000)) {
    // Big: extracted on a thread of its own; a small one is not worth a thread's start-up (~30 ms).
    extracted = snapshotter.extractEntries(entries, packOpts, new Promise((resolve) => (written = resolve)));
  } else if (snapshotter.extractWhileWriting) {
    // Two readers of one tar: pipe() waits for the slower, and unpipes a reader that fails.
    const forLayer = new PassThrough({ highWaterMark: 1 << 20 });
    const forSnapshot = new PassThrough({ highWaterMark: 1 << 20 });
    tar.on('error', (e) => {
      forLayer.destroy(e);
      forSnapshot.destroy(e);
    });
    tar.pipe(forLayer);
    tar.pipe(forSnapshot);
    extracted = snapshotter.extractWhileWriting(forSnapshot);
    layerTar = forLayer;
  }
  let d: LayerDigests | undefined;
  // Ctrl-C stops a big COPY where it is (the extraction thread stops with it, told by `written`).
  const cancel = () => tar.destroy(new BuildCancelled('build cancelled'));
  req.signal.addEventListener('abort', cancel, { once: true });
  try {
    d = await writeLayer(layerTar, async (blob) => {
      stored = await req.store.content.put(blob);
    }, 'gzip');
  } finally {
    req.signal.removeEventListener('abort', cancel);
    written(d?.diffId);
    await extracted;
  }
  await req.store.setLayerInfo(stored!.digest, { diffId: d.diffId, size: d.uncompressedSize });
  return { digest: d.digest, size: d.size, diffId: d.diffId, mediaType: MediaType.OciLayerGzip };
}
