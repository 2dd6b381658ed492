import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln, kilnOk } from '../../support/env.js';
import { has, hostOf, testEnv } from '../client/support.js';
import { openSqliteMetadata } from '../../../src/registry/server/metadata/sqlite.js';
import { removeSignaturePolicy, setSignaturePolicy } from '../../../src/registry/server/signature-policy.js';
import { pushImage, randomImage, registryCli, startRegistry, waitFor, type Client } from './support.js';

// A namespace's signature policy (issue 19), set with `kiln registry policy` while the registry
// serves: unsigned manifests are refused on pull (skopeo, kiln pull, HTTP) with the policy named,
// signatures themselves always pass, a signature by another key does not count, a change of keys
// is seen at once (no stale verdict), tag moves need a signature when the policy covers promotion.

const chromiumPath = '/usr/bin/chromium';
const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const get = (c: Client, repo: string, ref: string) => c.req('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept } });

function plainPublicKey(dir: string, name: string, type: 'prime256v1' | 'secp256k1'): string {
  const file = join(dir, name);
  writeFileSync(file, generateKeyPairSync('ec', { namedCurve: type }).publicKey.export({ type: 'spki', format: 'pem' }));
  return file;
}

/** PREFIX.key (plain PKCS#8 PEM, which kiln sign takes without a password) and PREFIX.pub. */
function plainKeyPair(dir: string, prefix: string): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const files = { key: join(dir, `${prefix}.key`), pub: join(dir, `${prefix}.pub`) };
  writeFileSync(files.key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(files.pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return files;
}

test('a signature policy refuses unsigned pulls naming the policy (skopeo, kiln pull), serves the image once the right key signed it, never holds back the signature, follows key changes, and goes with policy rm', { timeout: 90_000 }, async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const e = await testEnv(t);
  const good = plainKeyPair(e.dir, 'good');
  const other = plainKeyPair(e.dir, 'other');
  const name = `${hostOf(reg.url)}/lib/busybox:1`;
  const image = randomImage();
  assert.equal((await pushImage(c, 'lib/busybox', '1', image)).status, 201);
  const digest = image.digest;

  // A key of an unsupported type is refused naming its file; nothing is stored.
  const k1 = plainPublicKey(e.dir, 'k1.pub', 'secp256k1');
  const bad = await registryCli(reg, ['policy', 'set', 'lib', '--require-signature', '--key', k1]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /k1\.pub: EC key on curve secp256k1 is not supported/);
  assert.deepEqual(await reg.registry.metadata.signaturePolicies(), []);

  const set = await registryCli(reg, ['policy', 'set', 'lib', '--require-signature', '--key', good.pub]);
  assert.equal(set.code, 0, set.stderr);
  await waitFor(async () => (await get(c, 'lib/busybox', '1')).status === 403, 10_000, 'the serving registry sees the policy');
  const refused = await get(c, 'lib/busybox', digest);
  assert.equal(refused.status, 403);
  assert.match(refused.text(), /DENIED.*pull of lib\/busybox@sha256:[0-9a-f]{64}: refused by the signature policy of namespace lib: a signature by key sha256:\S+ is required; it has no signature/);
  // HEAD tells a signer (whoever may push; here anyone) the digest to sign, never the content.
  const head = await c.req('HEAD', `/v2/lib/busybox/manifests/1`, { headers: { accept } });
  assert.equal(head.headers.get('docker-content-digest'), digest);
  if (has('skopeo')) {
    const sk = await promisify(execFile)('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`], { timeout: 30_000 }).then(() => '', (err: { stderr: string }) => err.stderr);
    assert.match(sk, /signature policy of namespace lib/);
  }
  const pulled = await kiln(e.root, ['pull', name], { env: e.env });
  assert.notEqual(pulled.code, 0);
  assert.match(pulled.stderr, /signature policy of namespace lib/);

  // Signing works under the policy (referrers are pushed and read); another key's signature does not count.
  await kilnOk(e.root, ['sign', '--remote', '--key', other.key, name], { env: e.env });
  assert.match((await get(c, 'lib/busybox', '1')).text(), /none of its 1 signatures verifies/);
  const signed = await kilnOk(e.root, ['sign', '--remote', '--key', good.key, name], { env: e.env });
  const signature = /pushed referrer \S+@(sha256:[0-9a-f]{64})/.exec(signed)![1]!;
  assert.equal((await get(c, 'lib/busybox', '1')).status, 200, 'signed by the policy\'s key');
  assert.equal((await get(c, 'lib/busybox', signature)).status, 200, 'the signature artifact itself is pullable');

  // The per-manifest status: two signatures, the policy's key's verified.
  const status = (await c.req('GET', `/kiln/v1/repositories/lib/busybox/manifests/${digest}/signatures`)).json<{ verified: boolean; policy: { keys: string[] }; signatures: { artifact: string; verified: boolean; signer?: string }[] }>();
  assert.equal(status.verified, true);
  assert.equal(status.signatures.length, 2);
  const ok = status.signatures.filter((s) => s.verified);
  assert.deepEqual(ok.map((s) => s.artifact), [signature]);
  assert.equal(`sha256:${ok[0]!.signer}`, status.policy.keys[0]);
  // The web UI's image page shows the same verdict, from the same API.
  if (existsSync(chromiumPath)) {
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`${reg.url}/ui/image/lib/busybox/${digest}`);
    const section = page.getByRole('region', { name: 'Signature status' });
    await section.getByText('verified', { exact: true }).waitFor();
    const text = await section.innerText();
    assert.match(text, new RegExp(`Namespace lib requires a signature by key ${status.policy.keys[0]!.replace(/[+/]/g, '\\$&')}`));
    assert.equal((text.match(/\byes\b/g) ?? []).length, 1, 'one of the two signatures verifies');
    assert.match(text, new RegExp(ok[0]!.signer!.replace(/[+/]/g, '\\$&')));
  }

  // New keys: the cached verdict for this digest is not reused. (Set through a connection of this
  // test's own: the serving registry sees it by its poll, as it sees the CLI's, without a process.)
  const db = openSqliteMetadata(reg.config.database.sqlite.path);
  t.after(() => db.close());
  const fresh = plainPublicKey(e.dir, 'fresh.pub', 'prime256v1');
  const pemOf = (f: string) => ({ file: f, pem: readFileSync(f, 'utf8') });
  await setSignaturePolicy(db, 'test', 'lib', { keys: [pemOf(fresh)], certificates: [], on: ['pull'] });
  await waitFor(async () => (await get(c, 'lib/busybox', '1')).status === 403, 10_000, 'the new keys apply');
  assert.match((await get(c, 'lib/busybox', '1')).text(), /none of its 2 signatures verifies/);

  // Promotion only: pulls are free, moving a tag to an unsigned manifest is refused, to a signed one allowed.
  await setSignaturePolicy(db, 'test', 'lib', { keys: [pemOf(good.pub)], certificates: [], on: ['promote'] });
  const unsigned = randomImage();
  await waitFor(async () => (await get(c, 'lib/busybox', '1')).status === 200, 10_000, 'pulls are free again');
  assert.equal((await pushImage(c, 'lib/busybox', '2', unsigned)).status, 201, 'a new tag is a push, not a promotion');
  const move = await c.req('PUT', '/v2/lib/busybox/manifests/1', { body: unsigned.manifest, headers: { 'content-type': unsigned.mediaType } });
  assert.equal(move.status, 403);
  assert.match(move.text(), /promotion of lib\/busybox@sha256:[0-9a-f]{64} to lib\/busybox: refused by the signature policy of namespace lib/);
  assert.equal((await c.req('PUT', '/v2/lib/busybox/manifests/2', { body: image.manifest, headers: { 'content-type': image.mediaType } })).status, 201, 'moving a tag to the signed image');

  const listed = JSON.parse((await registryCli(reg, ['policy', 'list', '--format', 'json'])).stdout) as { namespace: string; on: string[]; keys: string[] }[];
  assert.deepEqual(listed.map((p) => [p.namespace, p.on, p.keys.length]), [['lib', ['promote'], 1]]);
  assert.equal((await registryCli(reg, ['policy', 'rm', 'lib'])).code, 0);
  await assert.rejects(removeSignaturePolicy(db, 'test', 'lib'), /namespace "lib" has no signature policy/);
  await waitFor(async () => (await c.req('PUT', '/v2/lib/busybox/manifests/1', { body: unsigned.manifest, headers: { 'content-type': unsigned.mediaType } })).status === 201, 10_000, 'policy rm lets the tag move');

  const audit = await reg.registry.metadata.listAudit({ namespace: 'lib', limit: 100 });
  assert.deepEqual(audit.filter((a) => a.action.startsWith('policy-')).map((a) => a.action), ['policy-rm', 'policy-set', 'policy-set', 'policy-set']);
  assert.match(audit.find((a) => a.action === 'policy-set')!.detail!, /a signature by key sha256:\S+ is required on promote/);
});

test('kiln registry policy set --config FILE (the interface the acceptance checks use) sets the policy the serving registry enforces', { timeout: 30_000 }, async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const e = await testEnv(t);
  const good = plainKeyPair(e.dir, 'good');
  assert.equal((await pushImage(c, 'cfg/app', '1', randomImage())).status, 201);
  const config = join(e.dir, 'registry.yaml');
  writeFileSync(config, reg.config.database.driver === 'postgres' ? `root: ${reg.root}\ndatabase:\n  driver: postgres\n  postgres:\n    url: ${reg.config.database.postgres!.url}\n` : `root: ${reg.root}\n`);
  const set = await kiln(e.root, ['registry', 'policy', 'set', 'cfg', '--require-signature', '--key', good.pub, '--config', config], { env: e.env });
  assert.equal(set.code, 0, set.stderr);
  await waitFor(async () => (await get(c, 'cfg/app', '1')).status === 403, 10_000, 'the serving registry sees the policy');
  assert.match((await get(c, 'cfg/app', '1')).text(), /refused by the signature policy of namespace cfg/);
});
