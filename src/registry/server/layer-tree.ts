import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Registry } from './registry.js';
import type { Principal } from './auth/access.js';
import type { LayerTree, LayerTreeEntry } from './browse-rows.js';
import { RegistryError, badRequest, manifestUnknown } from './errors.js';
import { parseManifestReference } from './names.js';
import { requirePull } from './browse.js';
import { byteCache } from './cache.js';
import { listLayer } from '../../archive/index.js';
import { layerEntry, isWithin, type LayerEntry } from '../../inspect/layers.js';
import { applyLayerEntries, type LayerChange, type StackedPath } from '../../inspect/layer-changes.js';
import { byCodeUnits } from '../../order.js';
import { isIndex } from '../../oci/mediatypes.js';

// GET /kiln/v1/layer?repository=&reference=&layer=N[&path=/dir][&n=][&last=] (issue 20): what layer N
// of an image adds, changes and removes, as `kiln analyze` counts it (inspect/layer-changes.ts), one
// directory at a time so the page expands a tree lazily. Telling "changed" from "added" needs the
// layers below, so layers 0..N are read from storage, streamed, never extracted or buffered whole.
// Bounded: at most limits.layerTreeSize stored bytes and limits.layerTreeEntries tar entries are
// read (defaults: 1 GiB, about 10 s of gunzip on this machine; 200,000, where a Debian base image
// has ~10,000); past either the answer is what was read, with a note. The changes of a layer depend only on the digests of the
// layers up to it, so they are cached by those digests and expanding a directory reads nothing.

const DefaultDirPage = 500;
const MaxDirPage = 1000;

interface Changes {
  layerDigest: string;
  added: number;
  changed: number;
  removed: number;
  changes: LayerChange[];
  truncated?: string;
}

interface LayerDescriptor {
  digest: string;
  size: number;
  urls?: string[];
}

// Keyed by the layer digests, the bounds and the repository: reading a layer checks that the
// repository holds it (BlobService.open links it), and a hit must not skip that check for a manifest
// that merely names another repository's layers (a non-distributable descriptor needs no blob to push).
const cache = byteCache<Changes>(64 * 1024 * 1024);

async function layerStream(reg: Registry, repository: string, digest: string): Promise<Readable> {
  const b = await reg.blobs.open(repository, digest);
  if (b.buffer) return Readable.from([b.buffer]);
  if (b.file) return b.file.createReadStream({ autoClose: true });
  return b.stream!;
}

async function changesOf(reg: Registry, repository: string, layers: LayerDescriptor[], n: number): Promise<Changes> {
  const { layerTreeSize: maxBytes, layerTreeEntries: maxEntries } = reg.config.limits;
  const key = createHash('sha256')
    .update(`${reg.config.root}\n${repository}\n${maxBytes} ${maxEntries}\n` + layers.slice(0, n + 1).map((l) => l.digest).join('\n'))
    .digest('hex');
  const hit = cache.get(key);
  if (hit) return hit;
  const stacked = new Map<string, StackedPath>();
  let bytes = 0;
  let entries = 0;
  let out: Changes | undefined;
  for (let i = 0; i <= n && !out; i++) {
    const l = layers[i]!;
    const stop = (why: string): Changes => ({ layerDigest: layers[n]!.digest, added: 0, changed: 0, removed: 0, changes: [], truncated: why });
    bytes += l.size;
    if (bytes > maxBytes) {
      out = stop(`layers 0 to ${i} hold ${bytes} bytes, more than limits.layerTreeSize (${maxBytes}) lets the web UI read; kiln analyze shows the whole image`);
      break;
    }
    const read: LayerEntry[] = [];
    // A non-distributable layer (image-spec layer.md: fetched from its urls) need not be stored here.
    const source = await layerStream(reg, repository, l.digest).catch((e: unknown) => {
      if (e instanceof RegistryError && e.reason === 'blob-unknown') return undefined;
      throw e;
    });
    if (!source) {
      out = stop(`layer ${i} (${l.digest}) is not stored in ${repository}${l.urls?.length ? ' (a non-distributable layer, fetched from its urls)' : ''}`);
      break;
    }
    let cut = false;
    try {
      for await (const { header } of listLayer(source)) {
        const e = layerEntry(header);
        if (!e) continue;
        if (++entries > maxEntries) {
          cut = true;
          break;
        }
        read.push(e);
      }
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      out = stop(`layer ${i} (${l.digest}) is not a layer kiln can read: ${e instanceof Error ? e.message : String(e)}`);
      break;
    } finally {
      source.destroy();
    }
    const applied = applyLayerEntries(stacked, read, i);
    if (i === n) {
      // A directory entry that was there below is how a tar names a parent of what the layer
      // writes (its mtime changes with it); only directories the layer adds or removes are shown.
      const changes = applied.changes.filter((c) => !(c.dir && c.kind === 'changed'));
      out = { layerDigest: l.digest, added: applied.added, changed: applied.changed, removed: applied.removed, changes };
    }
    if (cut) {
      const why = `layers 0 to ${i} hold more than limits.layerTreeEntries (${maxEntries}) entries; ${i === n ? 'the files of the first ones are shown' : 'this layer was not reached'}; kiln analyze shows the whole image`;
      out = i === n ? { ...out!, truncated: why } : stop(why);
    }
  }
  cache.set(key, out!, out!.changes.reduce((s, c) => s + 64 + 2 * c.path.length, 256));
  return out!;
}

