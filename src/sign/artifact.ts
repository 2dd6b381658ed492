import { createHash } from 'node:crypto';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import { BundleV03 } from './bundle.js';
import { CosignSignPredicate } from './statement.js';
import { SignatureAnnotation, SimpleSigningMediaType } from './simplesigning.js';

// Signatures as OCI artifacts. The bundle form is an OCI 1.1 referrer as cosign v3 pushes it
// (cosign pkg/oci/remote/write.go, WriteAttestationNewBundleFormat): artifactType the bundle media
// type, an empty config, the bundle as the one layer, the signed manifest as subject. The legacy
// form is cosign's `sha256-<hex>.sig` tag (specs/SIGNATURE_SPEC.md): an image manifest whose layers
// are simple-signing payloads, each with its base64 signature in a layer annotation.

/** A blob of a signature artifact, with its bytes (small: a few kilobytes). */
export interface Blob {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** A signature artifact ready to be stored or pushed: its manifest bytes and the blobs it names. */
export interface Artifact {
  manifest: Manifest;
  bytes: Buffer;
  descriptor: Descriptor & { artifactType: string };
  blobs: Blob[];
}

export const EmptyConfig: Blob = blob(Buffer.from('{}'), MediaType.OciEmpty);

export function blob(bytes: Buffer, mediaType: string, annotations?: Record<string, string>): Blob {
  const descriptor: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
  if (annotations) descriptor.annotations = annotations;
  return { descriptor, bytes };
}

/** A bundle referrer; `predicateType` is the statement's (cosign's sign/v1 for a signature, another for an attestation). */
export function bundleArtifact(subject: Descriptor, bundle: Buffer, created = new Date(), predicateType = CosignSignPredicate): Artifact {
  const layer = blob(bundle, BundleV03);
  return artifact(BundleV03, EmptyConfig, [layer], subject, {
    'org.opencontainers.image.created': created.toISOString().replace(/\.\d+Z$/, 'Z'),
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': predicateType,
  });
}

/**
 * cosign's `.sig` manifest with `payloads` as layers. cosign's config is an image config whose
 * rootfs lists the layers' digests; no subject (the tag name is the link). In the local store the
 * same manifest carries the image as subject, so that it is kept, pushed and saved as a referrer.
 */
export function legacyArtifact(payloads: { payload: Buffer; signature: Buffer }[], subject?: Descriptor): Artifact {
  const layers = payloads.map((p) => blob(p.payload, SimpleSigningMediaType, { [SignatureAnnotation]: p.signature.toString('base64') }));
  const config = blob(
    Buffer.from(JSON.stringify({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.descriptor.digest) }, config: {} })),
    MediaType.OciConfig,
  );
  return artifact(SimpleSigningMediaType, config, layers, subject);
}

/** The simple-signing layers of an existing `.sig` manifest, plus one more (cosign appends). */
export function appendLegacy(existing: Blob[], added: { payload: Buffer; signature: Buffer }): { payload: Buffer; signature: Buffer }[] {
  const all: { payload: Buffer; signature: Buffer }[] = existing.map((b) => ({ payload: b.bytes, signature: Buffer.from(b.descriptor.annotations?.[SignatureAnnotation] ?? '', 'base64') }));
  if (!all.some((p) => p.payload.equals(added.payload) && p.signature.equals(added.signature))) all.push(added);
  return all;
}

/** The tag cosign's older format and the referrers tag schema use for `digest`: sha256-<hex>. */
export function digestTag(digest: string, suffix = ''): string {
  return digest.replace(':', '-') + suffix;
}

function artifact(artifactType: string, config: Blob, layers: Blob[], subject?: Descriptor, annotations?: Record<string, string>): Artifact {
  const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.descriptor, layers: layers.map((l) => l.descriptor) };
  // cosign's `.sig` manifest has no artifactType; with a subject (in the store) it is a referrer and needs one.
  if (artifactType !== SimpleSigningMediaType || subject) manifest.artifactType = artifactType;
  if (subject) manifest.subject = { mediaType: subject.mediaType, digest: subject.digest, size: subject.size };
  if (annotations) manifest.annotations = annotations;
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { manifest, bytes, descriptor: { mediaType: MediaType.OciManifest, digest: sha256(bytes), size: bytes.length, artifactType }, blobs: [config, ...layers] };
}

function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}
