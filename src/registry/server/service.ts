import { createHash } from 'node:crypto';
import type { RegistryConfig } from './config.js';
import type { Metadata, ProxyRecord } from './metadata/metadata.js';
import { proxyDenied } from './proxy.js';
import type { ManifestStore } from './manifest-store.js';
import type { BlobService } from './blobs.js';
import type { SearchIndex } from './search.js';
import type { AuditLog } from './audit.js';
import type { Action } from './auth/access.js';
import type { EventBus } from './events.js';
import { parseManifest, type ParsedManifest } from './manifests.js';
import { algorithmOf } from '../../oci/digest.js';
import { denied, manifestUnknown, unsupported } from './errors.js';
import { namespaceOf } from './names.js';
import { describeRule, ruleProtects } from './governance.js';
import { binarySize } from '../../ui/format.js';
import type { SignatureRules } from './trust.js';

// The rules of changing what a registry holds: pushing a manifest, moving a tag (promote),
// deleting a tag or a manifest, linking a blob (quotas), tag immutability. The /v2/ routes, the /kiln/v1/ API and the web UI all call these,
// so a rule (who may move a tag, whether deletion is on, what the audit log records) lives in one
// place. Authentication is the caller's: it hands over an Actor that answers what the caller may do.

/** Who asks, as the service sees them. */
export interface Actor {
  /** The name the audit log records ("anonymous" when no one signed in). */
  name: string;
  /** The client's address, for the audit log. */
  address?: string;
  /** Whether the actor may take `action` on `repository`; a false answer makes the service refuse with DENIED. */
  may(repository: string, action: Action): Promise<boolean>;
  /** Whether the actor administers the namespace (its admin role, or a system administrator): they may evict from a pull-through cache. */
  administers?(namespace: string): Promise<boolean>;
}

export interface PushedManifest {
  digest: string;
  parsed: ParsedManifest;
  /** Tags that named another manifest before this push. */
  moved: { tag: string; from: string }[];
}

export interface RegistryService {
  /**
   * Store a manifest under `reference` (its tag or digest) and `extraTags` (?tag=). Moving a tag
   * that names another manifest is a promotion and needs the promote action. Throws
   * MANIFEST_INVALID, DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN or DENIED.
   */
  pushManifest(actor: Actor, repository: string, body: Buffer, contentType: string, reference: { tag?: string; digest?: string }, extraTags?: string[]): Promise<PushedManifest>;
  /** Make `tag` of `repository` name the manifest `source` (in the same or another repository). */
  promote(actor: Actor, source: { repository: string; tag?: string; digest?: string }, destination: { repository: string; tag: string }): Promise<PushedManifest>;
  /** Remove a tag; the manifest stays. Returns the digest the tag named. */
  deleteTag(actor: Actor, repository: string, tag: string): Promise<string>;
  /** Remove a manifest and every tag naming it. Returns those tags. */
  deleteManifest(actor: Actor, repository: string, digest: string): Promise<{ tags: string[] }>;
  /**
   * Before a blob of `size` bytes is linked into `repository` (an upload's end, a mount): DENIED
   * when its namespace's quota would be exceeded. A blob the namespace has already counts once.
   */
  admitBlob(actor: Actor, repository: string, digest: string, size: number): Promise<void>;
  /**
   * A manifest was pulled (GET, not HEAD): its pull time for retention, written in the background at
   * most once a minute, and a pull event.
   */
  notePull(actor: Actor, repository: string, reference: string, manifest: { digest: string; mediaType: string }): void;
}

