import type { OutgoingHttpHeaders } from 'node:http';
import { createHash } from 'node:crypto';
import { algorithmOf } from '../../oci/digest.js';
import type { Metadata, ManifestRecord, PutManifestOptions } from './metadata/metadata.js';
import { parseManifest, type ParsedManifest } from './manifests.js';
import { digestInvalid, RegistryError } from './errors.js';
import { ApiVersion, ApiVersionHeader } from './http.js';

/** A manifest ready to send: bytes and the response headers, computed once. */
export interface ServedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
  headers: OutgoingHttpHeaders;
}

export interface ManifestStore {
  /** From memory only (the hot path); undefined when not cached. */
  cached(repository: string, reference: string): ServedManifest | undefined;
  /** By tag or digest, from the database when not cached. */
  get(repository: string, reference: { tag?: string; digest?: string }): Promise<ServedManifest | undefined>;
  /**
   * Validate and store. `reference` is the tag or digest of the URL; extra tags come from ?tag=.
   * Throws MANIFEST_INVALID, DIGEST_INVALID or MANIFEST_BLOB_UNKNOWN (one error per missing reference).
   */
  put(repository: string, body: Buffer, contentType: string, reference: { tag?: string; digest?: string }, extraTags: string[], opts?: PutManifestOptions): Promise<{ digest: string; parsed: ParsedManifest; moved: { tag: string; from: string }[] }>;
  delete(repository: string, digest: string): Promise<{ tags: string[] } | undefined>;
  deleteTag(repository: string, tag: string): Promise<string | undefined>;
  invalidate(): void;
}

function served(m: { digest: string; mediaType: string; body: Buffer }): ServedManifest {
  return {
    digest: m.digest,
    mediaType: m.mediaType,
    body: m.body,
    headers: {
      [ApiVersionHeader]: ApiVersion,
      'Content-Type': m.mediaType,
      'Content-Length': m.body.length,
      'Docker-Content-Digest': m.digest,
      ETag: `"${m.digest}"`,
    },
  };
}

export function manifestStore(metadata: Metadata, cacheBytes: number): ManifestStore {
  // repository -> reference ("t:<tag>" or the digest) -> manifest. Whole repositories are dropped
  // when the byte budget is exceeded or the repository changes in a way that moves tags.
  const repos = new Map<string, Map<string, ServedManifest>>();
  let bytes = 0;
  // Bumped whenever tags of a repository change, so a lookup that raced with a push is not cached.
  let generation = 0;
  const remember = (repo: string, ref: string, m: ServedManifest) => {
    let r = repos.get(repo);
    if (!r) repos.set(repo, (r = new Map()));
    if (!r.has(ref)) bytes += m.body.length + 256;
    r.set(ref, m);
    while (bytes > cacheBytes && repos.size > 0) dropRepo(repos.keys().next().value as string);
  };
  const dropRepo = (repo: string) => {
    const r = repos.get(repo);
    if (!r) return;
    for (const m of r.values()) bytes -= m.body.length + 256;
    repos.delete(repo);
  };

  return {
    cached(repository, reference) {
      return repos.get(repository)?.get(reference);
    },

    async get(repository, ref) {
      const key = ref.tag !== undefined ? 't:' + ref.tag : ref.digest!;
      const hit = repos.get(repository)?.get(key);
      if (hit) return hit;
      const gen = generation;
      const digest = ref.tag !== undefined ? await metadata.resolveTag(repository, ref.tag) : ref.digest!;
      if (!digest) return undefined;
      const rec = await metadata.getManifest(repository, digest);
      if (!rec) return undefined;
      const m = repos.get(repository)?.get(digest) ?? served(rec);
      if (gen !== generation) return m;
      remember(repository, key, m);
      if (key !== digest) remember(repository, digest, m);
      return m;
    },

    async put(repository, body, contentType, ref, extraTags, opts) {
      const parsed = parseManifest(body, contentType);
      const alg = ref.digest ? algorithmOf(ref.digest) : 'sha256';
      const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
      // distribution-spec "Pushing Manifests": a digest reference MUST match the content.
      if (ref.digest && ref.digest !== digest) throw digestInvalid('manifest digest does not match the reference', { expected: ref.digest, actual: digest });
      const tags = [...(ref.tag !== undefined ? [ref.tag] : []), ...extraTags];
      const rec: ManifestRecord = {
        repository,
        digest,
        mediaType: parsed.mediaType,
        body,
        artifactType: parsed.artifactType,
        subject: parsed.subject?.digest,
        annotations: parsed.annotations,
        createdAt: Date.now(),
      };
      const { missing, moved } = await metadata.putManifest(rec, parsed.refs, tags, opts);
      if (missing.length) {
        const errs = missing.map((d) => new RegistryError('manifest-blob-unknown', 'manifest references a manifest or blob unknown to registry', { digest: d }));
        throw Object.assign(errs[0]!, { others: errs.slice(1) });
      }
      generation++;
      const r = repos.get(repository);
      if (r) for (const t of tags) r.delete('t:' + t);
      return { digest, parsed, moved };
    },

    async delete(repository, digest) {
      const r = await metadata.deleteManifest(repository, digest);
      generation++;
      dropRepo(repository);
      return r;
    },

    async deleteTag(repository, tag) {
      const d = await metadata.deleteTag(repository, tag);
      generation++;
      repos.get(repository)?.delete('t:' + tag);
      return d;
    },

    invalidate() {
      generation++;
      repos.clear();
      bytes = 0;
    },
  };
}
