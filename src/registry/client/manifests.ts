import { createHash } from 'node:crypto';
import { MediaType, isIndex, isManifest } from '../../oci/mediatypes.js';
import type { Descriptor, Index, Manifest } from '../../oci/types.js';
import { DigestMismatch, ManifestInvalid, UnsupportedMediaType } from '../../errors.js';
import { algorithmOf } from '../../oci/digest.js';
import { discard, readBody } from './http.js';
import { errorSummary } from './auth.js';
import { ManifestUnknown, RegistryRequestFailed } from './errors.js';
import { pullScope, type RegistrySession } from './session.js';

// Manifests on the wire (distribution-spec "Pulling manifests", "Pushing manifests"): fetched whole
// (they are small; 4 MiB at most, as docker allows), their digest computed over the exact bytes
// received and checked against the digest asked for, the registry's Docker-Content-Digest and the
// referring descriptor.

export const ManifestAccept = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ');
const ManifestLimit = 4 << 20;

export interface RemoteManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  doc: Manifest | Index;
  /** Where the manifest came from, after redirects (a caller may refuse another host). */
  url: URL;
}

/**
 * GET a manifest by tag or digest. With a digest reference (or `expect`), content whose digest
 * differs is refused: a registry cannot substitute what a digest names.
 */
export async function fetchManifest(session: RegistrySession, repo: string, reference: string, expect?: Pick<Descriptor, 'digest' | 'size'>): Promise<RemoteManifest> {
  const where = `${session.endpoint.host}/${repo}${reference.includes(':') ? '@' : ':'}${reference}`;
  const res = await session.request('GET', `/v2/${repo}/manifests/${reference}`, { scopes: [pullScope(repo)], headers: { accept: ManifestAccept } });
  if (res.status === 404) {
    discard(res);
    throw new ManifestUnknown(`${where}: manifest unknown`);
  }
  if (res.status !== 200) {
    const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
    throw new RegistryRequestFailed(`${where}: GET manifest answered ${res.status}${errorSummary(text)}`, res.status);
  }
  const bytes = await readBody(res, ManifestLimit);
  const wanted = expect?.digest ?? (reference.includes(':') ? reference : undefined);
  const algorithm = wanted ? algorithmOf(wanted) : 'sha256';
  const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
  if (wanted && digest !== wanted) throw new DigestMismatch(`${where}: the registry sent a manifest with digest ${digest}, not the ${wanted} asked for`);
  if (expect?.size !== undefined && bytes.length !== expect.size) throw new DigestMismatch(`${where}: manifest of ${bytes.length} bytes, the index says ${expect.size}`);
  const header = res.headers['docker-content-digest'];
  if (typeof header === 'string' && header.startsWith(`${algorithm}:`) && header !== digest) {
    throw new DigestMismatch(`${where}: the registry says the manifest is ${header} but its content is ${digest}`);
  }
  let doc: Manifest & Index;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ManifestInvalid(`${where}: manifest is not valid JSON (${(e as Error).message})`);
  }
  if (!doc || typeof doc !== 'object') throw new ManifestInvalid(`${where}: manifest is not a JSON object`);
  const contentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  let mediaType = doc.mediaType ?? contentType;
  // OCI manifests may leave mediaType out; their shape tells what they are.
  if (!isManifest(mediaType) && !isIndex(mediaType) && !doc.mediaType) mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : doc.config ? MediaType.OciManifest : mediaType;
  if (!isManifest(mediaType) && !isIndex(mediaType)) throw new UnsupportedMediaType(`${where}: unsupported manifest media type "${mediaType || '(none)'}"`);
  if (isIndex(mediaType) && !Array.isArray(doc.manifests)) throw new ManifestInvalid(`${where}: index without a manifests list`);
  return { bytes, digest, mediaType, doc, url: res.url };
}

/**
 * PUT a manifest by tag or digest; returns the digest the registry reports (undefined when it reports
 * none) and, for a manifest with a subject, the OCI-Subject header of a registry that indexed it.
 */
export async function putManifest(session: RegistrySession, repo: string, reference: string, bytes: Buffer, mediaType: string, scopes: string[]): Promise<{ digest?: string; subject?: string }> {
  const res = await session.request('PUT', `/v2/${repo}/manifests/${reference}`, {
    scopes,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: () => bytes,
  });
  const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
  if (res.status !== 201) throw new RegistryRequestFailed(`${session.endpoint.host}/${repo}:${reference}: PUT manifest answered ${res.status}${errorSummary(text)}`, res.status);
  const d = res.headers['docker-content-digest'];
  const subject = res.headers['oci-subject'];
  return { digest: typeof d === 'string' ? d : undefined, subject: typeof subject === 'string' ? subject : undefined };
}

/** Every tag of a repository, following the Link header's pages (spec "Listing tags"). */
export async function listTags(session: RegistrySession, repo: string): Promise<string[]> {
  const tags: string[] = [];
  let path: string | URL = `/v2/${repo}/tags/list?n=1000`;
  for (let page = 0; page < 1000; page++) {
    const res = await session.request('GET', path, { scopes: [pullScope(repo)] });
    const text = (await readBody(res, 16 << 20)).toString();
    if (res.status === 404) throw new ManifestUnknown(`${session.endpoint.host}/${repo}: repository unknown${errorSummary(text)}`);
    if (res.status !== 200) throw new RegistryRequestFailed(`${session.endpoint.host}/${repo}: listing tags answered ${res.status}${errorSummary(text)}`, res.status);
    tags.push(...((JSON.parse(text) as { tags?: string[] | null }).tags ?? []));
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
    if (!link) break;
    path = new URL(link[1]!, res.url);
  }
  return tags;
}

/**
 * Repositories of the registry named `prefix` or below it, from the catalog (the distribution-spec
 * leaves /v2/_catalog out; Distribution and kiln answer it, paged with the Link header).
 */
export async function listRepositories(session: RegistrySession, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let path: string | URL = '/v2/_catalog?n=1000';
  for (let page = 0; page < 1000; page++) {
    const res = await session.request('GET', path, { scopes: ['registry:catalog:*'] });
    const text = (await readBody(res, 16 << 20)).toString();
    if (res.status !== 200) throw new RegistryRequestFailed(`${session.endpoint.host}: listing repositories (/v2/_catalog) answered ${res.status}${errorSummary(text)}`, res.status);
    for (const r of (JSON.parse(text) as { repositories?: string[] | null }).repositories ?? []) if (r === prefix || r.startsWith(prefix + '/')) out.push(r);
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
    if (!link) break;
    path = new URL(link[1]!, res.url);
  }
  return out;
}
