import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';
import { startRegistry } from '../registry/server/support.js';

test('FROM an image in a registry pulls it on the first build and uses the store afterwards', async (t) => {
  const reg = await startRegistry(t);
  const host = reg.url.replace(/^https?:\/\//, '');
  // Asynchronously: the registry runs in this process, so a synchronous child would deadlock it.
  await promisify(execFile)('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${fixture('busybox')}`, `docker://${host}/base/busybox:1`]);
  const dir = await tempDir(t);
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), `FROM ${host}/base/busybox:1\nRUN echo pulled > /p\n`);
  const root = join(dir, 'store');
  const env = { HOME: join(dir, 'home') };
  const id = (await kilnOk(root, ['build', '-q', '-t', 'from-registry', ctx], { env })).trim();
  assert.match(id, /^sha256:/);
  const images = await kilnOk(root, ['images', '--format', 'json']);
  assert.match(images, new RegExp(`"Repository":"${host}/base/busybox","Tag":"1"`));
  // --pull never must now find it in the store.
  const again = await kiln(root, ['build', '-q', '--pull', 'never', ctx], { env });
  assert.equal(again.code, 0, again.stderr);
  // An image the registry does not have: the build fails naming the FROM line.
  await writeFile(join(ctx, 'Dockerfile'), `# base\nFROM ${host}/base/missing:1\n`);
  const missing = await kiln(root, ['build', ctx], { env });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /Dockerfile:2: base image .* could not be pulled/);
});
