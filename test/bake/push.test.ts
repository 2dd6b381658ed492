import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { hostOf, startRegistry, testEnv } from '../registry/client/support.js';

// kiln bake --push against kiln's own registry on loopback: each image is pushed once its own
// structure tests pass; a failing test stops its branch, and nothing below it is built or pushed.

test('--push pushes each image after its tests pass and stops the branch below a failing test', async (t) => {
  const reg = await startRegistry(t);
  const e = await testEnv(t);
  const host = hostOf(reg.url);
  await kilnOk(e.root, ['load', '-i', fixture('busybox')], { env: e.env });
  const files: Record<string, string> = {
    'base/Dockerfile': 'FROM busybox\nRUN echo base > /base\n',
    'mid/Dockerfile': `FROM ${host}/team/base:1\nRUN echo mid > /mid\n`,
    'leaf/Dockerfile': `FROM ${host}/team/mid:1\nRUN echo leaf > /leaf\n`,
    'other/Dockerfile': `FROM ${host}/team/base:1\nRUN echo other > /other\n`,
    'tests/base.yaml': 'schemaVersion: 2.0.0\nfileContentTests:\n  - name: base file\n    path: /base\n    expectedContents: ["^base\\n$"]\n',
    'tests/mid.yaml': 'schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: mid has no /leaf yet\n    path: /leaf\n    shouldExist: true\n',
    'kiln-bake.yaml': [
      'target:',
      `  base: {context: base, tags: ["${host}/team/base:1"], test: tests/base.yaml}`,
      `  mid: {context: mid, tags: ["${host}/team/mid:1"], test: [tests/mid.yaml]}`,
      `  leaf: {context: leaf, tags: ["${host}/team/leaf:1"]}`,
      `  other: {context: other, tags: ["${host}/team/other:1", "${host}/team/other:latest"]}`,
      '',
    ].join('\n'),
  };
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(e.dir, 'h', p)), { recursive: true });
    await writeFile(join(e.dir, 'h', p), content);
  }
  const r = await kiln(e.root, ['bake', '-f', join(e.dir, 'h', 'kiln-bake.yaml'), '--push', '--progress', 'quiet'], { env: e.env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /1 target failed: "mid" \(structure tests failed: 1 of 1 .*\); left stale \(not rebuilt\): leaf$/m);
  const lines = r.stderr.split('\n');
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.ok(at(/^\[base\] tests passed: 1 of 1$/) >= 0 && at(/^\[base\] tests passed/) < at(/^\[base\] pushed /), r.stderr);
  assert.ok(at(/^\[base\] pushed /) < at(/^\[mid\] building /), 'a child builds only once its parent is pushed');

  const c = reg.client();
  const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
  const manifest = async (repo: string, ref: string) => c.req('GET', `/v2/team/${repo}/manifests/${ref}`, { headers: accept });
  const local = async (name: string) => JSON.parse(await kilnOk(e.root, ['inspect', name], { env: e.env }))[0].Digest as string;
  for (const [repo, tag] of [['base', '1'], ['other', '1'], ['other', 'latest']] as const) {
    const m = await manifest(repo, tag);
    assert.equal(m.status, 200, `${repo}:${tag} is pushed`);
    assert.equal(m.headers.get('docker-content-digest'), await local(`${host}/team/${repo}:${tag}`), 'the pushed manifest is the local one');
  }
  const other = (await manifest('other', '1')).json();
  assert.equal(other.annotations['org.opencontainers.image.base.digest'], await local(`${host}/team/base:1`), 'the base annotation travels with the image');
  assert.equal((await manifest('mid', '1')).status, 404, 'the image that failed its tests is not pushed');
  assert.equal((await manifest('leaf', '1')).status, 404);
  const names = await kilnOk(e.root, ['images', '--format', 'json'], { env: e.env });
  assert.doesNotMatch(names, /team\/mid|team\/leaf/, 'and not tagged locally');
});
