import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fixture, kiln, kilnMain, kilnOk, tempDir } from '../support/env.js';

// The solver prepares a COPY from the context while the RUN before it runs, against the RUN's
// parent, and keeps the result only if the RUN changed nothing the COPY read there. These tests
// show that it happens, that a RUN which does change those paths is honoured, and that the image
// is the same whether the COPY was prepared ahead or not.

async function contextDir(dir: string, files: Record<string, string>): Promise<string> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

/** Whether a file of that name is anywhere under dir (the store's snapshots, here). */
async function findsName(dir: string, name: string): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) if (e.name === name) return true;
  return false;
}

function tree(dir: string): string {
  return execFileSync('find', ['.', '-printf', '%p %y %m %U %G %s %l\\n'], { cwd: dir, encoding: 'utf8' }).split('\n').sort().join('\n');
}

test('a COPY after a RUN is written while the RUN still runs', async (t) => {
  const work = await tempDir(t);
  const root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const marker = `marker-${process.pid}-${Date.now()}.txt`;
  // The RUN waits (up to 60 s) for a file the test creates once it has seen the COPY's file extracted in the store.
  const ctx = await contextDir(join(work, 'ctx'), {
    Dockerfile: `FROM busybox\nWORKDIR /app\nRUN --mount=type=bind,target=/ctx sh -c 'i=0; while [ ! -e /ctx/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'\nCOPY ${marker} .\n`,
    [marker]: 'prepared',
  });
  const building = kiln(root, ['build', '--progress', 'plain', '--jobs', '2', '-t', 'prepared', ctx]);
  let seen = false;
  for (let i = 0; i < 300 && !seen; i++) {
    seen = await findsName(join(root, 'snapshots'), marker);
    if (!seen) await new Promise((r) => setTimeout(r, 100));
  }
  await writeFile(join(ctx, 'go'), '');
  const r = await building;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(seen, 'the COPY was not extracted while the RUN ran');
  const out = join(work, 'out');
  await kilnOk(root, ['build', '-q', '-o', `type=local,dest=${out}`, ctx]);
  assert.match(tree(out), new RegExp(`\\./app/${marker.replace(/\./g, '\\.')} f 644 0 0 8 `));
});

test('a COPY after a RUN that changes its destination, owner names and parent mode follows what the RUN left', async (t) => {
  const work = await tempDir(t);
  const root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const ctx = await contextDir(join(work, 'ctx'), {
    Dockerfile: [
      'FROM busybox',
      "RUN mkdir -p /app /elsewhere && echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group",
      // Prepared against the state above, the COPY would make /app/data a directory owned by 1000.
      "RUN sleep 1 && ln -s /elsewhere /app/data && chmod 0750 /app && sed -i 's/^app:x:1000:1000:/app:x:2000:2000:/' /etc/passwd && sed -i 's/^app:x:1000:/app:x:2000:/' /etc/group",
      'COPY --chown=app:app data/ /app/data/',
      '',
    ].join('\n'),
    'data/f': 'file',
  });
  const trees: string[] = [];
  for (const jobs of ['2', '1']) {
    const out = join(work, `out-${jobs}`);
    const r = await kiln(root, ['build', '-q', '--no-cache', '--jobs', jobs, '-o', `type=local,dest=${out}`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    trees.push(tree(out));
  }
  assert.equal(trees[0], trees[1], 'prepared ahead (--jobs 2) and in order (--jobs 1) differ');
  assert.match(trees[0]!, /\.\/app\/data l 777 0 0 \d+ \/elsewhere\n/);
  assert.match(trees[0]!, /\.\/elsewhere\/f f 644 2000 2000 4 \n/);
  assert.match(trees[0]!, /\.\/app d 750 0 0 /);
});

test('with SOURCE_DATE_EPOCH the image is the same whether the COPY was prepared during the RUN or after it', async (t) => {
  const work = await tempDir(t);
  const files: Record<string, string> = {
    Dockerfile: 'FROM busybox\nWORKDIR /app\nCOPY package.json .\nRUN sleep 1 && echo deps > deps.txt\nCOPY . .\nRUN ls -R /app | wc -l > /count.txt\n',
    'package.json': '{}\n',
  };
  // Over 1,000 entries: the layer is extracted on the extraction thread.
  for (let d = 0; d < 12; d++) for (let f = 0; f < 100; f++) files[`src/m${d}/f${f}.txt`] = `${d}/${f}\n`;
  const ctx = await contextDir(join(work, 'ctx'), files);
  const ids: string[] = [];
  for (const jobs of ['2', '1']) {
    const root = join(work, `store-${jobs}`);
    await kilnOk(root, ['load', '-i', fixture('busybox')]);
    ids.push((await kilnOk(root, ['build', '-q', '--jobs', jobs, ctx], { env: { SOURCE_DATE_EPOCH: '1700000000' } })).trim());
  }
  assert.match(ids[0]!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(ids[0], ids[1]);
});

test('a build interrupted while a COPY is being prepared tags nothing and leaves no mount, temporary directory or partial blob', async (t) => {
  const work = await tempDir(t);
  const root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const files: Record<string, string> = {
    Dockerfile: "FROM busybox\nWORKDIR /app\nRUN --mount=type=bind,target=/ctx sh -c 'i=0; while [ ! -e /ctx/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'\nCOPY . .\n",
  };
  for (let d = 0; d < 12; d++) for (let f = 0; f < 100; f++) files[`src/m${d}/f${f}.txt`] = `${d}/${f}\n`.repeat(200);
  const ctx = await contextDir(join(work, 'ctx'), files);
  const child = spawn(process.execPath, [kilnMain, 'build', '--progress', 'plain', '--jobs', '2', '-t', 'interrupted', ctx], { env: { ...process.env, KILN_ROOT: root } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // Interrupted once the COPY's preparation has written something into the store.
  for (let i = 0; i < 300; i++) {
    if ((await readdir(join(root, 'snapshots', 'tmp')).catch(() => [])).length > 1 || (await readdir(join(root, 'ingest')).catch(() => [])).length > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 130, stderr);
  assert.ok(!(await readFile('/proc/mounts', 'utf8')).includes(root), 'a mount under the store survived');
  assert.deepEqual(await readdir(join(root, 'snapshots', 'tmp')).catch(() => []), []);
  assert.deepEqual(await readdir(join(root, 'ingest')).catch(() => []), []);
  assert.doesNotMatch(await kilnOk(root, ['images', '--format', 'json']), /interrupted/);
});
