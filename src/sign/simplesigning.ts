import { SignatureInvalid } from './errors.js';

// cosign's older signature payload (sigstore/cosign specs/SIGNATURE_SPEC.md, after Red Hat's
// "simple signing" format): the "critical" section binds the manifest digest; "optional" carries
// the -a annotations. The signature is over these exact bytes, so they are stored as signed.

export const SimpleSigningMediaType = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SignatureAnnotation = 'dev.cosignproject.cosign/signature';
const SignatureType = 'cosign container image signature';

export interface SimpleSigning {
  critical: { identity: { 'docker-reference': string }; image: { 'docker-manifest-digest': string }; type: string };
  optional: Record<string, unknown> | null;
}

export function simpleSigningPayload(reference: string, digest: string, annotations: Record<string, string>): Buffer {
  const doc: SimpleSigning = {
    critical: { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: SignatureType },
    optional: Object.keys(annotations).length ? annotations : null,
  };
  return Buffer.from(JSON.stringify(doc));
}

export function parseSimpleSigning(payload: Buffer, where: string): SimpleSigning {
  let doc: SimpleSigning;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the simple-signing payload is not JSON`);
  }
  if (doc?.critical?.type !== SignatureType) throw new SignatureInvalid(`${where}: critical.type is "${doc?.critical?.type}", not "${SignatureType}"`);
  if (typeof doc.critical.image?.['docker-manifest-digest'] !== 'string') throw new SignatureInvalid(`${where}: critical.image.docker-manifest-digest is missing`);
  return doc;
}
