import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, rm, readdir, stat, symlink, lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn, execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk, kilnMain } from '../support/env.js';

let root: string;
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-build-test-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

let n = 0;
/** A build context directory with the given files (path → content). */
async function context(files: Record<string, string>): Promise<string> {
  const dir = join(work, `ctx-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

async function build(dir: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return kiln(root, ['build', '--progress', 'plain', ...args, dir]);
}

/** Build and unpack the result into a directory (type=local output). */
async function buildTree(dir: string, args: string[] = []): Promise<string> {
  const dest = join(work, `out-${++n}`);
  const r = await build(dir, [...args, '-o', `type=local,dest=${dest}`]);
  assert.equal(r.code, 0, r.stderr);
  return dest;
}

async function inspect(name: string): Promise<any> {
  return JSON.parse(await kilnOk(root, ['inspect', name]))[0];
}

test('a two-stage build copies only the result of the first stage and tags the image', async () => {
  const dir = await context({
    Dockerfile: 'FROM busybox AS build\nWORKDIR /src\nCOPY a.txt .\nRUN cat a.txt a.txt > double.txt\nFROM busybox\nCOPY --from=build /src/double.txt /double.txt\nCMD ["cat", "/double.txt"]\n',
    'a.txt': 'x\n',
  });
  const r = await build(dir, ['-t', 'two-stage']);
  assert.equal(r.code, 0, r.stderr);
  const img = await inspect('two-stage');
  assert.deepEqual(img.Config.Cmd, ['cat', '/double.txt']);
  assert.deepEqual(img.RepoTags, ['two-stage:latest']);
  // busybox's one layer + the COPY layer: nothing from the build stage but the file.
  assert.equal(img.RootFS.Layers.length, 2);
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'double.txt'), 'utf8'), 'x\nx\n');
  await assert.rejects(stat(join(tree, 'src')));
});

test('a store named by a relative path (--root or KILN_ROOT) builds like any other', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nWORKDIR /w\nRUN echo hi > hi.txt\n' });
  await kilnOk(join(work, 'unused'), ['--root', 'rel-store', 'load', '-i', fixture('busybox')], { cwd: work });
  const viaFlag = await kiln(join(work, 'unused'), ['--root', 'rel-store', 'build', '-q', '-t', 'rel:1', dir], { cwd: work });
  assert.equal(viaFlag.code, 0, viaFlag.stderr);
  const viaEnv = await kiln('rel-store', ['build', '-q', '-t', 'rel:1', dir], { cwd: work });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(viaEnv.stdout, viaFlag.stdout);
});

test('-q prints only the image ID and a second build is fully cached', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo one > /one\nCOPY f /f\n', f: 'data' });
  const first = await kilnOk(root, ['build', '-q', '-t', 'cached', dir]);
  assert.match(first.trim(), /^sha256:[a-f0-9]{64}$/);
  const second = await build(dir, ['-t', 'cached']);
  assert.equal(second.code, 0, second.stderr);
  assert.equal((second.stderr.match(/CACHED/g) ?? []).length, 2);
  assert.doesNotMatch(second.stderr, /echo one > \/one\n#\d+ DONE/);
  const again = await kilnOk(root, ['build', '-q', dir]);
  assert.equal(again.trim(), first.trim());
});

test('changing a copied file re-runs only the steps after the COPY that reads it', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo base > /base\nCOPY f /f\nRUN cat /f > /g\n', f: 'v1' });
  assert.equal((await build(dir)).code, 0);
  await writeFile(join(dir, 'f'), 'v2');
  const r = await build(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /RUN echo base > \/base\n#\d+ CACHED/);
  assert.match(r.stderr, /COPY f \/f\n#\d+ DONE/);
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'g'), 'utf8'), 'v2');
});

test('mtime-only changes to context files keep the cache (keys use content, not times)', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nCOPY f /f\n', f: 'same' });
  assert.equal((await build(dir)).code, 0);
  const later = new Date(Date.now() + 5000);
  const { utimes } = await import('node:fs/promises');
  await utimes(join(dir, 'f'), later, later);
  const r = await build(dir);
  assert.match(r.stderr, /COPY f \/f\n#\d+ CACHED/);
});

test('--no-cache runs every step again', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo hi > /hi\n' });
  assert.equal((await build(dir)).code, 0);
  const r = await build(dir, ['--no-cache']);
  assert.equal(r.code, 0);
  assert.doesNotMatch(r.stderr, /CACHED/);
});

test('independent stages run in parallel (three stages with --jobs 3)', async () => {
  const dir = await context({
    Dockerfile:
      'FROM busybox AS a\nRUN sleep 1.5 && echo a > /out\nFROM busybox AS b\nRUN sleep 1.5 && echo b > /out\nFROM busybox AS c\nRUN sleep 1.5 && echo c > /out\n' +
      'FROM busybox\nCOPY --from=a /out /a\nCOPY --from=b /out /b\nCOPY --from=c /out /c\n',
  });
  const r = await build(dir, ['--jobs', '3']);
  assert.equal(r.code, 0, r.stderr);
  // All three sleeps start before the first of them finishes: they overlap.
  const lines = r.stderr.split('\n');
  const started = ['a', 'b', 'c'].map((s) => lines.findIndex((l) => l.includes(`[${s} 2/2] RUN sleep`)));
  const ids = started.map((i) => lines[i]!.split(' ')[0]);
  const firstDone = Math.min(...ids.map((id) => lines.findIndex((l) => l.startsWith(`${id} DONE`))));
  assert.ok(started.every((i) => i >= 0 && i < firstDone), r.stderr);
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'b'), 'utf8'), 'b\n');
});

test('--jobs must be a positive whole number', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN true\n' });
  for (const bad of ['0', 'two', '1.5']) {
    const r = await build(dir, ['--jobs', bad]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--jobs: "${bad.replace('.', '\\.')}" is not a positive whole number`));
  }
});

