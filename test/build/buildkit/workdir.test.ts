// BuildKit's frontend/dockerfile/dockerfile_workdir_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('workdir');
});
after(() => b.close());

test('testWorkdirCreatesDir: WORKDIR on scratch creates the directory, even when a later WORKDIR moves away', async () => {
  const out = await b.tree(await b.context({ Dockerfile: 'FROM scratch\nWORKDIR /foo\nWORKDIR /\n' }));
  assert.ok((await lstat(join(out, 'foo'))).isDirectory());
});

test('testWorkdirSourceDateEpochReproducible: with SOURCE_DATE_EPOCH, two uncached builds of a WORKDIR give the same index', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nWORKDIR /mydir\n' });
  const epoch = String(Date.UTC(2023, 0, 10, 15, 34, 56) / 1000);
  const index = async (name: string) => {
    const dest = join(b.work, name);
    const r = await b.build(dir, ['--no-cache', '--build-arg', `SOURCE_DATE_EPOCH=${epoch}`, '-o', `type=oci,dest=${dest}`]);
    assert.equal(r.code, 0, r.stderr);
    return execFileSync('tar', ['-xOf', dest, 'index.json'], { encoding: 'utf8' });
  };
  const first = await index('sde1.tar');
  // The directory's mtime would differ without the epoch; a second later makes that visible.
  await new Promise((ok) => setTimeout(ok, 1100));
  assert.equal(await index('sde2.tar'), first);
});

test('testWorkdirUser and testWorkdirExists: WORKDIR creates its directory owned by the USER, and leaves an existing one as it is', async () => {
  const dir = await b.context({
    Dockerfile: [
      'FROM busybox',
      "RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group",
      'RUN mkdir /existing && chown user:user /existing',
      'WORKDIR /existing',
      'RUN [ "$(stat -c "%U %G" /existing)" = "user user" ]',
      'USER user',
      'WORKDIR /mydir',
      'RUN [ "$(stat -c "%U %G" /mydir)" = "user user" ]',
      '',
    ].join('\n'),
  });
  const r = await b.build(dir);
  assert.equal(r.code, 0, r.stderr);
});

test('testWorkdirCopyIgnoreRelative: COPY --from=STAGE takes a relative source from the stage root, not its WORKDIR', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch AS base\nWORKDIR /foo\nCOPY Dockerfile /\nFROM scratch\nCOPY --from=base Dockerfile .\n' });
  const out = await b.tree(dir);
  assert.match(await readFile(join(out, 'Dockerfile'), 'utf8'), /COPY --from=base/);
});
