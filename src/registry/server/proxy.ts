import { Readable, type Writable } from 'node:stream';
import { KilnError, UsageError } from '../../errors.js';
import { algorithmOf } from '../../oci/digest.js';
import { RegistrySession, pullScope } from '../client/session.js';
import { fetchManifest, ManifestAccept, type RemoteManifest } from '../client/manifests.js';
import { discard, NetworkError, readBody, type HttpResponse, type RetryPolicy } from '../client/http.js';
import { errorSummary } from '../client/auth.js';
import { ManifestUnknown, RegistryDenied, RegistryUnauthorized, RegistryUnreachable } from '../client/errors.js';
import type { Endpoint } from '../client/config.js';
import type { Metadata, ProxyRecord } from './metadata/metadata.js';
import type { ManifestStore, ServedManifest } from './manifest-store.js';
import type { BlobService } from './blobs.js';
import type { Uploads } from './uploads.js';
import type { SearchIndex } from './search.js';
import type { AuditLog } from './audit.js';
import type { Logger } from './log.js';
import type { Actor, RegistryService } from './service.js';
import { blobUnknown, denied, manifestUnknown, nameUnknown, RegistryError, upstreamFailed } from './errors.js';
import { isName, namespaceOf, type ManifestReference } from './names.js';

// Pull-through cache namespaces (issue 23): a namespace set with `--proxy URL` stands for the
// repositories of another registry. A pull that misses is fetched from upstream with kiln's
// registry client (token or Basic auth, retries), verified, stored the way pushes store content
// (manifests by digest and tag, blobs linked into the repository: GC, search and quotas see them)
// and served. Blobs stream to the client that caused the fetch while they are being stored; its
// last chunk is held back until the digest is verified, so a client never receives a whole blob
// that does not match (it sees the connection cut instead). Concurrent misses of one blob or
// manifest fetch once. A tag is asked upstream again (HEAD) once its TTL has passed; when upstream
// cannot answer, the cached copy is served and the log says so. A digest never changes, so a
// manifest or blob by digest is never asked again.
//
// Redirects: a blob may be redirected to another host (Distribution sends blobs to S3 with a signed
// URL; the client drops our Authorization header there, and the digest verifies the bytes).
// A manifest, whose tag is trusted as upstream says it, must come from the upstream's own host
// (host and port): an answer from anywhere else is refused.

export const DefaultProxyTtlSeconds = 300;

/** Few, quick retries: when upstream is down a pull should fall back to the cache in about a second. */
const UpstreamRetry: RetryPolicy = { attempts: 2, baseDelayMs: 100, maxDelayMs: 1_000 };

const DockerHubHosts = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** A --proxy URL: http(s)://host[:port] with an optional repository path prefix; returned without a trailing slash. */
export function checkProxyUrl(value: string, field = '--proxy'): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`${field}: "${value.slice(0, 200)}" is not a URL; give the upstream registry as http(s)://host[:port][/path]`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${field}: "${value.slice(0, 200)}": only http:// and https:// upstream registries are supported`);
  if (u.username || u.password) throw new UsageError(`${field}: put no credentials in the URL; give them with --proxy-username and --proxy-password-stdin`);
  if (u.search || u.hash) throw new UsageError(`${field}: "${value.slice(0, 200)}": no query or fragment, only http(s)://host[:port][/path]`);
  const prefix = u.pathname.replace(/^\/+|\/+$/g, '');
  if (prefix !== '' && !isName(prefix)) throw new UsageError(`${field}: path "${prefix.slice(0, 200)}" is not a repository path prefix (lower-case components separated by /)`);
  return `${u.protocol}//${u.host}${prefix ? '/' + prefix : ''}`;
}

/**
 * The upstream repository a repository of the proxy namespace stands for: the namespace is
 * stripped and the URL's path prefix put in front. On Docker Hub a one-component name is an
 * official image, as docker clients assume: hub/busybox is library/busybox.
 */
