import type { KeyObject, X509Certificate } from 'node:crypto';
import type { Descriptor } from '../oci/types.js';
import { BundleV03, bundlePayload, parseBundle, verifyBundleWithKey, verifyBundleWithRoot, type TrustedRoot } from './bundle.js';
import { InTotoPayloadType } from './dsse.js';
import { SignatureInvalid } from './errors.js';
import { certificateSigner, matchIdentity, type CertificateIdentity } from './identity.js';
import { keyHint, verifyData } from './keys.js';
import { JwsMediaType, NotationArtifactType, verifyNotation } from './notation.js';
import { SignatureAnnotation, SimpleSigningMediaType, parseSimpleSigning } from './simplesigning.js';
import { CosignSignPredicate, parseStatement, statementClaims, statementDigests } from './statement.js';
import type { FoundArtifact, SignatureReader } from './source.js';

// Verification of every signature an image has: each artifact's subject must be the image, each
// signature must verify with a trusted key (or chain to a trusted certificate), name exactly the
// image's digest and carry the annotations asked for. One verified signature is enough; the
// others are reported with the reason they failed.

/** The artifact types that are signatures (others, such as SBOMs, are skipped unread). */
export const SignatureArtifactTypes = [BundleV03, SimpleSigningMediaType, NotationArtifactType];

export type SignatureFormat = 'sigstore-bundle' | 'simplesigning' | 'notation-jws';

export interface Trust {
  keys: KeyObject[];
  certificates: X509Certificate[];
  /** Keyless (Fulcio certificate) bundles: the identities trusted, and the Sigstore trusted root their certificates chain to. */
  keyless?: { identities: CertificateIdentity[]; root: TrustedRoot };
  /** Annotations each signature must claim, with these values. */
  annotations: Record<string, string>;
}

export interface SignatureResult {
  artifact: string;
  from: FoundArtifact['from'];
  format: SignatureFormat | 'unknown';
  verified: boolean;
  /** The key's hint (base64 SHA-256 of its PKIX DER) or the certificate's subject. */
  signer?: string;
  /** A keyless signature's certificate: the SAN values and the OIDC issuer. */
  identity?: { identities: string[]; issuer?: string };
  annotations?: Record<string, unknown>;
  error?: string;
}

/** The referrer annotation cosign v3 and kiln put on a bundle artifact: the statement's predicate type. */
export const BundlePredicateAnnotation = 'dev.sigstore.bundle.predicateType';

export async function verifySignatures(source: SignatureReader, trust: Trust): Promise<SignatureResult[]> {
  const results: SignatureResult[] = [];
  for (const found of await source.artifacts()) {
    // Attestations share the bundle artifact type; they are no signatures (cosign verify skips them too).
    const predicate = found.manifest.annotations?.[BundlePredicateAnnotation];
    if (predicate !== undefined && predicate !== CosignSignPredicate) continue;
    const where = `signature ${found.descriptor.digest} (${found.from})`;
    const subject = found.manifest.subject?.digest;
    if (found.from !== 'sig tag' && subject !== source.subject.digest) {
      results.push({ artifact: found.descriptor.digest, from: found.from, format: 'unknown', verified: false, error: `${where}: its subject is ${subject ?? '(none)'}, not ${source.subject.digest}` });
      continue;
    }
    for (const layer of found.manifest.layers ?? []) {
      const result: SignatureResult = { artifact: found.descriptor.digest, from: found.from, format: formatOf(layer), verified: false };
      results.push(result);
      try {
        if (result.format === 'unknown') throw new SignatureInvalid(`${where}: layer media type "${layer.mediaType}" is not a signature kiln reads`);
        const bytes = await source.blob(layer, where);
        Object.assign(result, checkLayer(result.format, layer, bytes, source.subject.digest, trust, where));
        result.verified = true;
      } catch (e) {
        if (!(e instanceof SignatureInvalid)) throw e;
        result.error = e.message;
      }
    }
  }
  return results;
}

function formatOf(layer: Descriptor): SignatureResult['format'] {
  if (layer.mediaType === SimpleSigningMediaType) return 'simplesigning';
  if (layer.mediaType === JwsMediaType) return 'notation-jws';
  if (layer.mediaType.startsWith('application/vnd.dev.sigstore.bundle')) return 'sigstore-bundle';
  return 'unknown';
}