/** The direct children of `dir` that the layer changes, or that have changes below them. */
function listDirectory(changes: LayerChange[], dir: string): LayerTreeEntry[] {
  const children = new Map<string, LayerTreeEntry>();
  const prefix = dir === '/' ? '/' : dir + '/';
  for (const c of changes) {
    if (c.path === dir || !isWithin(c.path, dir)) continue;
    const cut = c.path.indexOf('/', prefix.length);
    const path = cut < 0 ? c.path : c.path.slice(0, cut);
    let e = children.get(path);
    if (!e) children.set(path, (e = { name: path.slice(prefix.length), path, dir: cut >= 0, size: 0, changes: 0 }));
    e.changes++;
    e.size += c.size;
    if (cut < 0) {
      e.kind = c.kind;
      e.dir = c.dir;
    }
  }
  return [...children.values()].sort((a, b) => byCodeUnits(a.name, b.name));
}

function normalisePath(raw: string | null): string {
  const p = (raw ?? '').replace(/(.)\/+$/, '$1');
  if (p === '' || p === '/') return '/';
  if (!p.startsWith('/') || p.length > 4096 || p.split('/').some((s, i) => i > 0 && (s === '' || s === '.' || s === '..'))) {
    throw badRequest(`path: expected an absolute path such as /usr/bin, got "${p.slice(0, 100)}"`);
  }
  return p;
}

export async function layerTree(reg: Registry, p: Principal, repository: string, reference: string, q: URLSearchParams): Promise<LayerTree> {
  await requirePull(reg, p, repository);
  const layerText = q.get('layer') ?? '';
  if (!/^\d{1,6}$/.test(layerText)) throw badRequest(`layer: expected the index of a layer (0 for the first), got "${layerText.slice(0, 20)}"`);
  const layer = Number(layerText);
  const path = normalisePath(q.get('path'));
  const nText = q.get('n');
  if (nText !== null && !/^[1-9]\d{0,5}$/.test(nText)) throw badRequest(`n: expected a positive integer, got "${nText.slice(0, 20)}"`);
  const n = Math.min(MaxDirPage, Number(nText ?? DefaultDirPage));
  const last = q.get('last') ?? '';

  const ref = parseManifestReference(reference);
  const m = await reg.manifests.get(repository, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest });
  if (!m) throw manifestUnknown(reference, `${repository} has no manifest ${reference}`);
  if (isIndex(m.mediaType)) throw badRequest(`${repository}@${m.digest} is an index: its layers are those of the manifests it lists`);
  let layers: LayerDescriptor[] = [];
  try {
    const doc = JSON.parse(m.body.toString('utf8')) as { layers?: unknown };
    if (Array.isArray(doc.layers)) layers = doc.layers.filter((l): l is LayerDescriptor => typeof l?.digest === 'string' && typeof l?.size === 'number');
  } catch {
    /* no layers */
  }
  if (layer >= layers.length) throw new RegistryError('not-found', `layer ${layer}: ${repository}@${m.digest} has ${layers.length} layer${layers.length === 1 ? '' : 's'} (the first is 0)`);

  const c = await changesOf(reg, repository, layers, layer);
  const all = listDirectory(c.changes, path);
  const from = last ? all.findIndex((e) => byCodeUnits(e.name, last) > 0) : 0;
  const page = from < 0 ? [] : all.slice(from, from + n);
  const more = from >= 0 && from + n < all.length;
  return {
    repository,
    digest: m.digest,
    layer,
    layerDigest: c.layerDigest,
    path,
    added: c.added,
    changed: c.changed,
    removed: c.removed,
    entries: page,
    ...(more ? { next: page[page.length - 1]!.name } : {}),
    ...(c.truncated ? { truncated: c.truncated } : {}),
  };
}
