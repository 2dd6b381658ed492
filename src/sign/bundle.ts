import type { KeyObject, X509Certificate } from 'node:crypto';
import { KeyInvalid, SignatureInvalid } from './errors.js';
import { envelopePayload, verifyEnvelope, type Envelope } from './dsse.js';
import { keyHint } from './keys.js';
import { certificateFromDer, checkChain } from './x509.js';
import { verifyTlogEntry, type TlogEntry, type TlogKey } from './tlog.js';

// Sigstore bundles (sigstore/protobuf-specs, protos/sigstore_bundle.proto, in its JSON mapping:
// camelCase names, bytes as base64, int64 as strings). kiln writes v0.3 with a public-key hint and
// no transparency-log entry (cosign's --tlog-upload=false); it reads v0.1 to v0.3, with a public key
// or a certificate (chain), a DSSE envelope or a message signature.

export const BundleV03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** Media types by version: 0.3 had a second spelling before the dotted one was settled. */
const MediaTypes: Record<string, string> = {
  'application/vnd.dev.sigstore.bundle+json;version=0.1': '0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2': '0.2',
  'application/vnd.dev.sigstore.bundle+json;version=0.3': '0.3',
  [BundleV03]: '0.3',
};

export interface Bundle {
  mediaType: string;
  verificationMaterial: {
    publicKey?: { hint?: string };
    certificate?: { rawBytes: string };
    x509CertificateChain?: { certificates: { rawBytes: string }[] };
    tlogEntries?: TlogEntry[];
    timestampVerificationData?: unknown;
  };
  dsseEnvelope?: Envelope;
  messageSignature?: { messageDigest?: { algorithm: string; digest: string }; signature: string };
}

/** A bundle as kiln writes it: the envelope, and the hint of the key that signed it. */
export function makeBundle(envelope: Envelope, key: KeyObject): Bundle {
  return { mediaType: BundleV03, verificationMaterial: { publicKey: { hint: keyHint(key) }, tlogEntries: [] }, dsseEnvelope: envelope };
}

