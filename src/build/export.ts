import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { tempPathFor } from '../store/atomic.js';
import type { Store, StoredImage } from '../store/store.js';
import type { Descriptor } from '../oci/types.js';
import type { StageResult } from './solver.js';
import { UsageError } from '../errors.js';
import { normalize } from '../reference/reference.js';

/** Where a build's result goes (--output), as buildx names the exporters. */
export type Output =
  /** type=registry is type=image,push=true: stored, then pushed under `name` (and the -t tags). */
  | { type: 'image'; name?: string; push?: boolean }
  | { type: 'oci' | 'docker'; dest: string }
  | { type: 'tar'; dest: string }
  | { type: 'local'; dest: string };

/** Parse `type=oci,dest=F`, or a bare path (= type=local,dest=PATH) or `-`. */
export function parseOutput(spec: string): Output {
  if (!spec.includes('=')) return { type: 'local', dest: spec };
  const kv = Object.fromEntries(spec.split(',').map((p) => {
    const i = p.indexOf('=');
    return i < 0 ? [p, ''] : [p.slice(0, i).trim(), p.slice(i + 1).trim()];
  }));
  const type = kv.type ?? 'local';
  if (type === 'image' || type === 'moby' || type === 'registry') {
    const push = kv.push === undefined ? type === 'registry' : kv.push === 'true' || kv.push === '';
    if (kv.push !== undefined && !['true', 'false', ''].includes(kv.push)) throw new UsageError(`--output: push must be true or false, not "${kv.push}"`);
    if (kv.name) normalize(kv.name);
    if (type === 'registry' && !kv.name) throw new UsageError('--output type=registry needs name=REGISTRY/REPOSITORY[:TAG]');
    return { type: 'image', ...(kv.name ? { name: kv.name } : {}), push };
  }
  if (type === 'oci' || type === 'docker' || type === 'tar' || type === 'local') {
    if (!kv.dest) throw new UsageError(`--output type=${type} needs dest=PATH`);
    return { type, dest: kv.dest } as Output;
  }
  throw new UsageError(`--output: unknown type "${type}" (image, registry, oci, docker, tar, local)`);
}

/**
 * The image-spec's base annotations (annotations.md: org.opencontainers.image.base.name and
 * .base.digest), as BuildKit writes them: what the final stage was built on. kiln bake and
 * `kiln images --tree` read the hierarchy of images from them.
 */
function baseAnnotations(result: StageResult): Record<string, string> | undefined {
  if (!result.base) return undefined;
  return { 'org.opencontainers.image.base.name': result.base.name, 'org.opencontainers.image.base.digest': result.base.digest };
}

/** Record the image in the store (tagged with `tags`) and, for file outputs, write it out. */
export async function exportResult(store: Store, result: StageResult, tags: string[], output: Output): Promise<StoredImage> {
  const layers: Descriptor[] = result.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  const names = output.type === 'image' || output.type === 'oci' || output.type === 'docker' ? tags : [];
  const image = await store.writeImage(result.config, layers, names, baseAnnotations(result));
  if (output.type === 'oci' || output.type === 'docker') {
    const items = tags.length ? tags.map((t) => ({ image, name: normalize(t) })) : [{ image }];
    const { saveArchiveFile } = await import('../store/save.js'); // tar-stream, only for archive outputs
    await saveArchiveFile(store, items, output.type, output.dest);
  } else if (output.type === 'tar') {
    // Layer and snapshot code only for the file outputs that flatten the image.
    const [{ createSnapshotter }, { packDirectory }] = await Promise.all([import('../snapshot/index.js'), import('../archive/index.js')]);
    const snap = await createSnapshotter(store);
    const view = await snap.view(result.layers, 'export');
    const tmp = tempPathFor(output.dest);
    try {
      await pipeline(packDirectory(view.path), createWriteStream(tmp));
      await rename(tmp, output.dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    } finally {
      await view.release();
    }
  } else if (output.type === 'local') {
    await mkdir(output.dest, { recursive: true });
    const { applyLayer } = await import('../archive/index.js');
    for (const l of result.layers) await applyLayer(store.content.open(l.digest), output.dest, { whiteouts: 'delete' });
  }
  // The lease is not dropped here: it is the whole process's, and kiln bake exports one image while
  // its other builds still have blobs written and not yet recorded. The command drops it at its end
  // (or the process's exit does).
  return image;
}
