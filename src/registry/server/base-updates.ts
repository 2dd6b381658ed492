import type { EventBus, RegistryEvent } from './events.js';
import type { Metadata } from './metadata/metadata.js';
import type { Logger } from './log.js';
import { parseManifest } from './manifests.js';

// "Base updated" (issue 23): a tag of a base image was pushed (or promoted), and images in the
// registry say, in their base lineage (image-spec annotations.md, org.opencontainers.image.base.*,
// which the search index keeps), that they were built on an older digest of it. Those images are
// listed in one event, for the teams that own them to rebuild.
//
// Which images: those whose base name names this repository and one of the pushed tags
// (registry/team/base:3.19), and those without a usable base name whose base digest is a manifest
// of this repository that no tag names any more (the pushed tag moved away from it). Images on
// another tag of the base (3.18) chose it and are not affected; neither is anything built on the
// digest just pushed or on a manifest of its index.

/** repository and tag of an image reference as written in base.name, without its host; undefined when unreadable. */
export function baseNameParts(name: string): { repository: string; tag?: string } | undefined {
  const at = name.indexOf('@');
  let rest = at >= 0 ? name.slice(0, at) : name;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  let tag: string | undefined;
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  // A first component with a dot, a port or "localhost" is a registry host (the Docker reference grammar).
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) parts.shift();
  if (parts.length === 0 || parts.some((p) => p === '')) return undefined;
  return { repository: parts.join('/'), ...(tag ? { tag } : {}) };
}

type Push = Extract<RegistryEvent, { type: 'push' }>;

export async function affectedBy(metadata: Metadata, e: Push): Promise<{ repository: string; digest: string; tags: string[]; base: string }[]> {
  const m = await metadata.getManifest(e.repository, e.digest);
  const fresh = new Set([e.digest, ...(m ? parseManifest(m.body, m.mediaType).refs.manifests : [])]);
  const untagged = new Map<string, Promise<boolean>>();
  const isUntagged = (digest: string) => {
    if (!untagged.has(digest)) untagged.set(digest, metadata.tagsOf(e.repository, digest).then((t) => t.length === 0));
    return untagged.get(digest)!;
  };
  const out: { repository: string; digest: string; tags: string[]; base: string }[] = [];
  for (const h of await metadata.findBuiltOnRepository(e.repository)) {
    if (fresh.has(h.base.digest)) continue;
    const named = h.base.name ? baseNameParts(h.base.name) : undefined;
    const hit = named?.repository === e.repository ? e.tags.includes(named.tag ?? 'latest') : h.baseInRepository && (await isUntagged(h.base.digest));
    if (hit) out.push({ repository: h.repository, digest: h.digest, tags: h.tags, base: h.base.digest });
  }
  return out;
}

/** Publish base-updated after each tagged push of an image that others are built on (older digests). */
export function watchBaseUpdates(events: EventBus, metadata: Metadata, log: Logger): () => void {
  return events.subscribe(async (e) => {
    if (e.type !== 'push' || e.tags.length === 0 || e.subject) return;
    const affected = await affectedBy(metadata, e).catch((err: unknown) => {
      log.log('error', 'finding images built on an updated base failed', { repository: e.repository, error: String((err as Error)?.message ?? err) });
      return [];
    });
    if (affected.length) events.publish(e.actor, { type: 'base-updated', repository: e.repository, digest: e.digest, tags: e.tags, affected });
  });
}
