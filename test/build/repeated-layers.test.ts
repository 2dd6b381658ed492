// Images with the same layer twice, as builds make them (RUNs that change nothing, identical COPYs,
// RUNs that write only into a cache mount) and as an archive may list them (one digest twice in a
// manifest): every step after them builds, and the image runs, starts, diffs, commits and passes
// structure tests with the files its layers give applied in order. And FROM scratch steps in a
// store that has extracted no layer yet.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';

let work: string;
let root: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-repeated-build-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
});

after(async () => {
  const ids = (await kiln(root, ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await kiln(root, ['rm', '-f', ...ids]);
  await rm(work, { recursive: true, force: true });
});

let contexts = 0;

/**
 * Build `dockerfile` (with `files` in its context) as `tag` in `store`; returns kiln's result.
 * SOURCE_DATE_EPOCH clamps every mtime, so that RUNs that change nothing but a directory's mtime
 * (/etc, where the sandbox puts hosts and resolv.conf) give the same layer whatever the clock says.
 */
async function build(tag: string, dockerfile: string, files: Record<string, string> = {}, store = root) {
  const ctx = join(work, `ctx-${contexts++}`);
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  for (const [name, content] of Object.entries(files)) await writeFile(join(ctx, name), content);
  return kiln(store, ['build', '-q', '--build-arg', 'SOURCE_DATE_EPOCH=0', '-t', tag, ctx]);
}

async function buildOk(tag: string, dockerfile: string, files: Record<string, string> = {}, store = root): Promise<void> {
  const r = await build(tag, dockerfile, files, store);
  assert.equal(r.code, 0, `kiln build ${tag}: ${r.stderr}`);
}

async function diffIds(image: string): Promise<string[]> {
  return JSON.parse(await kilnOk(root, ['inspect', image]))[0].RootFS.Layers;
}

/** The case is about a repeated layer: check the image has one, or the test would test nothing. */
async function assertRepeats(image: string): Promise<void> {
  const ids = await diffIds(image);
  assert.ok(new Set(ids).size < ids.length, `${image} has no repeated layer (${ids.join(' ')}): make the case give one another way`);
}

/** Nothing of the store is left mounted. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

test('three RUNs that change nothing build, each with the same empty layer, and the next steps and the image run', async () => {
  await buildOk('three-runs', 'FROM busybox\nRUN echo a\nRUN echo b\nRUN echo c\nRUN echo d > /d\n');
  // The /etc the sandbox copied up for its hosts and resolv.conf mount points is not a change
  // (BuildKit util/overlay/overlay_linux.go Changes skips a directory whose mode and owner match),
  // and a RUN that changes nothing still has a layer, empty (BuildKit dockerfile2llb/convert.go:1505
  // commits every RUN with a layer): the same one three times, stacked as overlayfs refuses to.
  const base = (await diffIds('busybox')).length;
  const ids = await diffIds('three-runs');
  assert.equal(ids.length, base + 4);
  const emptyTar = 'sha256:' + createHash('sha256').update(Buffer.alloc(1024)).digest('hex');
  assert.deepEqual(ids.slice(base, base + 3), [emptyTar, emptyTar, emptyTar]);
  assert.notEqual(ids[base + 3], emptyTar, 'RUN echo d > /d adds /d');
  assert.equal(await kilnOk(root, ['run', '--rm', 'three-runs', 'cat', '/d']), 'd\n');
  assert.deepEqual(mountsUnder(root), []);
});

test('RUNs that write the same file again give the same layer twice, and the steps after them build', async () => {
  await buildOk('same-run-twice', 'FROM busybox\nRUN echo same > /gen\nRUN echo same > /gen\nRUN echo other > /o\nRUN echo same > /gen\nRUN cat /gen /o > /both\n');
  await assertRepeats('same-run-twice');
  assert.equal(await kilnOk(root, ['run', '--rm', 'same-run-twice', 'cat', '/both']), 'same\nother\n');
  assert.deepEqual(mountsUnder(root), []);
});

test('A B A: a COPY repeated after a RUN removed its file brings the file back for the steps after it', async () => {
  await buildOk('aba', 'FROM busybox\nCOPY f /f\nRUN rm /f\nCOPY f /f\nRUN cat /f > /g\n', { f: 'from the context\n' });
  const ids = await diffIds('aba');
  assert.equal(ids[1], ids[3], 'the two COPYs give one layer');
  assert.equal(await kilnOk(root, ['run', '--rm', 'aba', 'cat', '/f', '/g']), 'from the context\nfrom the context\n');
});

test('A A B: two identical COPYs in a row, then a RUN on them', async () => {
  await buildOk('aab', 'FROM busybox\nCOPY f /f\nCOPY f /f\nRUN cat /f > /g && rm /f\n', { f: 'twice\n' });
  const ids = await diffIds('aab');
  assert.equal(ids[1], ids[2], 'the two COPYs give one layer');
  assert.equal(await kilnOk(root, ['run', '--rm', 'aab', 'sh', '-c', 'cat /g; test -e /f || echo no-f']), 'twice\nno-f\n');
});

test('--on-error=shell opens its shell on a snapshot with a repeated layer, with the files of the layers applied in order', async () => {
  const ctx = join(work, 'ctx-debug');
  await mkdir(ctx);
  await writeFile(join(ctx, 'f'), 'copied\n');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY f /f\nRUN rm /f\nCOPY f /f\nRUN echo partial > /p && exit 3\n');
  const r = await kiln(root, ['build', '--on-error=shell', '--progress', 'plain', ctx], { input: 'cat /f /p; exit\n' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /RUN failed \(exit code 3\): a shell in its sandbox follows/);
  assert.equal(r.stdout, 'copied\npartial\n');
});

test('RUNs that write only into a cache mount, then a RUN after them', async () => {
  await buildOk('cache-only', 'FROM busybox\nRUN --mount=type=cache,target=/c touch /c/x\nRUN --mount=type=cache,target=/c touch /c/x\nRUN --mount=type=cache,target=/c ls /c > /seen\n');
  const history = JSON.parse(await kilnOk(root, ['inspect', '--format', '{{json .History}}', 'cache-only'])) as { empty_layer?: boolean }[];
  assert.deepEqual(history.slice(-3).map((h) => !!h.empty_layer), [false, false, false], 'every RUN has a layer, as in BuildKit');
  const ids = await diffIds('cache-only');
  const emptyTar = 'sha256:' + createHash('sha256').update(Buffer.alloc(1024)).digest('hex');
  assert.deepEqual(ids.slice(-3, -1), [emptyTar, emptyTar], 'what goes into a cache mount is no change to the image: empty layers');
  assert.equal(await kilnOk(root, ['run', '--rm', 'cache-only', 'cat', '/seen']), 'x\n');
});

test('FROM scratch with WORKDIR, in a new store, and a COPY --from of it in a later stage', async () => {
  const fresh = join(work, 'fresh-store');
  await buildOk('scratch-workdir', 'FROM scratch\nWORKDIR /foo\n', {}, fresh);
  await buildOk('scratch-copy', 'FROM scratch\nWORKDIR /foo\nCOPY f bar\n', { f: 'in scratch\n' }, fresh);
  const listed = execFileSync('tar', ['-t'], { input: (await kiln(fresh, ['export', 'scratch-copy'], {})).stdout }).toString();
  assert.match(listed, /^(\.\/)?foo\/bar$/m);
  await kilnOk(fresh, ['load', '-q', '-i', fixture('busybox')]);
  await buildOk('from-scratch-stage', 'FROM scratch AS files\nWORKDIR /foo\nCOPY f bar\nFROM busybox\nCOPY --from=files /foo /foo\nRUN cat /foo/bar > /copied\n', { f: 'in scratch\n' }, fresh);
  assert.equal(await kilnOk(fresh, ['run', '--rm', 'from-scratch-stage', 'cat', '/foo/bar', '/copied']), 'in scratch\nin scratch\n');
});

/**
 * Load into the store an OCI archive of `image` whose manifest lists, above its first layer, the
 * layers at `order` (indexes into the image's layers): how an image pulled or loaded with a repeated
 * layer looks.
 */
async function loadReordered(image: string, order: number[], tag: string): Promise<void> {
  const dir = join(work, `layout-${tag}`);
  await mkdir(dir);
  await kilnOk(root, ['save', '--format', 'oci', '-o', join(dir, 'in.tar'), image]);
  const layout = join(dir, 'layout');
  await mkdir(layout);
  execFileSync('tar', ['-xf', join(dir, 'in.tar'), '-C', layout]);
  const blob = (digest: string) => join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const put = async (doc: unknown) => {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await writeFile(blob(digest), bytes);
    return { digest, size: bytes.length };
  };
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0].digest), 'utf8'));
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8'));
  manifest.layers = [manifest.layers[0], ...order.map((i) => manifest.layers[i])];
  config.rootfs.diff_ids = [config.rootfs.diff_ids[0], ...order.map((i: number) => config.rootfs.diff_ids[i])];
  delete config.history; // it counted the layers as built
  manifest.config = { ...manifest.config, ...(await put(config)) };
  index.manifests[0] = { ...index.manifests[0], ...(await put(manifest)), annotations: { 'io.containerd.image.name': `docker.io/library/${tag}:latest`, 'org.opencontainers.image.ref.name': 'latest' } };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  execFileSync('tar', ['-cf', join(dir, 'out.tar'), '-C', layout, '.']);
  const r = await kiln(root, ['load', '-i', join(dir, 'out.tar')]);
  assert.equal(r.code, 0, r.stderr);
}

