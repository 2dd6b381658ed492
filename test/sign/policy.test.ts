import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kiln, kilnOk } from '../support/env.js';
import { hostOf, testEnv } from '../registry/client/support.js';
import { pushImage, randomImage, startRegistry } from '../registry/server/support.js';
import { parseImagePolicy, ruleFor } from '../../src/sign/policy.js';

// The client-side trust policy (policy.yaml): kiln pull refuses an image its matching rule does not
// accept, naming the file, line and rule, before downloading anything; a signed one passes; a
// policy file with an unknown key is an error naming the file, line and key.

test('kiln pull under a policy.yaml: an unsigned image is refused naming the rule, a signed one is pulled, an unknown key in the file is an error', { timeout: 60_000 }, async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const e = await testEnv(t);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(e.dir, 'team.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(e.dir, 'team.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const host = hostOf(reg.url);
  for (const repo of ['base/signed', 'base/unsigned']) assert.equal((await pushImage(c, repo, '1', randomImage())).status, 201);
  await kilnOk(e.root, ['sign', '--remote', '--key', join(e.dir, 'team.key'), `${host}/base/signed:1`], { env: e.env });

  const policy = join(e.dir, 'policy.yaml');
  writeFileSync(policy, `rules:\n  - match: "${host}/base/**"\n    require:\n      keys: [team.pub]\n  - match: "**"\n    accept: anything\n`);
  const refused = await kiln(e.root, ['--policy', policy, 'pull', `${host}/base/unsigned:1`], { env: e.env });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`base/unsigned:1@sha256:[0-9a-f]{64}: refused by ${policy.replace(/[.]/g, '\\.')}:2: rule 1 \\(match "${host}/base/\\*\\*"\\): a signature by key sha256:\\S+ is required; it has no signature`));
  assert.doesNotMatch(await kilnOk(e.root, ['images'], { env: e.env }), /unsigned/, 'nothing was stored');

  // $KILN_POLICY names the file too.
  const env = { ...e.env, KILN_POLICY: policy };
  assert.match(await kilnOk(e.root, ['pull', `${host}/base/signed:1`], { env }), /Digest: sha256:/);

  writeFileSync(policy, `rules:\n  - match: "**"\n    requires:\n      keys: [team.pub]\n`);
  const bad = await kiln(e.root, ['pull', `${host}/base/signed:1`], { env });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /policy\.yaml:3: rules\[0\]: unknown key "requires" \(known: match, require, accept, reject\)/);
});

test('policy.yaml is checked whole: unknown top-level and require keys, a wrong accept value, two decisions in one rule; the first matching rule decides', async () => {
  const bad = async (text: string, re: RegExp) => assert.rejects(parseImagePolicy(text, 'p.yaml'), re);
  await bad('rule: []\n', /p\.yaml:1: unknown key "rule" \(known: rules\)/);
  await bad('rules:\n  - match: "**"\n    require:\n      key: [a.pub]\n', /p\.yaml:4: rules\[0\]\.require: unknown key "key" \(known: keys, certificates, keyless, trustedRoot\)/);
  await bad('rules:\n  - match: "**"\n    accept: yes\n', /p\.yaml:3: rules\[0\]\.accept: the one value is "anything"/);
  await bad('rules:\n  - match: "**"\n    accept: anything\n    reject: true\n', /rules\[0\]: give exactly one of require/);
  await bad('rules:\n  - match: "**"\n    require:\n      keys: [missing.pub]\n', /missing\.pub: ENOENT/);
  const p = await parseImagePolicy('rules:\n  - match: docker.io/library/*\n    reject: true\n  - match: "**"\n    accept: anything\n', 'p.yaml');
  assert.equal(ruleFor(p, 'docker.io/library/busybox')?.decision, 'reject');
  assert.equal(ruleFor(p, 'docker.io/team/app')?.decision, 'accept');
});
