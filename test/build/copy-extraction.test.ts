import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile, appendFile, readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kilnOk, tempDir } from '../support/env.js';

// A big COPY's layer is extracted for the next step from its sources, and a rebuild after editing one
// file links the rest from the previous extraction. The next RUN must see the edit, and the previous
// extraction, which other images still use, must keep its own content.

test('after one file of a 1,200-file context is edited, the next RUN sees the edit and the earlier extraction keeps the old content', async (t) => {
  const work = await tempDir(t);
  const root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const ctx = join(work, 'ctx');
  for (let d = 0; d < 12; d++) {
    await mkdir(join(ctx, 'src', `m${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) await writeFile(join(ctx, 'src', `m${d}`, `f${f}.txt`), `${d}/${f}\n`);
  }
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nWORKDIR /app\nCOPY . .\nRUN cat src/m0/f0.txt src/m5/f5.txt > /seen.txt\n');
  const seen = async (n: number) => {
    const out = join(work, `out-${n}`);
    await kilnOk(root, ['build', '-q', '-o', `type=local,dest=${out}`, ctx]);
    return readFile(join(out, 'seen.txt'), 'utf8');
  };
  assert.equal(await seen(1), '0/0\n5/5\n');
  await appendFile(join(ctx, 'src', 'm0', 'f0.txt'), 'edited\n');
  assert.equal(await seen(2), '0/0\nedited\n5/5\n');

  // Two extractions of the COPY: the edited file apart, the untouched one shared.
  const layers = join(root, 'snapshots', 'layers');
  const copies: { edited: string; untouched: number }[] = [];
  for (const name of await readdir(layers)) {
    const edited = await readFile(join(layers, name, 'app/src/m0/f0.txt'), 'utf8').catch(() => undefined);
    if (edited !== undefined) copies.push({ edited, untouched: (await lstat(join(layers, name, 'app/src/m5/f5.txt'))).ino });
  }
  assert.deepEqual(copies.map((c) => c.edited).sort(), ['0/0\n', '0/0\nedited\n']);
  assert.equal(copies[0]!.untouched, copies[1]!.untouched, 'the unchanged file is linked from the first extraction');

  await writeFile(join(ctx, 'src', 'm0', 'f0.txt'), '0/0\n');
  assert.equal(await seen(3), '0/0\n5/5\n');
});
