import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fixture, kilnOk, tempDir } from '../support/env.js';

// How a child names its parent: a FROM without a tag, through a build arg, or in COPY --from, all
// make the parent's target a parent; the child is pinned to its digest and records the tag.

test('FROM without a tag, FROM ${ARG} and COPY --from all link to the parent target; the child records the parent\'s tag and digest', async (t) => {
  const dir = await tempDir(t, 'kiln-bake-pin-');
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const files: Record<string, string> = {
    'base/Dockerfile': 'FROM busybox\nRUN echo base > /base\n',
    'files/Dockerfile': 'FROM scratch\nCOPY note /note\n',
    'files/note': 'a note\n',
    'child/Dockerfile': 'ARG PARENT=kiln.test/pin-base\nFROM ${PARENT}\nCOPY --from=kiln.test/pin-files:1 /note /note\nRUN cat /note /base > /both\n',
    'kiln-bake.yaml': 'target:\n  child: {context: child, tags: [kiln.test/pin-child:1]}\n  base: {context: base, tags: [kiln.test/pin-base]}\n  files: {context: files, tags: [kiln.test/pin-files:1]}\n',
  };
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  const file = join(dir, 'kiln-bake.yaml');
  const plan = await kilnOk(root, ['bake', '-f', file, '--dry-run']);
  assert.match(plan, /^base {2}kiln\.test\/pin-base:latest {2}FROM busybox\n└── child {2}kiln\.test\/pin-child:1 {2}\(built on base, files\)\nfiles {2}kiln\.test\/pin-files:1\n└── child /m, plan);
  assert.match(plan, /^build order: base, files, child$/m);

  await kilnOk(root, ['bake', '-f', file, '--progress', 'quiet']);
  const inspect = async (n: string) => JSON.parse(await kilnOk(root, ['inspect', n]))[0];
  const child = await inspect('kiln.test/pin-child:1');
  const manifest = JSON.parse(await readFile(join(root, 'blobs', 'sha256', child.Digest.slice(7)), 'utf8'));
  assert.equal(manifest.annotations['org.opencontainers.image.base.name'], 'kiln.test/pin-base:latest');
  assert.equal(manifest.annotations['org.opencontainers.image.base.digest'], (await inspect('kiln.test/pin-base')).Digest);

  // The parent moves outside the bake: the child is stale, and --changed files rebuilds only files and child.
  await writeFile(join(dir, 'base', 'Dockerfile'), 'FROM busybox\nRUN echo base2 > /base\n');
  await kilnOk(root, ['build', '-q', '-t', 'kiln.test/pin-base', join(dir, 'base')]);
  assert.match(await kilnOk(root, ['bake', '-f', file, '--stale']), /^child {2}kiln\.test\/pin-child:1 {2}built on kiln\.test\/pin-base:latest@sha256:[0-9a-f]{64}, which is now sha256:[0-9a-f]{64}\n$/);
  const out = await kilnOk(root, ['bake', '-f', file, '--changed', 'files', '--progress', 'quiet']);
  assert.deepEqual(out.trim().split('\n').map((l) => l.split('\t')[0]), ['files', 'child']);
  assert.equal(await kilnOk(root, ['bake', '-f', file, '--stale']), '', 'the child was rebuilt on the base as it stands now');
  assert.equal(await kilnOk(root, ['bake', '-f', file, '--since-digest', `sha256:${'0'.repeat(64)}`]), `${file}: nothing to build\n`);
});
