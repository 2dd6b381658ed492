// Running containers without a daemon: exit codes, the image config applied as docker applies it,
// detached containers under a supervisor (logs, stop, kill, start, rm), signals, --init, cp and export,
// a terminal through tmux, and bad input that must fail cleanly with nothing left mounted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync, spawn } from 'node:child_process';
import { fixture, kiln, kilnMain, kilnOk } from '../support/env.js';

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-container-life-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
});

after(async () => {
  const ids = (await kiln(root, ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await kiln(root, ['rm', '-f', ...ids]);
  await rm(work, { recursive: true, force: true });
});

/** Nothing of the store is mounted any more (every run unmounts what it mounted). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function status(name: string): Promise<string> {
  return (await kilnOk(root, ['container', 'inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', name])).trim();
}

test("run exits with the process's exit code, 127 with docker's message for a missing command, and --rm removes it", async () => {
  const r = await kiln(root, ['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  assert.equal(r.code, 7);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const missing = await kiln(root, ['run', '--name', 'missing', 'busybox', 'nosuchcommand']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /exec: "nosuchcommand": executable file not found in \$PATH/);
  assert.match(await kilnOk(root, ['ps', '-a']), /Exited \(127\).*missing/);
  assert.doesNotMatch(await kilnOk(root, ['ps', '-a']), /exit 7/);
  assert.deepEqual(mountsUnder(root), []);
});

test('the image config applies as docker applies it: env merge, workdir, user, entrypoint override, hostname', async () => {
  await writeFile(join(work, 'env'), '# comment\nFROM_FILE=file value\nA=from-file\n');
  const out = await kilnOk(root, [
    'run', '--rm', '--env-file', join(work, 'env'), '-e', 'A=flag', '-e', 'PATH=/bin', '-w', '/tmp/new', '-u', 'nobody',
    'busybox', 'sh', '-c', 'echo "$A|$FROM_FILE|$PATH|$HOME"; pwd; id -u; [ "$HOSTNAME" = "$(hostname)" ] && echo host-ok',
  ]);
  assert.equal(out, 'flag|file value|/bin|/home\n/tmp/new\n65534\nhost-ok\n');
  // --entrypoint "" drops the image's CMD too: the arguments alone are the command.
  assert.equal(await kilnOk(root, ['run', '--rm', '--entrypoint', '', 'busybox', 'echo', 'no', 'entrypoint']), 'no entrypoint\n');
  assert.equal(await kilnOk(root, ['run', '--rm', '--entrypoint', 'echo', 'busybox']), '\n');
  // Flags after the image belong to the command.
  assert.equal(await kilnOk(root, ['run', '--rm', 'busybox', 'echo', '-e', '--rm', '-d']), '--rm -d\n');
});

test('bind mounts, read-only volumes, anonymous volumes, --read-only and --network none', async () => {
  const host = join(work, 'shared');
  await mkdir(host);
  await writeFile(join(host, 'in'), 'from host\n');
  const out = await kilnOk(root, ['run', '--rm', '-v', `${host}:/data`, '-v', `${host}:/ro:ro`, 'busybox', 'sh', '-c', 'cat /data/in; echo back > /data/out; touch /ro/x 2>/dev/null || echo ro-refused']);
  assert.equal(out, 'from host\nro-refused\n');
  assert.equal(await readFile(join(host, 'out'), 'utf8'), 'back\n');
  // What goes to a volume is not the container's change.
  await kilnOk(root, ['run', '--name', 'vol', '-v', '/cache', 'busybox', 'sh', '-c', 'echo x > /cache/f']);
  assert.equal(await kilnOk(root, ['diff', 'vol']), '');
  const ro = await kiln(root, ['run', '--rm', '--read-only', 'busybox', 'touch', '/x']);
  assert.notEqual(ro.code, 0);
  assert.equal(await kilnOk(root, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'ls /sys/class/net']), 'lo\n');
});

test('a detached container keeps its logs, stops with SIGKILL after the grace period, starts again on its own filesystem', async () => {
  const id = (await kilnOk(root, ['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; echo run $n; echo oops >&2; while true; do sleep 0.1; done'])).trim();
  assert.match(id, /^[a-f0-9]{64}$/);
  await until('it logged', async () => (await kiln(root, ['logs', 'ticker'])).stdout.includes('run 1'));
  const logs = await kiln(root, ['logs', 'ticker']);
  assert.equal(logs.stdout, 'run 1\n');
  assert.equal(logs.stderr, 'oops\n');
  assert.match(await kilnOk(root, ['ps']), new RegExp(`^${id.slice(0, 12)}\\s+busybox\\s+"sh -c n=\\$\\(cat /n 2>…"\\s+.*Up .*ticker$`, 'm'));
  // A running container is not removed without -f.
  const busy = await kiln(root, ['rm', 'ticker']);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /container is running/);
  // sh as PID 1 ignores SIGTERM: stop falls back to SIGKILL.
  assert.equal(await kilnOk(root, ['stop', '-t', '1', 'ticker']), 'ticker\n');
  assert.equal(await status('ticker'), 'exited 137');
  assert.doesNotMatch(await kilnOk(root, ['ps']), /ticker/);
  assert.equal(await kilnOk(root, ['start', 'ticker']), 'ticker\n');
  await until('it ran again', async () => (await kiln(root, ['logs', 'ticker'])).stdout.includes('run 2'));
  // --tail counts the lines of both streams, as docker's does.
  const tail = await kiln(root, ['logs', '--tail', '2', 'ticker']);
  assert.equal(tail.stdout, 'run 2\n');
  assert.equal(tail.stderr, 'oops\n');
  const killed = await kiln(root, ['kill', '-s', 'TERM', 'ticker']);
  assert.equal(killed.code, 0);
  assert.equal(await status('ticker'), 'running 0');
  await kilnOk(root, ['kill', 'ticker']);
  await until('it exited', async () => (await status('ticker')).startsWith('exited'));
  const again = await kiln(root, ['kill', 'ticker']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /is not running/);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'ticker'])), ['A /n']);
  await kilnOk(root, ['rm', 'ticker']);
  assert.deepEqual(mountsUnder(root), []);
});

const lines = (s: string) => s.split('\n').filter(Boolean);

test('--init runs a PID 1 that passes SIGTERM on to the command; rm -f kills a running container', async () => {
  await kilnOk(root, ['run', '-d', '--init', '--name', 'with-init', 'busybox', 'sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done']);
  await until('it is ready', async () => (await kiln(root, ['logs', 'with-init'])).stdout.includes('ready'));
  await kilnOk(root, ['stop', 'with-init']);
  assert.equal(await status('with-init'), 'exited 3');
  assert.match(await kilnOk(root, ['logs', 'with-init']), /got TERM/);

  await kilnOk(root, ['run', '-d', '--name', 'doomed', 'busybox', 'sleep', '60']);
  await kilnOk(root, ['rm', '-f', 'doomed']);
  assert.doesNotMatch(await kilnOk(root, ['ps', '-a']), /doomed/);
  assert.deepEqual(mountsUnder(root), []);
});

test('signals sent to a foreground kiln run reach the process', async () => {
  const child = spawn(process.execPath, [kilnMain, 'run', '--rm', 'busybox', 'sh', '-c', 'trap "echo term; exit 4" TERM; echo ready; while true; do sleep 0.1; done'], {
    env: { ...process.env, KILN_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.includes('ready')) child.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 4);
  assert.equal(out, 'ready\nterm\n');
});

test('cp copies files both ways with docker cp placement rules, refuses paths that leave the root; export writes the filesystem', async () => {
  await kilnOk(root, ['run', '--name', 'files', 'busybox', 'sh', '-c', 'mkdir -p /app/sub && echo a > /app/a && echo b > /app/sub/b && ln -s /app/a /app/link']);
  const dest = join(work, 'cp-out');
  await mkdir(dest);
  await kilnOk(root, ['cp', 'files:/app', dest]);
  assert.equal(await readFile(join(dest, 'app', 'sub', 'b'), 'utf8'), 'b\n');
  await kilnOk(root, ['cp', 'files:/app/a', join(dest, 'renamed')]);
  assert.equal(await readFile(join(dest, 'renamed'), 'utf8'), 'a\n');
  await kilnOk(root, ['cp', 'files:/app/.', join(dest, 'contents')]);
  assert.deepEqual((await readdir(join(dest, 'contents'))).sort(), ['a', 'link', 'sub']);

  const src = join(work, 'cp-in');
  await mkdir(join(src, 'dir'), { recursive: true });
  await writeFile(join(src, 'dir', 'f'), 'in\n');
  await kilnOk(root, ['cp', join(src, 'dir'), 'files:/app/']);
  await kilnOk(root, ['cp', join(src, 'dir', 'f'), 'files:/app/g']);
  // A symlink in the container is followed inside the container's root.
  await kilnOk(root, ['cp', join(src, 'dir', 'f'), 'files:/app/link']);
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'files'])), ['A /app', 'A /app/a', 'A /app/dir', 'A /app/dir/f', 'A /app/g', 'A /app/link', 'A /app/sub', 'A /app/sub/b']);
  const tarOut = join(work, 'files.tar');
  await kilnOk(root, ['container', 'export', '-o', tarOut, 'files']);
  const listing = execFileSync('tar', ['tf', tarOut], { encoding: 'utf8' });
  for (const p of ['app/a', 'app/dir/f', 'app/g', 'bin/busybox', 'etc/passwd']) assert.match(listing, new RegExp(`^${p}$`, 'm'));
  assert.equal(execFileSync('tar', ['xOf', tarOut, 'app/a'], { encoding: 'utf8' }), 'in\n');

  for (const bad of ['files:../../etc/shadow', 'files:/app/../../../etc']) {
    const r = await kiln(root, ['cp', bad, dest]);
    assert.equal(r.code, 1, bad);
    assert.match(r.stderr, /outside the container's root/);
  }
  const r = await kiln(root, ['cp', join(src, 'dir', 'f'), 'files:/../x']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /outside the container's root/);
  const missing = await kiln(root, ['cp', 'files:/nope', dest]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Could not find the file \/nope/);
  assert.equal(existsSync(join(dest, 'nope')), false);
  assert.deepEqual(mountsUnder(root), []);
});

test('bad input fails with a clear message and a non-zero exit, leaving nothing mounted', async () => {
  const unknownImage = await kiln(root, ['run', 'nosuchimage']);
  assert.equal(unknownImage.code, 125);
  assert.match(unknownImage.stderr, /Unable to find image 'nosuchimage'/);

  await kilnOk(root, ['create', '--name', 'taken', 'busybox']);
  const taken = await kiln(root, ['run', '--name', 'taken', 'busybox', 'true']);
  assert.equal(taken.code, 125);
  assert.match(taken.stderr, /The container name "\/taken" is already in use/);
  const badName = await kiln(root, ['run', '--name', 'bad/name', 'busybox', 'true']);
  assert.equal(badName.code, 125);
  assert.match(badName.stderr, /Invalid container name/);

  for (const cmd of [['diff', 'ghost'], ['rm', 'ghost'], ['logs', 'ghost'], ['commit', 'ghost'], ['stop', 'ghost'], ['start', 'ghost']]) {
    const r = await kiln(root, cmd);
    assert.equal(r.code, 1, cmd.join(' '));
    assert.match(r.stderr, /No such container: ghost/, cmd.join(' '));
  }
  const user = await kiln(root, ['run', '--rm', '-u', 'nosuchuser', 'busybox', 'true']);
  assert.equal(user.code, 125);
  assert.match(user.stderr, /unable to find user nosuchuser/);
  const flag = await kiln(root, ['run', '--nosuchflag', 'busybox']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /unknown flag: --nosuchflag/);
  const volume = await kiln(root, ['run', '-v', 'relative:/x', 'busybox', 'true']);
  assert.equal(volume.code, 125);
  assert.deepEqual(mountsUnder(root), []);
});

test('run -it gives the process a terminal (through tmux)', { skip: !hasTmux() && 'tmux is not installed' }, async () => {
  const session = `kiln-test-${process.pid}`;
  const done = join(work, 'tty-done');
  const cmd = `KILN_ROOT=${root} ${process.execPath} ${kilnMain} run -it --name tty busybox sh; echo "exit=$?" > ${done}`;
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '100', '-y', '20', cmd]);
  try {
    await until('the shell prompts', async () => execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' }).includes('/ #'));
    execFileSync('tmux', ['send-keys', '-t', session, 'tty; echo "term=$TERM"; touch /typed; exit 6', 'Enter']);
    // The file exists once the redirection opens it, a moment before echo writes the line.
    await until('the shell exits', async () => existsSync(done) && (await readFile(done, 'utf8')).endsWith('\n'));
    assert.equal(await readFile(done, 'utf8'), 'exit=6\n');
  } finally {
    try {
      execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
    } catch {
      // the session ended with its command
    }
  }
  assert.deepEqual(lines(await kilnOk(root, ['diff', 'tty'])), ['A /typed']);
});

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
