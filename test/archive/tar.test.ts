import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import tar from 'tar-stream';
import { encodeHeader, readTar, tarHeader, type TarHeader } from '../../src/archive/index.js';
import { END_OF_ARCHIVE } from '../../src/archive/tar.js';
import { collect, tarListing } from './fixtures.js';

async function firstHeader(data: Buffer): Promise<TarHeader> {
  for await (const e of readTar(Readable.from([data]))) return e.header;
  throw new Error('no entry');
}

describe('tar codec', () => {
  test('what ustar cannot hold goes to PAX and reads back: huge sizes and ids, long and non-ASCII names, binary xattrs', async () => {
    const h = tarHeader({
      path: 'dir/' + 'x'.repeat(300) + '/naïve ✓',
      type: 'file',
      size: 10 * 2 ** 30,
      uid: 3_000_000,
      gid: 70_000_000,
      mtime: 9_999_999_999,
      xattrs: { 'security.capability': Buffer.from([0x01, 0, 0, 0x02, 0x80, 0xff]), 'user.a': Buffer.from('b') },
    });
    const back = await firstHeader(encodeHeader(h));
    assert.deepEqual(back, h);
    const link = tarHeader({ path: 'l', type: 'symlink', linkname: '/ünïcode/' + 'y'.repeat(200) });
    assert.deepEqual(await firstHeader(encodeHeader(link)), link);
  });

  test('tar-stream reads kiln headers and kiln reads tar-stream headers', async () => {
    const h = tarHeader({ path: 'a/'.repeat(80) + 'file', type: 'file', mode: 0o4755, uid: 7, gid: 8, mtime: 1_234_567_890 });
    const ours = Buffer.concat([encodeHeader(h), END_OF_ARCHIVE]);
    const theirs = (await tarListing(ours))[0];
    assert.equal(theirs.name, h.path);
    assert.equal(theirs.mtime, h.mtime);

    const pack = tar.pack();
    pack.entry({ name: 'b/'.repeat(120) + 'dev', type: 'character-device', devmajor: 4, devminor: 64, mode: 0o620, uid: 5, gid: 5 });
    pack.finalize();
    const read = await firstHeader(await collect(pack));
    assert.equal(read.path, 'b/'.repeat(120) + 'dev');
    assert.equal(read.type, 'char');
    assert.deepEqual([read.devmajor, read.devminor, read.mode, read.uid], [4, 64, 0o620, 5]);
  });

  test('headers are byte-for-byte stable', () => {
    const h = tarHeader({ path: 'etc/os-release', type: 'file', size: 3, mtime: 1 });
    assert.ok(encodeHeader(h).equals(encodeHeader({ ...h })));
    const block = encodeHeader(h);
    assert.equal(block.length, 512);
    assert.equal(block.toString('latin1', 257, 263), 'ustar\0');
    assert.equal(block.toString('latin1', 265, 297).replace(/\0+$/, ''), ''); // no user name
  });
});
