import type { Descriptor, Index, Manifest } from '../../oci/types.js';
import { isIndex } from '../../oci/mediatypes.js';
import { DigestMismatch, UsageError } from '../../errors.js';
import { formatReference, parseNamed, type Reference } from '../../reference/reference.js';
import { loadRegistriesConfig, pushEndpoint, type Endpoint, type RegistriesConfig } from './config.js';
import { RegistrySession, pullScope, pushScope } from './session.js';
import { downloadBlob, uploadBlob } from './blobs.js';
import { fetchManifest, putManifest, type RemoteManifest } from './manifests.js';
import { forEachBounded } from './pool.js';
import { DefaultConcurrency } from './pull.js';
import type { RetryPolicy } from './http.js';

// Promotion between registry references: SRC is resolved to its manifest digest once, and DEST is
// given exactly those manifest bytes, so a tag moved on SRC meanwhile cannot leak into DEST (the
// seed's warning about moving tags). What DEST's repository needs first depends on where it is:
//   same repository                   the manifest PUT alone;
//   another repository, same registry blobs mounted (distribution-spec "Mounting a blob from another
//                                     repository"), uploaded from SRC when the registry will not mount;
//   another registry                  blobs streamed from SRC's registry to DEST's, never stored here.
// An index brings its manifests along (each PUT by digest) before it is tagged.

export interface PromoteOptions {
  env?: NodeJS.ProcessEnv;
  config?: RegistriesConfig;
  retry?: RetryPolicy;
  concurrency?: number;
  /** Called once SRC is resolved, before anything is written to DEST. */
  onResolved?: (digest: string) => void | Promise<void>;
}

export interface PromoteResult {
  /** DEST as given, normalised: localhost:5000/team/app:prod. */
  destination: string;
  digest: string;
  /** How DEST's repository got the blobs. */
  blobs: { exists: number; mounted: number; copied: number };
}

interface Side {
  ref: Reference;
  endpoint: Endpoint;
  session: RegistrySession;
  repo: string;
}

export async function promoteRemote(source: string, destination: string, opts: PromoteOptions = {}): Promise<PromoteResult> {
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const dstRef = parseNamed(destination);
  if (dstRef.digest) throw new UsageError(`promote: DEST "${destination}" names a digest; give a tag`);
  const srcRef = parseNamed(source);
  // The registry itself, never a mirror: the authority on what a tag names now.
  const side = (ref: Reference, session?: RegistrySession): Side => {
    const endpoint = pushEndpoint(ref.domain, config);
    return { ref, endpoint, repo: ref.path, session: session ?? new RegistrySession(endpoint, { env, retry: opts.retry }) };
  };
  const src = side(srcRef);
  const sameRegistry = pushEndpoint(dstRef.domain, config).url === src.endpoint.url;
  const dst = side(dstRef, sameRegistry ? src.session : undefined);

  const top = await fetchManifest(src.session, src.repo, srcRef.digest ?? srcRef.tag ?? 'latest');
  await opts.onResolved?.(top.digest);

  const sameRepository = sameRegistry && src.repo === dst.repo;
  const scopes = sameRegistry && !sameRepository ? [pushScope(dst.repo), pullScope(src.repo)] : [pushScope(dst.repo)];
  const blobs = { exists: 0, mounted: 0, copied: 0 };
  if (!sameRepository) {
    const children = isIndex(top.mediaType) ? await Promise.all((top.doc as Index).manifests.map((d) => fetchManifest(src.session, src.repo, d.digest, d))) : [];
    for (const m of [...children, top]) {
      if (isIndex(m.mediaType)) continue;
      const doc = m.doc as Manifest;
      await copyBlobs(src, dst, [doc.config, ...doc.layers], scopes, sameRegistry, opts, blobs);
    }
    // An index's manifests by digest first, so DEST never names an index whose entries are missing.
    for (const c of children) await putExactly(dst, c, c.digest, scopes);
  }
  await putExactly(dst, top, dstRef.tag ?? 'latest', scopes);
  return { destination: formatReference(dstRef), digest: top.digest, blobs };
}

async function putExactly(dst: Side, m: RemoteManifest, reference: string, scopes: string[]): Promise<void> {
  const reported = (await putManifest(dst.session, dst.repo, reference, m.bytes, m.mediaType, scopes)).digest;
  if (reported && reported !== m.digest) throw new DigestMismatch(`${dst.endpoint.host}/${dst.repo}:${reference}: the registry stored the manifest as ${reported}, kiln sent ${m.digest}`);
}

async function copyBlobs(src: Side, dst: Side, list: Descriptor[], scopes: string[], sameRegistry: boolean, opts: PromoteOptions, count: PromoteResult['blobs']): Promise<void> {
  const unique = [...new Map(list.map((d) => [d.digest, d])).values()];
  await forEachBounded(unique, opts.concurrency ?? DefaultConcurrency, async (desc, signal) => {
    // Each (re)try of the upload reads SRC's blob afresh; DEST's registry checks the digest.
    const open = () => downloadBlob(src.session, src.repo, desc, () => {}, () => {}, signal);
    const outcome = await uploadBlob(dst.session, dst.repo, desc, open, {
      scopes,
      mountFrom: sameRegistry ? [src.repo] : [],
      // One PUT per blob: a stream from another registry cannot be read from the middle.
      monolithicMax: Number.MAX_SAFE_INTEGER,
      chunkSize: Number.MAX_SAFE_INTEGER,
      onBytes: () => {},
      onRetry: () => {},
      signal,
    });
    if (outcome.result === 'exists') count.exists++;
    else if (outcome.result === 'mounted') count.mounted++;
    else count.copied++;
  });
}
