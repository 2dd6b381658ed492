import type { Descriptor, Manifest } from '../oci/types.js';
import type { Artifact } from './artifact.js';

// Where an image's signatures live: the local store (as referrers in index.json) or a registry
// (referrers API, the referrers tag schema, cosign's `.sig` tag). Signing and verification see
// only this interface.

/** Signature blobs past this size are refused before any byte is read: a bundle is a few KiB. */
export const MaxSignatureBlob = 1 << 20;
/** An attestation's bundle carries its predicate (an SBOM, say): larger, still bounded. */
export const MaxAttestationBlob = 32 << 20;

/** Where an artifact was found, for the user. */
export type Found = 'store' | 'referrers API' | 'referrers tag' | 'sig tag';

export interface FoundArtifact {
  descriptor: Descriptor;
  manifest: Manifest;
  from: Found;
}

/** What verification reads: the subject, its candidate artifacts and their blobs (the registry server has only these). */
export type SignatureReader = Pick<SignatureSource, 'subject' | 'artifacts' | 'blob'>;

export interface SignatureSource {
  /** A registry's `.sig` manifests have no subject; the store's need one to be kept as referrers. */
  readonly kind: 'store' | 'registry';
  /** The signed manifest: its descriptor and the repository name signatures record. */
  readonly subject: Descriptor;
  readonly name: string;
  /** Every candidate signature artifact of the subject; the legacy `.sig` manifest too. */
  artifacts(): Promise<FoundArtifact[]>;
  /** A blob of an artifact, its digest checked; refused past `max` (MaxSignatureBlob) before reading. */
  blob(desc: Descriptor, where: string, max?: number): Promise<Buffer>;
  /** Store or push a new signature artifact; returns a line saying where it went. */
  put(artifact: Artifact, format: 'bundle' | 'legacy'): Promise<string>;
  /** The blobs of the existing legacy `.sig` manifest, which a new legacy signature is added to. */
  legacyLayers(): Promise<{ descriptor: Descriptor; bytes: Buffer }[]>;
}
