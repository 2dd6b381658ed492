import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scrypt, sign, verify, constants, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { KeyInvalid, WrongPassword } from './errors.js';

// Key pairs as cosign keeps them (cosign's pkg/cosign/keys.go; the encryption is go-securesystemslib's
// "encrypted" package): the private key's PKCS#8 DER, sealed with NaCl secretbox (XSalsa20-Poly1305)
// under a key derived from the password by scrypt, the parameters stored beside the ciphertext as
// JSON, the JSON base64 in a PEM block. The public key is a PKIX "PUBLIC KEY" PEM.

export const SigstoreKeyPem = 'ENCRYPTED SIGSTORE PRIVATE KEY';
/** cosign before v2.x wrote this label; the content is the same. */
export const CosignKeyPem = 'ENCRYPTED COSIGN PRIVATE KEY';

/** The key kinds kiln signs with, and the signature algorithm each implies (as sigstore-go picks them). */
export type KeyKind = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa' | 'ed25519';

/** securesystemslib's defaults (N=2^15, r=8, p=1), which cosign writes too. */
const Scrypt = { N: 32768, r: 8, p: 1 };

interface SealedKey {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

/** A new ECDSA P-256 key pair, what `cosign generate-key-pair` makes. */
export function generateKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** What kind of key this is; any other is refused with `where` named. */
export function keyKind(key: KeyObject, where: string): KeyKind {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256';
    if (curve === 'secp384r1') return 'ecdsa-p384';
    throw new KeyInvalid(`${where}: EC key on curve ${curve ?? '(unknown)'} is not supported (P-256 or P-384)`);
  }
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new KeyInvalid(`${where}: RSA key of ${bits} bits is too small (2048 at least)`);
    return 'rsa';
  }
  if (type === 'ed25519') return 'ed25519';
  throw new KeyInvalid(`${where}: ${type ?? 'unknown'} keys are not supported (EC P-256/P-384, RSA or Ed25519)`);
}

/** Seal a private key with `password`, as cosign's encrypted PEM. */
export async function encryptKey(key: KeyObject, password: string): Promise<string> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const secret = await derive(password, salt, Scrypt);
  const sealed: SealedKey = {
    kdf: { name: 'scrypt', params: Scrypt, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(nacl.secretbox(der, nonce, secret)).toString('base64'),
  };
  return pem(SigstoreKeyPem, Buffer.from(JSON.stringify(sealed)));
}

/**
 * The private key in `text` (read from `file`): cosign's encrypted forms, opened with `password`
 * (asked for only when the key is encrypted), or a plain PEM key (PKCS#8, SEC1, PKCS#1).
 */
export async function readPrivateKey(text: string, file: string, password: () => Promise<string>): Promise<KeyObject> {
  const block = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (!block) throw new KeyInvalid(`${file}: no PEM block found`);
  const label = block[1]!;
  if (label === SigstoreKeyPem || label === CosignKeyPem) return openSealed(Buffer.from(block[2]!.replace(/\s+/g, ''), 'base64'), file, await password());
  return readPlainKey(text, file);
}

/** A plain PEM private key (PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY"). */
export function readPlainKey(text: string, file: string): KeyObject {
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
  if (!label) throw new KeyInvalid(`${file}: no PEM block found`);
  if (label === 'ENCRYPTED PRIVATE KEY') throw new KeyInvalid(`${file}: a password-protected PKCS#8 key; decrypt it first (openssl pkcs8 -in ${file}) and import that`);
  if (!['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY'].includes(label)) throw new KeyInvalid(`${file}: a PEM "${label}" block is not a private key kiln can use (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new KeyInvalid(`${file}: cannot read the ${label} block (${(e as Error).message})`);
  }
  keyKind(key, file);
  return key;
}

/** A public key from a PKIX PEM ("PUBLIC KEY"), or the key of a PEM certificate. */
export function readPublicKey(text: string, file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new KeyInvalid(`${file}: not a PEM public key (${(e as Error).message})`);
  }
  keyKind(key, file);
  return key;
}

export function publicKeyPem(key: KeyObject): string {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * The key's hint as cosign puts it in a bundle's verificationMaterial.publicKey.hint: the base64
 * SHA-256 of its PKIX DER. It doubles as the key's fingerprint in kiln's output.
 */
export function keyHint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** Sign `data`: ECDSA (SHA-256 on P-256, SHA-384 on P-384, ASN.1 DER), RSA PKCS#1 v1.5 SHA-256, or Ed25519. */
export function signData(key: KeyObject, data: Buffer): Buffer {
  const kind = keyKind(key, 'signing key');
  if (kind === 'ed25519') return sign(null, data, key);
  if (kind === 'rsa') return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING });
  return sign(kind === 'ecdsa-p384' ? 'sha384' : 'sha256', data, key);
}

/** Does `signature` over `data` verify with `key`? ECDSA signatures may be DER or raw r||s. */
export function verifyData(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  const kind = keyKind(key, 'public key');
  try {
    if (kind === 'ed25519') return verify(null, data, key, signature);
    if (kind === 'rsa') return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    const hash = kind === 'ecdsa-p384' ? 'sha384' : 'sha256';
    if (verify(hash, data, key, signature)) return true;
    const raw = kind === 'ecdsa-p384' ? 96 : 64;
    return signature.length === raw && verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

async function openSealed(json: Buffer, file: string, password: string): Promise<KeyObject> {
  let sealed: SealedKey;
  try {
    sealed = JSON.parse(json.toString('utf8'));
  } catch {
    throw new KeyInvalid(`${file}: the encrypted key is not JSON`);
  }
  if (sealed?.kdf?.name !== 'scrypt') throw new KeyInvalid(`${file}: kdf.name "${sealed?.kdf?.name}" is not supported (scrypt)`);
  if (sealed.cipher?.name !== 'nacl/secretbox') throw new KeyInvalid(`${file}: cipher.name "${sealed.cipher?.name}" is not supported (nacl/secretbox)`);
  const { N, r, p } = sealed.kdf.params ?? {};
  // Bounds keep a hostile file from asking for gigabytes of scrypt memory.
  if (![N, r, p].every(Number.isInteger) || N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new KeyInvalid(`${file}: kdf.params ${JSON.stringify(sealed.kdf.params)} are out of range`);
  }
  const nonce = Buffer.from(sealed.cipher.nonce ?? '', 'base64');
  if (nonce.length !== 24) throw new KeyInvalid(`${file}: cipher.nonce is not 24 bytes`);
  const secret = await derive(password, Buffer.from(sealed.kdf.salt ?? '', 'base64'), { N, r, p });
  const der = nacl.secretbox.open(Buffer.from(sealed.ciphertext ?? '', 'base64'), nonce, secret);
  if (!der) throw new WrongPassword(`${file}: wrong password (the encrypted key does not open with it)`);
  // PKCS#8 as cosign writes now; older cosign sealed an EC key's SEC1 DER (x509.MarshalECPrivateKey).
  const decoded = (['pkcs8', 'sec1', 'pkcs1'] as const).map((type) => {
    try {
      return createPrivateKey({ key: Buffer.from(der), format: 'der', type });
    } catch {
      return undefined;
    }
  });
  const key = decoded.find((k) => k !== undefined);
  if (!key) throw new KeyInvalid(`${file}: the decrypted key is neither PKCS#8, SEC1 nor PKCS#1 DER`);
  keyKind(key, file);
  return key;
}

function derive(password: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r * p.p + (1 << 20) }, (err, key) => (err ? reject(err) : resolve(new Uint8Array(key)))),
  );
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