test('--target builds the named stage (case-insensitive) and skips stages it does not need', async () => {
  const dir = await context({
    Dockerfile: 'FROM busybox AS Base\nRUN echo base > /base\nFROM base AS test\nRUN exit 1\nFROM missing-image-never-resolved AS other\nRUN true\n',
  });
  const r = await build(dir, ['--target', 'BASE', '-t', 'target-base']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /missing-image/);
  assert.doesNotMatch(r.stderr, /exit 1/);
});

test('build args are seen by RUN and not kept in the image config', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nARG GREETING=hello\nRUN echo "$GREETING" > /greeting\n' });
  assert.equal((await build(dir, ['--build-arg', 'GREETING=bonjour', '-t', 'args'])).code, 0);
  const tree = await buildTree(dir, ['--build-arg', 'GREETING=bonjour']);
  assert.equal(await readFile(join(tree, 'greeting'), 'utf8'), 'bonjour\n');
  const img = await inspect('args');
  assert.ok(!img.Config.Env.some((e: string) => e.startsWith('GREETING')));
  assert.match(img.History.at(-1).created_by, /^RUN \|1 GREETING=bonjour \/bin\/sh -c/);
});

test('deleting a base file in RUN records a whiteout, and the flattened tree lacks it', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN rm /etc/group && rm -rf /home && mkdir /home && touch /home/new\n' });
  const tree = await buildTree(dir);
  await assert.rejects(stat(join(tree, 'etc/group')));
  assert.ok((await stat(join(tree, 'etc/passwd'))).isFile());
  assert.deepEqual(await readdir(join(tree, 'home')), ['new']);
});

test('RUN runs as USER, in WORKDIR, with image ENV, and sandbox mounts never reach the layer', async () => {
  const dir = await context({
    Dockerfile: 'FROM busybox\nENV A=1\nWORKDIR /w/x\nUSER nobody\nRUN id -u > /tmp/uid && pwd > /tmp/pwd && echo $A > /tmp/a && test -e /proc/self && test -c /dev/null\n',
  });
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'tmp/uid'), 'utf8'), '65534\n');
  assert.equal(await readFile(join(tree, 'tmp/pwd'), 'utf8'), '/w/x\n');
  assert.equal(await readFile(join(tree, 'tmp/a'), 'utf8'), '1\n');
  // busybox has no /etc/hosts: the sandbox's placeholder must not be committed.
  await assert.rejects(stat(join(tree, 'etc/hosts')));
  await assert.rejects(stat(join(tree, 'etc/resolv.conf')));
});

