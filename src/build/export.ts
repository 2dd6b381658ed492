import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { tempPathFor } from '../store/atomic.js';
import type { Store, StoredImage } from '../store/store.js';
import type { Descriptor, Index, Manifest, Platform } from '../oci/types.js';
import { formatPlatform } from '../oci/platform.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import { MediaType } from '../oci/mediatypes.js';
import type { StageResult } from './solver.js';
import { UsageError } from '../errors.js';
import { normalize } from '../reference/reference.js';

/** Where a build's result goes (--output), as buildx names the exporters. */
export type Output =
  /** type=registry is type=image,push=true: stored, then pushed under `name` (and the -t tags). */
  | { type: 'image'; name?: string; push?: boolean }
  /**
   * An image archive; `names` (name=a,b) name it in index.json besides -t; `layout`: type=oci with
   * tar=false, an OCI image layout directory at `dest` instead of an archive.
   */
  | { type: 'oci' | 'docker'; dest: string; names?: string[]; layout?: boolean }
  /**
   * A flat filesystem, as a tar archive or a directory. `platformSplit` (platform-split=): a
   * multi-platform build writes each platform under a directory of its own (default), or all of
   * them merged into one tree (false).
   */
  | { type: 'tar' | 'local'; dest: string; platformSplit?: boolean };

/**
 * `--output`'s comma-separated attributes, read as CSV as buildx reads them: a quoted field may hold
 * commas, so `"name=a,b"` names two images. A field without `=` is an attribute with no value (push).
 */
function outputAttributes(spec: string): Record<string, string> {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (const c of spec) {
    if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  const kv: Record<string, string> = {};
  for (const f of fields) {
    const i = f.indexOf('=');
    if (i < 0) kv[f.trim()] = '';
    else kv[f.slice(0, i).trim()] = f.slice(i + 1).trim();
  }
  return kv;
}

/** Parse `type=oci,dest=F`, or a bare path (= type=local,dest=PATH) or `-`. */
export function parseOutput(spec: string): Output {
  if (!spec.includes('=')) return { type: 'local', dest: spec };
  const kv = outputAttributes(spec);
  const type = kv.type ?? 'local';
  if (type === 'image' || type === 'moby' || type === 'registry') {
    const push = kv.push === undefined ? type === 'registry' : kv.push === 'true' || kv.push === '';
    if (kv.push !== undefined && !['true', 'false', ''].includes(kv.push)) throw new UsageError(`--output: push must be true or false, not "${kv.push}"`);
    if (kv.name) normalize(kv.name);
    if (type === 'registry' && !kv.name) throw new UsageError('--output type=registry needs name=REGISTRY/REPOSITORY[:TAG]');
    return { type: 'image', ...(kv.name ? { name: kv.name } : {}), push };
  }
  if (type === 'oci' || type === 'docker') {
    if (!kv.dest) throw new UsageError(`--output type=${type} needs dest=PATH`);
    if (kv.tar !== undefined && !['true', 'false'].includes(kv.tar)) throw new UsageError(`--output: tar must be true or false, not "${kv.tar}"`);
    if (kv.tar === 'false' && type !== 'oci') throw new UsageError('--output: tar=false is for type=oci (an OCI layout directory)');
    const names = kv.name ? kv.name.split(',').map((n) => n.trim()).filter((n) => n !== '') : [];
    for (const n of names) normalize(n);
    return { type, dest: kv.dest, ...(names.length ? { names } : {}), ...(kv.tar === 'false' ? { layout: true } : {}) };
  }
  if (type === 'tar' || type === 'local') {
    if (!kv.dest) throw new UsageError(`--output type=${type} needs dest=PATH`);
    const split = kv['platform-split'];
    if (split !== undefined && !['true', 'false'].includes(split)) throw new UsageError(`--output: platform-split must be true or false, not "${split}"`);
    return { type, dest: kv.dest, ...(split !== undefined ? { platformSplit: split === 'true' } : {}) };
  }
  throw new UsageError(`--output: unknown type "${type}" (image, registry, oci, docker, tar, local)`);
}

/**
 * Why an output cannot take a build of `platforms` platforms, if it cannot: a docker archive holds
 * one image (BuildKit exporter/oci/export.go: "docker exporter does not currently support exporting
 * manifest lists"). Every other output takes an index (oci, image) or one tree per platform (local, tar).
 */
export function multiPlatformRefusal(output: Output, platforms: number): string | undefined {
  if (platforms < 2 || output.type !== 'docker') return undefined;
  return `type=docker holds one platform (a docker archive has no image index), and ${platforms} platforms are asked for: write an OCI archive (type=oci), or build each platform on its own`;
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
    const names = [...new Set([...tags, ...(output.names ?? [])].map((t) => normalize(t)))];
    const items = names.length ? names.map((name) => ({ image, name })) : [{ image }];
    const { saveArchiveFile, saveLayout } = await import('../store/save.js'); // tar-stream, only for archive outputs
    if (output.layout) await saveLayout(store, items, output.dest);
    else await saveArchiveFile(store, items, output.type, output.dest);
  } else if (output.type === 'tar' || output.type === 'local') {
    await writeFlat(store, [{ layers: result.layers }], output);
  }
  // The lease is not dropped here: it is the whole process's, and kiln bake exports one image while
  // its other builds still have blobs written and not yet recorded. The command drops it at its end
  // (or the process's exit does).
  return image;
}

