// BuildKit's frontend/dockerfile/dockerfile_secrets_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
let secret: string;
before(async () => {
  b = await openBuilder('secrets');
  secret = join(b.work, 'mysecret');
  await writeFile(secret, 'pw');
});
after(() => b.close());

test('testSecretFileParams: a secret file gets mode, uid and gid, and leaves nothing behind', async () => {
  // 81e1: a regular file with mode 0741
  const dir = await b.context({
    Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=mysecret,required=false,mode=741,uid=100,gid=102,target=/mysecret [ "$(stat -c "%u %g %f" /mysecret)" = "100 102 81e1" ]\nRUN [ ! -f /mysecret ]\n',
  });
  const r = await b.build(dir, ['--secret', `id=mysecret,src=${secret}`]);
  assert.equal(r.code, 0, r.stderr);
});

test('testSecretRequiredWithoutValue: a required secret that was not given fails the build, naming it', async () => {
  const r = await b.build(await b.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=secret,required,id=mysecret foo\n' }));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /secret "?mysecret"?:? (is required but was not given|not found)/);
});

test('testSecretAsEnviron: env= puts the secret in the variable (over an ENV of that name), no file, and progress shows the variable as ****', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox\nENV SECRET_ENV=foo\nRUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ "$SECRET_ENV" = "pw" ] && [ ! -f /run/secrets/mysecret ] || false\n',
  });
  const r = await b.build(dir, ['--secret', `id=mysecret,src=${secret}`]);
  assert.equal(r.code, 0, r.stderr);
  // Progress names the step with variables expanded, the secret's variable as **** (not the ENV's foo).
  assert.match(r.stderr, /\] RUN --mount=type=secret,id=mysecret,env=SECRET_ENV \[ "\*\*\*\*" = "pw" \] && /);
});

test('testSecretAsEnvironWithFileMount: env= and target= together give both the variable and the file', async () => {
  const dir = await b.context({
    Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV [ "$SECRET_ENV" = "pw" ] && [ -f /run/secrets/secret ] || false\n',
  });
  const r = await b.build(dir, ['--secret', `id=mysecret,src=${secret}`]);
  assert.equal(r.code, 0, r.stderr);
});
