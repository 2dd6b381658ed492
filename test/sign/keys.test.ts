import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, interopDir, kiln, kilnOk, tempDir } from '../support/env.js';
import { readPrivateKey, publicKeyPem, SigstoreKeyPem } from '../../src/sign/keys.js';

// kiln key generate / import, and signing with each kind of key kiln accepts.

const interop = interopDir;
const noPassword = { KILN_PASSWORD: undefined, COSIGN_PASSWORD: undefined } as unknown as NodeJS.ProcessEnv;

test('key generate writes an encrypted P-256 key in cosign\'s format and its PKIX public key, and refuses to overwrite them', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const prefix = join(dir, 'team');
  const out = await kilnOk(root, ['key', 'generate', '-o', prefix], { env: { KILN_PASSWORD: 's3cret' } });
  assert.match(out, /Private key written to .*team\.key/);
  const text = readFileSync(`${prefix}.key`, 'utf8');
  assert.match(text, new RegExp(`^-----BEGIN ${SigstoreKeyPem}-----\n`));
  const sealed = JSON.parse(Buffer.from(text.split('\n').slice(1, -2).join(''), 'base64').toString());
  assert.equal(sealed.kdf.name, 'scrypt');
  assert.deepEqual(sealed.kdf.params, { N: 32768, r: 8, p: 1 });
  assert.equal(sealed.cipher.name, 'nacl/secretbox');
  assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600);
  const key = await readPrivateKey(text, 'team.key', async () => 's3cret');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(readFileSync(`${prefix}.pub`, 'utf8'), publicKeyPem(key));

  const again = await kiln(root, ['key', 'generate', '-o', prefix], { env: { KILN_PASSWORD: 'x' } });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /team\.key exists: remove it or give --force/);
  await kilnOk(root, ['key', 'generate', '-o', prefix, '--force'], { env: { KILN_PASSWORD: 'other' } });
  await assert.rejects(readPrivateKey(readFileSync(`${prefix}.key`, 'utf8'), 'team.key', async () => 's3cret'), /wrong password/);
});

test('key generate without a password and without a terminal fails, saying how to give one', async (t) => {
  const dir = await tempDir(t);
  const r = await kiln(join(dir, 'store'), ['key', 'generate', '-o', join(dir, 'k')], { env: noPassword });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /a password is needed for .*k\.key: set KILN_PASSWORD \(or COSIGN_PASSWORD\), or run on a terminal/);
  assert.ok(!existsSync(join(dir, 'k.key')));
});

test('key import takes PKCS#8, SEC1 and PKCS#1 keys (P-256, P-384, RSA, Ed25519), and each signs an image that verifies with its public key', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const keys: [string, string][] = [
    ['p256-sec1', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString()],
    ['p384-pkcs8', generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
    ['rsa-pkcs1', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()],
    ['ed25519', generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
  ];
  for (const [name, pem] of keys) {
    writeFileSync(join(dir, `${name}.pem`), pem);
    await kilnOk(root, ['key', 'import', join(dir, `${name}.pem`), '-o', join(dir, name)], { env: { KILN_PASSWORD: 'pw' } });
    assert.match(readFileSync(join(dir, `${name}.key`), 'utf8'), /ENCRYPTED SIGSTORE PRIVATE KEY/);
    await kilnOk(root, ['sign', '--key', join(dir, `${name}.key`), 'busybox', '--format', name === 'ed25519' ? 'legacy' : 'bundle'], { env: { KILN_PASSWORD: 'pw' } });
    const v = await kilnOk(root, ['verify', '--key', join(dir, `${name}.pub`), 'busybox']);
    assert.match(v, /^Verified: /m, name);
  }
});

test('key import refuses an unsupported key type, naming the file', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'k1.pem');
  writeFileSync(file, generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const r = await kiln(join(dir, 'store'), ['key', 'import', file, '-o', join(dir, 'out')], { env: { KILN_PASSWORD: 'pw' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /k1\.pem: EC key on curve secp256k1 is not supported \(P-256 or P-384\)/);
  const dsa = join(dir, 'dsa.pem');
  writeFileSync(dsa, generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const d = await kiln(join(dir, 'store'), ['key', 'import', dsa, '-o', join(dir, 'out')], { env: { KILN_PASSWORD: 'pw' } });
  assert.match(d.stderr, /dsa\.pem: dsa keys are not supported/);
  const pub = join(dir, 'pub.pem');
  writeFileSync(pub, publicKeyPem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey));
  assert.match((await kiln(join(dir, 'store'), ['key', 'import', pub, '-o', join(dir, 'out')])).stderr, /pub\.pem: a PEM "PUBLIC KEY" block is not a private key/);
});

test('sign with cosign\'s own encrypted key takes COSIGN_PASSWORD, and a wrong password is refused naming the key file', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const file = join(interop, 'cosign-encrypted-sigstore.key');
  const pub = join(dir, 'cosign.pub');
  writeFileSync(pub, publicKeyPem(await readPrivateKey(readFileSync(file, 'utf8'), file, async () => 'hello')));
  const wrong = await kiln(root, ['sign', '--key', file, 'busybox'], { env: { ...noPassword, COSIGN_PASSWORD: 'nope' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /cosign-encrypted-sigstore\.key: wrong password/);
  await kilnOk(root, ['sign', '--key', file, 'busybox'], { env: { ...noPassword, COSIGN_PASSWORD: 'hello' } });
  assert.match(await kilnOk(root, ['verify', '--key', pub, 'busybox']), /Verified: sigstore-bundle signature of docker\.io\/library\/busybox@sha256:/);
});
