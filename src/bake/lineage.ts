// The hierarchy of images as the images themselves record it: each image's manifest carries the
// image-spec's base annotations (annotations.md: org.opencontainers.image.base.name, .base.digest),
// written by `kiln build`. From them: the tree of the local store (`kiln images --tree`) and the
// targets whose base has moved on since they were built (`kiln bake --stale`).

import type { Store, StoredImage } from '../store/store.js';
import { ImageUnknown } from '../errors.js';
import { familiarName } from '../store/describe.js';
import { normalize } from '../reference/reference.js';
import { renderTree } from '../ui/tree.js';
import type { Hierarchy } from './graph.js';

import { BaseNameAnnotation, BaseDigestAnnotation } from '../oci/types.js';
import { byCodeUnits } from '../order.js';
export { BaseNameAnnotation, BaseDigestAnnotation };

export interface RecordedBase {
  name?: string;
  digest: string;
}

/** What an image says it was built on; undefined for images built FROM scratch or elsewhere without the annotations. */
export function recordedBase(img: StoredImage): RecordedBase | undefined {
  const a = img.manifest.annotations ?? {};
  const digest = a[BaseDigestAnnotation];
  if (!digest) return undefined;
  return a[BaseNameAnnotation] ? { name: a[BaseNameAnnotation], digest } : { digest };
}

/** The local store as a forest: every image under the image its base.digest names, when the store has it. */
export function storeTree(images: StoredImage[]): string {
  const byDigest = new Map(images.map((i) => [i.manifestDescriptor.digest, i]));
  const children = new Map<string, StoredImage[]>();
  const roots: StoredImage[] = [];
  for (const img of images) {
    const base = recordedBase(img);
    const parent = base && base.digest !== img.manifestDescriptor.digest ? byDigest.get(base.digest) : undefined;
    if (parent) children.set(parent.manifestDescriptor.digest, [...(children.get(parent.manifestDescriptor.digest) ?? []), img]);
    else roots.push(img);
  }
  const byName = (a: StoredImage, b: StoredImage) => byCodeUnits(labelOf(a), labelOf(b));
  const label = (img: StoredImage) => {
    const base = recordedBase(img);
    const outside = base && !byDigest.has(base.digest) ? `  (built on ${base.name ? familiarName(base.name) : ''}@${base.digest.slice(0, 19)}, not in the store)` : '';
    return `${labelOf(img)}  ${img.manifestDescriptor.digest.slice(0, 19)}${outside}`;
  };
  return renderTree(roots.sort(byName), (img) => (children.get(img.manifestDescriptor.digest) ?? []).sort(byName), label);
}

function labelOf(img: StoredImage): string {
  return img.names.length ? img.names.map(familiarName).sort().join(', ') : `<none> ${img.id.slice(7, 19)}`;
}

export interface StaleTarget {
  target: string;
  image: StoredImage;
  base: RecordedBase & { name: string };
  /** The manifest digest the base name stands at now. */
  current: string;
}

/**
 * Targets whose image was built on a base that has a newer image now: the base name (a parent
 * target's tag or an external image) resolves in the store to another digest than the one recorded.
 */
export async function staleTargets(h: Hierarchy, store: Store): Promise<{ stale: StaleTarget[]; unbuilt: string[] }> {
  const stale: StaleTarget[] = [];
  const unbuilt: string[] = [];
  for (const name of h.order) {
    const image = await resolveOrUndefined(store, h.file.targets.get(name)!.tags[0]!);
    if (!image) {
      unbuilt.push(name);
      continue;
    }
    const base = recordedBase(image);
    if (!base?.name) continue;
    const now = await resolveOrUndefined(store, base.name);
    if (now && now.manifestDescriptor.digest !== base.digest) stale.push({ target: name, image, base: { ...base, name: base.name }, current: now.manifestDescriptor.digest });
  }
  return { stale, unbuilt };
}

/** The targets whose image in the store was built on the image with manifest digest `digest`. */
export async function targetsBuiltOn(h: Hierarchy, store: Store, digest: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of h.order) {
    const img = await resolveOrUndefined(store, h.file.targets.get(name)!.tags[0]!);
    if (img && recordedBase(img)?.digest === digest) out.push(name);
  }
  return out;
}

async function resolveOrUndefined(store: Store, ref: string): Promise<StoredImage | undefined> {
  try {
    return await store.resolveImage(ref);
  } catch (e) {
    if (e instanceof ImageUnknown) return undefined;
    throw e;
  }
}

export function formatStale(r: { stale: StaleTarget[]; unbuilt: string[] }): string {
  let out = '';
  for (const s of r.stale) {
    out += `${s.target}  ${familiarName(normalize(s.image.names[0] ?? s.target))}  built on ${familiarName(s.base.name)}@${s.base.digest}, which is now ${s.current}\n`;
  }
  for (const n of r.unbuilt) out += `${n}  not built yet\n`;
  return out;
}
