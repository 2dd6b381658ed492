import { X509Certificate } from 'node:crypto';
import { SignatureInvalid } from './errors.js';

// X.509 chains, as far as kiln checks them: each certificate issued and signed by the next, the
// last one being (or issued by) a certificate the user trusts, each valid at the signing time.
// Name constraints, key usages and revocation are not checked.

export function certificateFromDer(base64: string, where: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(base64, 'base64'));
  } catch (e) {
    throw new SignatureInvalid(`${where}: not a DER X.509 certificate (${(e as Error).message})`);
  }
}

/** Every certificate in a PEM file. */
export function certificatesFromPem(text: string, file: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new SignatureInvalid(`${file}: no PEM CERTIFICATE block`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new SignatureInvalid(`${file}: certificate ${i + 1} cannot be read (${(e as Error).message})`);
    }
  });
}

/**
 * Check that `chain` (leaf first) leads to one of `trusted`: the leaf is a trusted certificate, or
 * each certificate is issued by the next one in `chain` or in `trusted`, ending at a trusted one.
 * `at` (the signing time) must fall within every certificate's validity. Returns the trusted anchor.
 */
export function checkChain(chain: X509Certificate[], trusted: X509Certificate[], at: Date, where: string): X509Certificate {
  if (!chain.length) throw new SignatureInvalid(`${where}: no certificate`);
  const pool = [...chain.slice(1), ...trusted];
  let cert = chain[0]!;
  for (let depth = 0; depth < 10; depth++) {
    within(cert, at, where);
    const anchor = trusted.find((t) => t.fingerprint256 === cert.fingerprint256);
    if (anchor) return anchor;
    const issuer = pool.find((c) => c.fingerprint256 !== cert.fingerprint256 && cert.checkIssued(c) && cert.verify(c.publicKey));
    if (!issuer) throw new SignatureInvalid(`${where}: certificate "${cert.subject.replace(/\n/g, ', ') || '(no subject)'}" is not issued by a trusted certificate`);
    cert = issuer;
  }
  throw new SignatureInvalid(`${where}: certificate chain longer than 10`);
}

function within(cert: X509Certificate, at: Date, where: string): void {
  if (at < new Date(cert.validFrom) || at > new Date(cert.validTo)) {
    throw new SignatureInvalid(`${where}: certificate "${cert.subject.replace(/\n/g, ', ')}" is valid from ${cert.validFrom} to ${cert.validTo}, not at the signing time ${at.toISOString()}`);
  }
}
