import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ArchiveInvalid } from '../../src/errors.js';
import { applyLayer, listLayer, packDirectory } from '../../src/archive/index.js';
import { readXattr, writeXattr } from '../../src/archive/xattr.js';
import { bufferStream, collect, craftTar, describeTree, sha256hex, tempDir, type Crafted } from './fixtures.js';

async function applyAll(dest: string, layers: Crafted[][], whiteouts: 'delete' | 'overlay' = 'delete'): Promise<void> {
  for (const l of layers) await applyLayer(bufferStream(await craftTar(l)), dest, { whiteouts });
}

function listing(root: string): string[] {
  return Object.entries(describeTree(root, { mtimes: false })).map(([p, d]) => (d.type === 'dir' ? p + '/' : p));
}

const lower: Crafted[] = [
  { name: 'a', content: 'a' },
  { name: 'b/', type: 'directory' },
  { name: 'b/c', content: 'c' },
  { name: 'b/c2', content: 'c2' },
  { name: 'd/', type: 'directory' },
  { name: 'd/x', content: 'x' },
  { name: 'd/sub/', type: 'directory' },
  { name: 'd/sub/y', content: 'y' },
  { name: 'e/', type: 'directory' },
  { name: 'e/deep/', type: 'directory' },
  { name: 'e/deep/file', content: 'f' },
];