export function upstreamRepository(proxy: Pick<ProxyRecord, 'namespace' | 'url'>, repository: string): string {
  const u = new URL(proxy.url);
  const prefix = u.pathname.replace(/^\/+|\/+$/g, '');
  const rest = repository === proxy.namespace ? '' : repository.slice(proxy.namespace.length + 1);
  let path = [prefix, rest].filter(Boolean).join('/');
  if (path === '') throw nameUnknown(repository);
  if (DockerHubHosts.has(u.hostname) && !path.includes('/')) path = `library/${path}`;
  return path;
}

function endpointOf(proxy: ProxyRecord): Endpoint {
  const u = new URL(proxy.url);
  // Docker Hub's registry API is at registry-1.docker.io (the client's usual convention).
  const host = DockerHubHosts.has(u.hostname) ? 'registry-1.docker.io' : u.host;
  const scheme = DockerHubHosts.has(u.hostname) ? 'https:' : u.protocol;
  return { registry: host, host, url: `${scheme}//${host}`, prefix: '', mirror: false };
}

/** DENIED for a change of a proxy namespace's content: it comes from upstream only. */
export function proxyDenied(proxy: Pick<ProxyRecord, 'namespace' | 'url'>, what: string): RegistryError {
  return denied(`${what}: namespace ${proxy.namespace} is a pull-through cache (proxy) of ${proxy.url}; its content comes from there and cannot be pushed, mounted or changed here`);
}

/** Who caused a fetch, for the audit log. */
export interface Requester {
  name: string;
  address?: string;
}

/** The requester as the service sees it: the route already checked it may pull; storing is the cache's own act. */
const asActor = (who: Requester): Actor => ({ name: who.name, address: who.address, may: async () => true });

export interface PullThrough {
  /** The proxy settings of the repository's namespace; undefined when it is not a pull-through cache. */
  upstreamOf(repository: string): Promise<ProxyRecord | undefined>;
  /**
   * The manifest a pull of `repository` gets, in a proxy namespace: the stored one while fresh (a
   * digest always is), else upstream's, stored first. Undefined when the namespace is no proxy.
   * MANIFEST_UNKNOWN when upstream does not have it; a 502 naming upstream when it fails and
   * nothing is cached.
   */
  manifest(who: Requester, repository: string, ref: ManifestReference): Promise<ServedManifest | undefined>;
  /**
   * Fetch a blob the repository lacks from upstream, store it and link it. With `respond`, its bytes
   * also go to the client as they arrive: `respond(size)` is called once, before the first byte, and
   * the writable it returns is ended once the blob is stored (or destroyed when that failed). True
   * when the bytes went to `respond`; false when the caller serves the stored blob (another request
   * was fetching it, the namespace held it already, or upstream gave no size to announce).
   */
  blob(who: Requester, repository: string, digest: string, respond?: (size: number) => Writable): Promise<boolean>;
  /** DENIED when the repository is in a proxy namespace: its content comes from upstream only. */
  refuseWrite(repository: string, what: string): Promise<void>;
  /** Forget cached settings (another process changed them). */
  invalidate(): void;
}

