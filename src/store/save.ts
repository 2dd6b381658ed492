import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { decompress } from '../archive/index.js';
import { MediaType, layerCompression } from '../oci/mediatypes.js';
import { RefNameAnnotation, type Descriptor, type Index, type Manifest } from '../oci/types.js';
import { encodedOf, DigestingStream } from '../oci/digest.js';
import { parseReference, familiarString, familiarRepository } from '../reference/reference.js';
import { tempPathFor } from './atomic.js';
import { ContainerdImageNameAnnotation } from './load.js';
import type { Store, StoredImage } from './store.js';

export type ArchiveFormat = 'oci' | 'docker';

/** The images to save with the name each was asked for (a name, or none when asked by ID). */
export interface SaveItem {
  image: StoredImage;
  name?: string;
}

/** Where a save writes its files: a tar stream, or a directory (an OCI image layout). */
interface SaveSink {
  file(name: string, body: Buffer | string): Promise<void>;
  stream(name: string, size: number, src: Readable): Promise<void>;
}

/**
 * `kiln save`: write images as an OCI archive (blobs as stored, index.json naming each image with
 * io.containerd.image.name and a ref.name tag, as containerd and docker 25+ do) or as a docker-archive
 * (manifest.json, repositories, config and uncompressed layer tars, as `docker save` did before 25).
 */
export async function saveArchive(store: Store, items: SaveItem[], format: ArchiveFormat, out: Writable): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, out);
  // A failed output (EPIPE, disk full) destroys the pack, and the next entry fails with the output's
  // error, which the caller reports; `done` is awaited there, so its own rejection is not unhandled.
  const outputError = done.then(
    () => undefined,
    (e: Error) => e,
  );
  const add = (header: Parameters<typeof pack.entry>[0], body: Buffer | string | undefined, src?: Readable) =>
    new Promise<void>((resolve, reject) => {
      // Once the pack is destroyed the output pipeline settles: its error says what went wrong.
      const fail = async (e: unknown) => reject(pack.destroyed ? ((await outputError) ?? e) : e);
      try {
        const callback = (e?: Error | null) => (e ? void fail(e) : resolve());
        const sink = body === undefined ? pack.entry(header, callback) : pack.entry(header, body, callback);
        if (src) pipeline(src, sink as unknown as NodeJS.WritableStream).catch(fail);
      } catch (e) {
        // tar-stream throws once the pack is destroyed: the output went away.
        void fail(e);
      }
    });
  await writeImages(store, items, format, {
    file: (name, body) => add({ name, mode: 0o644, mtime: new Date(0) }, body),
    stream: (name, size, src) => add({ name, size, mode: 0o644, mtime: new Date(0) }, undefined, src),
  });
  pack.finalize();
  await done;
}

/**
 * `--output type=oci,tar=false`: the OCI archive's files as a directory, an image layout
 * (image-spec image-layout.md). Each file is written beside its place and renamed into it.
 */