export function registryService(parts: {
  config: RegistryConfig;
  metadata: Metadata;
  manifests: ManifestStore;
  blobs: BlobService;
  search: SearchIndex;
  audit: AuditLog;
  /** Where push, pull, delete, promote and quota events go once the change is committed and audited. */
  events: EventBus;
  /** The pull-through cache settings of a repository's namespace (proxy.ts), when it is one: pushes there are refused. */
  proxyOf?: (repository: string) => Promise<ProxyRecord | undefined>;
  /** Namespaces' signature policies: promotions (and tag moves) they cover need a verified signature. */
  signatures: SignatureRules;
}): RegistryService {
  const { config, metadata, manifests, blobs, search, audit, events, signatures } = parts;

  /** A pull-through cache's content comes from upstream: no push; deletes (evictions) by its administrators only. */
  const requireNotProxy = async (actor: Actor, repository: string, what: string, administratorsMay = false) => {
    const proxy = await parts.proxyOf?.(repository);
    if (!proxy) return;
    if (administratorsMay && (await actor.administers?.(proxy.namespace))) return;
    throw proxyDenied(proxy, what);
  };
  // repository \0 digest -> when this process last wrote the manifest's pull time.
  const pulls = new Map<string, number>();

  const requireAction = async (actor: Actor, repository: string, action: Action, why: string) => {
    if (!(await actor.may(repository, action))) throw denied(`${why}: ${action} on ${repository} is not allowed for ${actor.name}`);
  };

  /** Refuse moving or deleting an immutable tag: no role bypasses a rule; an administrator removes it. */
  const requireMutable = async (repository: string, tags: string[], what: string) => {
    if (tags.length === 0) return;
    const rules = await metadata.immutableRules(namespaceOf(repository));
    for (const tag of tags) {
      const rule = rules.find((r) => ruleProtects(r, repository, tag));
      if (rule) throw denied(`${what}: tag ${tag} of ${repository} is immutable (${describeRule(rule)})`);
    }
  };

  /** pushManifest; `promotionAdmitted` when promote() has checked the signature policy already (against the source's signatures). */
  const store = async (actor: Actor, repository: string, body: Buffer, contentType: string, reference: { tag?: string; digest?: string }, extraTags: string[], promotionAdmitted: boolean): Promise<PushedManifest> => {
    await requireAction(actor, repository, 'push', 'push');
    await requireNotProxy(actor, repository, 'push');
    const tags = [...(reference.tag !== undefined ? [reference.tag] : []), ...extraTags];
    if (tags.length) {
      const alg = reference.digest ? algorithmOf(reference.digest) : 'sha256';
      const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
      const moving: string[] = [];
      for (const t of tags) {
        const current = await metadata.resolveTag(repository, t);
        // A first push of a tag, or the same manifest again, is a push; a move is a promotion.
        if (current && current !== digest) moving.push(t);
      }
      await requireMutable(repository, moving, 'push');
      if (moving.length && !(await actor.may(repository, 'promote'))) throw denied(`tag ${moving[0]} exists: moving it (promote) needs the maintainer role`);
      if (moving.length && !promotionAdmitted) await signatures.admitPromotion(repository, repository, { digest, body });
    }
    const r = await manifests.put(repository, body, contentType, reference, extraTags);
    await search.indexPushed(repository, r.digest, body, r.parsed);
    audit.record({
      actor: actor.name,
      action: 'push',
      repository,
      reference: tags.join(',') || r.digest,
      digest: r.digest,
      detail: r.moved.length ? `moved ${r.moved.map((m) => `${m.tag} from ${m.from}`).join(', ')}` : undefined,
      address: actor.address,
    });
    events.publish(actor.name, { type: 'push', repository, digest: r.digest, mediaType: r.parsed.mediaType, size: body.length, tags, subject: r.parsed.subject?.digest });
    return r;
  };
  const pushManifest: RegistryService['pushManifest'] = (actor, repository, body, contentType, reference, extraTags = []) => store(actor, repository, body, contentType, reference, extraTags, false);

  /** The blobs and child manifests `parsed` needs in `to`, linked from `from` (server-side mounts). */
  const bring = async (actor: Actor, from: string, to: string, parsed: ParsedManifest): Promise<void> => {
    for (const { digest } of parsed.refs.blobs) {
      if ((await blobs.stat(to, digest)) !== undefined) continue;
      if ((await blobs.stat(from, digest)) === undefined || !(await blobs.mount(to, digest))) throw manifestUnknown(`${from}@${digest}`, 'a blob of the source is gone');
    }
    for (const digest of parsed.refs.manifests) {
      if (await manifests.get(to, { digest })) continue;
      const child = await manifests.get(from, { digest });
      if (!child) throw manifestUnknown(`${from}@${digest}`, 'a manifest of the source index is gone');
      await bring(actor, from, to, parseManifest(child.body, child.mediaType));
      await pushManifest(actor, to, child.body, child.mediaType, { digest: child.digest });
    }
  };

  return {
    pushManifest,

    async promote(actor, source, destination) {
      await requireAction(actor, source.repository, 'pull', 'promote');
      const m = await manifests.get(source.repository, source.tag !== undefined ? { tag: source.tag } : { digest: source.digest! });
      if (!m) throw manifestUnknown(`${source.repository}${source.tag !== undefined ? `:${source.tag}` : `@${source.digest}`}`);
      if (source.digest && m.digest !== source.digest) throw manifestUnknown(`${source.repository}@${source.digest}`);
      await signatures.admitPromotion(source.repository, destination.repository, m);
      // The destination gets exactly the bytes the source named when it was read: a tag moved on
      // the source meanwhile cannot leak into the destination.
      if (destination.repository !== source.repository) {
        await requireAction(actor, destination.repository, 'push', 'promote');
        await bring(actor, source.repository, destination.repository, parseManifest(m.body, m.mediaType));
      }
      // Promotion is the maintainer's act even when the tag is new.
      await requireAction(actor, destination.repository, 'promote', 'promote');
      const r = await store(actor, destination.repository, m.body, m.mediaType, { tag: destination.tag }, [], true);
      // Signatures, SBOMs and attestations go with the image, so that the destination's policy sees them.
      if (destination.repository !== source.repository) {
        for (const ref of await metadata.referrers(source.repository, m.digest)) {
          if (await manifests.get(destination.repository, { digest: ref.digest })) continue;
          await bring(actor, source.repository, destination.repository, parseManifest(ref.body, ref.mediaType));
          await pushManifest(actor, destination.repository, ref.body, ref.mediaType, { digest: ref.digest });
        }
      }
      audit.record({
        actor: actor.name,
        action: 'promote',
        repository: destination.repository,
        reference: destination.tag,
        digest: r.digest,
        detail: `from ${source.repository}${source.tag !== undefined ? `:${source.tag}` : ''}@${m.digest}`,
        address: actor.address,
      });
      events.publish(actor.name, { type: 'promote', repository: destination.repository, tag: destination.tag, digest: r.digest, source: `${source.repository}@${m.digest}` });
      return r;
    },

    async deleteTag(actor, repository, tag) {
      await requireAction(actor, repository, 'delete', 'delete');
      if (!config.storage.deleteEnabled) throw unsupported('deletion is disabled');
      await requireNotProxy(actor, repository, 'delete', true);
      await requireMutable(repository, [tag], 'delete');
      const digest = await manifests.deleteTag(repository, tag);
      if (!digest) throw manifestUnknown(tag);
      audit.record({ actor: actor.name, action: 'delete-tag', repository, reference: tag, digest, address: actor.address });
      events.publish(actor.name, { type: 'delete', repository, digest, tags: [tag], tagOnly: true });
      return digest;
    },

    async deleteManifest(actor, repository, digest) {
      await requireAction(actor, repository, 'delete', 'delete');
      if (!config.storage.deleteEnabled) throw unsupported('deletion is disabled');
      await requireNotProxy(actor, repository, 'delete', true);
      // Deleting a manifest deletes its tags: not when one of them is immutable (Harbor's rule too).
      await requireMutable(repository, await metadata.tagsOf(repository, digest), 'delete');
      const r = await manifests.delete(repository, digest);
      if (!r) throw manifestUnknown(digest);
      audit.record({
        actor: actor.name,
        action: 'delete-manifest',
        repository,
        reference: digest,
        digest,
        detail: r.tags.length ? `untagged ${r.tags.join(', ')}` : undefined,
        address: actor.address,
      });
      events.publish(actor.name, { type: 'delete', repository, digest, tags: r.tags, tagOnly: false });
      return r;
    },

    notePull(actor, repository, reference, { digest, mediaType }) {
      events.publish(actor.name, { type: 'pull', repository, digest, mediaType, reference });
      const k = repository + '\0' + digest;
      const now = Date.now();
      if (now - (pulls.get(k) ?? 0) < 60_000) return;
      if (pulls.size > 100_000) pulls.clear();
      pulls.set(k, now);
      // A pull never waits for, nor fails by, this write.
      metadata.markPulled(repository, digest, now).catch(() => pulls.delete(k));
    },

    async admitBlob(actor, repository, digest, size) {
      const ns = namespaceOf(repository);
      const quota = (await metadata.getNamespace(ns))?.quotaBytes;
      if (quota === undefined) return;
      if ((await metadata.blobRepositoryInNamespace(ns, digest)) !== undefined) return;
      const used = await metadata.namespaceUsage(ns);
      if (used + size > quota) {
        events.publish(actor.name, { type: 'quota-exceeded', namespace: ns, repository, digest, size, used, quota });
        throw denied(`quota of namespace ${ns} exceeded: ${binarySize(used)} used of ${binarySize(quota)}, and this blob needs ${binarySize(size)} more (${digest})`);
      }
    },
  };
}