export function pullThrough(parts: {
  metadata: Metadata;
  manifests: ManifestStore;
  blobs: BlobService;
  uploads: Uploads;
  search: SearchIndex;
  service: RegistryService;
  audit: AuditLog;
  log: Logger;
}): PullThrough {
  const { metadata, manifests, blobs, uploads, search, service, audit, log } = parts;
  // namespace -> its proxy settings (null: not a proxy), and the session that talks to upstream.
  const settings = new Map<string, Promise<ProxyRecord | null>>();
  const sessions = new Map<string, { record: ProxyRecord; session: RegistrySession }>();
  // repository \0 tag -> when upstream last confirmed (or was asked about) the tag.
  const checked = new Map<string, number>();
  const markChecked = (key: string) => {
    // Forgetting only means asking upstream once more.
    if (checked.size > 100_000) checked.clear();
    checked.set(key, Date.now());
  };
  const fetching = new Map<string, Promise<unknown>>();

  const upstreamOf = async (repository: string): Promise<ProxyRecord | undefined> => {
    const ns = namespaceOf(repository);
    let p = settings.get(ns);
    if (!p) {
      p = metadata.getProxy(ns).then((r) => r ?? null);
      settings.set(ns, p);
      p.catch(() => settings.delete(ns));
    }
    return (await p) ?? undefined;
  };

  const sessionOf = (record: ProxyRecord): RegistrySession => {
    const known = sessions.get(record.namespace);
    if (known && known.record.url === record.url && known.record.createdAt === record.createdAt) return known.session;
    // Stored credentials, else whatever kiln's client finds for the host (docker's config, helpers).
    const credential = record.username !== undefined ? { username: record.username, secret: record.password ?? '' } : undefined;
    const session = new RegistrySession(endpointOf(record), { credential, retry: UpstreamRetry });
    sessions.set(record.namespace, { record, session });
    return session;
  };

  /** One fetch per key at a time: later callers wait for the first one's result. */
  const once = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const running = fetching.get(key);
    if (running) return running as Promise<T>;
    const p = fn().finally(() => fetching.delete(key));
    fetching.set(key, p);
    return p;
  };

  /** A failure of the client library, as the error a pulling client gets. */
  const asRegistryError = (record: ProxyRecord, where: string, e: unknown, reference?: string): RegistryError => {
    if (e instanceof RegistryError) return e;
    const msg = (e as Error).message ?? String(e);
    if (e instanceof ManifestUnknown) return manifestUnknown(reference ?? where, `manifest unknown upstream: ${where}`);
    if (e instanceof RegistryUnauthorized || e instanceof RegistryDenied) return upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} refused the proxy's credentials (${where}): ${msg}`);
    if (e instanceof RegistryUnreachable) return upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} is unreachable (${where}): ${msg}`);
    if (e instanceof KilnError || e instanceof NetworkError) return upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} answered badly (${where}): ${msg}`);
    return upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} failed (${where}): ${msg}`);
  };

  const sameHost = (record: ProxyRecord, url: URL) => url.host === new URL(endpointOf(record).url).host;

  /** GET the manifest upstream, check where it came from, store it (by digest, and by tag for a tag). */
  const fetchAndStore = async (who: Requester, record: ProxyRecord, repository: string, ref: ManifestReference): Promise<ServedManifest> => {
    const upRepo = upstreamRepository(record, repository);
    const reference = ref.kind === 'tag' ? ref.tag : ref.digest;
    const where = `${upRepo}${ref.kind === 'tag' ? ':' : '@'}${reference}`;
    let m: RemoteManifest;
    try {
      m = await fetchManifest(sessionOf(record), upRepo, reference);
    } catch (e) {
      throw asRegistryError(record, where, e, reference);
    }
    if (!sameHost(record, m.url)) {
      throw upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} redirected the manifest ${where} to ${m.url.host}: refused (manifests must come from the upstream's own host; only blobs may be redirected)`);
    }
    let stored;
    try {
      stored = await manifests.put(repository, m.bytes, m.mediaType, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }, [], { allowMissing: true });
    } catch (e) {
      if (e instanceof RegistryError && (e.reason === 'manifest-invalid' || e.reason === 'digest-invalid')) throw upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace} sent an invalid manifest (${where}): ${e.message}`);
      throw e;
    }
    await search.indexPushed(repository, stored.digest, m.bytes, stored.parsed);
    audit.record({ actor: who.name, action: 'proxy-fetch', repository, reference, digest: stored.digest, detail: `manifest from ${record.url}/${upRepo}`, address: who.address });
    log.log('info', 'proxy: fetched manifest from upstream', { repository, reference, digest: stored.digest, upstream: record.url });
    if (ref.kind === 'tag') markChecked(repository + '\0' + ref.tag);
    const served = await manifests.get(repository, { digest: stored.digest });
    if (!served) throw manifestUnknown(reference, 'manifest removed while it was being stored');
    return served;
  };

  /** Upstream's digest for the tag (HEAD), or undefined when it gives none. Throws when upstream fails. */
  const headTag = async (record: ProxyRecord, repository: string, tag: string): Promise<string | undefined> => {
    const upRepo = upstreamRepository(record, repository);
    let res: HttpResponse;
    try {
      res = await sessionOf(record).request('HEAD', `/v2/${upRepo}/manifests/${tag}`, { scopes: [pullScope(upRepo)], headers: { accept: ManifestAccept } });
    } catch (e) {
      throw asRegistryError(record, `${upRepo}:${tag}`, e, tag);
    }
    discard(res);
    if (!sameHost(record, res.url)) throw upstreamFailed(`upstream ${record.url} redirected ${upRepo}:${tag} to ${res.url.host}: refused`);
    if (res.status === 404) throw manifestUnknown(tag, `tag ${tag} is gone upstream (${record.url}/${upRepo})`);
    if (res.status !== 200) throw upstreamFailed(`upstream ${record.url} answered HEAD ${upRepo}:${tag} with ${res.status}`);
    const d = res.headers['docker-content-digest'];
    return typeof d === 'string' ? d : undefined;
  };

  const manifest: PullThrough['manifest'] = async (who, repository, ref) => {
    const record = await upstreamOf(repository);
    if (!record) return undefined;
    if (ref.kind === 'digest') {
      const local = await manifests.get(repository, { digest: ref.digest });
      if (local) return local;
      return once(`m\0${repository}\0${ref.digest}`, () => fetchAndStore(who, record, repository, ref));
    }
    const key = repository + '\0' + ref.tag;
    const local = await manifests.get(repository, { tag: ref.tag });
    const at = checked.get(key);
    if (local && at !== undefined && Date.now() - at < record.ttlSeconds * 1000) return local;
    return once(`t\0${key}`, async () => {
      if (!local) return fetchAndStore(who, record, repository, ref);
      try {
        const upstreamDigest = await headTag(record, repository, ref.tag);
        if (upstreamDigest === local.digest) {
          markChecked(key);
          return local;
        }
        return await fetchAndStore(who, record, repository, ref);
      } catch (e) {
        // Upstream down, refusing or answering nonsense: the copy we have is what the tag named last.
        markChecked(key);
        log.log('warn', 'proxy: upstream failed; serving the cached copy', { repository, tag: ref.tag, digest: local.digest, upstream: record.url, error: (e as Error).message });
        return local;
      }
    });
  };

  /** Write a chunk, waiting while the client is slow; a client that went away is skipped (the fetch goes on). */
  const send = (w: Writable, chunk: Buffer) =>
    new Promise<void>((resolve) => {
      if (w.destroyed || w.writableEnded || w.write(chunk)) return resolve();
      const done = () => {
        w.off('drain', done);
        w.off('close', done);
        resolve();
      };
      w.on('drain', done);
      w.on('close', done);
    });

  const fetchBlob = async (who: Requester, record: ProxyRecord, repository: string, digest: string, respond: ((size: number) => Writable) | undefined, onStreaming: () => void): Promise<void> => {
    const upRepo = upstreamRepository(record, repository);
    const where = `${upRepo}@${digest}`;
    const failed = (why: string) => upstreamFailed(`upstream ${record.url} of proxy namespace ${record.namespace}: blob ${where}: ${why}`);
    let res: HttpResponse;
    try {
      res = await sessionOf(record).request('GET', `/v2/${upRepo}/blobs/${digest}`, { scopes: [pullScope(upRepo)] });
    } catch (e) {
      throw asRegistryError(record, where, e);
    }
    if (res.status === 404) {
      discard(res);
      throw blobUnknown(digest);
    }
    if (res.status !== 200) {
      const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
      throw failed(`GET answered ${res.status}${errorSummary(text)}`);
    }
    if (res.url.protocol !== 'http:' && res.url.protocol !== 'https:') {
      discard(res);
      throw failed(`redirected to ${res.url.protocol} (only http and https)`);
    }
    const declared = Number(res.headers['content-length']);
    const size = res.headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
    if (size !== undefined) {
      // The namespace's quota counts cached blobs as pushed ones.
      await service.admitBlob(asActor(who), repository, digest, size).catch((e: unknown) => {
        discard(res);
        throw e;
      });
    }
    const out = respond && size !== undefined ? respond(size) : undefined;
    if (out) onStreaming();
    let held: Buffer | undefined;
    let upstreamError: unknown;
    async function* tee(): AsyncGenerator<Buffer> {
      try {
        for await (const c of res.body) {
          if (held && out) await send(out, held);
          held = c as Buffer;
          yield held;
        }
        if (!res.body.complete) throw new Error('connection closed early');
      } catch (e) {
        upstreamError = e;
        throw e;
      }
    }
    const session = await uploads.start(repository, algorithmOf(digest) as 'sha256' | 'sha512');
    try {
      await uploads.append(session, Readable.from(tee()), { length: size });
    } catch (e) {
      await uploads.cancel(session).catch(() => {});
      res.body.destroy();
      out?.destroy();
      if (upstreamError !== undefined || (e instanceof RegistryError && e.reason === 'size-invalid')) throw failed(`transfer failed: ${(e as Error).message}`);
      throw e;
    }
    let staged;
    try {
      staged = await uploads.finish(session, digest);
    } catch (e) {
      out?.destroy();
      if (e instanceof RegistryError && e.reason === 'digest-invalid') throw failed(`the bytes sent do not have that digest (${e.message}); nothing was stored`);
      throw e;
    }
    try {
      if (size === undefined) {
        await service.admitBlob(asActor(who), repository, digest, staged.size).catch(async (e: unknown) => {
          await blobs.discard(staged);
          throw e;
        });
      }
      await blobs.commit(repository, digest, staged);
    } catch (e) {
      out?.destroy();
      throw e;
    } finally {
      await staged.done?.();
    }
    out?.end(held ?? Buffer.alloc(0));
    audit.record({ actor: who.name, action: 'proxy-fetch', repository, digest, detail: `blob from ${record.url}/${upRepo}${res.url.host !== new URL(endpointOf(record).url).host ? ` via ${res.url.host}` : ''}`, address: who.address });
    log.log('info', 'proxy: fetched blob from upstream', { repository, digest, size: staged.size, upstream: record.url, streamed: !!out });
  };

  return {
    upstreamOf,
    manifest,

    async blob(who, repository, digest, respond) {
      const record = await upstreamOf(repository);
      if (!record) return false;
      const key = `b\0${repository}\0${digest}`;
      const running = fetching.get(key);
      if (running) {
        await running;
        return false;
      }
      // Another repository of the namespace has it: link it, as a mount would.
      if ((await metadata.blobRepositoryInNamespace(record.namespace, digest)) !== undefined && (await blobs.mount(repository, digest))) return false;
      let streaming = false;
      try {
        await once(key, () => fetchBlob(who, record, repository, digest, respond, () => (streaming = true)));
      } catch (e) {
        // Headers are out: the client sees its connection cut; the log says why.
        if (!streaming) throw e;
        log.log('error', 'proxy: blob fetch failed while streaming', { repository, digest, upstream: record.url, error: (e as Error).message });
      }
      return streaming;
    },

    async refuseWrite(repository, what) {
      const record = await upstreamOf(repository);
      if (record) throw proxyDenied(record, what);
    },

    invalidate() {
      settings.clear();
    },
  };
}