function checkLayer(format: SignatureFormat, layer: Descriptor, bytes: Buffer, digest: string, trust: Trust, where: string): Pick<SignatureResult, 'signer' | 'identity' | 'annotations'> {
  if (format === 'notation-jws') {
    if (!trust.certificates.length) throw new SignatureInvalid(`${where}: a Notation signature; give --certificate to verify it`);
    const v = verifyNotation(bytes, trust.certificates, where);
    if (v.targetArtifact.digest !== digest) throw new SignatureInvalid(`${where}: signs ${v.targetArtifact.digest}, not ${digest}`);
    const annotations = v.targetArtifact.annotations ?? {};
    checkAnnotations(annotations, trust.annotations, where);
    return { signer: v.leaf.subject.replace(/\n/g, ', '), annotations };
  }
  if (format === 'simplesigning') {
    if (!trust.keys.length) throw new SignatureInvalid(`${where}: a ${format} signature; give --key to verify it`);
    const sig = layer.annotations?.[SignatureAnnotation];
    if (!sig) throw new SignatureInvalid(`${where}: layer ${layer.digest} has no ${SignatureAnnotation} annotation`);
    const key = trust.keys.find((k) => verifyData(k, bytes, Buffer.from(sig, 'base64')));
    if (!key) throw new SignatureInvalid(`${where}: the signature does not verify with the given key${trust.keys.length > 1 ? 's' : ''}`);
    const doc = parseSimpleSigning(bytes, where);
    const signed = doc.critical.image['docker-manifest-digest'];
    if (signed !== digest) throw new SignatureInvalid(`${where}: signs ${signed}, not ${digest}`);
    const annotations = doc.optional ?? {};
    checkAnnotations(annotations, trust.annotations, where);
    return { signer: keyHint(key), annotations };
  }
  const bundle = parseBundle(bytes, where);
  const signedBy = bundleSigner(bundle, trust, where);
  const { payloadType, payload } = bundlePayload(bundle, where);
  if (payloadType !== InTotoPayloadType) throw new SignatureInvalid(`${where}: dsseEnvelope.payloadType "${payloadType}" is not ${InTotoPayloadType}`);
  const statement = parseStatement(payload, where);
  if (statement.predicateType !== CosignSignPredicate) throw new SignatureInvalid(`${where}: an attestation (predicateType ${statement.predicateType}), not a signature`);
  const annotations = statementClaims(statement, digest);
  if (!annotations) throw new SignatureInvalid(`${where}: signs ${statementDigests(statement).join(', ')}, not ${digest}`);
  checkAnnotations(annotations, trust.annotations, where);
  return { ...signedBy, annotations };
}

/**
 * Who signed a bundle, verified: with a key of `trust` for a public-key bundle; for a certificate
 * (keyless) bundle, the certificate chained to the trusted root at the log's time (bundle.ts) and
 * naming a trusted identity (identity.ts), as cosign verify --certificate-identity does.
 */
export function bundleSigner(bundle: ReturnType<typeof parseBundle>, trust: Pick<Trust, 'keys' | 'keyless'>, where: string): Pick<SignatureResult, 'signer' | 'identity'> {
  const vm = bundle.verificationMaterial;
  if (vm.certificate || vm.x509CertificateChain) {
    if (!trust.keyless) throw new SignatureInvalid(`${where}: a keyless bundle (signed with a Fulcio certificate); give --certificate-identity, --certificate-oidc-issuer and --trusted-root to verify it`);
    const v = verifyBundleWithRoot(bundle, trust.keyless.root, where);
    const signer = certificateSigner(v.leaf, where);
    matchIdentity(signer, trust.keyless.identities, where);
    return { signer: `${signer.identities.map((i) => `"${i}"`).join(', ')} from issuer "${signer.issuer}"`, identity: signer };
  }
  if (!trust.keys.length) throw new SignatureInvalid(`${where}: a bundle signed with a key; give --key to verify it`);
  const key = trust.keys.find((k) => verifyBundleWithKey(bundle, k, where));
  if (!key) throw new SignatureInvalid(`${where}: the bundle's signature does not verify with the given key${trust.keys.length > 1 ? 's' : ''}`);
  return { signer: keyHint(key) };
}

function checkAnnotations(claimed: Record<string, unknown>, wanted: Record<string, string>, where: string): void {
  for (const [k, v] of Object.entries(wanted)) {
    if (claimed[k] === undefined) throw new SignatureInvalid(`${where}: has no annotation ${k} (asked ${k}=${v})`);
    if (String(claimed[k]) !== v) throw new SignatureInvalid(`${where}: annotation ${k} is "${String(claimed[k])}", not "${v}"`);
  }
}
