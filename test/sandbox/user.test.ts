import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidUserSpec, UnknownUser } from '../../src/sandbox/errors.js';
import { homeDirectory, resolveChown, resolveUser } from '../../src/sandbox/user.js';
import { makeTempDir, removeDir } from './fixture.js';

// USER and --chown resolution against image files, including images that try to make kiln read
// host files through symlinks.

const passwd = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'other:x:1001:50::/home/other:/bin/sh',
  '  ',
  'dup:x:1000:7:second entry for uid 1000:/:/bin/sh',
].join('\n');

const group = [
  '# comment line',
  'root:x:0:root',
  'wheel:x:10:root,app',
  'staff:x:50:',
  'app:x:1000:',
  'audio:x:29:other,app',
  'video:x:44:nobody',
].join('\n');

let dir: string;
let n = 0;

async function image(files: Record<string, string> = { 'etc/passwd': passwd, 'etc/group': group }): Promise<string> {
  const root = path.join(dir, `image-${++n}`);
  await mkdir(path.join(root, 'etc'), { recursive: true });
  for (const [p, content] of Object.entries(files)) await writeFile(path.join(root, p), content);
  return root;
}

before(async () => {
  dir = await makeTempDir('user');
});
after(async () => {
  await removeDir(dir);
});

describe('resolveUser (USER, runc rules)', () => {
  test('the empty spec is root, with the groups that list root', async () => {
    assert.deepEqual(await resolveUser(await image(), ''), { uid: 0, gid: 0, additionalGids: [0, 10] });
  });

  test('root whose own group lists no members still has gid 0 first among its groups (busybox: groups=0(root),10(wheel))', async () => {
    const root = await image({ 'etc/passwd': passwd, 'etc/group': 'root:x:0:\nwheel:x:10:root\n' });
    assert.deepEqual(await resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [0, 10] });
    assert.deepEqual(await resolveUser(root, 'root'), { uid: 0, gid: 0, additionalGids: [0, 10] });
  });

  test('a name takes uid and primary gid from passwd, and the primary group first, then every group listing it', async () => {
    assert.deepEqual(await resolveUser(await image(), 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
  });

  test('a numeric uid in passwd takes the first entry with that uid', async () => {
    assert.deepEqual(await resolveUser(await image(), '1001'), { uid: 1001, gid: 50, additionalGids: [50, 29] });
    assert.deepEqual(await resolveUser(await image(), '1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
  });

  test('a numeric uid not in passwd is allowed and gets gid 0', async () => {
    assert.deepEqual(await resolveUser(await image(), '4242'), { uid: 4242, gid: 0, additionalGids: [0] });
  });

  test('an explicit group replaces the primary gid and is the only additional gid', async () => {
    const root = await image();
    assert.deepEqual(await resolveUser(root, 'app:staff'), { uid: 1000, gid: 50, additionalGids: [50] });
    assert.deepEqual(await resolveUser(root, 'app:777'), { uid: 1000, gid: 777, additionalGids: [777] });
    assert.deepEqual(await resolveUser(root, '4242:4343'), { uid: 4242, gid: 4343, additionalGids: [4343] });
    assert.deepEqual(await resolveUser(root, '4242:video'), { uid: 4242, gid: 44, additionalGids: [44] });
  });

  test('an unknown user name is an error in runc words', async () => {
    await assert.rejects(resolveUser(await image(), 'nobody-here'), {
      name: 'UnknownUser',
      message: 'unable to find user nobody-here: no matching entries in passwd file',
    });
  });

  test('an unknown group name is an error', async () => {
    await assert.rejects(resolveUser(await image(), 'app:nogroup'), {
      name: 'UnknownUser',
      message: 'unable to find group nogroup: no matching entries in group file',
    });
  });

  test('without /etc/passwd names fail and numbers pass', async () => {
    const root = await image({});
    await assert.rejects(resolveUser(root, 'app'), UnknownUser);
    assert.deepEqual(await resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [0] });
    assert.deepEqual(await resolveUser(root, '1000:1000'), { uid: 1000, gid: 1000, additionalGids: [1000] });
  });

  test('ids outside 0 … 2^31-1 are refused', async () => {
    const root = await image();
    await assert.rejects(resolveUser(root, '-1'), InvalidUserSpec);
    await assert.rejects(resolveUser(root, '2147483648'), InvalidUserSpec);
    await assert.rejects(resolveUser(root, '0:4294967295'), InvalidUserSpec);
  });

  test('an /etc/passwd symlink is followed inside the rootfs', async () => {
    const root = await image({ 'etc/group': group });
    await mkdir(path.join(root, 'usr/share'), { recursive: true });
    await writeFile(path.join(root, 'usr/share/passwd'), 'svc:x:300:300::/srv:/bin/sh\n');
    await symlink('/usr/share/passwd', path.join(root, 'etc/passwd'));
    assert.deepEqual(await resolveUser(root, 'svc'), { uid: 300, gid: 300, additionalGids: [300] });
  });

  test('an /etc/passwd symlink to a host file is not read, absolute or through ..', async () => {
    // A shadow-like file outside the rootfs, at the very path the links name.
    const hostSecret = path.join(dir, 'host-secret');
    await writeFile(hostSecret, 'secret:x:666:666::/:/bin/sh\n');
    const absolute = await image({});
    await symlink(hostSecret, path.join(absolute, 'etc/passwd'));
    await assert.rejects(resolveUser(absolute, 'secret'), UnknownUser);

    const dotdot = await image({});
    await symlink(path.join('../'.repeat(30), hostSecret), path.join(dotdot, 'etc/passwd'));
    await assert.rejects(resolveUser(dotdot, 'secret'), UnknownUser);

    // The same path inside the rootfs is what the link means.
    await mkdir(path.join(absolute, path.dirname(hostSecret)), { recursive: true });
    await writeFile(path.join(absolute, hostSecret), 'secret:x:1:2::/:/bin/sh\n');
    assert.deepEqual(await resolveUser(absolute, 'secret'), { uid: 1, gid: 2, additionalGids: [2] });
  });

  test('a symlink loop at /etc/passwd is an error; a directory there counts as no passwd file', async () => {
    const loop = await image({});
    await symlink('passwd', path.join(loop, 'etc/passwd'));
    await assert.rejects(resolveUser(loop, 'app'), /ELOOP|too many levels/);
    const directory = await image({});
    await mkdir(path.join(directory, 'etc/passwd'));
    await assert.rejects(resolveUser(directory, 'app'), UnknownUser);
  });

  test('HOME defaults from the first passwd entry of the uid, else /', async () => {
    const root = await image();
    assert.equal(await homeDirectory(root, 1000), '/home/app');
    assert.equal(await homeDirectory(root, 4242), '/');
  });
});

describe('resolveChown (COPY --chown, BuildKit rules)', () => {
  test('a user name takes its uid and primary gid', async () => {
    assert.deepEqual(await resolveChown(await image(), 'app'), { uid: 1000, gid: 1000 });
    assert.deepEqual(await resolveChown(await image(), 'other'), { uid: 1001, gid: 50 });
  });

  test('a numeric user alone means the same number for the group, without any lookup', async () => {
    assert.deepEqual(await resolveChown(await image(), '1001'), { uid: 1001, gid: 1001 });
    assert.deepEqual(await resolveChown(await image({}), '5000'), { uid: 5000, gid: 5000 });
  });

  test('user:group resolves each side; "root" is 0 without a lookup', async () => {
    const root = await image();
    assert.deepEqual(await resolveChown(root, 'app:staff'), { uid: 1000, gid: 50 });
    assert.deepEqual(await resolveChown(root, '1000:44'), { uid: 1000, gid: 44 });
    assert.deepEqual(await resolveChown(root, 'root:video'), { uid: 0, gid: 44 });
    assert.deepEqual(await resolveChown(await image({}), 'root:root'), { uid: 0, gid: 0 });
  });

  test('like BuildKit, names it cannot find leave 0 and "user:" means gid 0', async () => {
    const root = await image();
    assert.deepEqual(await resolveChown(root, 'ghost'), { uid: 0, gid: 0 });
    assert.deepEqual(await resolveChown(root, 'app:ghosts'), { uid: 1000, gid: 1000 });
    assert.deepEqual(await resolveChown(root, 'app:'), { uid: 1000, gid: 0 });
  });

  test('names are looked up inside the rootfs only', async () => {
    const hostPasswd = path.join(dir, 'host-passwd');
    await writeFile(hostPasswd, 'hostuser:x:4321:4321::/:/bin/sh\n');
    const root = await image({});
    await symlink(hostPasswd, path.join(root, 'etc/passwd'));
    assert.deepEqual(await resolveChown(root, 'hostuser'), { uid: 0, gid: 0 });
  });

  test('negative ids are refused', async () => {
    await assert.rejects(resolveChown(await image(), '-1'), InvalidUserSpec);
  });
});
