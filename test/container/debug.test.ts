// kiln build --on-error=shell: a failed RUN opens a shell in that step's sandbox — the parent snapshot
// plus what the command wrote, with the step's env, user and workdir — and the build still fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fixture, kiln, kilnMain, kilnOk } from '../support/env.js';

let work: string;
let root: string;
let ctx: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-container-debug-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nENV FOO=bar\nWORKDIR /w\nUSER nobody\nRUN echo partial > /tmp/partial && exit 3\n');
});

after(() => rm(work, { recursive: true, force: true }));

test("a failed RUN opens a shell in the step's sandbox with what the command wrote; the build still fails", async () => {
  const r = await kiln(root, ['build', '--on-error=shell', '--progress', 'plain', ctx], {
    input: 'cat /tmp/partial; echo "$FOO $(pwd) $(id -un)"; touch /tmp/discarded; exit\n',
  });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'partial\nbar /w nobody\n');
  assert.match(r.stderr, /Dockerfile:5: RUN failed \(exit code 3\): a shell in its sandbox follows/);
  assert.match(r.stderr, /Error: Dockerfile:5: RUN failed/);
  // Without the flag there is no shell; a bad mode is refused.
  const plain = await kiln(root, ['build', '--progress', 'plain', ctx], { input: 'echo never\n' });
  assert.equal(plain.code, 1);
  assert.equal(plain.stdout, '');
  const bad = await kiln(root, ['build', '--on-error=retry', ctx]);
  assert.equal(bad.code, 2);
});

test('the debugging shell gets a terminal when kiln has one (through tmux)', { skip: !hasTmux() && 'tmux is not installed' }, async () => {
  const session = `kiln-debug-${process.pid}`;
  const done = join(work, 'done');
  const cmd = `KILN_ROOT=${root} ${process.execPath} ${kilnMain} build --on-error=shell ${ctx}; echo "exit=$?" > ${done}`;
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '150', '-y', '30', cmd]);
  const pane = () => execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
  try {
    // capture-pane trims trailing blanks: the prompt "/w $ " reads "/w $".
    for (let i = 0; i < 300 && !/ \$ ?$/m.test(pane()); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync('tmux', ['send-keys', '-t', session, 'tty && cat /tmp/partial', 'Enter']);
    for (let i = 0; i < 100 && !pane().includes('partial\n'); i++) await new Promise((r) => setTimeout(r, 50));
    const seen = pane();
    assert.match(seen, /\/dev\/pts\/\d+/);
    assert.match(seen, /^partial$/m);
    execFileSync('tmux', ['send-keys', '-t', session, 'exit', 'Enter']);
    // The file exists once the redirection opens it, a moment before echo writes the line.
    for (let i = 0; i < 200 && !(existsSync(done) && (await readFile(done, 'utf8')).endsWith('\n')); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await readFile(done, 'utf8'), 'exit=1\n');
  } finally {
    try {
      execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
    } catch {
      // ended with its command
    }
  }
});

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
