import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { kiln, kilnOk } from '../support/env.js';
import { assertOneLineError, assertUnchanged, fileDir, indexSnapshot, makeTar, run, sha256hex, treeOfTar } from './support.js';

// kiln import: a flat filesystem tarball becomes a one-layer image, as docker import makes it.

const root = fileDir('kiln-import-root-');
const work = fileDir('kiln-import-work-');
let busyboxTar: string;

before(() => {
  // A tarball with a static binary, as in docker's `docker import` example.
  const dir = join(work, 'rootfs');
  mkdirSync(dir);
  copyFileSync('/bin/busybox', join(dir, 'busybox'));
  busyboxTar = join(work, 'busybox.tar');
  run('tar', ['-C', dir, '-cf', busyboxTar, '.']);
});

interface Inspected {
  Id: string;
  Config: Record<string, unknown>;
  History: { created?: string; created_by?: string; comment?: string }[];
  RootFS: { Layers: string[] };
  Architecture: string;
  Os: string;
}

async function inspect(ref: string): Promise<Inspected> {
  return (JSON.parse(await kilnOk(root, ['inspect', ref])) as Inspected[])[0]!;
}

test('import of a tarball with a static binary makes a one-layer image; history shows that layer', async () => {
  const out = await kilnOk(root, ['import', '-c', 'CMD ["/busybox","true"]', busyboxTar, 'static:1']);
  assert.match(out, /^sha256:[0-9a-f]{64}\n$/);
  const img = await inspect('static:1');
  assert.equal(img.Id, out.trim());
  assert.deepEqual(img.Config, { Cmd: ['/busybox', 'true'] }, 'no PATH, no WorkingDir: docker import starts from an empty config');
  // The tar passes through unchanged, so its digest is the layer's diffID.
  assert.deepEqual(img.RootFS.Layers, [`sha256:${sha256hex(readFileSync(busyboxTar))}`]);
  assert.equal(img.History.length, 1);
  assert.equal(img.History[0]!.comment, `Imported from ${busyboxTar}`);
  assert.equal(img.Os, 'linux');

  const rows = (await kilnOk(root, ['history', 'static:1'])).trimEnd().split('\n');
  assert.equal(rows.length, 2, 'a header and one layer');
  const cells = rows[1]!.split(/ {2,}/);
  assert.equal(cells[0], img.Id.slice(7, 19));
  assert.match(cells[cells.length - 2]!, /^\d(\.\d+)?MB$/);
  assert.equal(cells[cells.length - 1], `Imported from ${busyboxTar}`);

  const flat = join(work, 'static.tar');
  await kilnOk(root, ['export', '-o', flat, 'static:1']);
  const exported = await treeOfTar(readFileSync(flat));
  assert.equal(exported.tree.busybox!.sha, sha256hex(readFileSync('/bin/busybox')));
  assert.equal(exported.tree.busybox!.mode, (statSync('/bin/busybox').mode & 0o7777).toString(8));
});

test('-c changes are applied as docker import -c applies them', async () => {
  const changes = [
    'ENV A=1 B=$PATH',
    'ENV C ${A}-x',
    'WORKDIR app',
    'WORKDIR sub',
    'EXPOSE 80 53/udp',
    'LABEL org.example.name="kiln test" b=2',
    'USER 1000:1000',
    'VOLUME ["/data", "/cache"]',
    'STOPSIGNAL SIGTERM',
    'ENTRYPOINT ["/busybox"]',
    'cmd sh -c true',
  ];
  await kilnOk(root, ['import', ...changes.flatMap((c) => ['-c', c]), busyboxTar, 'changed:1']);
  const img = await inspect('changed:1');
  assert.deepEqual(img.Config, {
    User: '1000:1000',
    ExposedPorts: { '53/udp': {}, '80/tcp': {} },
    Env: ['A=1', 'B=', 'C=1-x'],
    Entrypoint: ['/busybox'],
    Cmd: ['/bin/sh', '-c', 'sh -c true'],
    Volumes: { '/cache': {}, '/data': {} },
    WorkingDir: '/app/sub',
    Labels: { b: '2', 'org.example.name': 'kiln test' },
    StopSignal: 'SIGTERM',
  });
  // ENTRYPOINT alone drops a CMD set before it in docker's builder only when none was set: here none is.
  await kilnOk(root, ['import', '-c', 'ENTRYPOINT ["/busybox", "sh"]', '-c', 'ENV PATH=/bin:$PATH', busyboxTar, 'changed:2']);
  assert.deepEqual((await inspect('changed:2')).Config, { Env: ['PATH=/bin:'], Entrypoint: ['/busybox', 'sh'] });
});

