import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kilnMain, kilnOk } from '../support/env.js';

// `kiln analyze IMAGE` on a terminal (a tmux pane): the full-screen explorer on an image built from
// busybox with a file added, one changed and one deleted; keys move between layers, fold a
// directory, show changes only; q gives the shell its terminal back and exits 0.

const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let work: string;
let root: string;

before(async () => {
  if (!hasTmux) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-explorer-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  const ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'new.txt'), 'hello\n');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY new.txt /data/new.txt\nRUN echo more >> /etc/passwd\nRUN rm /bin/vi\n');
  await kilnOk(root, ['build', '-q', '-t', 'layered', ctx]);
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function pane(session: string) {
  const screen = (colour = false) => execFileSync('tmux', ['capture-pane', '-p', ...(colour ? ['-e'] : []), '-t', session], { encoding: 'utf8' });
  const keys = (...k: string[]) => execFileSync('tmux', ['send-keys', '-t', session, ...k]);
  const until = async (what: string, check: (s: string) => boolean) => {
    let last = '';
    for (let i = 0; i < 200; i++) {
      last = screen();
      await new Promise((r) => setTimeout(r, 50));
      // and the screen is done drawing: the same on a second look
      if (check(last) && screen() === last) return last;
    }
    assert.fail(`timed out waiting until ${what}; the screen:\n${last}`);
  };
  const close = () => {
    try {
      execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
    } catch {
      // the session ended already
    }
  };
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '30', `env PS1='kiln-test$ ' sh`]);
  return { screen, keys, until, close };
}

test('kiln analyze on a terminal shows the layers, the marked tree of the selected layer, folds, and q restores the shell', { skip: !hasTmux && 'tmux is not installed', timeout: 60_000 }, async () => {
  const done = join(work, 'done');
  const { screen, keys, until, close } = pane(`kiln-explorer-${process.pid}`);
  try {
    await until('the shell prompts', (s) => s.includes('kiln-test$'));
    keys(`KILN_ROOT=${root} ${process.execPath} ${kilnMain} analyze layered; echo "exit=$?" > ${done}`, 'Enter');
    let s = await until('the explorer shows', (s) => s.includes('Layer 0 contents'));
    const lines = s.split('\n');
    assert.match(lines[0]!, /^ Layers +│ Layer 0 contents \(\+\d+ ~0 -0\)/);
    assert.match(lines[1]!, /^▶ {2}0 +[\d.]+ MB {2}kiln fixtures: busybox rootfs/);
    assert.match(lines[2]!, /^ {3}1 +6 B {2}COPY new\.txt \/data\/new\.txt/);
    assert.match(lines[3]!, /^ {3}2 +\d+ B {2}RUN \/bin\/sh -c echo more >>/);
    assert.match(lines[4]!, /^ {3}3 +0 B {2}RUN \/bin\/sh -c rm \/bin\/vi/);
    assert.match(s, /│\+ +[\d.]+ MB {2}├── ▾ bin\//);
    assert.match(s, /^ layered {2}total [\d.]+ MB {2}efficiency [\d.]+ % {2}wasted \d+ B/m);

    keys('Down');
    s = await until('layer 1 is selected', (s) => s.includes('Layer 1 contents'));
    assert.match(s, /Layer 1 contents \(\+1 ~0 -0\)/);
    assert.match(s, /│\+ +6 B {2}│ {3}└── new\.txt/);
    assert.match(s, /^▶ {2}1 /m);

    keys('j'); // vi's down
    s = await until('layer 2 is selected', (s) => s.includes('Layer 2 contents'));
    assert.match(s, /│~ +\d+ B {2}│ {3}└── passwd/);
    assert.doesNotMatch(s, /new\.txt.*\n?.*│\+/, 'layer 1\'s addition is no longer marked');

    keys('Down');
    s = await until('layer 3 is selected', (s) => s.includes('Layer 3 contents'));
    assert.match(s, /Layer 3 contents \(\+0 ~0 -1\)/);
    assert.match(s, /│- +0 B {2}│ {3}[├└]── vi\s*$/m, 'the cursor is on the layer\'s first change, so it is on screen');
    assert.match(screen(true), /\x1b\[31m- +0 B/, 'removed is red');

    // into the tree, up to bin/, fold it, and unfold it again
    keys('Tab', 'Home');
    s = await until('bin/ is on screen', (s) => s.includes('├── ▾ bin/'));
    assert.match(s, /│~ +[\d.]+ MB {2}├── ▾ bin\//, 'a directory with a change below it is changed');
    keys('Space');
    s = await until('bin/ is folded', (s) => s.includes('▸ bin/'));
    assert.doesNotMatch(s, /── vi\b/);
    assert.match(s, /▸ bin\/\s*\n.*├── ▾ data\//);
    keys('Enter');
    await until('bin/ is unfolded', (s) => s.includes('▾ bin/') && s.includes('├── arch'));

    keys('c');
    s = await until('only the changes show', (s) => s.includes('[changes only]'));
    const rows = s.split('\n').filter((l) => /│[-+~ ] +[\d.]+ [kM]?B/.test(l)).map((l) => l.slice(l.indexOf('│') + 1).trim());
    assert.match(rows[0]!, /^~ +[\d.]+ MB {2}[├└]── ▾ bin\/$/);
    assert.match(rows[1]!, /^- +0 B {2}[│ ] {3}└── vi$/);
    // anything else shown is a directory the RUN step touched, not a file
    for (const r of rows.slice(2)) assert.match(r, /^~ .* ▾ [^/]+\/$/, rows.join('\n'));

    keys('q');
    await until('the shell prompts again', (s) => existsSync(done) && /kiln-test\$ *$/m.test(s) && !s.includes('Layers'));
    assert.equal(await readFile(done, 'utf8'), 'exit=0\n');
    // the terminal is back in cooked mode: a typed line echoes and runs
    keys('echo typed-$((6*7))', 'Enter');
    await until('the shell runs a typed line', (s) => s.includes('typed-42'));
  } finally {
    close();
  }
});

test('SIGTERM to kiln analyze on a terminal gives the terminal back and exits 143', { skip: !hasTmux && 'tmux is not installed', timeout: 60_000 }, async () => {
  const done = join(work, 'done-term');
  const pidFile = join(work, 'pid');
  const { keys, until, close } = pane(`kiln-explorer-term-${process.pid}`);
  try {
    await until('the shell prompts', (s) => s.includes('kiln-test$'));
    keys(`sh -c 'echo $$ > ${pidFile}; KILN_ROOT=${root} exec ${process.execPath} ${kilnMain} analyze layered'; echo "exit=$?" > ${done}`, 'Enter');
    await until('the explorer shows', (s) => s.includes('Layer 0 contents'));
    process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGTERM');
    await until('the shell prompts again', (s) => existsSync(done) && /kiln-test\$ *$/m.test(s) && !s.includes('Layers'));
    assert.equal(await readFile(done, 'utf8'), 'exit=143\n', '128 + SIGTERM, as for a process killed by it');
    keys('echo typed-$((6*7))', 'Enter');
    await until('the shell runs a typed line (cooked mode, echo on)', (s) => s.includes('echo typed-$((6*7))') && s.includes('typed-42'));
  } finally {
    close();
  }
});
