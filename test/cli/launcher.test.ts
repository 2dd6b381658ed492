import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { kiln, kilnOk, repoRoot, tempDir } from '../support/env.js';

// The `kiln` command runs the CLI bundle with V8's code cache (src/cli/launcher.cts): one file per
// command, written after the first run, used by the next, replaced when unusable or untrusted.

/** The cache files of a cache directory, by name. */
function cacheFiles(cacheHome: string): string[] {
  return readdirSync(join(cacheHome, 'kiln', 'code-cache')).sort();
}

test('the first run of a command writes its code cache; later runs use it and leave it as it is', async (t) => {
  const cacheHome = await tempDir(t);
  const root = await tempDir(t);
  const env = { XDG_CACHE_HOME: cacheHome };
  const first = await kilnOk(root, ['images', '-q'], { env });
  const [file, ...others] = cacheFiles(cacheHome);
  assert.equal(others.length, 0);
  // Named by the bundle's content: V8 itself would take the cache of any source of the same length.
  const bundleHash = createHash('sha256').update(readFileSync(join(repoRoot, 'dist', 'bin', 'kiln-bundle.cjs'))).digest('hex');
  assert.equal(file, `images.${process.version}-${bundleHash.slice(0, 16)}.v8`);
  const path = join(cacheHome, 'kiln', 'code-cache', file!);
  const before = statSync(path);
  assert.equal(before.mode & 0o777, 0o600);
  assert.ok(before.size > 10_000, `a cache of ${before.size} bytes`);
  const bytes = readFileSync(path);

  assert.equal(await kilnOk(root, ['images', '-q'], { env }), first);
  const after = statSync(path);
  assert.equal(after.ino, before.ino, 'the cache was not rewritten');
  assert.deepEqual(readFileSync(path), bytes);

  // Another command has a cache of its own.
  await kilnOk(root, ['tag', '--help'], { env });
  assert.deepEqual(cacheFiles(cacheHome).map((n) => n.split('.')[0]), ['images', 'tag']);
});

test('a damaged code cache is compiled around and replaced; one another user could have written is not run', async (t) => {
  const cacheHome = await tempDir(t);
  const root = await tempDir(t);
  const env = { XDG_CACHE_HOME: cacheHome };
  await kilnOk(root, ['images', '-q'], { env });
  const path = join(cacheHome, 'kiln', 'code-cache', cacheFiles(cacheHome)[0]!);

  // Cut short: V8 rejects it, the command still works, and a whole cache takes its place.
  const whole = readFileSync(path);
  writeFileSync(path, whole.subarray(0, 100));
  chmodSync(path, 0o600);
  const r = await kiln(root, ['images', '-q'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(path).size > 10_000, `replaced by a cache of ${statSync(path).size} bytes`);

  // A valid cache that another user could have written is not run: it is replaced (a new inode),
  // where a trusted one is left as it is (the first test).
  for (const untrusted of [() => chmodSync(path, 0o664), () => chownSync(path, 1, 1)]) {
    untrusted();
    const before = statSync(path);
    const r = await kiln(root, ['images', '-q'], { env });
    assert.equal(r.code, 0, r.stderr);
    const after = statSync(path);
    assert.notEqual(after.ino, before.ino);
    assert.equal(after.mode & 0o777, 0o600);
    assert.equal(after.uid, process.getuid!());
  }
});

test('a cache directory that cannot be written costs nothing but the cache', async (t) => {
  const dir = await tempDir(t);
  const root = await tempDir(t);
  const notADir = join(dir, 'file');
  writeFileSync(notADir, '');
  const r = await kiln(root, ['images', '-q'], { env: { XDG_CACHE_HOME: notADir } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('each thread bundle the CLI starts threads on loads on a thread of its own', async () => {
  const bin = join(repoRoot, 'dist', 'bin');
  const bundles = readdirSync(bin).filter((n) => /^kiln-thread-[a-z]+\.cjs$/.test(n)).sort();
  assert.deepEqual(bundles, ['kiln-thread-download.cjs', 'kiln-thread-extract.cjs', 'kiln-thread-filehash.cjs']);
  for (const name of bundles) {
    // No job in workerData: the module loads (every package it requires resolves) and the thread ends.
    const worker = new Worker(join(bin, name), { workerData: null, stderr: true });
    let stderr = '';
    worker.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', resolve);
    });
    assert.equal(code, 0, `${name}: ${stderr}`);
  }
});
