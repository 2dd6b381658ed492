// The seed's commit workflow run by an unprivileged user: kiln re-runs itself as root of a user
// namespace of its own for every command that mounts or runs a sandbox, with the sandbox state in
// the user's store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRoot, unprivileged } from '../support/unprivileged.js';

const lines = (s: string) => s.split('\n').filter(Boolean);

test('an unprivileged user runs, diffs, commits, copies from and removes containers', { skip: !isRoot && 'needs root to create the unprivileged user', timeout: 300_000 }, async (t) => {
  const u = await unprivileged(t);
  u.kiln(`load -q -i ${u.busybox}`);
  // Add, delete, change through a symlink: the seed's three diffs in one container.
  assert.equal(u.kiln(`run --name tweak-a busybox sh -c 'touch /HelloWorld && rm /bin/vi && echo changed > /etc/motd && id -u'`), '0\n');
  assert.deepEqual(lines(u.kiln('diff tweak-a')), ['A /HelloWorld', 'C /bin', 'D /bin/vi', 'C /etc', 'A /etc/motd']);
  const id = u.kiln('commit -a someone -m "added and removed" tweak-a tweaked').trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  // The committed image has the changes, and files keep the owners the container gave them.
  assert.equal(u.kiln('run --rm tweaked sh -c "cat /etc/motd; ls /bin/vi 2>&1; stat -c %u:%g /HelloWorld"'), 'changed\nls: /bin/vi: No such file or directory\n0:0\n');
  const history = u.kiln('history tweaked');
  assert.match(history, /added and removed/);
  // A command that is not in the image: exit 127, as docker.
  assert.throws(() => u.kiln('run --rm busybox no-such-command'), /exited 127/);
  // Detached: logs, diff and commit of a running container, then stop and cp out of it.
  u.kiln(`run -d --name bg busybox sh -c 'echo started; touch /from-bg; sleep 300'`);
  for (let i = 0; i < 100 && !u.kiln('logs bg').includes('started'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(u.kiln('logs bg'), 'started\n');
  assert.deepEqual(lines(u.kiln('diff bg')), ['A /from-bg']);
  u.kiln('commit bg from-bg');
  assert.match(u.kiln('ps'), /Up .* bg\n/);
  u.kiln('stop -t 1 bg');
  assert.match(u.kiln('ps -a'), /Exited \(137\)/);
  u.kiln(`cp bg:/etc/passwd ${u.userOut}/passwd`);
  assert.match(await readFile(join(u.userOut, 'passwd'), 'utf8'), /^root:/);
  assert.equal(execFileSync('stat', ['-c', '%U', join(u.userOut, 'passwd')], { encoding: 'utf8' }).trim(), 'kiln-rootless');
  u.kiln('rm -f bg tweak-a');
  assert.equal(u.kiln('ps -aq'), '');
  // Nothing stays mounted under the user's store.
  assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(u.userRoot));
});
