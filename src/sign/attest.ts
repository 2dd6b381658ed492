import type { KeyObject } from 'node:crypto';
import { UsageError } from '../errors.js';
import { bundleArtifact } from './artifact.js';
import { BundleV03, bundlePayload, makeBundle, parseBundle } from './bundle.js';
import { InTotoPayloadType, signEnvelope } from './dsse.js';
import { SignatureInvalid } from './errors.js';
import { CosignSignPredicate, StatementV1, parseStatement, statementClaims, statementDigests, type Statement } from './statement.js';
import { MaxAttestationBlob, type FoundArtifact, type SignatureReader, type SignatureSource } from './source.js';
import { BundlePredicateAnnotation, bundleSigner, type SignatureResult, type Trust } from './verify.js';
import type { SignResult } from './sign.js';

// Attestations as cosign v3 writes them (cosign attest --new-bundle-format): an in-toto Statement
// v1 whose subject is the image's digest and whose predicate is the user's document, in a DSSE
// envelope inside a Sigstore bundle v0.3, pushed (or stored) as an OCI referrer of the image with
// the predicate type in the dev.sigstore.bundle.predicateType annotation. They are no signatures:
// kiln verify and registry policies skip them (verify.ts), kiln verify-attestation reads them.

/** cosign attest's --type names (cmd/cosign/cli/options/predicate.go), each a predicate type URI. */
export const PredicateTypes: Record<string, string> = {
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: 'https://slsa.dev/provenance/v1',
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: 'https://cyclonedx.org/bom',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
  custom: 'https://cosign.sigstore.dev/attestation/v1',
};

/** A --type: one of the names above, or a predicate type URI of one's own. */
export function predicateType(type: string, field = '--type'): string {
  const known = PredicateTypes[type];
  if (known) return known;
  if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(type)) {
    if (type === CosignSignPredicate) throw new UsageError(`${field} ${type}: that is the predicate of signatures; use kiln sign`);
    return type;
  }
  throw new UsageError(`${field} "${type}": one of ${Object.keys(PredicateTypes).join(', ')}, or a predicate type URI`);
}

/** The predicate file: a JSON document (an object, as in-toto's predicate field requires). */
export function parsePredicate(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${file}: the predicate must be a JSON object`);
  return v as Record<string, unknown>;
}

export function attestationStatement(name: string, digest: string, type: string, predicate: Record<string, unknown>): Statement {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return { _type: StatementV1, subject: [{ name, digest: { [algorithm]: hex } }], predicateType: type, predicate };
}

/** Sign an attestation of what `source` has for the image and store or push it as a referrer. */
export async function attestImage(source: SignatureSource, key: KeyObject, type: string, predicate: Record<string, unknown>): Promise<SignResult> {
  const statement = Buffer.from(JSON.stringify(attestationStatement(source.name, source.subject.digest, type, predicate)));
  const bundle = makeBundle(signEnvelope(key, InTotoPayloadType, statement), key);
  const artifact = bundleArtifact(source.subject, Buffer.from(JSON.stringify(bundle)), new Date(), type);
  return { digest: source.subject.digest, artifact: artifact.descriptor.digest, where: await source.put(artifact, 'bundle') };
}

export interface AttestationResult {
  artifact: string;
  from: FoundArtifact['from'];
  verified: boolean;
  predicateType?: string;
  predicate?: unknown;
  /** The key's fingerprint (base64 SHA-256 of its PKIX DER), or the keyless certificate's identity and issuer. */
  signer?: string;
  identity?: SignatureResult['identity'];
  error?: string;
}

/**
 * Every attestation of the image (of `type`, when given), each verified with one of `keys`,
 * checked to name exactly the image's digest; the failures say why.
 */
export async function verifyAttestations(source: SignatureReader, trust: Pick<Trust, 'keys' | 'keyless'>, type?: string): Promise<AttestationResult[]> {
  const out: AttestationResult[] = [];
  for (const found of await source.artifacts()) {
    if (found.manifest.artifactType !== BundleV03) continue;
    const annotated = found.manifest.annotations?.[BundlePredicateAnnotation];
    if (annotated === CosignSignPredicate || (type && annotated !== undefined && annotated !== type)) continue;
    const where = `attestation ${found.descriptor.digest} (${found.from})`;
    for (const layer of found.manifest.layers ?? []) {
      const result: AttestationResult = { artifact: found.descriptor.digest, from: found.from, verified: false };
      try {
        if (found.manifest.subject?.digest !== source.subject.digest) throw new SignatureInvalid(`${where}: its subject is ${found.manifest.subject?.digest ?? '(none)'}, not ${source.subject.digest}`);
        const bundle = parseBundle(await source.blob(layer, where, MaxAttestationBlob), where);
        const signedBy = bundleSigner(bundle, trust, where);
        const { payloadType, payload } = bundlePayload(bundle, where);
        if (payloadType !== InTotoPayloadType) throw new SignatureInvalid(`${where}: dsseEnvelope.payloadType "${payloadType}" is not ${InTotoPayloadType}`);
        const statement = parseStatement(payload, where);
        if (statement.predicateType === CosignSignPredicate) continue;
        if (type && statement.predicateType !== type) continue;
        // The annotation is the referrer's, unsigned: only the signed statement's type counts.
        if (annotated !== undefined && annotated !== statement.predicateType) throw new SignatureInvalid(`${where}: annotated as ${annotated} but the statement's predicateType is ${statement.predicateType}`);
        if (!statementClaims(statement, source.subject.digest)) throw new SignatureInvalid(`${where}: attests ${statementDigests(statement).join(', ')}, not ${source.subject.digest}`);
        Object.assign(result, { verified: true, predicateType: statement.predicateType, predicate: statement.predicate, ...signedBy });
      } catch (e) {
        if (!(e instanceof SignatureInvalid)) throw e;
        result.error = e.message;
        if (annotated) result.predicateType = annotated;
      }
      out.push(result);
    }
  }
  return out;
}
