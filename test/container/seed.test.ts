// The commit workflow of the seed's chapter 7, on the busybox fixture: diff after adding, deleting and
// changing files; what a commit carries from the container's creation; whiteouts that make an image
// grow; committing a running container; --change instructions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk } from '../support/env.js';

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-container-seed-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
});

after(async () => {
  await kiln(root, ['rm', '-f', ...(await kilnOk(root, ['ps', '-aq'])).split('\n').filter(Boolean)]);
  await rm(work, { recursive: true, force: true });
});

const lines = (s: string) => s.split('\n').filter(Boolean);

async function inspect(image: string): Promise<any> {
  return JSON.parse(await kilnOk(root, ['inspect', image]))[0];
}

test('diff shows an added file, a deleted file with its parent as C, and a file changed through a symlink', async () => {
  await kilnOk(root, ['run', '--name', 'tweak-a', 'busybox', 'touch', '/HelloWorld']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'tweak-a'])), ['A /HelloWorld']);
  await kilnOk(root, ['run', '--name', 'tweak-d', 'busybox', 'rm', '/bin/vi']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'tweak-d'])), ['C /bin', 'D /bin/vi']);
  // /bin/vi is a symlink to /bin/busybox: touch follows it and changes busybox, as docker reports.
  await kilnOk(root, ['run', '--name', 'tweak-c', 'busybox', 'touch', '/bin/vi']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'tweak-c'])), ['C /bin', 'C /bin/busybox']);
  // The same through `kiln container diff`, by ID prefix.
  const id = (await kilnOk(root, ['container', 'inspect', '-f', '{{.Id}}', 'tweak-a'])).trim();
  assert.deepEqual(lines(await kilnOk(root, ['container', 'diff', id.slice(0, 10)])), ['A /HelloWorld']);
});

test('a directory deleted and made again shows as changed, with what it no longer has as deletions', async () => {
  await kilnOk(root, ['run', '--name', 'opaque', 'busybox', 'sh', '-c', 'rm -rf /usr && mkdir /usr && echo x > /usr/new']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'opaque'])), ['C /usr', 'D /usr/bin', 'A /usr/new', 'D /usr/sbin']);
});

test('a commit carries the environment and the entrypoint the container was created with', async () => {
  await kilnOk(root, ['run', '--name', 'rich-image-example', '-e', 'ENV_EXAMPLE1=Rich', '-e', 'ENV_EXAMPLE2=Example', 'busybox']);
  const id = (await kilnOk(root, ['commit', 'rich-image-example', 'rie'])).trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  assert.equal(await kilnOk(root, ['run', '--rm', 'rie', '/bin/sh', '-c', 'echo $ENV_EXAMPLE1 $ENV_EXAMPLE2']), 'Rich Example\n');

  await kilnOk(root, ['run', '--name', 'rich-image-example-2', '--entrypoint', '/bin/sh', 'rie', '-c', 'echo $ENV_EXAMPLE1 $ENV_EXAMPLE2']);
  await kilnOk(root, ['commit', 'rich-image-example-2', 'rie']);
  assert.equal(await kilnOk(root, ['run', '--rm', 'rie']), 'Rich Example\n');
  const img = await inspect('rie');
  assert.deepEqual(img.Config.Entrypoint, ['/bin/sh']);
  assert.deepEqual(img.Config.Cmd, ['-c', 'echo $ENV_EXAMPLE1 $ENV_EXAMPLE2']);
  assert.ok(img.Config.Env.includes('ENV_EXAMPLE1=Rich'));
});

test('commit -a -m records author and comment; deleting a file makes the image grow by a whiteout layer', async () => {
  await kilnOk(root, ['run', '--name', 'mod_busybox_delete', 'busybox', 'rm', '/etc/passwd']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'mod_busybox_delete'])), ['C /etc', 'D /etc/passwd']);
  await kilnOk(root, ['commit', '-a', '@dockerinaction', '-m', 'Removed passwd', 'mod_busybox_delete', 'busybox:removed']);
  const base = await inspect('busybox');
  const img = await inspect('busybox:removed');
  assert.equal(img.Author, '@dockerinaction');
  assert.equal(img.Comment, 'Removed passwd');
  assert.equal(img.RootFS.Layers.length, base.RootFS.Layers.length + 1);
  assert.ok(img.Size > base.Size, `size ${img.Size} should exceed ${base.Size}`);
  const last = img.History[img.History.length - 1];
  assert.equal(last.created_by, 'rm /etc/passwd');
  assert.equal(last.author, '@dockerinaction');
  const history = await kilnOk(root, ['history', '--format', 'json', 'busybox:removed']);
  const top = JSON.parse(lines(history)[0]!);
  assert.equal(top.Comment, 'Removed passwd');
  assert.ok(top.Size > 0, 'the whiteout layer has a size');
  const r = await kiln(root, ['run', '--rm', 'busybox:removed', 'cat', '/etc/passwd']);
  assert.notEqual(r.code, 0);
});

