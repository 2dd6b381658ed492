// A layer as a blob: the digests an image needs, computed in the one pass that writes it, and a
// reader that lists what a (possibly compressed) layer contains.

import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DigestingStream } from '../oci/digest.js';
import type { Compression } from '../oci/mediatypes.js';
import { compress, decompress, type CompressOptions } from './compress.js';
import { readTar, type TarEntry } from './tar.js';

export interface LayerDigests {
  /** sha256 of the uncompressed tar: what an image config lists in rootfs.diff_ids (OCI image-spec config.md). */
  diffId: string;
  uncompressedSize: number;
  /** sha256 of the blob as stored and pushed: the manifest's layer descriptor digest. */
  digest: string;
  /** Bytes of the blob as stored. */
  size: number;
  compression: Compression;
}

/**
 * Compresses a layer tar and hands the blob to `consume` (typically the content store's ingest),
 * computing diffId, digest and size on the way, in a single streaming pass. `consume` must read
 * the stream to its end; the promise settles after it has, with the digests. Any failure (of the
 * tar, the compressor or `consume`) rejects and tears the whole chain down.
 */
export async function writeLayer(
  tar: Readable,
  consume: (blob: Readable) => Promise<void>,
  compression: Compression,
  opts: CompressOptions = {},
): Promise<LayerDigests> {
  const uncompressed = new DigestingStream();
  pipeline(tar, uncompressed, () => {}); // a failure reaches the reader of `blob` through the chain
  // Uncompressed, the blob is the tar itself: hashed once, digest and diffID alike.
  const blob = compression === 'none' ? uncompressed : new DigestingStream();
  if (blob !== uncompressed) pipeline(compress(uncompressed, compression, opts), blob, () => {});
  const done = finished(blob);
  done.catch(() => {}); // awaited below, once consume has returned
  try {
    await consume(blob);
    if (!blob.readableEnded) throw new Error('writeLayer: the consumer returned before reading the whole layer');
    await done;
  } catch (err) {
    blob.destroy();
    tar.destroy();
    throw err;
  }
  return {
    diffId: uncompressed.digest,
    uncompressedSize: uncompressed.size,
    digest: blob.digest,
    size: blob.size,
    compression,
  };
}

/** The entries of a layer blob (gzip, zstd or plain), each with its content, in archive order. */
export async function* listLayer(layer: Readable): AsyncGenerator<TarEntry, void, undefined> {
  yield* readTar(decompress(layer));
}
