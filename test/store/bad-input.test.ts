import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { spawn } from 'node:child_process';
import { ContentStore } from '../../src/store/content.js';
import { fixture, kiln, kilnMain, kilnOk } from '../support/env.js';
import { assertBlobsIntact, assertOneLineError, assertUnchanged, fileDir, indexSnapshot, makeTar, readArchive, sha256hex, writeArchive } from './support.js';

// Each bad input gives one line of error, a non-zero exit, and leaves the store as it was.

const root = fileDir('kiln-bad-root-');
const work = fileDir('kiln-bad-work-');
let busybox: Map<string, Buffer>;

before(async () => {
  // The store holds another image, not busybox: a blob already in the store is rightly taken from
  // the store without reading the archive's copy, so the archives below must bring new content.
  const tarball = join(work, 'base.tar');
  writeFileSync(tarball, makeTar([{ header: { path: 'etc', type: 'directory' } }, { header: { path: 'etc/motd', type: 'file' }, content: 'base\n' }]));
  await kilnOk(root, ['import', tarball, 'base:1']);
  busybox = await readArchive(fixture('busybox', 'oci'));
});

/** The busybox OCI archive with `change` applied to its files, written to a file. */
function variant(name: string, change: (files: Map<string, Buffer>) => void): string {
  const files = new Map(busybox);
  change(files);
  const path = join(work, name);
  writeFileSync(path, writeArchive(files));
  return path;
}

function manifestPath(files: Map<string, Buffer>): string {
  const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: { digest: string }[] };
  return `blobs/sha256/${index.manifests[0]!.digest.slice(7)}`;
}

async function expectRejected(args: string[], message: RegExp, opts: { fresh?: boolean } = {}): Promise<void> {
  // Blobs an earlier failed load completed stay until gc (unreferenced, invisible), and a blob already
  // present is taken from the store, not from the archive: clear them when the archive must be read for real.
  if (opts.fresh) await kilnOk(root, ['prune']);
  const before = indexSnapshot(root);
  assertOneLineError(await kiln(root, args), message);
  await assertUnchanged(root, before);
  assertBlobsIntact(root);
}

test('a corrupt gzip archive is rejected', async () => {
  const gz = Buffer.from(gzipSync(readFileSync(fixture('busybox', 'oci'))));
  for (let i = gz.length >> 1; i < (gz.length >> 1) + 64; i++) gz[i]! ^= 0x55;
  const path = join(work, 'corrupt.tar.gz');
  writeFileSync(path, gz);
  await expectRejected(['load', '-i', path], /gzip/);
});

test('a truncated archive is rejected', async () => {
  const whole = readFileSync(fixture('busybox', 'oci'));
  const path = join(work, 'truncated.tar');
  writeFileSync(path, whole.subarray(0, Math.floor(whole.length * 0.6)));
  await expectRejected(['load', '-i', path], /end of data|truncated/i);
});

test('a truncated gzip archive is rejected', async () => {
  const gz = gzipSync(readFileSync(fixture('busybox', 'oci')));
  const path = join(work, 'truncated.tar.gz');
  writeFileSync(path, gz.subarray(0, gz.length >> 1));
  await expectRejected(['load', '-i', path], /gzip|end of/i);
});

test('a blob whose content does not match its digest name is rejected', async () => {
  const path = variant('mismatch.tar', (files) => {
    const index = JSON.parse(files.get(manifestPath(files))!.toString()) as { config: { digest: string } };
    const name = `blobs/sha256/${index.config.digest.slice(7)}`;
    const config = Buffer.from(files.get(name)!);
    config[config.indexOf('linux')] = 'L'.charCodeAt(0); // same size, different digest
    files.set(name, config);
  });
  await expectRejected(['load', '-i', path], /digest sha256:[0-9a-f]{64}, expected sha256:/, { fresh: true });
});

test('a manifest pointing at a missing blob is rejected', async () => {
  const path = variant('missing.tar', (files) => {
    const manifest = JSON.parse(files.get(manifestPath(files))!.toString()) as { layers: { digest: string }[] };
    files.delete(`blobs/sha256/${manifest.layers[0]!.digest.slice(7)}`);
  });
  await expectRejected(['load', '-i', path], /references blob sha256:[0-9a-f]{64} .*missing/, { fresh: true });
});

