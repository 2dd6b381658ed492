// BuildKit's frontend/dockerfile/dockerfile_cmd_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('cmd');
});
after(() => b.close());

test('testCmdShell: a shell-form ENTRYPOINT uses the SHELL and clears the CMD inherited from the base image', async () => {
  const base = await b.context({ Dockerfile: 'FROM scratch\nCMD ["test"]\n' });
  assert.equal((await b.build(base, ['-t', 'cmdoverride:base'])).code, 0);
  assert.deepEqual((await b.inspect('cmdoverride:base')).Config.Cmd, ['test']);
  const dir = await b.context({ Dockerfile: 'FROM cmdoverride:base\nSHELL ["ls"]\nENTRYPOINT my entrypoint\n' });
  const r = await b.build(dir, ['-t', 'cmdoverride:child']);
  assert.equal(r.code, 0, r.stderr);
  const { Config } = await b.inspect('cmdoverride:child');
  assert.equal(Config.Cmd ?? null, null);
  assert.deepEqual(Config.Entrypoint, ['ls', 'my entrypoint']);
});

test('testDefaultShellAndPath (linux/amd64 half): FROM scratch gets /bin/sh -c and the default PATH, one layer for one COPY', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n' });
  const r = await b.build(dir, ['-t', 'defaultshell']);
  assert.equal(r.code, 0, r.stderr);
  const img = await b.inspect('defaultshell');
  assert.deepEqual(img.Config.Entrypoint, ['/bin/sh', '-c', 'foo bar']);
  assert.deepEqual(img.Config.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  assert.equal(img.RootFS.Layers.length, 1);
});

test('testIgnoreEntrypoint: RUN does not go through the image ENTRYPOINT', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nENTRYPOINT ["/nosuchcmd"]\nRUN ["ls"]\n' });
  const r = await b.build(dir);
  assert.equal(r.code, 0, r.stderr);
});

test('testInvalidJSONCommands: a JSON array followed by text is shell form (RUN fails on it, ENTRYPOINT keeps it)', async () => {
  const run = await b.context({ Dockerfile: 'FROM busybox\nRUN ["echo", "hello"]this is invalid\n' });
  const r = await b.build(run);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /this is invalid/);
  const ep = await b.context({ Dockerfile: 'FROM busybox\nENTRYPOINT []random string\n' });
  const ok = await b.build(ep, ['-t', 'invalidjson']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual((await b.inspect('invalidjson')).Config.Entrypoint, ['/bin/sh', '-c', '[]random string']);
});

test('testDockerfileInvalidCommand: a failing RUN names the command it ran and says it did not complete successfully', async () => {
  const dir = await b.context({ Dockerfile: '\tFROM busybox\n\tRUN invalidcmd\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /\/bin\/sh -c invalidcmd/);
  assert.match(r.stderr, /did not complete successfully/);
});

test('testDockerfileInvalidInstruction: an unknown instruction is refused with a suggestion', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nFNTRYPOINT ["/bin/sh", "-c", "echo invalidinstruction"]\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown instruction: FNTRYPOINT/);
  assert.match(r.stderr, /did you mean ENTRYPOINT\?/);
});