test('a container that changed nothing commits to an image with an empty history entry and no new layer', async () => {
  await kilnOk(root, ['run', '--name', 'noop', 'busybox', 'true']);
  assert.equal(await kilnOk(root, ['diff', 'noop']), '');
  await kilnOk(root, ['commit', 'noop', 'noop-image']);
  const img = await inspect('noop-image');
  assert.equal(img.RootFS.Layers.length, (await inspect('busybox')).RootFS.Layers.length);
  assert.equal(img.History[img.History.length - 1].empty_layer, true);
});

test('a running container commits with its processes paused and keeps running', async () => {
  const id = (await kilnOk(root, ['run', '-d', '--name', 'busy', 'busybox', 'sh', '-c', 'echo started > /state; while true; do sleep 0.1; done'])).trim();
  assert.match(id, /^[a-f0-9]{64}$/);
  // The file appears once the process has run; diff reads the live upper directory.
  for (let i = 0; i < 100 && !(await kilnOk(root, ['diff', 'busy'])).includes('A /state'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'busy'])), ['A /state']);
  await kilnOk(root, ['commit', 'busy', 'busy-image']);
  assert.match(await kilnOk(root, ['ps']), /busy/);
  assert.equal(await kilnOk(root, ['run', '--rm', '--entrypoint', 'cat', 'busy-image', '/state']), 'started\n');
  // The committed layer holds only the container's file, none of the sandbox's mount points.
  await kilnOk(root, ['create', '--name', 'from-busy', 'busy-image']);
  const tar = await kilnOk(root, ['container', 'export', '-o', join(work, 'busy.tar'), 'from-busy']);
  assert.equal(tar, '');
  const listing = execFileSync('tar', ['tf', join(work, 'busy.tar')], { encoding: 'utf8' });
  assert.match(listing, /^state$/m);
  assert.doesNotMatch(listing, /etc\/(hosts|resolv\.conf|hostname)/);
  await kilnOk(root, ['rm', '-f', 'busy']);
});

test('commit -c applies CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL and EXPOSE to the container config', async () => {
  await kilnOk(root, ['run', '--name', 'changes', '-e', 'A=1', 'busybox', 'mkdir', '/work']);
  await kilnOk(root, [
    'commit',
    '-c', 'ENV B=$A-two',
    '-c', 'WORKDIR /work',
    '-c', 'USER nobody',
    '-c', 'LABEL org.example=yes',
    '-c', 'EXPOSE 8080',
    '-c', 'CMD ["echo", "hello"]',
    'changes', 'changed',
  ]);
  const img = await inspect('changed');
  assert.ok(img.Config.Env.includes('A=1'));
  assert.ok(img.Config.Env.includes('B=1-two'));
  assert.equal(img.Config.WorkingDir, '/work');
  assert.equal(img.Config.User, 'nobody');
  assert.deepEqual(img.Config.Labels, { 'org.example': 'yes' });
  assert.deepEqual(img.Config.ExposedPorts, { '8080/tcp': {} });
  assert.deepEqual(img.Config.Cmd, ['echo', 'hello']);
  assert.equal(await kilnOk(root, ['run', '--rm', 'changed', 'sh', '-c', 'id -un; pwd']), 'nobody\n/work\n');

  // ENTRYPOINT without CMD in the same commit clears the container's command, as in docker.
  await kilnOk(root, ['commit', '-c', 'ENTRYPOINT ["echo", "entry"]', 'changes', 'entry']);
  const entry = await inspect('entry');
  assert.deepEqual(entry.Config.Entrypoint, ['echo', 'entry']);
  assert.equal(entry.Config.Cmd ?? null, null);
  assert.equal(await kilnOk(root, ['run', '--rm', 'entry']), 'entry\n');
});

test('a bad --change is refused before anything is written', async () => {
  const before = await kilnOk(root, ['images', '-q']);
  for (const change of ['RUN echo no', 'FROM busybox', 'EXPOSE notaport', 'NOSUCH x']) {
    const r = await kiln(root, ['commit', '-c', change, 'tweak-a', 'bad-change']);
    assert.notEqual(r.code, 0, change);
    assert.match(r.stderr, /invalid change|unknown instruction/i, change);
  }
  assert.equal(await kilnOk(root, ['images', '-q']), before);
});
