import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MountHelper } from '../../src/snapshot/mount-helper.js';
import { mount, unmount } from '../../src/snapshot/mount.js';
import { tempDir } from '../support/env.js';

// One helper process mounts and unmounts for the whole build (mount-helper.ts); mount(8) remains
// the way without it.

function isMounted(target: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
}

function overlayDirs(dir: string): { lower: string; upper: string; work: string; merged: string } {
  const d = { lower: join(dir, 'l'), upper: join(dir, 'u'), work: join(dir, 'w'), merged: join(dir, 'm') };
  for (const p of Object.values(d)) mkdirSync(p);
  writeFileSync(join(d.lower, 'base'), 'from the lower layer\n');
  return d;
}

test('the helper mounts an overlay (relative paths from the given directory), unmounts it, and says why a mount fails', async (t) => {
  const dir = await tempDir(t);
  const d = overlayDirs(dir);
  const helper = await MountHelper.start();
  t.after(() => helper.close());
  await helper.mount('overlay', 'lowerdir=l,upperdir=u,workdir=w', d.merged, dir);
  assert.ok(isMounted(d.merged));
  assert.equal(readFileSync(join(d.merged, 'base'), 'utf8'), 'from the lower layer\n');
  writeFileSync(join(d.merged, 'new'), 'written through the mount');
  assert.equal(readFileSync(join(d.upper, 'new'), 'utf8'), 'written through the mount');
  await helper.unmount(d.merged);
  assert.ok(!isMounted(d.merged));
  assert.ok(!existsSync(join(d.merged, 'base')));

  // "ro" is the read-only flag, as mount(8) makes it (an overlay without an upper layer needs two lower ones).
  mkdirSync(join(dir, 'l2'));
  await helper.mount('overlay', 'lowerdir=l:l2,ro', d.merged, dir);
  assert.equal(readFileSync(join(d.merged, 'base'), 'utf8'), 'from the lower layer\n');
  assert.throws(() => writeFileSync(join(d.merged, 'x'), 'x'), /EROFS/);
  await helper.unmount(d.merged);

  await assert.rejects(helper.mount('overlay', 'lowerdir=missing,upperdir=u,workdir=w', d.merged, dir), /No such file or directory/);
  // Unmounting what is not mounted is not an error (umount || umount -l).
  await helper.unmount(d.merged);
  assert.ok(helper.alive);
});

test('a Ctrl-C that reaches the process group leaves the helper alive for the clean-up', async (t) => {
  const dir = await tempDir(t);
  const d = overlayDirs(dir);
  const helper = await MountHelper.start();
  t.after(() => helper.close());
  const pid = (helper as unknown as { child: { pid: number } }).child.pid;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.kill(pid, signal);
  await new Promise((r) => setTimeout(r, 50));
  await helper.mount('overlay', 'lowerdir=l,upperdir=u,workdir=w', d.merged, dir);
  await helper.unmount(d.merged);
  assert.ok(!isMounted(d.merged));
  // Killed outright, it refuses further requests instead of leaving them waiting.
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(helper.alive, false);
  await assert.rejects(helper.mount('overlay', 'lowerdir=l', d.merged, dir), /mount helper exited/);
});

test('mount() and unmount() through mount(8) when the helper is turned off, with the same errors', async (t) => {
  const dir = await tempDir(t);
  const d = overlayDirs(dir);
  const saved = process.env.KILN_MOUNT_HELPER;
  process.env.KILN_MOUNT_HELPER = '0';
  t.after(() => (saved === undefined ? delete process.env.KILN_MOUNT_HELPER : (process.env.KILN_MOUNT_HELPER = saved)));
  await mount('overlay', 'lowerdir=l,upperdir=u,workdir=w', d.merged, dir);
  assert.ok(isMounted(d.merged));
  await unmount(d.merged);
  assert.ok(!isMounted(d.merged));
  await assert.rejects(mount('overlay', 'lowerdir=missing,upperdir=u,workdir=w', d.merged, dir), (e: Error) => e.name === 'MountError' || /mount overlay on/.test(e.message));
});
