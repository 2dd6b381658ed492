import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { dirname, join } from 'node:path';
import { CompileFailed, compiledProgram, type CProgram } from '../src/cprogram.js';
import { tempDir } from './support/env.js';

// The C helpers are built once into a cache and run from there, often as root: only a cache that no
// one else can write is used.

const program: CProgram = { name: 'kiln-test-hello', source: '#include <stdio.h>\nint main(void) { puts("hello from C"); return 0; }\n' };
const fileName = `${program.name}-${arch()}-${createHash('sha256').update(program.source).update('dynamic').digest('hex').slice(0, 16)}`;
const isElf = (p: string) => readFileSync(p).subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));

test('a program is compiled into the cache once and run from there', async (t) => {
  const cache = join(await tempDir(t), 'cache');
  const path = await compiledProgram(program, cache);
  assert.equal(path, join(cache, fileName));
  assert.equal(execFileSync(path, { encoding: 'utf8' }), 'hello from C\n');
  assert.deepEqual(readdirSync(cache), [fileName], 'no build directory is left behind');
  const { ino } = statSync(path);
  assert.equal(await compiledProgram(program, cache), path);
  assert.equal(statSync(path).ino, ino);
});

test('a program in the cache that others could have written is built again, not run', async (t) => {
  const cache = join(await tempDir(t), 'cache');
  mkdirSync(cache, { mode: 0o700 });
  const planted = join(cache, fileName);
  writeFileSync(planted, '#!/bin/sh\necho planted\n', { mode: 0o775 });
  chmodSync(planted, 0o775); // group-writable
  const path = await compiledProgram(program, cache);
  assert.equal(path, planted);
  assert.ok(isElf(path), 'replaced by a compiled program');
  assert.equal(execFileSync(path, { encoding: 'utf8' }), 'hello from C\n');
});

test('a cache directory others can write is not used: the program is built privately', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'shared');
  mkdirSync(cache);
  chmodSync(cache, 0o777); // world-writable, not sticky
  const path = await compiledProgram(program, cache);
  assert.ok(!path.startsWith(cache), `built outside the untrusted cache: ${path}`);
  assert.equal((statSync(dirname(path)).mode & 0o777), 0o700);
  assert.equal(execFileSync(path, { encoding: 'utf8' }), 'hello from C\n');
  assert.deepEqual(readdirSync(cache), []);
});

test('a compiler that fails is reported, and the next use tries again', async (t) => {
  const cache = join(await tempDir(t), 'cache');
  const saved = process.env.CC;
  process.env.CC = 'false';
  try {
    await assert.rejects(compiledProgram(program, cache), CompileFailed);
  } finally {
    if (saved === undefined) delete process.env.CC;
    else process.env.CC = saved;
  }
  assert.ok(!existsSync(join(cache, fileName)));
  assert.ok(isElf(await compiledProgram(program, cache)));
});
