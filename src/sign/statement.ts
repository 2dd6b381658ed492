import { SignatureInvalid } from './errors.js';

// in-toto Statement v1 (in-toto/attestation spec/v1/statement.md) as `cosign sign` (v3, the new
// bundle format) writes it: one subject, the signed manifest's sha256 digest, with the -a
// annotations in the subject's `annotations` (cosign's cmd/cosign/cli/sign/sign.go puts them there,
// and its verifier reads them there); predicateType https://sigstore.dev/cosign/sign/v1. kiln
// repeats them as the predicate, for readers that look only at predicates.

export const StatementV1 = 'https://in-toto.io/Statement/v1';
export const StatementV01 = 'https://in-toto.io/Statement/v0.1';
export const CosignSignPredicate = 'https://sigstore.dev/cosign/sign/v1';

export interface Statement {
  _type: string;
  subject: { name?: string; digest: Record<string, string>; annotations?: Record<string, unknown> }[];
  predicateType: string;
  predicate?: Record<string, unknown>;
}

export function signStatement(name: string, digest: string, annotations: Record<string, string>): Statement {
  const [algorithm, hex] = digest.split(':') as [string, string];
  const subject: Statement['subject'][number] = { name, digest: { [algorithm]: hex } };
  if (Object.keys(annotations).length) subject.annotations = annotations;
  return { _type: StatementV1, subject: [subject], predicateType: CosignSignPredicate, predicate: { ...annotations } };
}

export function parseStatement(payload: Buffer, where: string): Statement {
  let s: Statement;
  try {
    s = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the DSSE payload is not JSON`);
  }
  if (s?._type !== StatementV1 && s?._type !== StatementV01) throw new SignatureInvalid(`${where}: payload _type "${s?._type}" is not an in-toto Statement`);
  if (!Array.isArray(s.subject) || s.subject.length === 0) throw new SignatureInvalid(`${where}: the statement has no subject`);
  if (typeof s.predicateType !== 'string') throw new SignatureInvalid(`${where}: the statement has no predicateType`);
  return s;
}

/**
 * The annotations a statement claims for `digest`: its subject's (cosign's place), else the
 * predicate's of a cosign sign/v1 statement; undefined if the statement does not name the digest.
 */
export function statementClaims(s: Statement, digest: string): Record<string, unknown> | undefined {
  const [algorithm, hex] = digest.split(':') as [string, string];
  const subject = s.subject.find((x) => x?.digest?.[algorithm] === hex);
  if (!subject) return undefined;
  const fromPredicate = s.predicateType === CosignSignPredicate && s.predicate && typeof s.predicate === 'object' ? s.predicate : {};
  return { ...fromPredicate, ...(subject.annotations ?? {}) };
}

/** The digests a statement's subjects name, for messages. */
export function statementDigests(s: Statement): string[] {
  return s.subject.flatMap((x) => Object.entries(x?.digest ?? {}).map(([a, h]) => `${a}:${h}`));
}