test('COPY of a directory copies its contents; symlinks stay symlinks; --chown and --chmod apply', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nCOPY --chown=nobody:nogroup --chmod=640 d /dest/\nCOPY d/sub/f /file-as-named\n', 'd/a': 'A', 'd/sub/f': 'F' });
  await symlink('a', join(dir, 'd/link'));
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'dest/a'), 'utf8'), 'A');
  assert.equal(await readFile(join(tree, 'dest/sub/f'), 'utf8'), 'F');
  assert.equal(await readlink(join(tree, 'dest/link')), 'a');
  const st = await stat(join(tree, 'dest/a'));
  assert.equal(st.uid, 65534);
  assert.equal(st.gid, 65534);
  assert.equal(st.mode & 0o777, 0o640);
  assert.equal(await readFile(join(tree, 'file-as-named'), 'utf8'), 'F');
  assert.ok((await lstat(join(tree, 'dest'))).isDirectory());
});

test('COPY wildcards and several sources need a directory destination', async () => {
  const ok = await context({ Dockerfile: 'FROM busybox\nCOPY *.txt /t/\n', 'a.txt': 'a', 'b.txt': 'b', 'c.md': 'c' });
  const tree = await buildTree(ok);
  assert.deepEqual((await readdir(join(tree, 't'))).sort(), ['a.txt', 'b.txt']);
  const bad = await context({ Dockerfile: 'FROM busybox\nCOPY a.txt b.txt /notadir\n', 'a.txt': 'a', 'b.txt': 'b' });
  const r = await build(bad);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Dockerfile:2: COPY failed: when using COPY with more than one source file, the destination must be a directory/);
});

test('.dockerignore hides files from COPY', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nCOPY . /app/\n', '.dockerignore': 'secret.txt\n*.log\n', 'secret.txt': 's', 'keep.txt': 'k', 'x.log': 'l' });
  const tree = await buildTree(dir);
  const files = (await readdir(join(tree, 'app'))).sort();
  assert.deepEqual(files, ['.dockerignore', 'Dockerfile', 'keep.txt']);
});

test('ADD of a local gzip tarball unpacks it into the destination', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nADD files.tar.gz /unpacked/\n' });
  const src = join(work, `tarsrc-${++n}`);
  await mkdir(join(src, 'inner'), { recursive: true });
  await writeFile(join(src, 'inner', 'x'), 'from tar');
  execFileSync('tar', ['-czf', join(dir, 'files.tar.gz'), '-C', src, 'inner']);
  const tree = await buildTree(dir);
  assert.equal(await readFile(join(tree, 'unpacked/inner/x'), 'utf8'), 'from tar');
});

test('ONBUILD triggers of a base image run in the downstream build', async () => {
  const base = await context({ Dockerfile: 'FROM busybox\nONBUILD COPY app.txt /app/\nONBUILD RUN echo triggered > /app/ran\n' });
  assert.equal((await build(base, ['-t', 'onbuild-base'])).code, 0);
  const down = await context({ Dockerfile: 'FROM onbuild-base\nRUN ls /app > /listing\n', 'app.txt': 'app' });
  assert.equal((await build(down, ['-t', 'onbuild-down'])).code, 0);
  const tree = await buildTree(down);
  assert.equal(await readFile(join(tree, 'listing'), 'utf8'), 'app.txt\nran\n');
  const img = await inspect('onbuild-down');
  assert.equal(img.Config.OnBuild ?? null, null);
});

test('a second Dockerfile can build FROM an image built earlier', async () => {
  const a = await context({ Dockerfile: 'FROM busybox\nRUN echo layer-a > /a\n' });
  assert.equal((await build(a, ['-t', 'chain-a:1'])).code, 0);
  const b = await context({ Dockerfile: 'FROM chain-a:1\nRUN cat /a > /b\n' });
  const tree = await buildTree(b);
  assert.equal(await readFile(join(tree, 'b'), 'utf8'), 'layer-a\n');
});

