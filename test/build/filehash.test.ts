import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileHasher } from '../../src/build/filehash.js';
import { tempDir } from '../support/env.js';

// FileHasher: few files are hashed on the calling thread, many on a worker thread in batches as they
// are added. Either way the results come in the order the files were added and equal sha256sum's.

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

function makeFiles(dir: string, n: number, big = 0): { abs: string; size: number; content: Buffer }[] {
  const out = [];
  for (let i = 0; i < n; i++) {
    // Sizes around the worker's 1 MiB read buffer, and empty files, among the small ones.
    const size = i < big ? [1 << 20, (1 << 20) + 1, 3 << 20][i % 3]! : i % 97 === 0 ? 0 : 100 + (i % 5000);
    const content = randomBytes(size);
    const abs = join(dir, `f${i}`);
    writeFileSync(abs, content);
    out.push({ abs, size, content });
  }
  return out;
}

test('few files are hashed here, in order', async (t) => {
  const files = makeFiles(await tempDir(t), 20);
  const hasher = new FileHasher();
  const at = files.map((f) => hasher.add(f));
  assert.deepEqual(at, files.map((_, i) => i));
  assert.deepEqual(await hasher.done(), files.map((f) => sha(f.content)));
});

test('many files go to the hashing thread in batches and come back in order', async (t) => {
  // 1,500 files pass the 1,000-file threshold and make several 256-file batches; the first few
  // files are large ones, which are read through the thread's reused buffer.
  const files = makeFiles(await tempDir(t), 1500, 6);
  const hasher = new FileHasher();
  for (const f of files) hasher.add(f);
  assert.deepEqual(await hasher.done(), files.map((f) => sha(f.content)));
});

test('a file that vanished fails the whole hashing with its error, on either thread', async (t) => {
  const dir = await tempDir(t);
  for (const n of [10, 1200]) {
    const files = makeFiles(dir, n);
    rmSync(files[n - 3]!.abs);
    const hasher = new FileHasher();
    for (const f of files) hasher.add(f);
    await assert.rejects(hasher.done(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message.includes(files[n - 3]!.abs));
  }
});

test('an aborted hashing rejects with the abort reason and stops the thread', async (t) => {
  const files = makeFiles(await tempDir(t), 1100);
  const hasher = new FileHasher();
  for (const f of files) hasher.add(f);
  const ac = new AbortController();
  ac.abort(new Error('build cancelled'));
  await assert.rejects(hasher.done(ac.signal), /build cancelled/);
  // close() after done() is harmless, and a hasher closed without done() leaves no thread running
  // (the test runner would otherwise wait for it).
  await hasher.close();
  const unused = new FileHasher();
  for (const f of files) unused.add(f);
  await unused.close();
  assert.equal(readFileSync(files[0]!.abs).length, files[0]!.size);
});