test('an image loaded with a repeated layer (A B A, A A B) runs, starts, diffs, commits and passes structure tests with its layers applied in order', async () => {
  // Layer 1 adds /a/x, layer 2 deletes it and adds /b.
  await buildOk('parts', 'FROM busybox\nCOPY x /a/x\nRUN rm /a/x && echo b > /b\n', { x: 'x\n' });
  await loadReordered('parts', [1, 2, 1], 'repeated-aba');
  await loadReordered('parts', [1, 1, 2], 'repeated-aab');
  const ids = await diffIds('repeated-aba:latest');
  assert.equal(ids.length, 4);
  assert.equal(ids[1], ids[3]);

  assert.equal(await kilnOk(root, ['run', '--rm', 'repeated-aba', 'cat', '/a/x', '/b']), 'x\nb\n');
  assert.equal(await kilnOk(root, ['run', '--rm', 'repeated-aab', 'sh', '-c', 'ls -A /a; cat /b']), 'b\n');

  const id = (await kilnOk(root, ['create', 'repeated-aba', 'sh', '-c', 'echo new > /new; rm /a/x; cat /b'])).trim();
  assert.equal(await kilnOk(root, ['start', '-a', id]), 'b\n');
  assert.deepEqual((await kilnOk(root, ['diff', id])).split('\n').filter(Boolean), ['C /a', 'D /a/x', 'A /new']);
  await kilnOk(root, ['commit', id, 'repeated-committed']);
  assert.equal(await kilnOk(root, ['run', '--rm', 'repeated-committed', 'sh', '-c', 'cat /new /b; test -e /a/x || echo no-x']), 'new\nb\nno-x\n');

  const config = join(work, 'cst.yaml');
  await writeFile(
    config,
    [
      'schemaVersion: 2.0.0',
      'fileExistenceTests:',
      '- {name: brought back, path: /a/x, shouldExist: true}',
      '- {name: from the layer between, path: /b, shouldExist: true}',
      'fileContentTests:',
      '- {name: content, path: /a/x, expectedContents: ["^x\\n$"]}',
      'commandTests:',
      '- {name: command, command: cat, args: [/a/x, /b], expectedOutput: ["x\\nb"]}',
      '',
    ].join('\n'),
  );
  const report = await kiln(root, ['test', '--image', 'repeated-aba', '--config', config, '-o', 'json']);
  assert.equal(report.code, 0, report.stdout + report.stderr);
  const summary = JSON.parse(report.stdout) as { Pass: number; Fail: number };
  assert.deepEqual([summary.Pass, summary.Fail], [4, 0]);
  assert.deepEqual(mountsUnder(root), []);
});
