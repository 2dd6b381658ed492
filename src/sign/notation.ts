import { constants, verify, type X509Certificate } from 'node:crypto';
import { SignatureInvalid } from './errors.js';
import { certificateFromDer, checkChain } from './x509.js';

// Notary Project signatures in the JWS envelope (notaryproject/specification,
// signature-envelope-jws.md): flattened JSON serialisation; the protected header names the
// algorithm, the content type of the payload and the signing scheme; the unprotected header holds
// the certificate chain (x5c, leaf first); the payload's targetArtifact is the signed descriptor.

export const NotationArtifactType = 'application/vnd.cncf.notary.signature';
export const JwsMediaType = 'application/jose+json';
const PayloadType = 'application/vnd.cncf.notary.payload.v1+json';

export interface NotationVerification {
  targetArtifact: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
  leaf: X509Certificate;
  signingTime?: string;
}

const Algorithms: Record<string, { hash: string; pss?: number }> = {
  PS256: { hash: 'sha256', pss: 32 },
  PS384: { hash: 'sha384', pss: 48 },
  PS512: { hash: 'sha512', pss: 64 },
  ES256: { hash: 'sha256' },
  ES384: { hash: 'sha384' },
  ES512: { hash: 'sha512' },
};

/** Verify a JWS envelope against trusted certificates: the signature with x5c[0]'s key, the chain to one of `trusted`. */
export function verifyNotation(bytes: Buffer, trusted: X509Certificate[], where: string): NotationVerification {
  let jws: { payload?: string; protected?: string; signature?: string; header?: { x5c?: string[] } };
  try {
    jws = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the JWS envelope is not JSON`);
  }
  for (const f of ['payload', 'protected', 'signature'] as const) if (typeof jws?.[f] !== 'string') throw new SignatureInvalid(`${where}: JWS field "${f}" is missing`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(jws.protected!, 'base64url').toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the protected header is not base64url JSON`);
  }
  const alg = Algorithms[String(header.alg)];
  if (!alg) throw new SignatureInvalid(`${where}: protected header alg "${String(header.alg)}" is not supported`);
  if (header.cty !== PayloadType) throw new SignatureInvalid(`${where}: protected header cty "${String(header.cty)}" is not ${PayloadType}`);
  const x5c = jws.header?.x5c;
  if (!Array.isArray(x5c) || !x5c.length) throw new SignatureInvalid(`${where}: header.x5c is empty`);
  const chain = x5c.map((c, i) => certificateFromDer(c, `${where}: header.x5c[${i}]`));
  const signed = Buffer.from(`${jws.protected}.${jws.payload}`, 'ascii');
  const signature = Buffer.from(jws.signature!, 'base64url');
  const key = chain[0]!.publicKey;
  const ok = alg.pss
    ? verify(alg.hash, signed, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.pss }, signature)
    : verify(alg.hash, signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok) throw new SignatureInvalid(`${where}: the JWS signature does not verify with header.x5c[0]'s key`);
  const signingTime = typeof header['io.cncf.notary.signingTime'] === 'string' ? header['io.cncf.notary.signingTime'] : undefined;
  checkChain(chain, trusted, signingTime ? new Date(signingTime) : new Date(), where);
  let payload: { targetArtifact?: NotationVerification['targetArtifact'] };
  try {
    payload = JSON.parse(Buffer.from(jws.payload!, 'base64url').toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: the JWS payload is not base64url JSON`);
  }
  const t = payload.targetArtifact;
  if (!t || typeof t.digest !== 'string') throw new SignatureInvalid(`${where}: the payload has no targetArtifact.digest`);
  return { targetArtifact: t, leaf: chain[0]!, signingTime };
}
