// Walking an image's layers entry by entry, streaming each blob through the archive module's reader
// (no extraction, nothing buffered but what a caller asks to read), with whiteouts classified.

import { posix } from 'node:path';
import { classifyWhiteout, listLayer, type EntryType, type TarHeader } from '../archive/index.js';
import type { Store } from '../store/store.js';
import type { Descriptor } from '../oci/types.js';

export interface LayerEntry {
  /** Absolute, normalised path ("/etc/passwd"); for a whiteout, the path it deletes. */
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkname: string;
  /** `file`: this entry deletes `path` from the layers below; `opaque`: it empties directory `path`. */
  whiteout?: 'file' | 'opaque';
}

/** A tar header as a layer entry: the path normalised, whiteouts classified; `undefined` for other whiteout metadata (.wh..wh.*). */
export function layerEntry(header: TarHeader): LayerEntry | undefined {
  const clean = posix.normalize('/' + header.path.replace(/^\.?\/+/, '')).replace(/\/+$/, '') || '/';
  const base = posix.basename(clean);
  const wh = classifyWhiteout(base);
  if (wh.kind === 'meta') return undefined;
  const entry: LayerEntry = { path: clean, type: header.type, size: header.type === 'file' ? header.size : 0, mode: header.mode, uid: header.uid, gid: header.gid, linkname: header.linkname };
  if (wh.kind === 'whiteout') {
    entry.path = posix.join(posix.dirname(clean), wh.target);
    entry.whiteout = 'file';
    entry.size = 0;
  } else if (wh.kind === 'opaque') {
    entry.path = posix.dirname(clean);
    entry.whiteout = 'opaque';
    entry.size = 0;
  }
  return entry;
}

/** Reads up to `limit` bytes of the current entry's content. Only valid until the callback returns. */
export type ReadContent = (limit: number) => Promise<Buffer>;

export async function walkLayers(
  store: Store,
  layers: Descriptor[],
  onEntry: (layer: number, entry: LayerEntry, read: ReadContent) => void | Promise<void>,
): Promise<void> {
  for (const [i, desc] of layers.entries()) {
    for await (const { header, body } of listLayer(store.content.open(desc.digest))) {
      const entry = layerEntry(header);
      if (!entry) continue;
      const read: ReadContent = async (limit) => {
        const chunks: Buffer[] = [];
        let got = 0;
        for await (const c of body) {
          chunks.push(c);
          got += c.length;
          if (got >= limit) break;
        }
        return Buffer.concat(chunks).subarray(0, limit);
      };
      await onEntry(i, entry, read);
    }
  }
}

/** `child` is `dir` itself or below it. */
export function isWithin(child: string, dir: string): boolean {
  return child === dir || child.startsWith(dir === '/' ? '/' : dir + '/');
}