/**
 * A multi-platform build's result: one image per platform and an OCI image index over them
 * (image-spec image-index.md: each manifest descriptor carries its platform), recorded in the store
 * under `tags`. The per-platform images get no entry of their own in index.json: the index holds them.
 */
export async function exportIndex(store: Store, results: { platform: Platform; result: StageResult }[], tags: string[], output: Output): Promise<Descriptor> {
  const refusal = multiPlatformRefusal(output, results.length);
  if (refusal) throw new UsageError(`--output ${refusal}`);
  const manifests: Descriptor[] = [];
  for (const { platform, result } of results) {
    const config = await store.putJSON(result.config, MediaType.OciConfig);
    const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: result.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })) };
    const annotations = baseAnnotations(result);
    if (annotations) manifest.annotations = annotations;
    const desc = await store.putJSON(manifest, MediaType.OciManifest);
    manifests.push({ ...desc, platform: { os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) } });
  }
  const index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  const desc = await store.putJSON(index, MediaType.OciIndex);
  await store.addImage(desc, [...(output.type === 'image' && output.name ? [output.name] : []), ...(output.type === 'tar' || output.type === 'local' ? [] : tags)]);
  if (output.type === 'tar' || output.type === 'local') await writeFlat(store, results.map(({ platform, result }) => ({ platform, layers: result.layers })), output);
  if (output.type === 'oci') {
    // The archive's index.json names the image index (image-spec image-layout.md), with every image of it.
    const names = [...new Set([...tags, ...(output.names ?? [])].map((t) => normalize(t)))];
    const image = await store.loadImage(desc, names, 'any');
    const items = names.length ? names.map((name) => ({ image, name })) : [{ image }];
    const { saveArchiveFile, saveLayout } = await import('../store/save.js');
    if (output.layout) await saveLayout(store, items, output.dest);
    else await saveArchiveFile(store, items, 'oci', output.dest);
  }
  return desc;
}

/**
 * The flat filesystem outputs (type=local, type=tar) of one image or of each platform's. Several
 * platforms go under a directory each, named by the platform with "/" as "_" (linux_amd64,
 * linux_arm_v7), as BuildKit's local and tar exporters do (exporter/local/export.go:
 * platformDirStat); with platform-split=false they are merged into one tree, and a file two
 * platforms both have is an error naming it (BuildKit: "cannot overwrite … when split option is
 * disabled", checked before anything is written). A tar is written beside `dest` and renamed into
 * place, so no half archive is ever visible; a directory is written into, as `docker build -o` does.
 */
async function writeFlat(store: Store, trees: { platform?: Platform; layers: LayerRef[] }[], output: { type: 'tar' | 'local'; dest: string; platformSplit?: boolean }): Promise<void> {
  // Layer and snapshot code only for the outputs that flatten images.
  const [{ createSnapshotter }, { packDirectory, applyLayer }] = await Promise.all([import('../snapshot/index.js'), import('../archive/index.js')]);
  const split = trees.length > 1 && output.platformSplit !== false;
  const dirOf = (p: Platform | undefined) => (split && p ? formatPlatform(p).replaceAll('/', '_') : '');
  if (trees.length > 1 && !split) await refuseOverlaps(store, trees);
  const apply = async (root: string) => {
    for (const t of trees) {
      const dir = join(root, dirOf(t.platform));
      await mkdir(dir, { recursive: true });
      for (const l of t.layers) await applyLayer(store.content.open(l.digest), dir, { whiteouts: 'delete' });
    }
  };
  if (output.type === 'local') {
    await mkdir(output.dest, { recursive: true });
    return apply(output.dest);
  }
  const tmp = tempPathFor(output.dest);
  try {
    if (trees.length === 1) {
      // One image packs straight from its snapshot: nothing is copied first.
      const view = await (await createSnapshotter(store)).view(trees[0]!.layers, 'export');
      try {
        await pipeline(packDirectory(view.path), createWriteStream(tmp));
      } finally {
        await view.release();
      }
    } else {
      const staging = await mkdtemp(join(dirname(resolve(output.dest)), '.kiln-export-'));
      try {
        await apply(staging);
        await pipeline(packDirectory(staging), createWriteStream(tmp));
      } finally {
        await rm(staging, { recursive: true, force: true });
      }
    }
    await rename(tmp, output.dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** platform-split=false: a path that is a file (not a directory) in two platforms' trees is refused before anything is written. */
async function refuseOverlaps(store: Store, trees: { platform?: Platform; layers: LayerRef[] }[]): Promise<void> {
  const { createSnapshotter } = await import('../snapshot/index.js');
  const snap = await createSnapshotter(store);
  const seen = new Map<string, string>();
  for (const t of trees) {
    const name = t.platform ? formatPlatform(t.platform) : 'the image';
    const view = await snap.view(t.layers, 'export-check');
    try {
      for await (const rel of files(view.path, '')) {
        const other = seen.get(rel);
        if (other !== undefined) throw new UsageError(`--output platform-split=false: /${rel} is in both ${other} and ${name}; leave platform-split on (each platform under its own directory) or make the files differ by path`);
        seen.set(rel, name);
      }
    } finally {
      await view.release();
    }
  }
}

async function* files(root: string, rel: string): AsyncGenerator<string> {
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) yield* files(root, p);
    else yield p;
  }
}