export async function saveLayout(store: Store, items: SaveItem[], dir: string): Promise<void> {
  const put = async (name: string, write: (tmp: string) => Promise<void>) => {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    const tmp = tempPathFor(path);
    try {
      await write(tmp);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  };
  await writeImages(store, items, 'oci', {
    file: (name, body) => put(name, (tmp) => writeFile(tmp, body, { mode: 0o644 })),
    stream: (name, _size, src) => put(name, (tmp) => pipeline(src, createWriteStream(tmp, { mode: 0o644 }))),
  });
}

async function writeImages(store: Store, items: SaveItem[], format: ArchiveFormat, sink: SaveSink): Promise<void> {
  const entry = (name: string, body: Buffer | string) => sink.file(name, body);
  const streamEntry = (name: string, size: number, src: Readable) => sink.stream(name, size, src);
  const written = new Set<string>();
  if (format === 'oci') {
    await entry('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const manifests: Descriptor[] = [];
    for (const { image, name } of items) {
      const blobs = [image.manifestDescriptor, image.manifest.config, ...image.manifest.layers];
      // An image chosen from an index (a multi-platform build): the index and every image of it
      // the store holds, so that `kiln load` gets every platform back.
      if (image.index) blobs.push(image.index, ...(await indexBlobs(store, image.index)));
      for (const b of blobs) {
        if (written.has(b.digest)) continue;
        written.add(b.digest);
        await streamEntry(`blobs/${b.digest.split(':')[0]}/${encodedOf(b.digest)}`, b.size, store.content.open(b.digest));
      }
      const annotations: Record<string, string> = {};
      if (name) {
        const ref = parseReference(name);
        annotations[ContainerdImageNameAnnotation] = name;
        annotations[RefNameAnnotation] = ref.tag ?? 'latest';
      }
      const { mediaType, digest, size } = image.index ?? image.manifestDescriptor;
      manifests.push({ mediaType, digest, size, ...(name ? { annotations } : {}) });
      // The image's referrers (signatures, SBOMs) go with it, listed by artifactType as the image
      // layout lists them in the store, so `kiln load` keeps them beside the image.
      for (const r of await store.referrers(digest)) {
        if (written.has(r.digest)) continue;
        const doc = await store.content.readJSON<Manifest>(r.digest);
        for (const b of [r, doc.config, ...doc.layers]) {
          if (written.has(b.digest)) continue;
          written.add(b.digest);
          await streamEntry(`blobs/${b.digest.split(':')[0]}/${encodedOf(b.digest)}`, b.size, store.content.open(b.digest));
        }
        manifests.push({ mediaType: r.mediaType, digest: r.digest, size: r.size, artifactType: r.artifactType });
      }
    }
    await entry('index.json', JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
  } else {
    const manifestJson: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { image, name } of items) {
      const configName = `${encodedOf(image.id)}.json`;
      if (!written.has(configName)) {
        written.add(configName);
        await entry(configName, await store.content.read(image.id));
      }
      const layerNames: string[] = [];
      for (const [i, l] of image.manifest.layers.entries()) {
        const diffId = image.config.rootfs.diff_ids[i]!;
        const layerName = `${encodedOf(diffId)}/layer.tar`;
        layerNames.push(layerName);
        if (written.has(layerName)) continue;
        written.add(layerName);
        const plainSize = layerCompression(l.mediaType) === 'none' ? l.size : await uncompressedSize(store, l);
        await streamEntry(layerName, plainSize, decompress(store.content.open(l.digest)));
      }
      const tags = name ? [familiarString(parseReference(name))] : null;
      manifestJson.push({ Config: configName, RepoTags: tags, Layers: layerNames });
      if (name) {
        const ref = parseReference(name);
        const last = image.config.rootfs.diff_ids[image.config.rootfs.diff_ids.length - 1];
        (repositories[familiarRepository(ref)] ??= {})[ref.tag ?? 'latest'] = last ? encodedOf(last) : '';
      }
    }
    await entry('manifest.json', JSON.stringify(manifestJson));
    await entry('repositories', JSON.stringify(repositories));
  }
}

/** The manifests an index names that the store holds, with their configs and layers (nested indexes too). */
async function indexBlobs(store: Store, index: Descriptor): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  for (const m of (await store.content.readJSON<Index>(index.digest)).manifests) {
    if (!(await store.content.has(m.digest))) continue;
    const doc = await store.content.readJSON<Partial<Manifest & Index>>(m.digest);
    out.push(m);
    if (doc.manifests) out.push(...(await indexBlobs(store, m)));
    else out.push(...(doc.config ? [doc.config] : []), ...(doc.layers ?? []));
  }
  return out;
}

/** A tar entry's size must be known before its content: decompress once to count when not recorded. */
async function uncompressedSize(store: Store, l: Descriptor): Promise<number> {
  const known = await store.layerInfo(l.digest);
  if (known) return known.size;
  const hasher = new DigestingStream();
  await pipeline(decompress(store.content.open(l.digest)), hasher, new Writable({ write: (_c, _e, cb) => cb() }));
  await store.setLayerInfo(l.digest, { diffId: hasher.digest, size: hasher.size });
  return hasher.size;
}

/** Write to `path` through a temporary file, so a failed save leaves no half-written archive. */
export async function saveArchiveFile(store: Store, items: SaveItem[], format: ArchiveFormat, path: string): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await saveArchive(store, items, format, createWriteStream(tmp, { mode: 0o644 }));
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