test('output types oci and docker write archives skopeo accepts', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo x > /x\n' });
  for (const type of ['oci', 'docker'] as const) {
    const dest = join(work, `out-${++n}.tar`);
    const r = await build(dir, ['-t', `out-${type}`, '-o', `type=${type},dest=${dest}`]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(execFileSync('skopeo', ['inspect', `${type === 'oci' ? 'oci-archive' : 'docker-archive'}:${dest}`], { encoding: 'utf8' }));
    assert.equal(info.Layers.length, 2);
  }
});

test('--iidfile receives the image ID', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nLABEL a=b\n' });
  const iid = join(work, 'iid');
  const out = await kilnOk(root, ['build', '-q', '--iidfile', iid, dir]);
  assert.equal(await readFile(iid, 'utf8'), out.trim());
});

// Bad input: each gives a clear error naming the Dockerfile line, a non-zero exit, and tags nothing.

async function expectFailure(files: Record<string, string>, pattern: RegExp, args: string[] = []): Promise<void> {
  const dir = await context(files);
  const tag = `bad-${n}`;
  const r = await build(dir, ['-t', tag, ...args]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, pattern);
  const images = await kilnOk(root, ['images', '--format', 'json']);
  assert.doesNotMatch(images, new RegExp(`"Repository":"${tag}"`));
}

test('a syntax error names the Dockerfile line', () => expectFailure({ Dockerfile: 'FROM busybox\nCOPY --chmode=644 a /a\n' }, /Dockerfile:2: unknown flag/));

test('a missing COPY source names the path and the line', () => expectFailure({ Dockerfile: 'FROM busybox\n\nCOPY nothere.txt /x\n' }, /Dockerfile:3: COPY failed: "nothere.txt" not found/));

test('a COPY source outside the context is an error', () => expectFailure({ Dockerfile: 'FROM busybox\nCOPY ../etc/passwd /x\n' }, /Dockerfile:2: COPY failed: source "..\/etc\/passwd" is outside the build context/));

test('a failing RUN prints the command, exit code and output, and tags nothing', () =>
  expectFailure({ Dockerfile: 'FROM busybox\nRUN echo doomed && exit 3\n' }, /Dockerfile:2: RUN failed: .*exit code: 3[\s\S]*doomed/));

test('an unknown --from stage is an error', () => expectFailure({ Dockerfile: 'FROM busybox\nCOPY --from=nosuchstage /a /a\n' }, /Dockerfile:2/));

test('a --target that does not exist is an error', () => expectFailure({ Dockerfile: 'FROM busybox\n' }, /target stage "nope" could not be found|nope/, ['--target', 'nope']));

test('an unknown USER fails the RUN that needs it', () => expectFailure({ Dockerfile: 'FROM busybox\nUSER ghost\nRUN true\n' }, /Dockerfile:3: unable to find user ghost/));

test('a base image that is not in the store is an error', () => expectFailure({ Dockerfile: 'FROM not-loaded-anywhere:1\n' }, /Dockerfile:1: base image "not-loaded-anywhere:1" not found/, ['--pull', 'never']));

test('an interrupted build stops the sandbox, tags nothing and leaves no mount behind', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN sleep 60\n' });
  const child = spawn(process.execPath, [kilnMain, 'build', '--progress', 'plain', '-t', 'interrupted', dir], { env: { ...process.env, KILN_ROOT: root } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (/RUN sleep 60/.test(stderr)) {
        clearInterval(poll);
        setTimeout(resolve, 500);
      }
    }, 50);
  });
  child.kill('SIGINT');
  // Had the interrupt not stopped the sandbox, the build would finish the sleep and exit 0.
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 130);
  const mounts = await readFile('/proc/mounts', 'utf8');
  assert.ok(!mounts.includes(root), 'a mount under the store survived');
  const leftovers = await readdir(join(root, 'snapshots', 'tmp')).catch(() => []);
  assert.deepEqual(leftovers, []);
  const images = await kilnOk(root, ['images', '--format', 'json']);
  assert.doesNotMatch(images, /interrupted/);
});