/** Parse and check the shape of a bundle, naming `where` and the field at fault. */
export function parseBundle(bytes: Buffer, where: string): Bundle {
  let b: Bundle;
  try {
    b = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the bundle is not JSON`);
  }
  if (!b || typeof b !== 'object') throw new SignatureInvalid(`${where}: the bundle is not a JSON object`);
  if (typeof b.mediaType !== 'string' || !MediaTypes[b.mediaType]) {
    throw new SignatureInvalid(`${where}: mediaType "${String(b.mediaType)}" is not a Sigstore bundle version kiln reads (0.1 to 0.3)`);
  }
  const vm = b.verificationMaterial;
  if (!vm || typeof vm !== 'object') throw new SignatureInvalid(`${where}: verificationMaterial is missing`);
  if (!vm.publicKey && !vm.certificate && !vm.x509CertificateChain) throw new SignatureInvalid(`${where}: verificationMaterial has no publicKey, certificate or x509CertificateChain`);
  if (!b.dsseEnvelope && !b.messageSignature) throw new SignatureInvalid(`${where}: the bundle has neither dsseEnvelope nor messageSignature`);
  if (b.dsseEnvelope) envelopePayload(b.dsseEnvelope, where);
  return b;
}

/** The DSSE payload of a bundle (kiln and cosign sign images with DSSE only). */
export function bundlePayload(b: Bundle, where: string): { payloadType: string; payload: Buffer } {
  if (!b.dsseEnvelope) throw new SignatureInvalid(`${where}: a message-signature bundle signs a blob, not an image`);
  return { payloadType: b.dsseEnvelope.payloadType, payload: envelopePayload(b.dsseEnvelope, where) };
}

/** Does the bundle's envelope verify with `key`? A hint naming another key is no match. */
export function verifyBundleWithKey(b: Bundle, key: KeyObject, where: string): boolean {
  const hint = b.verificationMaterial.publicKey?.hint;
  if (hint && hint !== keyHint(key)) return false;
  return !!b.dsseEnvelope && verifyEnvelope(b.dsseEnvelope, key, where);
}

/** The subset of a Sigstore trusted root (trusted_root.proto) kiln reads. */
export interface TrustedRoot {
  tlogs?: TlogKey[];
  certificateAuthorities?: { certChain: { certificates: { rawBytes: string }[] }; validFor?: { start?: string; end?: string } }[];
}

/** A trusted root file (trusted_root.proto's JSON, as cosign and the Sigstore TUF repository give it), checked as far as kiln reads it. */
export function parseTrustedRoot(text: string, file: string): TrustedRoot {
  let root: TrustedRoot & { mediaType?: unknown };
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new KeyInvalid(`${file}: the trusted root is not JSON (${(e as Error).message})`);
  }
  if (!root || typeof root !== 'object') throw new KeyInvalid(`${file}: the trusted root is not a JSON object`);
  if (root.mediaType !== undefined && !String(root.mediaType).startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw new KeyInvalid(`${file}: mediaType "${String(root.mediaType)}" is not a Sigstore trusted root`);
  }
  const cas = root.certificateAuthorities;
  if (!Array.isArray(cas) || !cas.length) throw new KeyInvalid(`${file}: certificateAuthorities is empty: no Fulcio certificate to chain to`);
  cas.forEach((ca, i) => {
    const certs = ca?.certChain?.certificates;
    if (!Array.isArray(certs) || !certs.length || !certs.every((c) => typeof c?.rawBytes === 'string')) throw new KeyInvalid(`${file}: certificateAuthorities[${i}].certChain.certificates: expected a list of { rawBytes }`);
  });
  const logs = root.tlogs;
  if (!Array.isArray(logs) || !logs.length) throw new KeyInvalid(`${file}: tlogs is empty: no transparency log key to trust a signing time with`);
  logs.forEach((l, i) => {
    if (typeof l?.publicKey?.rawBytes !== 'string' || typeof l?.logId?.keyId !== 'string') throw new KeyInvalid(`${file}: tlogs[${i}]: expected publicKey.rawBytes and logId.keyId`);
  });
  return root;
}

export interface CertificateVerification {
  leaf: X509Certificate;
  /** The Fulcio certificate the leaf chains to. */
  anchor: X509Certificate;
  /** The transparency log's integrated time, vouched for by its signed entry timestamp. */
  signedAt: Date;
}

/**
 * Verify a certificate bundle offline against a trusted root: the transparency-log entry (see
 * tlog.ts: signed entry timestamp, body, inclusion proof, checkpoint) with the log's key, which
 * makes its integrated time trustworthy; the leaf valid at that time and chaining to a certificate
 * authority of the root (valid then too); the DSSE signature with the leaf's key. Not checked:
 * SCTs, RFC 3161 timestamps; the certificate's identity is identity.ts's.
 */
export function verifyBundleWithRoot(b: Bundle, root: TrustedRoot, where: string): CertificateVerification {
  const vm = b.verificationMaterial;
  const raw = vm.certificate ? [vm.certificate] : (vm.x509CertificateChain?.certificates ?? []);
  const chain = raw.map((c, i) => certificateFromDer(c.rawBytes, `${where}: verificationMaterial certificate ${i + 1}`));
  if (!chain.length) throw new SignatureInvalid(`${where}: verificationMaterial has no certificate`);
  const entries = vm.tlogEntries ?? [];
  if (!entries.length) throw new SignatureInvalid(`${where}: verificationMaterial.tlogEntries is empty: no trusted signing time`);
  if (!b.dsseEnvelope) throw new SignatureInvalid(`${where}: a message-signature bundle signs a blob, not an image`);
  const signedAt = verifyTlogEntry(entries[0]!, root.tlogs ?? [], b.dsseEnvelope, chain[0]!, where);
  let lastError: Error | undefined;
  let anchor: X509Certificate | undefined;
  for (const ca of root.certificateAuthorities ?? []) {
    const start = ca.validFor?.start ? new Date(ca.validFor.start) : new Date(0);
    const end = ca.validFor?.end ? new Date(ca.validFor.end) : new Date(8.64e15);
    if (signedAt < start || signedAt > end) continue;
    const certs = ca.certChain.certificates.map((c, i) => certificateFromDer(c.rawBytes, `trusted root: certificate authority certificate ${i + 1}`));
    try {
      anchor = checkChain([chain[0]!, ...certs.slice(0, -1)], certs.slice(-1), signedAt, where);
      break;
    } catch (e) {
      lastError = e as Error;
    }
  }
  if (!anchor) throw lastError ?? new SignatureInvalid(`${where}: no certificate authority of the trusted root was valid at ${signedAt.toISOString()}`);
  if (!verifyEnvelope(b.dsseEnvelope, chain[0]!.publicKey, where)) throw new SignatureInvalid(`${where}: the DSSE signature does not verify with the certificate's key`);
  return { leaf: chain[0]!, anchor, signedAt };
}