test('import reads gzip from stdin and zstd from a file; -m replaces the comment', async () => {
  const id = (await kilnOk(root, ['import', '-m', 'from a pipe', '-', 'piped:1'], { input: gzipSync(readFileSync(busyboxTar)) })).trim();
  const piped = await inspect('piped:1');
  assert.equal(piped.Id, id);
  assert.equal(piped.History[0]!.comment, 'from a pipe');
  // The diffID is that of the uncompressed tar, whatever the tarball's compression.
  assert.deepEqual(piped.RootFS.Layers, [`sha256:${sha256hex(readFileSync(busyboxTar))}`]);

  const zst = join(work, 'busybox.tar.zst');
  run('zstd', ['-q', '-f', busyboxTar, '-o', zst]);
  await kilnOk(root, ['import', zst, 'zstd:1']);
  assert.deepEqual((await inspect('zstd:1')).RootFS.Layers, piped.RootFS.Layers);
});

test('import fetches an http URL and names it in the history', async (t) => {
  const body = readFileSync(busyboxTar);
  const server = createServer((req, res) => {
    if (req.url === '/rootfs.tar') res.end(body);
    else res.writeHead(404).end('not here');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await kilnOk(root, ['import', `${base}/rootfs.tar`, 'fetched:1']);
  assert.equal((await inspect('fetched:1')).History[0]!.comment, `Imported from ${base}/rootfs.tar`);

  const before = indexSnapshot(root);
  assertOneLineError(await kiln(root, ['import', `${base}/missing.tar`, 'fetched:2']), /HTTP 404/);
  await assertUnchanged(root, before);
});

/** Each of these fails with one line, exits non-zero, and adds nothing to the store: no tag, no blob. */
async function expectRejected(args: string[], message: RegExp, input?: Buffer): Promise<void> {
  const before = indexSnapshot(root);
  assertOneLineError(await kiln(root, args, { input }), message);
  const after = indexSnapshot(root);
  assert.ok(after.index.equals(before.index), 'index.json changed');
  assert.deepEqual(after.blobs, before.blobs, 'a rejected import stores no blob');
}

test('an entry outside the root is rejected: "..", absolute names, hardlinks pointing out', async () => {
  const dotdot = join(work, 'dotdot.tar');
  writeFileSync(dotdot, makeTar([{ header: { path: 'etc', type: 'directory' } }, { header: { path: 'etc/../../evil', type: 'file' }, content: 'x' }]));
  await expectRejected(['import', dotdot, 'evil:1'], /"etc\/\.\.\/\.\.\/evil" is outside the root/);
  const absolute = join(work, 'absolute.tar');
  writeFileSync(absolute, makeTar([{ header: { path: '/etc/passwd', type: 'file' }, content: 'root::0:0::/:/bin/sh\n' }]));
  await expectRejected(['import', absolute, 'evil:1'], /"\/etc\/passwd" is outside the root/);
  const link = join(work, 'link.tar');
  writeFileSync(link, makeTar([{ header: { path: 'passwd', type: 'hardlink', linkname: '../../etc/passwd' } }]));
  await expectRejected(['import', link, 'evil:1'], /hardlink target "\.\.\/\.\.\/etc\/passwd" is outside the root/);
});

test('a corrupt, truncated or non-tar tarball is rejected', async () => {
  const gz = Buffer.from(gzipSync(readFileSync(busyboxTar)));
  for (let i = gz.length >> 1; i < (gz.length >> 1) + 64; i++) gz[i]! ^= 0x55;
  await expectRejected(['import', '-', 'bad:1'], /gzip/, gz);
  const whole = readFileSync(busyboxTar);
  await expectRejected(['import', '-', 'bad:1'], /truncated tar/, whole.subarray(0, 700_000));
  await expectRejected(['import', '-', 'bad:1'], /invalid tar header/, Buffer.from('not a tarball\n'.repeat(100)));
  await expectRejected(['import', '-', 'bad:1'], /empty input/, Buffer.alloc(0));
  await expectRejected(['import', join(work, 'no-such.tar'), 'bad:1'], /no-such\.tar: no such file/);
});

test('changes other than the config instructions, and bad names, are rejected before reading the tarball', async () => {
  await expectRejected(['import', '-c', 'RUN rm -rf /', busyboxTar, 'bad:1'], /invalid change "RUN rm -rf \/": RUN is not a valid change command/);
  await expectRejected(['import', '-c', 'FROM busybox', busyboxTar, 'bad:1'], /FROM is not a valid change command/);
  await expectRejected(['import', '-c', 'COPY . /', busyboxTar, 'bad:1'], /COPY is not a valid change command/);
  await expectRejected(['import', '-c', 'EXPOSE 80', '-c', 'STOPSIGNAL NOPE', busyboxTar, 'bad:1'], /invalid change "STOPSIGNAL NOPE"/);
  await expectRejected(['import', busyboxTar, 'Bad:1'], /invalid reference "Bad:1"/);
});
