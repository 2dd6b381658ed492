import { Readable } from 'node:stream';
import type { Descriptor } from '../../../oci/types.js';
import { RegistrySession, pullScope, pushScope } from '../../client/session.js';
import { downloadBlob, fetchSmallBlob, uploadBlob } from '../../client/blobs.js';
import { fetchManifest, listRepositories, listTags, ManifestAccept, putManifest as putRemoteManifest } from '../../client/manifests.js';
import { discard, readBody } from '../../client/http.js';
import { ManifestUnknown, RegistryRequestFailed } from '../../client/errors.js';
import type { RetryPolicy } from '../../client/http.js';
import type { Metadata, ReplicationRule } from '../metadata/metadata.js';
import type { BlobService } from '../blobs.js';
import type { ManifestStore } from '../manifest-store.js';
import type { Uploads } from '../uploads.js';
import type { Actor, RegistryService } from '../service.js';
import { DigestMismatch } from '../../../errors.js';
import { repositoriesOf } from '../retention.js';
import { MediaType } from '../../../oci/mediatypes.js';

// The two ends of a replication: this registry (through its registry service, so that quotas and
// immutability apply to what comes in, and blobs are committed as uploads are) and another
// registry (through kiln's registry client). A run reads from one Side and writes to the other.

export interface StoredManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export type BlobOutcome = 'exists' | 'mounted' | 'pushed';

export interface Side {
  /** "kiln" or the remote's URL, for messages. */
  readonly name: string;
  manifest(repository: string, reference: string): Promise<StoredManifest | undefined>;
  /** The digest a tag or digest names here (HEAD), undefined when it names nothing. */
  manifestDigest(repository: string, reference: string): Promise<string | undefined>;
  /** A small blob whole (an image config). */
  smallBlob(repository: string, desc: Descriptor): Promise<Buffer>;
  openBlob(repository: string, desc: Descriptor, signal: AbortSignal): Readable;
  /** Digests of the manifests whose subject is `digest` (signatures, SBOMs); [] where the registry cannot say. */
  referrers(repository: string, digest: string): Promise<string[]>;
  /** Repositories at or below `prefix`. */
  repositories(prefix: string): Promise<string[]>;
  tags(repository: string): Promise<string[]>;
  /** Store the blob unless it is here: mounted from `mountFrom` (same registry) when it can, else read from `open`. */
  putBlob(repository: string, desc: Descriptor, open: () => Readable, mountFrom: string[], signal: AbortSignal): Promise<BlobOutcome>;
  putManifest(repository: string, reference: string, m: StoredManifest): Promise<void>;
}