test('a cache mount keeps its files across builds, starts empty under --no-cache, and never lands in a layer', async () => {
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/var/cache/pkg ls /var/cache/pkg > /seen && date > /var/cache/pkg/downloaded-$RANDOM\n' });
  assert.equal((await build(dir)).code, 0);
  const again = await context({ Dockerfile: 'FROM busybox\nENV AGAIN=1\nRUN --mount=type=cache,target=/var/cache/pkg ls /var/cache/pkg > /seen\n' });
  const kept = await buildTree(again);
  assert.match(await readFile(join(kept, 'seen'), 'utf8'), /downloaded-/);
  await assert.rejects(stat(join(kept, 'var/cache/pkg')));
  // BuildKit frontend/dockerfile/dockerfile_cache_test.go testCacheMountModeNoCache: with no-cache a
  // cache mount starts empty (test/build/buildkit/cache.test.ts mirrors it).
  const tree = await buildTree(dir, ['--no-cache']);
  assert.equal(await readFile(join(tree, 'seen'), 'utf8'), '');
  await kilnOk(root, ['builder', 'prune']);
  const after = await buildTree(dir, ['--no-cache']);
  assert.equal(await readFile(join(after, 'seen'), 'utf8'), '');
});

test('a secret is readable by RUN and appears in no blob, store file or output', async () => {
  const secret = `s3cr3t-${Date.now()}-value`;
  const secretFile = join(work, 'secret.txt');
  await writeFile(secretFile, secret);
  const storeDir = join(work, `secret-store-${++n}`);
  await kilnOk(storeDir, ['load', '-i', fixture('busybox')]);
  const ok = await context({
    Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=tok,required=true test -s /run/secrets/tok && cp /run/secrets/tok /tmp/gone && rm /tmp/gone && echo used > /used\n',
  });
  const r = await kiln(storeDir, ['build', '--progress', 'plain', '--secret', `id=tok,src=${secretFile}`, '-t', 'with-secret', ok]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));
  let grep = '';
  try {
    grep = execFileSync('grep', ['-rIl', '--', secret, storeDir], { encoding: 'utf8' });
  } catch {
    /* grep exits 1 when nothing matches */
  }
  assert.equal(grep, '', 'secret found in store files');
  // Layers are gzip: search their decompressed content too.
  const { gunzipSync } = await import('node:zlib');
  for (const b of await readdir(join(storeDir, 'blobs', 'sha256'))) {
    const data = await readFile(join(storeDir, 'blobs', 'sha256', b));
    const plain = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
    assert.ok(!plain.includes(secret), `secret in blob ${b}`);
  }
  const tree = join(work, `secret-tree-${++n}`);
  await kilnOk(storeDir, ['build', '-q', '--secret', `id=tok,src=${secretFile}`, '-o', `type=local,dest=${tree}`, ok]);
  await assert.rejects(stat(join(tree, 'run/secrets')));
  assert.equal(await readFile(join(tree, 'used'), 'utf8'), 'used\n');
  const missing = await kiln(storeDir, ['build', '--no-cache', ok]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /Dockerfile:2: secret "tok" is required/);
});

test('the copy snapshotter (used when overlay mounts are not allowed) gives the same tree as overlay', async () => {
  const dir = await context({
    Dockerfile: 'FROM busybox\nRUN rm /etc/group && rm -rf /home && mkdir /home && touch /home/new && ln -s /home/new /link\nCOPY f /f\nRUN chmod 600 /f && echo more >> /etc/passwd\n',
    f: 'file',
  });
  const trees: string[] = [];
  for (const snapshotter of ['overlay', 'copy']) {
    const dest = join(work, `snap-${snapshotter}-${++n}`);
    const r = await kiln(root, ['build', '-q', '--no-cache', '-o', `type=local,dest=${dest}`, dir], { env: { KILN_SNAPSHOTTER: snapshotter } });
    assert.equal(r.code, 0, r.stderr);
    trees.push(execFileSync('find', ['.', '-printf', '%p %y %m %U %G %s %l\\n'], { cwd: dest, encoding: 'utf8' }).split('\n').sort().join('\n'));
  }
  assert.equal(trees[1], trees[0]);
  assert.match(trees[0]!, /\.\/home\/new f 644/);
  assert.doesNotMatch(trees[0]!, /\.\/etc\/group /);
});

