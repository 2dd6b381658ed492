// BuildKit's frontend/dockerfile/dockerfile_platform_test.go, the single-platform half: each test
// names the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('platform');
});
after(() => b.close());

test('testPlatformArgsImplicit: TARGETOS is defined in the global scope without an ARG, so a FROM can name a stage by it', async () => {
  const dir = await b.context({ Dockerfile: `FROM scratch AS build-${process.platform}\nCOPY foo bar\nFROM build-\${TARGETOS}\nCOPY foo2 bar2\n`, foo: 'd0', foo2: 'd1' });
  const out = await b.tree(dir);
  assert.equal(await readFile(join(out, 'bar'), 'utf8'), 'd0');
  assert.equal(await readFile(join(out, 'bar2'), 'utf8'), 'd1');
});
