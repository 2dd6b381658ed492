import { isDigest } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { BaseDigestAnnotation, BaseNameAnnotation, type Descriptor } from '../../oci/types.js';
import { manifestInvalid } from './errors.js';
import type { ManifestRefs } from './metadata/metadata.js';

// What a pushed manifest says, checked against the OCI image-spec (manifest.md, image-index.md,
// descriptor.md) and Docker's schema 2. The registry stores the bytes as pushed; this only reads them.

export const ManifestTypes: readonly string[] = [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList];
const indexTypes = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);

/** Content-Types that say nothing about the manifest kind; the document decides then. */
const genericTypes = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

export interface ParsedManifest {
  mediaType: string;
  /** Referrers API: artifactType, else (image manifests) the config media type. */
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
  refs: ManifestRefs;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObj(v)) throw manifestInvalid(`${where}: expected a descriptor object`);
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw manifestInvalid(`${where}.mediaType: expected a media type`);
  if (typeof v.digest !== 'string' || !isDigest(v.digest)) throw manifestInvalid(`${where}.digest: invalid digest`, { digest: String(v.digest).slice(0, 200) });
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw manifestInvalid(`${where}.size: expected a non-negative integer`);
  if (v.urls !== undefined && (!Array.isArray(v.urls) || v.urls.some((u) => typeof u !== 'string'))) throw manifestInvalid(`${where}.urls: expected strings`);
  if (v.annotations !== undefined) annotations(v.annotations, `${where}.annotations`);
  return v as unknown as Descriptor;
}

function annotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v) || Object.values(v).some((x) => typeof x !== 'string')) throw manifestInvalid(`${where}: expected a map of strings`);
  return v as Record<string, string>;
}

/** Parse and validate; throws MANIFEST_INVALID saying what is wrong. */
export function parseManifest(body: Buffer, contentType: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw manifestInvalid('not valid JSON');
  }
  if (!isObj(doc)) throw manifestInvalid('expected a JSON object');
  if (doc.schemaVersion !== 2) throw manifestInvalid(`schemaVersion ${JSON.stringify(doc.schemaVersion)} is not supported (only 2)`);
  const declared = doc.mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw manifestInvalid('mediaType: expected a string');
  // distribution-spec "Pushing Manifests": if the manifest has a mediaType, Content-Type MUST be it.
  if (declared && !genericTypes.has(contentType) && declared !== contentType) {
    throw manifestInvalid(`mediaType "${declared}" does not match Content-Type "${contentType}"`);
  }
  let mediaType = declared || (genericTypes.has(contentType) ? '' : contentType);
  if (!mediaType) mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  if (!ManifestTypes.includes(mediaType)) throw manifestInvalid(`unsupported manifest media type "${mediaType.slice(0, 200)}"`);

  const subject = doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject');
  const ann = annotations(doc.annotations, 'annotations');
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw manifestInvalid('artifactType: expected a string');
  const refs: ManifestRefs = { blobs: [], manifests: [] };
  // image-spec annotations.md: the base image's manifest digest and name, indexed for searches by base.
  // A value that is not a digest says nothing we can search by, so it is left out rather than refused.
  const baseDigest = ann?.[BaseDigestAnnotation];
  if (baseDigest !== undefined && isDigest(baseDigest)) refs.base = { digest: baseDigest, ...(ann?.[BaseNameAnnotation] ? { name: ann[BaseNameAnnotation] } : {}) };

  if (indexTypes.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw manifestInvalid('manifests: expected an array');
    doc.manifests.forEach((m, i) => {
      const d = descriptor(m, `manifests[${i}]`);
      if (!refs.manifests.includes(d.digest)) refs.manifests.push(d.digest);
    });
    return { mediaType, artifactType: (doc.artifactType as string | undefined) || undefined, subject, annotations: ann, refs };
  }

  const config = descriptor(doc.config, 'config');
  if (!Array.isArray(doc.layers)) throw manifestInvalid('layers: expected an array');
  const add = (d: Descriptor) => {
    if (!refs.blobs.some((b) => b.digest === d.digest)) refs.blobs.push({ digest: d.digest, size: d.size });
  };
  add(config);
  doc.layers.forEach((l, i) => {
    const d = descriptor(l, `layers[${i}]`);
    // Non-distributable layers name URLs to fetch them from; the registry need not hold them (image-spec layer.md).
    if (d.urls && d.urls.length > 0) return;
    add(d);
  });
  return { mediaType, artifactType: (doc.artifactType as string | undefined) || config.mediaType, subject, annotations: ann, refs };
}

/**
 * Content negotiation (distribution-spec content-negotiation.md, RFC 9110 12.5.1): a manifest fetched
 * by tag is served when the client accepts its type; kiln never converts between formats.
 */
export function accepts(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  for (const part of accept.split(',')) {
    const t = part.split(';')[0]!.trim().toLowerCase();
    if (t === mediaType || t === '*/*' || t === 'application/*' || t === 'application/json') return true;
  }
  return false;
}