test('with SOURCE_DATE_EPOCH two cold builds of the same inputs in different places give the same image', async () => {
  const files = { Dockerfile: 'FROM busybox AS b\nWORKDIR /w\nCOPY f .\nRUN echo x > /w/g\nFROM busybox\nCOPY --from=b /w /w\nRUN touch /stamp\n', f: 'same' };
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const dir = await context(files);
    const store = join(work, `repro-${++n}`);
    await kilnOk(store, ['load', '-i', fixture('busybox')]);
    ids.push((await kilnOk(store, ['build', '-q', dir], { env: { SOURCE_DATE_EPOCH: '1700000000' } })).trim());
    if (i === 0) await new Promise((r) => setTimeout(r, 1100));
  }
  assert.equal(ids[1], ids[0]);
  const dir = await context({ Dockerfile: 'FROM busybox\nRUN touch /x\n' });
  const t0 = Date.now();
  await kilnOk(root, ['build', '-q', '--no-cache', '-t', 'real-time', dir]);
  const img = await inspect('real-time');
  assert.ok(Date.parse(img.Created) >= t0 - 2000, `created ${img.Created}`);
});

test('--build-context adds a directory for COPY --from and an image alias for FROM; a name that is a stage replaces the stage', async () => {
  const extra = await context({ 'e.txt': 'extra' });
  const dir = await context({ Dockerfile: 'FROM alias\nCOPY --from=extra e.txt /e.txt\n' });
  const tree = await buildTree(dir, ['--build-context', `extra=${extra}`, '--build-context', 'alias=docker-image://busybox:latest']);
  assert.equal(await readFile(join(tree, 'e.txt'), 'utf8'), 'extra');
  assert.ok((await lstat(join(tree, 'bin/busybox'))).isFile());
  // BuildKit gives the stage the context and drops its FROM and instructions (dockerfile2llb/convert.go:460-474).
  const replaced = await context({ Dockerfile: 'FROM busybox AS extra\nRUN touch /ran\nFROM extra\n' });
  const tree2 = await buildTree(replaced, ['--build-context', `extra=${extra}`]);
  assert.deepEqual(await readdir(tree2), ['e.txt']);
  // An image replaces a stage with its config: FROM <stage> sees its ENV and WORKDIR; its ONBUILD does not run.
  await kilnOk(root, ['build', '-q', '-t', 'replacing-image', await context({ Dockerfile: 'FROM busybox\nENV FOO=bar\nWORKDIR /w\nONBUILD RUN touch /onbuild\n' })]);
  const fromImage = await context({ Dockerfile: 'FROM busybox AS base\nRUN false\nFROM base\nRUN echo "$FOO $(pwd)" > /out; ls /onbuild >> /out 2>&1 || true\n' });
  const tree3 = await buildTree(fromImage, ['--build-context', 'base=docker-image://replacing-image']);
  assert.match(await readFile(join(tree3, 'out'), 'utf8'), /^bar \/w\n.*No such file/);
  // An alias naming itself is the image of that name (it recursed until the stack overflowed).
  const tree4 = await buildTree(await context({ Dockerfile: 'FROM busybox\nRUN touch /self\n' }), ['--build-context', 'busybox=docker-image://busybox']);
  assert.ok((await lstat(join(tree4, 'self'))).isFile());
});

test('a COPY of 1,200 files (extracted on a thread of its own while it is written) is all there for the next RUN and in the image', async () => {
  const files: Record<string, string> = { Dockerfile: 'FROM busybox\nCOPY . /ctx\nRUN find /ctx -type f | wc -l > /count && cat /ctx/d7/f77\n' };
  for (let i = 0; i < 1200; i++) files[`d${i % 10}/f${i}`] = `${i}\n`;
  const dir = await context(files);
  const r = await build(dir, ['-t', 'many-files']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /\n#\d+ 0\.\d+ 77\n/, 'the RUN read a copied file');
  const tree = await buildTree(dir);
  assert.equal((await readFile(join(tree, 'count'), 'utf8')).trim(), '1201');
  assert.equal(await readFile(join(tree, 'ctx', 'd3', 'f1193'), 'utf8'), '1193\n');
});
