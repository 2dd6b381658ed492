// policy.yaml in kiln bake, as in kiln build: a FROM image from outside the bake that the policy
// refuses stops the bake before any target builds, naming the bake file, the target, the FROM line
// and the policy's rule; a parent target the bake builds itself is not asked (its own FROM was).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';

test('kiln bake under policy.yaml: a refused outside base stops the bake before anything builds; the bake\'s own parent target is not asked', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t, 'kiln-bake-policy-');
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  for (const [p, content] of Object.entries({
    'base/Dockerfile': 'FROM busybox\nRUN echo base > /base\n',
    'child/Dockerfile': 'FROM kiln.test/policy-base:1\nRUN echo child > /child\n',
    'kiln-bake.yaml': 'target:\n  base: {context: base, tags: [kiln.test/policy-base:1]}\n  child: {context: child, tags: [kiln.test/policy-child:1]}\n',
  })) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  const file = join(dir, 'kiln-bake.yaml');
  const policy = join(dir, 'policy.yaml');
  const bake = () => kiln(root, ['bake', '-f', file, '--progress', 'quiet'], { env: { KILN_POLICY: policy } });
  const tagged = async () =>
    (await kilnOk(root, ['images', '--format', 'json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Repository: string; Tag: string })
      .map((i) => `${i.Repository}:${i.Tag}`)
      .filter((n) => n.startsWith('kiln.test/'));

  await writeFile(policy, 'rules:\n  - match: docker.io/library/**\n    reject: true\n  - match: "**"\n    accept: anything\n');
  const refused = await bake();
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`${file.replace(/[.*]/g, '\\$&')}: target "base": .*base image "busybox": .*rejected by ${policy.replace(/[.*]/g, '\\$&')}:2: rule 1`));
  assert.deepEqual(await tagged(), [], 'no target built');

  // The parent's tag is refused by the policy, but the child's FROM names the bake's own target.
  await writeFile(policy, 'rules:\n  - match: kiln.test/**\n    reject: true\n  - match: "**"\n    accept: anything\n');
  const built = await bake();
  assert.equal(built.code, 0, built.stderr);
  assert.deepEqual((await tagged()).sort(), ['kiln.test/policy-base:1', 'kiln.test/policy-child:1']);
});
