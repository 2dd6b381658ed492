// BuildKit's frontend/dockerfile/dockerfile_resources_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. BuildKit's `shm-size` and `ulimit` frontend attributes are
// docker build's --shm-size and --ulimit.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('resources');
});
after(() => b.close());

test('testShmSize: --shm-size sets the size of /dev/shm in RUN', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox AS base\nRUN mount | grep /dev/shm > /shmsize\nFROM scratch\nCOPY --from=base /shmsize /\n' });
  // BuildKit dockerfile_resources_test.go:34 (134217728) and :57 (size=131072k); docker's unit form too.
  const out = await b.tree(dir, ['--shm-size', '134217728']);
  assert.match(await readFile(join(out, 'shmsize'), 'utf8'), /size=131072k/);
  const unit = await b.tree(dir, ['--shm-size', '96m']);
  assert.match(await readFile(join(unit, 'shmsize'), 'utf8'), /size=98304k/);
  // The default stays Docker's 64 MiB, and the size is part of the step's cache key.
  const plain = await b.tree(dir);
  assert.match(await readFile(join(plain, 'shmsize'), 'utf8'), /size=65536k/);
});

test('testUlimit: --ulimit sets the RUN process\'s resource limits', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox AS base\nRUN ulimit -n > /ulimit && ulimit -Hn >> /ulimit && ulimit -u >> /ulimit\nFROM scratch\nCOPY --from=base /ulimit /\n' });
  // BuildKit dockerfile_resources_test.go:79 (nofile=1062:1062) and :102 (1062).
  const out = await b.tree(dir, ['--ulimit', 'nofile=1062:1062']);
  assert.equal((await readFile(join(out, 'ulimit'), 'utf8')).split('\n')[0], '1062');
  const two = await b.tree(dir, ['--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=300']);
  assert.deepEqual((await readFile(join(two, 'ulimit'), 'utf8')).trim().split('\n'), ['1024', '2048', '300']);
  const bad = await b.build(dir, ['--ulimit', 'nofile=2048:1024']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /ulimit soft limit must be less than or equal to hard limit: 2048 > 1024/);
  const unknown = await b.build(dir, ['--ulimit', 'files=10']);
  assert.match(unknown.stderr, /invalid ulimit type: files/);
});