describe('applyLayer in delete mode', () => {
  test('whiteouts delete files and whole directories from lower layers', async () => {
    const t = tempDir();
    try {
      await applyAll(t.dir, [lower, [{ name: '.wh.a' }, { name: 'b/.wh.c' }, { name: '.wh.e' }]]);
      assert.deepEqual(listing(t.dir), ['b/', 'b/c2', 'd/', 'd/sub/', 'd/sub/y', 'd/x']);
    } finally {
      t.cleanup();
    }
  });

  test('an opaque directory loses everything from lower layers but keeps what its own layer adds, wherever the marker is', async () => {
    for (const markerFirst of [true, false]) {
      const t = tempDir();
      try {
        const marker: Crafted = { name: 'd/.wh..wh..opq' };
        const adds: Crafted[] = [
          { name: 'd/', type: 'directory' },
          { name: 'd/new', content: 'n' },
          { name: 'd/sub/z', content: 'z' },
        ];
        await applyAll(t.dir, [lower, markerFirst ? [marker, ...adds] : [...adds, marker]]);
        assert.deepEqual(listing(t.dir), ['a', 'b/', 'b/c', 'b/c2', 'd/', 'd/new', 'd/sub/', 'd/sub/z', 'e/', 'e/deep/', 'e/deep/file'], `marker first: ${markerFirst}`);
      } finally {
        t.cleanup();
      }
    }
  });

  test('a whiteout never deletes what its own layer adds', async () => {
    const t = tempDir();
    try {
      await applyAll(t.dir, [lower, [{ name: 'a', content: 'new a' }, { name: '.wh.a' }, { name: '.wh.b' }, { name: 'b/c3', content: '3' }]]);
      assert.equal(readFileSync(join(t.dir, 'a'), 'utf8'), 'new a');
      assert.deepEqual(listing(t.dir).filter((p) => p.startsWith('b')), ['b/', 'b/c3']);
    } finally {
      t.cleanup();
    }
  });

  test('entries replace what is there; a directory over a directory merges', async () => {
    const t = tempDir();
    try {
      await applyAll(t.dir, [
        [
          { name: 'f', content: 'old' },
          { name: 'f2', content: 'old' },
          { name: 'd/', type: 'directory' },
          { name: 'd/x', content: 'x' },
          { name: 'm/', type: 'directory', mode: 0o755 },
          { name: 'm/keep', content: 'k' },
          { name: 'target', content: 'target' },
          { name: 's', type: 'symlink', linkname: 'target' },
        ],
        [
          { name: 'f', content: 'new' }, // file over file
          { name: 'f2/', type: 'directory' }, // directory over file
          { name: 'd', content: 'now a file' }, // file over directory
          { name: 'm/', type: 'directory', mode: 0o700 }, // directory over directory
          { name: 's', content: 'not a link' }, // file over symlink: the link goes, its target stays
        ],
      ]);
      assert.equal(readFileSync(join(t.dir, 'f'), 'utf8'), 'new');
      assert.ok(lstatSync(join(t.dir, 'f2')).isDirectory());
      assert.equal(readFileSync(join(t.dir, 'd'), 'utf8'), 'now a file');
      assert.equal(readFileSync(join(t.dir, 'm/keep'), 'utf8'), 'k');
      assert.equal(lstatSync(join(t.dir, 'm')).mode & 0o7777, 0o700);
      assert.ok(lstatSync(join(t.dir, 's')).isFile());
      assert.equal(readFileSync(join(t.dir, 'target'), 'utf8'), 'target');
    } finally {
      t.cleanup();
    }
  });

  test('directory times survive the creation of their contents; modes and owners apply', async () => {
    const t = tempDir();
    try {
      await applyAll(t.dir, [
        [
          { name: 'd/', type: 'directory', mtime: 1_000_000_000, mode: 0o1777 },
          { name: 'd/f', content: 'x', mtime: 1_100_000_000, mode: 0o4750 },
          { name: 'd/g/', type: 'directory', mtime: 1_200_000_000, mode: 0o2700 },
          { name: 'd/g/h', content: 'y' },
        ],
      ]);
      const d = describeTree(t.dir);
      assert.equal(d['d'].mtime, 1_000_000_000);
      assert.equal(d['d'].mode, '1777');
      assert.equal(d['d/f'].mtime, 1_100_000_000);
      assert.equal(d['d/f'].mode, '4750');
      assert.equal(d['d/g'].mtime, 1_200_000_000);
      assert.equal(d['d/g'].mode, '2700');
    } finally {
      t.cleanup();
    }
  });

  test('hardlinks may point at files of lower layers and of the same layer', async () => {
    const t = tempDir();
    try {
      await applyAll(t.dir, [
        [{ name: 'bin/', type: 'directory' }, { name: 'bin/busybox', content: 'bb' }],
        [
          { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' },
          { name: 'new', content: 'n' },
          { name: 'new2', type: 'link', linkname: './new' },
        ],
      ]);
      assert.equal(lstatSync(join(t.dir, 'bin/sh')).ino, lstatSync(join(t.dir, 'bin/busybox')).ino);
      assert.equal(lstatSync(join(t.dir, 'new2')).ino, lstatSync(join(t.dir, 'new')).ino);
      await assert.rejects(applyAll(t.dir, [[{ name: 'x', type: 'link', linkname: 'missing' }]]), ArchiveInvalid);
    } finally {
      t.cleanup();
    }
  });

  test('archives made by GNU tar apply: "./" names, GNU long names, PAX xattrs', async () => {
    const src = tempDir();
    const dst = tempDir();
    try {
      const long = 'n'.repeat(150);
      mkdirSync(join(src.dir, 'tree', long), { recursive: true });
      writeFileSync(join(src.dir, 'tree', long, 'file'), 'deep');
      writeFileSync(join(src.dir, 'tree', 'attr'), 'a');
      writeXattr(join(src.dir, 'tree', 'attr'), 'user.note', 'kept');
      const gnu = execFileSync('tar', ['-C', join(src.dir, 'tree'), '--format=gnu', '-cf', '-', '.']);
      await applyLayer(bufferStream(gnu), join(dst.dir, 'gnu'), { whiteouts: 'delete' });
      assert.equal(readFileSync(join(dst.dir, 'gnu', long, 'file'), 'utf8'), 'deep');
      const pax = execFileSync('tar', ['-C', join(src.dir, 'tree'), '--format=posix', '--xattrs', '--xattrs-include=*', '-cf', '-', '.']);
      await applyLayer(bufferStream(pax), join(dst.dir, 'pax'), { whiteouts: 'delete' });
      assert.equal(readFileSync(join(dst.dir, 'pax', long, 'file'), 'utf8'), 'deep');
      assert.equal(readXattr(join(dst.dir, 'pax', 'attr'), 'user.note')?.toString(), 'kept');
    } finally {
      src.cleanup();
      dst.cleanup();
    }
  });

  test('returns the diffId and size of the uncompressed tar, whatever the compression', async () => {
    const t = tempDir();
    try {
      const tar = await craftTar(lower);
      const want = { diffId: 'sha256:' + sha256hex(tar), size: tar.length };
      assert.deepEqual(await applyLayer(bufferStream(tar), join(t.dir, '1'), { whiteouts: 'delete' }), want);
      assert.deepEqual(await applyLayer(bufferStream(gzipSync(tar)), join(t.dir, '2'), { whiteouts: 'delete' }), want);
      const zst = execFileSync('zstd', ['-c', '-q'], { input: tar });
      assert.deepEqual(await applyLayer(bufferStream(zst), join(t.dir, '3'), { whiteouts: 'delete' }), want);
    } finally {
      t.cleanup();
    }
  });
});

describe('applyLayer ownership', () => {
  test('sameOwner: false leaves files owned by the applier, modes still applied', async () => {
    const t = tempDir();
    try {
      const tar = await craftTarWithOwner();
      await applyLayer(bufferStream(tar), join(t.dir, 'same'), { whiteouts: 'delete' });
      await applyLayer(bufferStream(tar), join(t.dir, 'mine'), { whiteouts: 'delete', sameOwner: false });
      const same = describeTree(join(t.dir, 'same'));
      const mine = describeTree(join(t.dir, 'mine'));
      if (process.getuid?.() === 0) assert.deepEqual([same['f'].uid, same['f'].gid, same['d'].uid], [1234, 5678, 1234]);
      assert.deepEqual([mine['f'].uid, mine['d'].uid], [process.getuid?.(), process.getuid?.()]);
      assert.equal(mine['f'].mode, '2755');
    } finally {
      t.cleanup();
    }
  });
});

async function craftTarWithOwner(): Promise<Buffer> {
  const tar = (await import('tar-stream')).default;
  const pack = tar.pack();
  pack.entry({ name: 'd/', type: 'directory', uid: 1234, gid: 5678, mode: 0o750 });
  pack.entry({ name: 'f', uid: 1234, gid: 5678, mode: 0o2755 }, 'x');
  pack.finalize();
  return collect(pack);
}

describe('corrupt archives', () => {
  const oneLine = (pattern: RegExp) => (err: unknown) => {
    assert.ok(err instanceof ArchiveInvalid, `expected ArchiveInvalid, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'));
    return true;
  };

  test('a truncated tar fails with ArchiveInvalid, plain or gzipped', async () => {
    const t = tempDir();
    try {
      const tar = await craftTar([{ name: 'big', content: Buffer.alloc(10_000, 1) }, { name: 'after', content: 'x' }]);
      const cut = tar.subarray(0, 3000);
      await assert.rejects(applyLayer(bufferStream(cut), join(t.dir, '1'), { whiteouts: 'delete' }), oneLine(/truncated tar.*"big"/));
      await assert.rejects(applyLayer(bufferStream(gzipSync(cut)), join(t.dir, '2'), { whiteouts: 'delete' }), oneLine(/truncated tar/));
      await assert.rejects(applyLayer(bufferStream(tar.subarray(0, 700)), join(t.dir, '3'), { whiteouts: 'delete' }), oneLine(/truncated tar/));
      const gz = gzipSync(tar);
      await assert.rejects(applyLayer(bufferStream(gz.subarray(0, gz.length - 20)), join(t.dir, '4'), { whiteouts: 'delete' }), oneLine(/invalid gzip stream/));
    } finally {
      t.cleanup();
    }
  });

  test('a damaged header or random bytes fail with ArchiveInvalid', async () => {
    const t = tempDir();
    try {
      const tar = await craftTar([{ name: 'one', content: 'x' }, { name: 'two', content: 'y' }]);
      const bad = Buffer.from(tar);
      bad[512 * 2 + 10] ^= 0xff; // inside the second header's name
      await assert.rejects(applyLayer(bufferStream(bad), t.dir, { whiteouts: 'delete' }), oneLine(/checksum mismatch/));
      await assert.rejects(applyLayer(bufferStream(Buffer.alloc(4096, 0x41)), t.dir, { whiteouts: 'delete' }), oneLine(/invalid tar header/));
    } finally {
      t.cleanup();
    }
  });
});

describe('listLayer', () => {
  test('lists a compressed layer with its contents', async () => {
    const src = tempDir();
    try {
      writeFileSync(join(src.dir, 'hello'), 'world');
      mkdirSync(join(src.dir, 'dir'));
      const gz = gzipSync(await collect(packDirectory(src.dir)));
      const seen: string[] = [];
      for await (const e of listLayer(bufferStream(gz))) {
        const body = (await collect(e.body)).toString();
        seen.push(`${e.header.type} ${e.header.path} ${body}`);
      }
      assert.deepEqual(seen, ['directory dir ', 'file hello world']);
    } finally {
      src.cleanup();
    }
  });
});
