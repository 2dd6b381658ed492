import type { X509Certificate } from 'node:crypto';
import { SignatureInvalid } from './errors.js';

// Keyless identities: who a Fulcio certificate says signed. Fulcio puts the signer's identity in
// the Subject Alternative Name (an email, a URI such as a CI workflow, or an otherName username)
// and the OIDC issuer that vouched for it in its own extension (sigstore/fulcio docs/oid-info.md:
// 1.3.6.1.4.1.57264.1.8, a DER UTF8String; the deprecated 1.3.6.1.4.1.57264.1.1 holds the bare
// string). A required identity names the issuer and the identity, each exactly or by a regular
// expression, as cosign's --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp)
// do and policy-controller's keyless.identities (issuer/subject, issuerRegExp/subjectRegExp).
// Regular expressions match anywhere in the value, as Go's regexp.MatchString in cosign: anchor
// them with ^ and $ to match whole values.

export interface CertificateIdentity {
  issuer?: string;
  issuerRegexp?: RegExp;
  identity?: string;
  identityRegexp?: RegExp;
}

export interface CertificateSigner {
  /** The SAN values: emails, URIs, DNS names, otherName usernames. */
  identities: string[];
  issuer?: string;
}

const SubjectAltName = '2.5.29.17';
const IssuerV2 = '1.3.6.1.4.1.57264.1.8';
const IssuerV1 = '1.3.6.1.4.1.57264.1.1';

/** The SAN values and the OIDC issuer of a Fulcio certificate. */
export function certificateSigner(cert: X509Certificate, where: string): CertificateSigner {
  const ext = extensions(cert.raw, where);
  const identities: string[] = [];
  const san = ext.get(SubjectAltName);
  if (san) {
    // RFC 5280 4.2.1.6: GeneralNames, context-tagged: [0] otherName, [1] rfc822Name, [2] dNSName, [6] URI.
    for (const name of children(one(san, where), where)) {
      if (name.tag === 0x81 || name.tag === 0x82 || name.tag === 0x86) identities.push(name.value.toString('latin1'));
      else if (name.tag === 0xa0) {
        const [, explicit] = children(name, where);
        const inner = explicit?.tag === 0xa0 ? one(explicit.value, where) : undefined;
        if (inner?.tag === 0x0c) identities.push(inner.value.toString('utf8'));
      }
    }
  }
  const v2 = ext.get(IssuerV2);
  const inner = v2 ? one(v2, where) : undefined;
  if (inner && inner.tag !== 0x0c) throw new SignatureInvalid(`${where}: the certificate's issuer extension ${IssuerV2} is not a UTF8String`);
  const issuer = inner?.value.toString('utf8') ?? ext.get(IssuerV1)?.toString('utf8');
  return { identities, ...(issuer !== undefined ? { issuer } : {}) };
}

/** The first of `wanted` the signer matches, else an error naming what the certificate says. */
export function matchIdentity(signer: CertificateSigner, wanted: CertificateIdentity[], where: string): CertificateIdentity {
  const found = wanted.find((w) => issuerMatches(signer.issuer, w) && signer.identities.some((id) => (w.identity !== undefined ? id === w.identity : w.identityRegexp!.test(id))));
  if (found) return found;
  const says = `identity ${signer.identities.map((i) => `"${i}"`).join(', ') || '(none)'} from issuer ${signer.issuer === undefined ? '(none)' : `"${signer.issuer}"`}`;
  throw new SignatureInvalid(`${where}: the certificate names ${says}, not ${wanted.map(describeIdentity).join(' or ')}`);
}

function issuerMatches(issuer: string | undefined, w: CertificateIdentity): boolean {
  if (issuer === undefined) return false;
  return w.issuer !== undefined ? issuer === w.issuer : w.issuerRegexp!.test(issuer);
}

export function describeIdentity(w: CertificateIdentity): string {
  const id = w.identity !== undefined ? `identity "${w.identity}"` : `identity matching /${w.identityRegexp!.source}/`;
  const iss = w.issuer !== undefined ? `issuer "${w.issuer}"` : `issuer matching /${w.issuerRegexp!.source}/`;
  return `${id} from ${iss}`;
}

interface Tlv {
  tag: number;
  value: Buffer;
}

/** One DER TLV at the start of `b`, and where the next begins. */
function tlv(b: Buffer, at: number, where: string): Tlv & { end: number } {
  const bad = (): never => {
    throw new SignatureInvalid(`${where}: the certificate is not valid DER`);
  };
  if (at + 2 > b.length) bad();
  const tag = b[at]!;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > b.length) bad();
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  if (start + len > b.length) bad();
  return { tag, value: b.subarray(start, start + len), end: start + len };
}

function one(b: Buffer, where: string): Tlv {
  return tlv(b, 0, where);
}

function children(parent: Tlv, where: string): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < parent.value.length; ) {
    const t = tlv(parent.value, at, where);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** RFC 5280 4.1: Certificate → tbsCertificate → [3] extensions → Extension { extnID, critical?, extnValue }, by dotted OID. */
function extensions(der: Buffer, where: string): Map<string, Buffer> {
  const tbs = children(one(der, where), where)[0];
  const out = new Map<string, Buffer>();
  const wrapped = tbs ? children(tbs, where).find((c) => c.tag === 0xa3) : undefined;
  if (!wrapped) return out;
  for (const ext of children(one(wrapped.value, where), where)) {
    const parts = children(ext, where);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag === 0x06 && value?.tag === 0x04) out.set(oid(id.value), value.value);
  }
  return out;
}

function oid(b: Buffer): string {
  const arcs: number[] = [];
  let n = 0;
  for (const byte of b) {
    n = n * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(n);
      n = 0;
    }
  }
  const first = arcs.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}
