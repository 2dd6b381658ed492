import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, kilnOk, tempDir } from '../support/env.js';
import { isRoot, unprivileged } from '../support/unprivileged.js';
import { sandboxUnavailable } from './fixture.js';

// A process's supplementary groups on every path that starts one: a RUN, `kiln run` and a structure
// test's command. BuildKit puts the primary gid first in the runtime spec's additionalGids unless a
// group list already names it (executor/oci/user.go ensureAdditionalGids), and docker does the same,
// so `id` on Docker Hub's busybox prints groups=0(root),10(wheel).

// busybox's own /etc/group lists root in wheel; the fixture's lacks wheel, and has no other user.
const groupsDockerfile = [
  'FROM busybox',
  'RUN echo wheel:x:10:root >> /etc/group && echo grp:x:2001: >> /etc/group && echo extra:x:3000:daemon,app >> /etc/group && ' +
    'echo app:x:1500:2001::/:/bin/sh >> /etc/passwd',
  'RUN id > /tmp/id-root',
  'USER 1500:2001',
  'RUN id > /tmp/id-ids',
  'USER app',
  'RUN id > /tmp/id-app',
  '',
].join('\n');

const expected = {
  root: 'uid=0(root) gid=0(root) groups=0(root),10(wheel)',
  ids: 'uid=1500(app) gid=2001(grp) groups=2001(grp)',
  app: 'uid=1500(app) gid=2001(grp) groups=2001(grp),3000(extra)',
  daemon: 'uid=1(daemon) gid=1(daemon) groups=1(daemon),3000(extra)',
};

async function context(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ root: string; ctx: string; dir: string }> {
  const dir = await tempDir(t, 'kiln-groups-');
  const root = join(dir, 'store');
  const ctx = join(dir, 'ctx');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), groupsDockerfile);
  return { root, ctx, dir };
}

for (const runtime of ['runc', 'bwrap'] as const) {
  describe(`supplementary groups with ${runtime}`, { skip: sandboxUnavailable(runtime) }, () => {
    test('a RUN, kiln run and a structure-test command run with the primary gid first among the groups', async (t) => {
      const { root, ctx, dir } = await context(t);
      await kilnOk(root, ['build', '-q', '--runtime', runtime, '-t', 'groups', ctx]);
      const ran = (args: string[]) => kilnOk(root, ['run', '--rm', '--runtime', runtime, ...args]);
      assert.equal(await ran(['groups', 'cat', '/tmp/id-root', '/tmp/id-ids', '/tmp/id-app']), `${expected.root}\n${expected.ids}\n${expected.app}\n`);
      assert.equal(await ran(['groups', 'id']), `${expected.app}\n`);
      assert.equal(await ran(['--user', 'root', 'groups', 'id']), `${expected.root}\n`);
      assert.equal(await ran(['--user', '1500:2001', 'groups', 'id']), `${expected.ids}\n`);
      assert.equal(await ran(['--user', 'daemon', 'groups', 'id']), `${expected.daemon}\n`);

      const config = join(dir, 'structure.yaml');
      const escaped = expected.app.replace(/[()]/g, '\\\\$&');
      await writeFile(config, `schemaVersion: 2.0.0\ncommandTests:\n  - name: id\n    command: id\n    expectedOutput: ["^${escaped}\\n$"]\n`);
      const report = JSON.parse(await kilnOk(root, ['test', '--runtime', runtime, '--image', 'groups', '--config', config, '-o', 'json'])) as { Pass: number; Fail: number };
      assert.deepEqual({ Pass: report.Pass, Fail: report.Fail }, { Pass: 1, Fail: 0 });
    });
  });
}

test('rootless: a RUN and kiln run have the primary gid among the groups', { skip: !isRoot && 'needs root to create the unprivileged user', timeout: 300_000 }, async (t) => {
  const u = await unprivileged(t);
  await writeFile(join(u.userOut, 'Dockerfile'), groupsDockerfile);
  u.kiln(`load -q -i ${u.busybox}`);
  u.kiln(`build -q -t groups ${u.userOut}`);
  assert.equal(u.kiln('run --rm groups cat /tmp/id-root /tmp/id-ids /tmp/id-app'), `${expected.root}\n${expected.ids}\n${expected.app}\n`);
  assert.equal(u.kiln('run --rm --runtime bwrap --user root groups id'), `${expected.root}\n`);
});
