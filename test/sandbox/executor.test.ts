import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createBwrapExecutor } from '../../src/sandbox/bwrap.js';
import { AbortError, SandboxFailed } from '../../src/sandbox/errors.js';
import type { Executor, RunRequest } from '../../src/sandbox/executor.js';
import { findProgram } from '../../src/sandbox/program.js';
import { createRuncExecutor } from '../../src/sandbox/runc.js';
import { Capture, makeBusyboxRootfs, makeTempDir, removeDir, sandboxUnavailable } from './fixture.js';

// The same behaviour, checked against every executor, in real sandboxes on busybox root filesystems.

const executors: Array<{ name: 'runc' | 'bwrap'; make: (stateDir: string) => Executor }> = [
  { name: 'runc', make: (stateDir) => createRuncExecutor({ stateDir }) },
  { name: 'bwrap', make: (stateDir) => createBwrapExecutor({ stateDir }) },
];

const dockerDefaultCaps = '00000000a80425fb';

for (const { name, make } of executors) {
  describe(`${name} executor`, { skip: sandboxUnavailable(name) }, () => {
    let dir: string;
    let stateDir: string;
    let executor: Executor;
    let n = 0;

    before(async () => {
      dir = await makeTempDir(`sandbox-${name}`);
      stateDir = path.join(dir, 'state');
      executor = make(stateDir);
    });
    after(async () => {
      await removeDir(dir);
    });

    async function rootfs(): Promise<string> {
      return makeBusyboxRootfs(path.join(dir, `case-${++n}`));
    }

    function request(root: string, script: string, extra: Partial<RunRequest> = {}): RunRequest {
      return {
        id: `kiln-test-${randomUUID()}`,
        rootfs: root,
        network: 'none',
        process: { args: ['/bin/sh', '-c', script], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
        ...extra,
      };
    }

    async function sh(root: string, script: string, extra: Partial<RunRequest> = {}) {
      const stdout = new Capture();
      const stderr = new Capture();
      const result = await executor.run({ ...request(root, script, extra), stdout, stderr });
      return { ...result, stdout: stdout.text, stderr: stderr.text };
    }

    test('the exit code of the process is the result; stdout and stderr arrive separately', async () => {
      const r = await sh(await rootfs(), 'echo to-out; echo to-err >&2; exit 3');
      assert.equal(r.exitCode, 3);
      assert.equal(r.stdout, 'to-out\n');
      assert.equal(r.stderr, 'to-err\n');
    });

    test('env, cwd and user are applied; a missing cwd is created owned by the user', async () => {
      const root = await rootfs();
      const r = await sh(root, '', {
        process: {
          args: ['/bin/sh', '-c', 'id -u; id -g; id -G; pwd; echo "$FOO"; env | grep -v ^PWD= | grep -v ^SHLVL= | sort'],
          env: ['PATH=/bin', 'FOO=bar baz'],
          cwd: '/home/app',
          user: { uid: 1000, gid: 1001, additionalGids: [10, 20] },
        },
      });
      assert.equal(r.exitCode, 0, r.stderr);
      // HOME comes from passwd, or "/" without an entry, when the environment does not set it (runc's rule).
      assert.equal(r.stdout, '1000\n1001\n1001 10 20\n/home/app\nbar baz\nFOO=bar baz\nHOME=/\nPATH=/bin\n');
      const st = await stat(path.join(root, 'home/app'));
      assert.deepEqual([st.uid, st.gid], [1000, 1001]);
    });

    test('/proc, /dev/null, /dev/pts, /dev/shm and the generated /etc files exist during the run', async () => {
      const script = [
        'test -f /proc/self/status && test -c /dev/null && test -d /dev/pts && test -c /dev/pts/ptmx && test -d /dev/shm',
        'touch /dev/shm/x && echo shm-ok',
        'cat /etc/hosts /etc/hostname',
        'hostname',
        'cat /etc/resolv.conf',
      ].join(' && ');
      const r = await sh(await rootfs(), script, { hostname: 'box', network: 'default' });
      assert.equal(r.exitCode, 0, r.stderr);
      const hostResolv = existsSync('/etc/resolv.conf') ? await readFile('/etc/resolv.conf', 'utf8') : '';
      assert.equal(r.stdout, `shm-ok\n127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\nbox\nbox\n${hostResolv}`);
    });

    test('mount points the rootfs lacked are reported and removed again; what the process wrote stays', async () => {
      const root = await rootfs();
      const r = await sh(root, 'echo data > /made-by-process; mkdir -p /etc/app && echo x > /etc/app/conf');
      assert.equal(r.exitCode, 0, r.stderr);
      // /etc now holds the process's own files, so it is layer content, not a mount point.
      assert.deepEqual(r.createdMountpoints, ['proc', 'dev', 'sys', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname']);
      assert.deepEqual((await readdir(root)).sort(), ['bin', 'etc', 'made-by-process']);
      assert.deepEqual(await readdir(path.join(root, 'etc')), ['app']);
      assert.equal(await readFile(path.join(root, 'made-by-process'), 'utf8'), 'data\n');
    });

    test('an /etc/hosts the image has is mounted over, not reported, and keeps its content', async () => {
      const root = await rootfs();
      for (const d of ['etc', 'proc', 'dev', 'sys']) await mkdir(path.join(root, d));
      await writeFile(path.join(root, 'etc/hosts'), 'image hosts\n');
      const r = await sh(root, 'cat /etc/hosts');
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stdout, /^127\.0\.0\.1\tlocalhost kiln\n/);
      assert.deepEqual(r.createdMountpoints, ['etc/resolv.conf', 'etc/hostname']);
      assert.equal(await readFile(path.join(root, 'etc/hosts'), 'utf8'), 'image hosts\n');
    });

    test('an /etc/hosts symlink pointing out of the rootfs gets its mount point inside the rootfs', async () => {
      const root = await rootfs();
      const outside = await makeTempDir('outside');
      try {
        await mkdir(path.join(root, 'etc'));
        await symlink(path.join(outside, 'hosts'), path.join(root, 'etc/hosts'));
        const r = await sh(root, 'cat /etc/hosts');
        assert.equal(r.exitCode, 0, r.stderr);
        assert.match(r.stdout, /localhost kiln/);
        assert.deepEqual(await readdir(outside), []);
        const inside = path.relative('/', path.join(outside, 'hosts'));
        assert.ok(r.createdMountpoints.includes(inside), `${inside} in ${r.createdMountpoints.join(' ')}`);
        assert.ok((await lstat(path.join(root, 'etc/hosts'))).isSymbolicLink());
      } finally {
        await removeDir(outside);
      }
    });

    test("network 'none' has only lo; 'default' sees the host's interfaces", async () => {
      const root = await rootfs();
      const interfaces = (text: string) =>
        text
          .split('\n')
          .slice(2)
          .map((l) => l.split(':')[0]!.trim())
          .filter((i) => i !== '')
          .sort();
      const none = await sh(root, 'cat /proc/net/dev; ip addr show lo', { network: 'none' });
      assert.equal(none.exitCode, 0, none.stderr);
      assert.deepEqual(interfaces(none.stdout.split('\n1: lo')[0]!), ['lo']);
      assert.match(none.stdout, /inet 127\.0\.0\.1\/8/);
      const shared = await sh(root, 'cat /proc/net/dev', { network: 'default' });
      assert.deepEqual(interfaces(shared.stdout), interfaces(await readFile('/proc/net/dev', 'utf8')));
    });

    test('the process is pid 1 of its own pid namespace', async () => {
      const r = await sh(await rootfs(), 'echo $$; cat /proc/1/comm; ls -d /proc/[0-9]* | wc -l');
      const [pid, comm, count] = r.stdout.split('\n');
      assert.deepEqual([pid, comm], ['1', 'sh']);
      assert.ok(Number(count) <= 4, `${count} processes visible`); // sh, ls, wc and no host process
    });

    test("root has Docker's default capabilities and no_new_privs; another user no effective ones", async () => {
      const script = 'grep -E "^(Cap|NoNewPrivs)" /proc/self/status';
      const root = await rootfs();
      const asRoot = await sh(root, script);
      assert.equal(
        asRoot.stdout,
        `CapInh:\t0000000000000000\nCapPrm:\t${dockerDefaultCaps}\nCapEff:\t${dockerDefaultCaps}\nCapBnd:\t${dockerDefaultCaps}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n`,
      );
      const asUser = await sh(root, script, {
        process: { args: ['/bin/sh', '-c', script], env: ['PATH=/bin'], cwd: '/', user: { uid: 1000, gid: 1000 } },
      });
      assert.match(asUser.stdout, new RegExp(`CapEff:\\t0{16}\\nCapBnd:\\t${dockerDefaultCaps}\\n`));
    });

    test('a device node made with CAP_MKNOD cannot be used to reach the host', async () => {
      const r = await sh(await rootfs(), 'mknod /kmsg c 1 11 && echo kiln-test > /kmsg && echo WROTE');
      assert.doesNotMatch(r.stdout, /WROTE/);
      assert.match(r.stderr, /not permitted|Permission denied/);
    });

    test('stdin is piped to the process; without it the process reads /dev/null', async () => {
      const root = await rootfs();
      const piped = await sh(root, 'tr a-z A-Z', { stdin: Readable.from(['hello ', 'sandbox\n']) });
      assert.equal(piped.stdout, 'HELLO SANDBOX\n');
      const none = await sh(root, 'cat; echo end');
      assert.equal(none.stdout, 'end\n');
    });

    test('a command that is not in PATH exits 127, one that cannot be executed 126', async () => {
      const root = await rootfs();
      const missing = await sh(root, '', { process: { args: ['no-such-command'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } } });
      assert.equal(missing.exitCode, 127);
      assert.match(missing.stderr, /no-such-command.*not found/);
      await writeFile(path.join(root, 'not-executable'), 'x');
      const denied = await sh(root, '', { process: { args: ['/not-executable'], env: [], cwd: '/', user: { uid: 0, gid: 0 } } });
      assert.equal(denied.exitCode, 126);
    });

    test('a read-only rootfs cannot be written, yet its mount points are tidied', async () => {
      const root = await rootfs();
      const r = await sh(root, 'touch /x 2>&1; echo $?', { readonlyRootfs: true });
      assert.match(r.stdout, /Read-only file system\n1\n/);
      assert.deepEqual((await readdir(root)).sort(), ['bin']);
    });

    test('bind and tmpfs mounts of the request are applied and their missing mount points reported', async () => {
      const root = await rootfs();
      const shared = path.join(dir, `shared-${n}`);
      await mkdir(shared);
      await writeFile(path.join(shared, 'in'), 'from host\n');
      const r = await sh(root, 'cat /mnt/shared/in && echo back > /mnt/shared/out && touch /scratch/t && echo ro > /mnt/ro/x', {
        mounts: [
          { destination: '/mnt/shared', type: 'bind', source: shared, options: ['rbind', 'rw'] },
          { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['mode=1777', 'size=1m'] },
          { destination: '/mnt/ro', type: 'bind', source: shared, options: ['rbind', 'ro'] },
        ],
      });
      assert.equal(r.stdout, 'from host\n');
      assert.match(r.stderr, /Read-only file system/);
      assert.equal(await readFile(path.join(shared, 'out'), 'utf8'), 'back\n');
      for (const p of ['mnt', 'mnt/shared', 'scratch', 'mnt/ro']) assert.ok(r.createdMountpoints.includes(p), p);
      assert.deepEqual((await readdir(root)).sort(), ['bin']);
    });

    test('a mount the runtime cannot make is a SandboxFailed error, not an exit code, and is tidied up', async () => {
      const root = await rootfs();
      const missing = path.join(dir, 'no-such-source');
      await assert.rejects(
        sh(root, 'true', { mounts: [{ destination: '/data', type: 'bind', source: missing, options: ['rbind', 'ro'] }] }),
        (err: Error) => err instanceof SandboxFailed && err.message.includes('no-such-source'),
      );
      assert.deepEqual((await readdir(root)).sort(), ['bin']);
      assert.deepEqual(await readdir(stateDir), []);
    });

    test('aborting kills a long sleep quickly and leaves no runtime state, process or work directory', async () => {
      const root = await rootfs();
      const marker = randomUUID();
      const controller = new AbortController();
      const req = request(root, `sleep 100; echo ${marker}`, { signal: controller.signal });
      setTimeout(() => controller.abort(), 300);
      // Not killed, the run would end normally after 100 s and resolve instead of rejecting.
      await assert.rejects(executor.run(req), (err: Error) => err instanceof AbortError && err.name === 'AbortError');
      const runc = findProgram('runc');
      if (runc) assert.doesNotMatch(execFileSync(runc, ['list', '-q'], { encoding: 'utf8' }), new RegExp(req.id));
      assert.throws(() => execFileSync('pgrep', ['-f', marker]), 'no process of the sandbox is left');
      assert.deepEqual(await readdir(stateDir), []);
      assert.deepEqual((await readdir(root)).sort(), ['bin']);
    });

    test('a signal aborted before the run rejects without running anything', async () => {
      const root = await rootfs();
      await assert.rejects(executor.run(request(root, 'touch /ran', { signal: AbortSignal.abort() })), AbortError);
      assert.equal(existsSync(path.join(root, 'ran')), false);
    });
  });
}
