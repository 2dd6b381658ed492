import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, lutimesSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync, chownSync, chmodSync, lchownSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { applyLayer, compress, packDirectory, packEntries, readTar, writeLayer, type LayerEntry, type TarHeader } from '../../src/archive/index.js';
import { writeXattr } from '../../src/archive/xattr.js';
import { bufferStream, collect, describeTree, sha256hex, tarListing, tempDir } from './fixtures.js';

// security.capability v2 (linux/capability.h vfs_cap_data): magic 0x02000000 | effective, then
// permitted/inheritable for caps 0-31 and 32-63. Permitted = CAP_SETUID (bit 7) | CAP_NET_BIND_SERVICE
// (bit 10): byte 0x80 makes the value invalid UTF-8, which is the point.
const CAPABILITY = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const T1 = 1_500_000_000;
const T2 = 1_700_000_000;

// Device nodes, other owners and trusted.* xattrs need root.
const asRoot = process.getuid?.() === 0 ? {} : { skip: 'needs root' };

/** A tree with one of everything a layer can hold. */
function makeRichTree(root: string): void {
  const p = (r: string) => join(root, r);
  mkdirSync(p('etc/ssl'), { recursive: true });
  mkdirSync(p('usr/bin'), { recursive: true });
  mkdirSync(p('tmp'));
  mkdirSync(p('shared'));
  mkdirSync(p('dev'));
  writeFileSync(p('etc/hostname'), 'kiln\n');
  writeFileSync(p('etc/empty'), '');
  writeFileSync(p('usr/bin/tool'), Buffer.alloc(300_000, 7)); // larger than the read-ahead size
  chmodSync(p('usr/bin/tool'), 0o755);
  writeFileSync(p('usr/bin/su'), '#!/bin/sh\n');
  chmodSync(p('usr/bin/su'), 0o4755);
  writeFileSync(p('usr/bin/ping'), 'ping');
  writeXattr(p('usr/bin/ping'), 'security.capability', CAPABILITY);
  writeFileSync(p('etc/ssl/cert.pem'), 'cert');
  writeXattr(p('etc/ssl/cert.pem'), 'user.origin', 'test');
  writeXattr(p('etc/ssl/cert.pem'), 'trusted.binary', Buffer.from([0xff, 0x00, 0x80, 0x0a]));
  chmodSync(p('tmp'), 0o1777);
  chmodSync(p('shared'), 0o2775);
  chownSync(p('shared'), 1000, 1000);
  writeFileSync(p('shared/owned'), 'x');
  chownSync(p('shared/owned'), 1000, 1001);
  symlinkSync('/etc/hostname', p('etc/abs-link'));
  symlinkSync('../etc/hostname', p('usr/rel-link'));
  symlinkSync('nowhere', p('etc/dangling'));
  lchownSync(p('etc/dangling'), 5, 6);
  writeFileSync(p('usr/bin/multi'), 'linked');
  linkSync(p('usr/bin/multi'), p('usr/bin/multi2'));
  linkSync(p('usr/bin/multi'), p('etc/multi3'));
  execFileSync('mknod', ['-m', '0666', p('dev/null'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '0660', p('dev/loop0'), 'b', '7', '0']);
  execFileSync('mknod', ['-m', '0640', p('dev/big'), 'c', '300', '70000']);
  execFileSync('mkfifo', ['-m', '0600', p('tmp/fifo')]);
  const long = 'a-rather-long-directory-name-that-goes-on'.repeat(3);
  mkdirSync(p(`${long}/${long}`), { recursive: true });
  writeFileSync(p(`${long}/${long}/${'file-with-a-long-name'.repeat(5)}.txt`), 'deep');
  writeFileSync(p('unicode-héllo-✓.txt'), 'ü');
  // Times last, directories after their contents.
  for (const f of ['etc/hostname', 'etc/empty', 'usr/bin/tool', 'usr/bin/su', 'usr/bin/ping', 'etc/ssl/cert.pem', 'shared/owned', 'usr/bin/multi', 'dev/null', 'dev/loop0', 'dev/big', 'tmp/fifo', 'unicode-héllo-✓.txt']) {
    utimesSync(p(f), T1, T1);
  }
  for (const l of ['etc/abs-link', 'usr/rel-link', 'etc/dangling']) lutimesSync(p(l), T1 + 5, T1 + 5);
  for (const d of [`${long}/${long}`, long, 'etc/ssl', 'etc', 'usr/bin', 'usr', 'tmp', 'shared', 'dev']) utimesSync(p(d), T2, T2);
}

describe('packDirectory', asRoot, () => {
  let src: ReturnType<typeof tempDir>;
  before(() => {
    src = tempDir();
    makeRichTree(src.dir);
  });
  after(() => src.cleanup());

  test('pack then apply reproduces the tree: types, modes, owners, times, links, devices, xattrs, hardlinks', async () => {
    const dst = tempDir();
    try {
      const tarball = await collect(packDirectory(src.dir));
      const applied = await applyLayer(bufferStream(tarball), dst.dir, { whiteouts: 'delete' });
      assert.equal(applied.diffId, 'sha256:' + sha256hex(tarball));
      assert.equal(applied.size, tarball.length);
      const want = describeTree(src.dir);
      assert.deepEqual(describeTree(dst.dir), want);
      // Spot checks that the description really covers what matters.
      assert.equal(want['usr/bin/su'].mode, '4755');
      assert.equal(want['usr/bin/multi2'].sameInodeAs, 'etc/multi3');
      assert.equal(want['usr/bin/ping'].xattrs?.['security.capability'], CAPABILITY.toString('hex'));
      assert.equal(want['dev/big'].type, 'char');
    } finally {
      dst.cleanup();
    }
  });

  test('entries are sorted by path bytes with relative names and directories ending in "/"', async () => {
    const list = await tarListing(await collect(packDirectory(src.dir)));
    const names = list.map((e) => e.name);
    assert.ok(names.includes('etc/'));
    assert.ok(names.every((n) => !n.startsWith('/') && !n.startsWith('./')));
    const bare = names.map((n) => n.replace(/\/$/, ''));
    const sorted = [...bare].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(bare, sorted);
    // Hardlinks point at the first path in that order: "etc/multi3" sorts first.
    assert.equal(list.find((e) => e.name === 'etc/multi3')!.type, 'file');
    const multi = list.find((e) => e.name === 'usr/bin/multi')!;
    assert.equal(multi.type, 'link');
    assert.equal(multi.linkname, 'etc/multi3');
  });

  test('is deterministic: the same tree gives byte-identical tar and gzip', async () => {
    const a = await collect(packDirectory(src.dir));
    const b = await collect(packDirectory(src.dir));
    assert.ok(a.equals(b));
    const ga = await collect(compress(bufferStream(a), 'gzip'));
    const gb = await collect(compress(packDirectory(src.dir), 'gzip'));
    assert.ok(ga.equals(gb));
    assert.deepEqual(ga.subarray(4, 8), Buffer.alloc(4)); // gzip MTIME 0
  });

  test('GNU tar and tar-stream read the output, binary xattrs and long names included', async () => {
    const tarball = await collect(packDirectory(src.dir));
    const gnu = execFileSync('tar', ['-tvf', '-', '--xattrs', '--numeric-owner'], { input: tarball }).toString();
    assert.match(gnu, /crw-rw-rw-\s+0\/0\s+1,3 .* dev\/null/);
    assert.match(gnu, /-rwsr-xr-x\s+0\/0 .* usr\/bin\/su/);
    assert.match(gnu, /file-with-a-long-name/);
    assert.match(gnu, /unicode-héllo-✓\.txt/);
    const list = await tarListing(tarball);
    const ping = list.find((e) => e.name === 'usr/bin/ping')!;
    assert.ok(ping.pax && 'SCHILY.xattr.security.capability' in ping.pax);
    // Hardlinks come out in GNU tar's listing as links to the first path.
    assert.match(gnu, /usr\/bin\/multi link to etc\/multi3/);
  });

  test('sourceDateEpoch clamps later mtimes and keeps earlier ones', async () => {
    const epoch = T1 + 1000;
    const entries: TarHeader[] = [];
    for await (const e of readTar(packDirectory(src.dir, { sourceDateEpoch: epoch }))) entries.push(e.header);
    const by = (p: string) => entries.find((h) => h.path === p)!;
    assert.equal(by('etc').mtime, epoch); // T2 > epoch
    assert.equal(by('etc/hostname').mtime, T1);
    assert.equal(by('etc/abs-link').mtime, T1 + 5);
    assert.ok(entries.every((h) => h.mtime <= epoch));
  });

  test('exclude leaves out a path and everything under it', async () => {
    const list = await tarListing(await collect(packDirectory(src.dir, { exclude: (p) => p === 'usr' || p.endsWith('.pem') })));
    assert.ok(!list.some((e) => e.name.startsWith('usr')));
    assert.ok(!list.some((e) => e.name.endsWith('.pem')));
    assert.ok(list.some((e) => e.name === 'etc/ssl/'));
    // With usr/bin/multi gone, the hardlink group starts at etc/multi3 as a file.
    assert.equal(list.find((e) => e.name === 'etc/multi3')!.type, 'file');
  });
});

describe('packEntries', () => {
  test('writes explicit entries at arbitrary paths from files and from memory', asRoot, async () => {
    const ctx = tempDir();
    const dst = tempDir();
    try {
      writeFileSync(join(ctx.dir, 'app.js'), 'console.log(1)');
      const entries: LayerEntry[] = [
        { path: '/srv/', type: 'directory', mode: 0o750, uid: 10, gid: 20, mtime: T1 },
        { path: './srv/app/main.js', type: 'file', sourcePath: join(ctx.dir, 'app.js'), mode: 0o644, mtime: T1 },
        { path: 'srv/VERSION', type: 'file', content: '1.0\n', mode: 0o444, mtime: T1 },
        { path: 'srv/current', type: 'symlink', linkname: 'app', mtime: T1 },
        { path: 'srv/again.js', type: 'hardlink', linkname: 'srv/app/main.js' },
      ];
      const tarball = await collect(packEntries(entries));
      await applyLayer(bufferStream(tarball), dst.dir, { whiteouts: 'delete' });
      const t = describeTree(dst.dir, { dirMtimes: false });
      assert.equal(t['srv'].mode, '750');
      assert.equal(t['srv'].uid, 10);
      assert.equal(readFileSync(join(dst.dir, 'srv/app/main.js'), 'utf8'), 'console.log(1)');
      assert.equal(t['srv/app'].type, 'dir'); // implicit parent
      assert.equal(t['srv/VERSION'].mode, '444');
      assert.equal(t['srv/current'].link, 'app');
      assert.equal(t['srv/app/main.js'].sameInodeAs, 'srv/again.js');
      assert.deepEqual(await collect(packEntries(entries)), tarball);
    } finally {
      ctx.cleanup();
      dst.cleanup();
    }
  });

  test('a source file that shrinks under the packer is an error, not a corrupt tar', async () => {
    const ctx = tempDir();
    try {
      writeFileSync(join(ctx.dir, 'f'), 'short');
      await assert.rejects(collect(packEntries([{ path: 'f', type: 'file', sourcePath: join(ctx.dir, 'f'), size: 100 }])), /shrank/);
      await assert.rejects(collect(packEntries([{ path: '../f', type: 'file', content: '' }])), /"\.\."/);
    } finally {
      ctx.cleanup();
    }
  });

  test('packs 20,000 small files, every one of them, in name order', async () => {
    const src = tempDir();
    try {
      // tmpfs when possible: this measures the packer, not how fast the disk creates 20,000 files.
      if (process.getuid?.() === 0) execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', src.dir]);
      for (let d = 0; d < 100; d++) {
        mkdirSync(join(src.dir, `d${d}`));
        for (let f = 0; f < 200; f++) writeFileSync(join(src.dir, `d${d}/f${f}`), `file ${d}/${f}\n`);
      }
      // How fast is bench/'s business (bench/build.ts packs contexts of this size); here, that all are there.
      const chunks: Buffer[] = [];
      for await (const c of packDirectory(src.dir)) chunks.push(c as Buffer);
      const tarFile = join(src.dir, 'packed.tar'); // written after packing, removed with the directory
      writeFileSync(tarFile, Buffer.concat(chunks));
      const names = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n').filter((l) => /\/f\d+$/.test(l));
      assert.equal(names.length, 20_000);
      assert.deepEqual(names, [...names].sort(), 'entries are sorted');
    } finally {
      src.cleanup();
    }
  });
});

describe('writeLayer', () => {
  test('computes diffId, digest and size in one pass, for every compression', asRoot, async () => {
    const src = tempDir();
    try {
      makeRichTree(src.dir);
      const plain = await collect(packDirectory(src.dir));
      for (const c of ['none', 'gzip', 'zstd'] as const) {
        let blob: Buffer = Buffer.alloc(0);
        const d = await writeLayer(
          packDirectory(src.dir),
          async (s) => {
            blob = await collect(s);
          },
          c,
        );
        assert.equal(d.diffId, 'sha256:' + sha256hex(plain), c);
        assert.equal(d.uncompressedSize, plain.length);
        assert.equal(d.digest, 'sha256:' + sha256hex(blob), c);
        assert.equal(d.size, blob.length);
        if (c === 'gzip') assert.ok(gunzipSync(blob).equals(plain));
        if (c === 'none') assert.equal(d.digest, d.diffId);
      }
    } finally {
      src.cleanup();
    }
  });

  test('a failing tar stream rejects the whole write', async () => {
    async function* broken() {
      yield Buffer.alloc(100_000, 1);
      throw new Error('source vanished');
    }
    await assert.rejects(writeLayer(Readable.from(broken()), (s) => collect(s).then(() => {}), 'gzip'), /source vanished/);
  });

  test('a failing consumer rejects the whole write', async () => {
    const src = tempDir();
    try {
      writeFileSync(join(src.dir, 'f'), 'x');
      await assert.rejects(
        writeLayer(
          packDirectory(src.dir),
          async () => {
            throw new Error('disk full');
          },
          'gzip',
        ),
        /disk full/,
      );
    } finally {
      src.cleanup();
    }
  });
});
