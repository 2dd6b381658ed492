// BuildKit's frontend/dockerfile/dockerfile_export_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. Multi-platform exports do not apply (kiln builds the
// host's platform only).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('export');
});
after(() => b.close());

/** `tar -xOf archive member`. */
const member = (archive: string, name: string) => execFileSync('tar', ['-xOf', archive, name], { encoding: 'utf8' });

test('testTarExporterBasic and testTarExporterMulti (single platform): -o type=tar writes the file tree; FROM stage-$TARGETOS picks the stage', async () => {
  const basic = await b.context({ Dockerfile: 'FROM scratch\nCOPY foo foo\n', foo: 'data' });
  const out = join(b.work, 'basic.tar');
  assert.equal((await b.build(basic, ['-o', `type=tar,dest=${out}`])).code, 0);
  assert.equal(member(out, 'foo'), 'data');
  const multi = await b.context({ Dockerfile: 'FROM scratch AS stage-linux\nCOPY foo forlinux\nFROM scratch AS stage-darwin\nCOPY bar fordarwin\nFROM stage-$TARGETOS\n', foo: 'data', bar: 'data2' });
  const out2 = join(b.work, 'multi.tar');
  const r = await b.build(multi, ['-o', `type=tar,dest=${out2}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(member(out2, 'forlinux'), 'data');
  assert.doesNotMatch(execFileSync('tar', ['-tf', out2], { encoding: 'utf8' }), /fordarwin/);
});

test('testTarContext: a tar archive on standard input is the context, Dockerfile included', async () => {
  const stage = join(b.work, 'tar-context');
  await mkdir(stage, { recursive: true });
  await writeFile(join(stage, 'Dockerfile'), 'FROM scratch\nCOPY foo /');
  await writeFile(join(stage, 'foo'), 'contents');
  const tar = execFileSync('tar', ['-cf', '-', '-C', stage, 'Dockerfile', 'foo']);
  const dest = join(b.work, 'tar-context-out');
  const r = await b.kiln(['build', '-q', '-o', `type=local,dest=${dest}`, '-'], { input: tar });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(dest, 'foo'), 'utf8'), 'contents');
});

test('testTarContextExternalDockerfile: a tar context on standard input with the Dockerfile from a local file', async () => {
  // BuildKit's contextsubdir (a subdirectory of the tar as the context) has no docker build flag;
  // the source path names the subdirectory instead.
  const stage = join(b.work, 'tar-context-ext');
  await mkdir(join(stage, 'sub/dir'), { recursive: true });
  await writeFile(join(stage, 'sub/dir/foo'), 'contents');
  const tar = execFileSync('tar', ['-cf', '-', '-C', stage, 'sub']);
  const df = await b.context({ Dockerfile: 'FROM scratch\nCOPY sub/dir/foo bar\n' });
  const dest = join(b.work, 'tar-context-ext-out');
  const r = await b.kiln(['build', '-q', '-f', join(df, 'Dockerfile'), '-o', `type=local,dest=${dest}`, '-'], { input: tar });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(dest, 'bar'), 'utf8'), 'contents');
});
