// RUN --mount beyond the basics: cache sharing modes between concurrent builds, the owner and mode
// of a new cache, caches seeded from a stage, and read-write binds whose writes are thrown away.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';

let root: string;
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-mounts-test-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
});

after(() => rm(work, { recursive: true, force: true }));

let n = 0;
async function context(files: Record<string, string>): Promise<string> {
  const dir = join(work, `ctx-${++n}`);
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

/** Build, then read files of the result (type=local output). */
async function buildAndRead(dir: string, files: string[], args: string[] = []): Promise<string[]> {
  const dest = join(work, `out-${++n}`);
  const r = await kiln(root, ['build', '--progress', 'plain', ...args, '-o', `type=local,dest=${dest}`, dir]);
  assert.equal(r.code, 0, r.stderr);
  return Promise.all(files.map((f) => readFile(join(dest, f), 'utf8')));
}

/** What cache `id` holds now, read by a build that mounts it shared. */
async function cacheContents(id: string, file: string): Promise<string> {
  const dir = await context({ Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=${id},target=/c cat /c/${file} > /seen; echo ${Math.random()}\n` });
  return (await buildAndRead(dir, ['seen']))[0]!;
}

// Two builds meet in a shared cache "sync": each announces itself and waits for the other, so their
// RUN steps are known to overlap.
const rendezvous = (me: string, other: string, sync: string) =>
  `touch /sync/${me}; i=0; while [ ! -e /sync/${other} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; [ -e /sync/${other} ]`;

test('locked cache users wait for each other: their writes never interleave', async () => {
  const step = (who: string) =>
    `FROM busybox\nRUN --mount=type=cache,id=locked-log,target=/c,sharing=locked echo start-${who} >> /c/log; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.1; done; echo end-${who} >> /c/log\n`;
  const [a, b] = await Promise.all([context({ Dockerfile: step('a') }), context({ Dockerfile: step('b') })]);
  const results = await Promise.all([a, b].map((d) => kiln(root, ['build', '-q', d])));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const log = (await cacheContents('locked-log', 'log')).trim().split('\n');
  assert.equal(log.length, 4, log.join(','));
  // Each start is followed by its own end.
  assert.equal(log[1], log[0]!.replace('start', 'end'));
  assert.equal(log[3], log[2]!.replace('start', 'end'));
});

test('a private cache user gets a directory of its own while another one has it', async () => {
  const step = (who: string, other: string) =>
    `FROM busybox\nRUN --mount=type=cache,id=sync-private,target=/sync --mount=type=cache,id=private-c,target=/c,sharing=private ` +
    `echo ${who} > /c/${who}; ${rendezvous(who, other, 'sync-private')} && ls /c > /listing\n`;
  const [a, b] = await Promise.all([context({ Dockerfile: step('a', 'b') }), context({ Dockerfile: step('b', 'a') })]);
  const [la, lb] = await Promise.all([buildAndRead(a, ['listing']), buildAndRead(b, ['listing'])]);
  // Running at the same time, neither saw the other's file.
  assert.equal(la[0], 'a\n');
  assert.equal(lb[0], 'b\n');
  // The one that held the shared directory left its file there; the other's copy is gone.
  const kept = await cacheContents('private-c', '*');
  assert.ok(kept === 'a\n' || kept === 'b\n', kept);
});

test('a new cache gets uid, gid and mode; from= and source= seed it from a stage', async () => {
  const dir = await context({
    Dockerfile:
      'FROM busybox AS seeds\nRUN mkdir -p /seed && echo seeded > /seed/f\n' +
      'FROM busybox\nRUN --mount=type=cache,target=/owned,uid=1000,gid=1001,mode=0750 stat -c %u:%g:%a /owned > /owner\n' +
      'RUN --mount=type=cache,id=seeded,target=/c,from=seeds,source=/seed cat /c/f > /from-seed\n',
  });
  const [owner, seeded] = await buildAndRead(dir, ['owner', 'from-seed']);
  assert.equal(owner, '1000:1001:750\n');
  assert.equal(seeded, 'seeded\n');
  // A cache's source must be a directory; the error names the line.
  const bad = await context({ Dockerfile: 'FROM busybox AS s\nRUN echo x > /file\nFROM busybox\nRUN --mount=type=cache,id=bad-seed,target=/c,from=s,source=/file true\n' });
  const r = await kiln(root, ['build', bad]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Dockerfile:4: cache mount source "\/file" is not a directory in stage s/);
  const unknown = await context({ Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/c,from=nowhere-known true\n' });
  const u = await kiln(root, ['build', unknown]);
  assert.notEqual(u.code, 0);
  assert.match(u.stderr, /Dockerfile:2: .*nowhere-known/);
});

test('a read-write bind takes writes that reach neither the context, the source stage nor the layer', async () => {
  const dir = await context({
    'a.txt': 'original\n',
    Dockerfile:
      'FROM busybox AS src\nRUN mkdir /m && echo stage > /m/s\n' +
      'FROM busybox\nRUN --mount=type=bind,target=/ctx,rw echo changed > /ctx/a.txt && cat /ctx/a.txt > /wrote-ctx\n' +
      'RUN --mount=type=bind,from=src,source=/m,target=/m,rw echo changed > /m/s && touch /m/new && cat /m/s > /wrote-stage\n' +
      'RUN --mount=type=bind,from=src,source=/m,target=/m cat /m/s > /stage-after; ls /m > /stage-listing; ls /ctx 2>&1 | wc -l > /ctx-gone\n',
  });
  const [wroteCtx, wroteStage, after, listing] = await buildAndRead(dir, ['wrote-ctx', 'wrote-stage', 'stage-after', 'stage-listing']);
  assert.equal(wroteCtx, 'changed\n');
  assert.equal(wroteStage, 'changed\n');
  assert.equal(after, 'stage\n');
  assert.equal(listing, 's\n');
  assert.equal(await readFile(join(dir, 'a.txt'), 'utf8'), 'original\n');
});

test('a required secret that was not given fails the build before any step runs', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo this-step-must-not-run\nRUN --mount=type=secret,id=token,required cat /run/secrets/token\n' });
  const r = await kiln(root, ['build', '--progress', 'plain', dir]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Dockerfile:3: secret "token" is required but was not given \(use --secret id=token,src=FILE\)/);
  assert.doesNotMatch(r.stderr, /this-step-must-not-run/);
  // Given, the same build runs.
  await writeFile(join(work, 'token'), 'value');
  const ok = await kiln(root, ['build', '-q', '--secret', `id=token,src=${join(work, 'token')}`, dir]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('ARG and ENV names that look like secrets get a warning pointing to --secret', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nARG DB_PASSWORD\nENV API_TOKEN=placeholder\nRUN true\n' });
  const r = await kiln(root, ['build', '--progress', 'plain', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /SecretsUsedInArgOrEnv: .*ARG "DB_PASSWORD"\) \(line 2\): pass secrets with --secret/);
  assert.match(r.stderr, /SecretsUsedInArgOrEnv: .*ENV "API_TOKEN"\) \(line 3\): pass secrets with --secret/);
});

test('a secret file gets mode, uid and gid; a tmpfs mount is writable and leaves nothing in the layer', async () => {
  await writeFile(join(work, 'owned-secret'), 'for-nobody');
  const dir = await context({
    Dockerfile:
      'FROM busybox\nRUN --mount=type=secret,id=tok,mode=0440,uid=65534,gid=65534 stat -c %a:%u:%g /run/secrets/tok > /secret-meta\n' +
      'USER 65534\nRUN --mount=type=secret,id=tok,uid=65534 cat /run/secrets/tok > /tmp/read-as-nobody && mv /tmp/read-as-nobody /tmp/r\nUSER 0\n' +
      'RUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f && cat /scratch/f > /tmpfs-used && mount | grep " /scratch " | grep -c tmpfs > /tmpfs-type\n',
  });
  const [meta, read, used, type] = await buildAndRead(dir, ['secret-meta', 'tmp/r', 'tmpfs-used', 'tmpfs-type'], ['--secret', `id=tok,src=${join(work, 'owned-secret')}`]);
  assert.equal(meta, '440:65534:65534\n');
  assert.equal(read, 'for-nobody');
  assert.equal(used, 'x\n');
  assert.equal(type, '1\n');
  const dest = join(work, `out-tmpfs-${++n}`);
  await kilnOk(root, ['build', '-q', '--secret', `id=tok,src=${join(work, 'owned-secret')}`, '-o', `type=local,dest=${dest}`, dir]);
  await assert.rejects(readFile(join(dest, 'scratch', 'f')), 'the tmpfs contents are not in the image');
});

test('a --secret whose file does not exist is an error naming the flag, before anything runs', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n' });
  const r = await kiln(root, ['build', '--secret', `id=tok,src=${join(work, 'no-such-secret')}`, dir]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^Error: --secret id=tok: cannot read .*no-such-secret/m);
  assert.doesNotMatch(r.stderr, /RUN --mount/);
});
