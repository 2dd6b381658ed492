import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { hostOf, testEnv } from '../registry/client/support.js';
import { pushImage, randomImage, startRegistry } from '../registry/server/support.js';
import { Store } from '../../src/store/store.js';
import { loadArchiveFile } from '../../src/store/load.js';
import { signImage } from '../../src/sign/sign.js';
import { storeSource } from '../../src/sign/stored.js';

// policy.yaml (--policy, $KILN_POLICY, else ~/.config/kiln/policy.yaml) for kiln build's FROM
// images and kiln run, as for kiln pull (policy.test.ts): a base image the policy refuses stops
// the build before any step runs, naming the image, the rule and the policy file's line, whether
// the store already has it or the build would pull it; a signed one builds and runs; reject and
// accept: anything rules decide without signatures.

test('kiln build and kiln run under policy.yaml: an unsigned base is refused before any step (stored or pulled), a signed one builds and runs, reject and accept: anything rules decide', { timeout: 90_000 }, async (t) => {
  const e = await testEnv(t);
  const reg = await startRegistry(t);
  const host = hostOf(reg.url);
  assert.equal((await pushImage(reg.client(), 'base/remote', '1', randomImage())).status, 201);

  // Two images of busybox's layers in the store, named in the registry (which has neither), one
  // signed in the store; one more under a rejected repository.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(e.dir, 'team.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const store = await Store.open(e.root);
  await loadArchiveFile(store, fixture('busybox'));
  const busybox = await store.resolveImage('busybox');
  const variant = (label: string, name: string) => store.writeImage({ ...busybox.config, config: { ...busybox.config.config, Labels: { variant: label } } }, busybox.manifest.layers, [name]);
  await signImage(storeSource(store, await variant('signed', `${host}/base/signed:1`)), privateKey, {}, 'bundle');
  await variant('unsigned', `${host}/base/unsigned:1`);
  await variant('banned', `${host}/banned/app:1`);

  const policy = join(e.dir, 'policy.yaml');
  writeFileSync(policy, `rules:\n  - match: "${host}/base/**"\n    require:\n      keys: [team.pub]\n  - match: ${host}/banned/**\n    reject: true\n  - match: "**"\n    accept: anything\n`);
  const re = (s: string) => s.replace(/[.*{}()]/g, (c) => `\\${c}`);
  const rule1 = `${re(policy)}:2: rule 1 \\(match "${re(host)}/base/\\*\\*"\\)`;
  const env = { ...e.env, KILN_POLICY: policy };
  const ctx = join(e.dir, 'ctx');
  mkdirSync(ctx);
  const build = (from: string, tag: string) => {
    // Another stage's RUN, which the build would start at once, does not run either.
    writeFileSync(join(ctx, 'Dockerfile'), `FROM busybox AS other\nRUN echo the-step-ran > /f\nFROM ${from}\nCOPY --from=other /f /f\n`);
    return kiln(e.root, ['build', '--progress', 'plain', '-t', tag, ctx], { env });
  };

  for (const [from, tag] of [[`${host}/base/unsigned:1`, 'app:stored'], [`${host}/base/remote:1`, 'app:pulled']] as const) {
    const refused = await build(from, tag);
    assert.notEqual(refused.code, 0, from);
    assert.match(refused.stderr, new RegExp(`${re(from)}@sha256:[0-9a-f]{64}: refused by ${rule1}: a signature by key sha256:\\S+ is required`), from);
    assert.doesNotMatch(refused.stdout + refused.stderr, /the-step-ran/, `${from}: no step ran`);
  }
  const rejected = await build(`${host}/banned/app:1`, 'app:banned');
  assert.notEqual(rejected.code, 0);
  assert.match(rejected.stderr, new RegExp(`${re(host)}/banned/app:1: rejected by ${re(policy)}:5: rule 2 \\(match "${re(host)}/banned/\\*\\*"\\)`));
  const reopened = await Store.open(e.root);
  assert.deepEqual((await reopened.listImages()).flatMap((i) => i.names).filter((n) => n.startsWith('docker.io/library/app') || n.includes('/base/remote')), [], 'nothing was built or pulled');

  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${host}/base/signed:1\nLABEL built=yes\n`);
  await kilnOk(e.root, ['build', '-q', '-t', 'app:signed', ctx], { env });

  const unsigned = await kiln(e.root, ['run', '--rm', `${host}/base/unsigned:1`, 'echo', 'ran'], { env });
  assert.notEqual(unsigned.code, 0);
  assert.match(unsigned.stderr, new RegExp(`${re(host)}/base/unsigned:1@sha256:[0-9a-f]{64}: refused by ${rule1}: a signature by key sha256:\\S+ is required; it has no signature`));
  assert.doesNotMatch(unsigned.stdout, /ran/);
  assert.equal(await kilnOk(e.root, ['run', '--rm', `${host}/base/signed:1`, 'echo', 'signed ran'], { env }), 'signed ran\n');
  assert.equal(await kilnOk(e.root, ['run', '--rm', 'busybox', 'echo', 'accepted'], { env }), 'accepted\n', 'accept: anything');
});