test('an unknown media type in a manifest is rejected', async () => {
  const path = variant('mediatype.tar', (files) => {
    const old = manifestPath(files);
    const manifest = JSON.parse(files.get(old)!.toString()) as { layers: { mediaType: string }[] };
    manifest.layers[0]!.mediaType = 'application/vnd.example.unknown';
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = sha256hex(bytes);
    files.delete(old);
    files.set(`blobs/sha256/${digest}`, bytes);
    const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: { digest: string; size: number }[] };
    index.manifests[0]!.digest = `sha256:${digest}`;
    index.manifests[0]!.size = bytes.length;
    files.set('index.json', Buffer.from(JSON.stringify(index)));
  });
  await expectRejected(['load', '-i', path], /unsupported media type "application\/vnd\.example\.unknown"/);
});

test('an invalid reference in kiln tag is rejected, saying why', async () => {
  await expectRejected(['tag', 'base:1', 'Busybox:latest'], /invalid reference "Busybox:latest": repository name must be lowercase/);
  await expectRejected(['tag', 'base:1', 'busybox:-bad'], /invalid reference "busybox:-bad": .*not a valid tag/);
});

test('kiln save of an unknown image fails and writes no file', async () => {
  const out = join(work, 'never.tar');
  await expectRejected(['save', '-o', out, 'no-such-image:1'], /image "no-such-image:1" not found/);
  assert.equal(existsSync(out), false);
});

test('load of a file that is not an archive is rejected', async () => {
  const text = join(work, 'notes.txt');
  writeFileSync(text, 'these are notes, not an image archive\n'.repeat(100));
  await expectRejected(['load', '-i', text], /tar|archive/i);
  const empty = join(work, 'empty');
  writeFileSync(empty, '');
  await expectRejected(['load', '-i', empty], /empty or not a tar archive/);
});

test('save and export to a reader that goes away early: a one-line error and exit 1, never a crash', async () => {
  // busybox: a megabyte, far more than a pipe holds, so the writer is still writing when the reader leaves.
  const own = fileDir('kiln-bad-epipe-');
  await kilnOk(own, ['load', '-q', '-i', fixture('busybox', 'oci')]);
  for (const args of [['save', 'busybox'], ['save', '--format', 'oci', 'busybox'], ['export', 'busybox']]) {
    // The reader takes the first chunk and closes the pipe, as `| head -c 100` does.
    const child = spawn(process.execPath, [kilnMain, ...args], { env: { ...process.env, KILN_ROOT: own }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 1, `${args.join(' ')}: ${stderr}`);
    assert.match(stderr, /^Error: standard output was closed before the (tar )?archive was complete\n$/, args.join(' '));
  }
});

test('content whose stream fails, before it is read or part way, is refused and leaves no file behind', async () => {
  const dir = fileDir('kiln-bad-content-');
  const content = new ContentStore(dir);
  const early = new PassThrough();
  early.on('error', () => {}); // as a producer's own pipeline would listen
  early.destroy(new Error('failed before the store read it'));
  await assert.rejects(content.put(early), /failed before the store read it/);
  const partway = new PassThrough();
  partway.on('error', () => {});
  partway.write(Buffer.alloc(100_000, 1));
  setImmediate(() => partway.destroy(new Error('connection reset')));
  await assert.rejects(content.put(partway), /connection reset/);
  const cut = new PassThrough();
  cut.write('some bytes');
  setImmediate(() => cut.destroy());
  await assert.rejects(content.put(cut), /closed before its end/);
  const long = Readable.from([Buffer.alloc(10, 2), Buffer.alloc(10, 3)]);
  await assert.rejects(content.put(long, { size: 15, what: 'layer 1' }), /layer 1: more than the expected 15 bytes/);
  assert.deepEqual(readdirSync(join(dir, 'ingest')), []);
  assert.ok(!existsSync(join(dir, 'blobs')), 'no blob was committed');
});