/** This registry, written through its service as `actor`. */
export function localSide(parts: { metadata: Metadata; manifests: ManifestStore; blobs: BlobService; uploads: Uploads; service: RegistryService; actor: Actor }): Side {
  const { metadata, manifests, blobs, uploads, service, actor } = parts;
  const open = async (repository: string, digest: string): Promise<Readable> => {
    const b = await blobs.open(repository, digest);
    if (b.buffer) return Readable.from([b.buffer]);
    if (b.file) return b.file.createReadStream();
    return b.stream!;
  };
  return {
    name: 'kiln',
    async manifest(repository, reference) {
      const m = await manifests.get(repository, reference.includes(':') ? { digest: reference } : { tag: reference });
      return m ? { bytes: m.body, digest: m.digest, mediaType: m.mediaType } : undefined;
    },
    async manifestDigest(repository, reference) {
      if (!reference.includes(':')) return metadata.resolveTag(repository, reference);
      return (await metadata.getManifest(repository, reference)) ? reference : undefined;
    },
    async smallBlob(repository, desc) {
      const chunks: Buffer[] = [];
      for await (const c of await open(repository, desc.digest)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    openBlob(repository, desc) {
      return Readable.from(
        (async function* () {
          yield* await open(repository, desc.digest);
        })(),
      );
    },
    async referrers(repository, digest) {
      return (await metadata.referrers(repository, digest)).map((m) => m.digest);
    },
    repositories(prefix) {
      return repositoriesOf(metadata, prefix);
    },
    async tags(repository) {
      return (await metadata.listTags(repository, undefined, undefined)) ?? [];
    },
    async putBlob(repository, desc, read) {
      if ((await blobs.stat(repository, desc.digest)) !== undefined) return 'exists';
      // Any repository of this registry holds the bytes: link them (a mount), counted by the quota.
      const known = await metadata.blob(desc.digest);
      if (known) {
        await service.admitBlob(actor, repository, desc.digest, known.size);
        if (await blobs.mount(repository, desc.digest)) return 'mounted';
      }
      const s = await uploads.start(repository, desc.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
      let staged;
      try {
        await uploads.append(s, read(), { length: desc.size });
        staged = await uploads.finish(s, desc.digest);
      } catch (e) {
        await uploads.cancel(s).catch(() => {});
        throw e;
      }
      try {
        await service.admitBlob(actor, repository, desc.digest, staged.size).catch(async (e: unknown) => {
          await blobs.discard(staged);
          throw e;
        });
        await blobs.commit(repository, desc.digest, staged);
      } finally {
        await staged.done?.();
      }
      return 'pushed';
    },
    async putManifest(repository, reference, m) {
      const r = await service.pushManifest(actor, repository, m.bytes, m.mediaType, reference.includes(':') ? { digest: reference } : { tag: reference });
      if (r.digest !== m.digest) throw new DigestMismatch(`kiln stored ${repository}:${reference} as ${r.digest}, not ${m.digest}`);
    },
  };
}

/** Another registry, spoken to with kiln's registry client and the rule's credentials. */
export function remoteSide(rule: ReplicationRule, retry: RetryPolicy): Side {
  const u = new URL(rule.remote);
  const session = new RegistrySession(
    { registry: u.host, host: u.host, url: rule.remote, prefix: '', mirror: false },
    { retry, credential: rule.username !== undefined ? { username: rule.username, secret: rule.secret ?? '' } : null },
  );
  const name = rule.remote;
  return {
    name,
    async manifest(repository, reference) {
      try {
        const m = await fetchManifest(session, repository, reference);
        return { bytes: m.bytes, digest: m.digest, mediaType: m.mediaType };
      } catch (e) {
        if (e instanceof ManifestUnknown) return undefined;
        throw e;
      }
    },
    async manifestDigest(repository, reference) {
      const res = await session.request('HEAD', `/v2/${repository}/manifests/${reference}`, { scopes: [pullScope(repository)], headers: { accept: ManifestAccept } });
      discard(res);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw new RegistryRequestFailed(`${name}/${repository}:${reference}: HEAD manifest answered ${res.status}`, res.status);
      const d = res.headers['docker-content-digest'];
      return typeof d === 'string' ? d : reference.includes(':') ? reference : undefined;
    },
    smallBlob(repository, desc) {
      return fetchSmallBlob(session, repository, desc);
    },
    openBlob(repository, desc, signal) {
      return downloadBlob(session, repository, desc, () => {}, () => {}, signal);
    },
    async referrers(repository, digest) {
      // distribution-spec "Listing Referrers"; a registry without the API (Distribution 2.8) answers 404.
      const res = await session.request('GET', `/v2/${repository}/referrers/${digest}`, { scopes: [pullScope(repository)], headers: { accept: MediaType.OciIndex } });
      if (res.status !== 200) {
        discard(res);
        return [];
      }
      const doc = JSON.parse((await readBody(res, 4 << 20)).toString('utf8')) as { manifests?: { digest?: string }[] };
      return (doc.manifests ?? []).map((m) => m.digest).filter((d): d is string => typeof d === 'string');
    },
    repositories(prefix) {
      return listRepositories(session, prefix);
    },
    async tags(repository) {
      try {
        return await listTags(session, repository);
      } catch (e) {
        if (e instanceof ManifestUnknown) return [];
        throw e;
      }
    },
    async putBlob(repository, desc, open, mountFrom, signal) {
      const r = await uploadBlob(session, repository, desc, open, {
        scopes: [pushScope(repository), ...mountFrom.map(pullScope)],
        mountFrom,
        // One PUT per blob: a stream from the other side cannot be read from the middle.
        monolithicMax: Number.MAX_SAFE_INTEGER,
        chunkSize: Number.MAX_SAFE_INTEGER,
        onBytes: () => {},
        onRetry: () => {},
        signal,
      });
      return r.result;
    },
    async putManifest(repository, reference, m) {
      const r = await putRemoteManifest(session, repository, reference, m.bytes, m.mediaType, [pushScope(repository)]);
      if (r.digest && r.digest !== m.digest) throw new DigestMismatch(`${name}/${repository}:${reference}: the registry stored the manifest as ${r.digest}, kiln sent ${m.digest}`);
    },
  };
}
