// `kiln export`: the filesystem an image's layers add up to, as one tar, computed by streaming the
// layers top-down without extracting anything (go-containerregistry's mutate.Extract, with opaque
// directories and hardlinks handled as the layer applier handles them).
//
// Reading from the top layer down, the first entry seen for a path is the one that survives; lower
// layers can only add paths no upper layer decided. OCI image-spec layer.md, "Whiteouts": `.wh.NAME`
// deletes NAME and everything below it from the layers beneath, `.wh..wh..opq` deletes everything
// the layers beneath put in its directory; a non-directory hides whatever lower layers put under
// its path. Whiteouts act on lower layers only, so what a layer hides takes effect after the layer.

import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArchiveInvalid, UnsafeArchiveEntry } from '../errors.js';
import { classifyWhiteout, encodeHeader, listLayer, type TarHeader } from '../archive/index.js';
import type { Descriptor } from '../oci/types.js';
import { tempPathFor } from './atomic.js';
import type { Store, StoredImage } from './store.js';

/** Write the flattened filesystem of `image` to `out` as an uncompressed tar. */
export async function exportImage(store: Store, image: StoredImage, out: Writable): Promise<void> {
  await pipeline(Readable.from(flatten(store, image.manifest.layers), { objectMode: false }), out);
}

/** Write to `path` through a temporary file, so a failed export leaves no half-written tar. */
export async function exportImageFile(store: Store, image: StoredImage, path: string): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await exportImage(store, image, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

const BLOCK = 512;
const MAX_LINK_HOPS = 40;

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A layer path made canonical: relative, no "." components or trailing "/"; "" for the root. */
function cleanPath(p: string, entry: string): string {
  if (p.startsWith('/')) throw new UnsafeArchiveEntry(`layer entry "${entry}": absolute path "${p}" is not allowed`);
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new UnsafeArchiveEntry(`layer entry "${entry}": path "${p}" contains ".."`);
  return parts.join('/');
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function baseOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

async function* flatten(store: Store, layers: Descriptor[]): AsyncGenerator<Buffer> {
  /** Paths an upper layer decided: emitted, or deleted by a whiteout. */
  const decided = new Set<string>();
  /** Paths under which nothing from lower layers survives (non-directories, whiteouts, opaque directories). */
  const covered = new Set<string>();
  const hiddenByUpper = (p: string): boolean => {
    if (decided.has(p)) return true;
    for (let a = parentOf(p); ; a = parentOf(a)) {
      if (covered.has(a)) return true;
      if (a === '') return false;
    }
  };

  for (let i = layers.length - 1; i >= 0; i--) {
    const emittedHere = new Set<string>();
    /** Files of this layer that are hidden from above but that a hardlink in it turned into content: target → output path. */
    const materialised = new Map<string, string>();
    const deletes: string[] = [];
    const opaques: string[] = [];
    const replaced: string[] = [];
    for await (const { header, body } of listLayer(store.content.open(layers[i]!.digest))) {
      const path = cleanPath(header.path, header.path);
      if (path === '') continue; // the root directory itself
      const wh = classifyWhiteout(baseOf(path));
      if (wh.kind === 'opaque') {
        opaques.push(parentOf(path));
        continue;
      }
      if (wh.kind === 'whiteout') {
        const dir = parentOf(path);
        deletes.push(dir ? `${dir}/${wh.target}` : wh.target);
        continue;
      }
      if (wh.kind === 'meta') continue; // AUFS bookkeeping, nothing to apply
      // A non-directory replaces whatever lower layers had under its path, even when an upper layer
      // replaced it in turn (a directory there again starts empty).
      if (header.type !== 'directory') replaced.push(path);
      if (hiddenByUpper(path) || emittedHere.has(path)) continue;
      emittedHere.add(path);

      if (header.type === 'hardlink') {
        const target = cleanPath(header.linkname, header.path);
        const link = { ...header, path };
        const already = materialised.get(target) ?? (emittedHere.has(target) ? target : undefined);
        if (already !== undefined) {
          yield encodeHeader({ ...link, linkname: already, size: 0 });
        } else {
          // The file this links to was replaced or deleted by an upper layer (or is in a lower layer):
          // the link keeps the content it had, so it becomes that content; later links in this layer
          // to the same file link to it.
          yield* contentOf(store, layers, i, target, link, 0);
          materialised.set(target, path);
        }
        continue;
      }
      yield encodeHeader({ ...header, path });
      if (header.type === 'file') {
        for await (const chunk of body) yield chunk;
        yield padding(header.size);
      }
    }
    for (const p of emittedHere) decided.add(p);
    for (const p of deletes) {
      decided.add(p);
      covered.add(p);
    }
    for (const p of [...opaques, ...replaced]) covered.add(p);
  }
  yield Buffer.alloc(2 * BLOCK); // end of archive
}

/**
 * The entry for hardlink `link` as a file of its own: the content of `target` as layer `from` sees
 * it (that layer, else the nearest layer below that has it).
 */
async function* contentOf(store: Store, layers: Descriptor[], from: number, target: string, link: TarHeader, hops: number): AsyncGenerator<Buffer> {
  if (hops > MAX_LINK_HOPS) throw new ArchiveInvalid(`hardlink "${link.path}": too many levels of links`);
  for (let j = from; j >= 0; j--) {
    for await (const { header, body } of listLayer(store.content.open(layers[j]!.digest))) {
      if (cleanPath(header.path, header.path) !== target) continue;
      if (header.type === 'file') {
        yield encodeHeader({ ...link, type: 'file', linkname: '', size: header.size });
        for await (const chunk of body) yield chunk;
        yield padding(header.size);
        return;
      }
      if (header.type === 'hardlink') {
        yield* contentOf(store, layers, j, cleanPath(header.linkname, header.path), link, hops + 1);
        return;
      }
      if (header.type === 'symlink') {
        yield encodeHeader({ ...link, type: 'symlink', linkname: header.linkname, size: 0 });
        return;
      }
      throw new ArchiveInvalid(`hardlink "${link.path}" points at "${target}", which is a ${header.type}`);
    }
  }
  throw new ArchiveInvalid(`hardlink "${link.path}" points at "${target}", which no layer has`);
}
