import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ArchiveInvalid } from '../../src/errors.js';
import { compress, decompress, detectCompression } from '../../src/archive/index.js';
import { bufferStream, collect } from './fixtures.js';

/** Compressible but not trivial: text-like runs with random bytes sprinkled in. */
function sample(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  const noise = randomBytes(4096);
  for (let i = 0; i < size; i++) b[i] = i % 11 === 0 ? noise[(i * seed) & 4095] : 97 + ((i * 31 + (i >> 12) * seed) % 26);
  return b;
}

/** Feeds a buffer in uneven pieces, as a network or file stream would. */
function pieces(b: Buffer, size = 10_000): Readable {
  const parts: Buffer[] = [];
  for (let off = 0; off < b.length; off += size) parts.push(b.subarray(off, off + size));
  return Readable.from(parts);
}

function assertOneLineArchiveInvalid(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ArchiveInvalid, `expected ArchiveInvalid, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'message is one line');
    return true;
  };
}

describe('gzip', () => {
  const input = sample(6 * 1024 * 1024 + 12345);

  test('parallel gzip output is one valid gzip stream for the gzip CLI and for zlib', async () => {
    const gz = await collect(compress(pieces(input), 'gzip'));
    assert.ok(gunzipSync(gz).equals(input));
    assert.ok(execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 64 << 20 }).equals(input));
    execFileSync('gzip', ['-t'], { input: gz });
    // Dictionary priming keeps the ratio of serial gzip.
    assert.ok(gz.length < gzipSync(input).length * 1.01, `${gz.length} vs ${gzipSync(input).length}`);
  });

  test('output is deterministic whatever the concurrency, and carries no timestamp', async () => {
    const a = await collect(compress(pieces(input), 'gzip'));
    const b = await collect(compress(pieces(input, 777_777), 'gzip', { concurrency: 1 }));
    assert.ok(a.equals(b));
    assert.deepEqual([...a.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  });

  test('random blocks beside text-like ones: round-trips, no bigger than serial gzip, the same bytes whatever the chunking', async () => {
    const random = randomBytes(3 * 1024 * 1024);
    const mixed = Buffer.concat([input.subarray(0, 2 * 1024 * 1024), random, input.subarray(0, 1024 * 1024)]);
    const gz = await collect(compress(pieces(mixed), 'gzip'));
    assert.ok(gunzipSync(gz).equals(mixed));
    execFileSync('gzip', ['-t'], { input: gz });
    // Random blocks are stored (5 bytes per 64 KiB of overhead); the text-like 3 MiB still shrinks as serial gzip does.
    const textOnly = gzipSync(Buffer.concat([input.subarray(0, 2 * 1024 * 1024), input.subarray(0, 1024 * 1024)])).length;
    assert.ok(gz.length < random.length * 1.001 + textOnly * 1.05, `${gz.length} bytes`);
    const again = await collect(compress(pieces(mixed, 123_457), 'gzip', { concurrency: 1 }));
    assert.ok(again.equals(gz), 'the same bytes whatever the chunking and concurrency');
  });

  test('input ending in random data ends in a final stored block; pieces larger than a block are cut up', async () => {
    for (const tail of [3 * 1024 * 1024, 3 * 1024 * 1024 + 70_001, 200_000]) {
      const data = Buffer.concat([input.subarray(0, 1024 * 1024 + 17), randomBytes(tail)]);
      for (const piece of [5 * 1024 * 1024, 65_535, 1000]) {
        const gz = await collect(compress(pieces(data, piece), 'gzip'));
        execFileSync('gzip', ['-t'], { input: gz });
        assert.ok(gunzipSync(gz).equals(data), `tail ${tail}, pieces of ${piece}`);
      }
    }
  });

  test('small blocks, a block boundary at the very end, and empty input all round-trip', async () => {
    for (const data of [input.subarray(0, 1 << 20), input.subarray(0, 70_000), Buffer.alloc(0), Buffer.from('x')]) {
      const gz = await collect(compress(pieces(data, 4096), 'gzip', { blockSize: 64 * 1024, level: 1 }));
      assert.ok(gunzipSync(gz).equals(data), `size ${data.length}`);
    }
  });

  test('decompress reads concatenated gzip members', async () => {
    const two = Buffer.concat([gzipSync('hello '), gzipSync('world')]);
    assert.equal((await collect(decompress(bufferStream(two)))).toString(), 'hello world');
  });

  test('corrupt and truncated gzip fail with a one-line ArchiveInvalid', async () => {
    const gz = gzipSync(input.subarray(0, 200_000));
    const corrupt = Buffer.from(gz);
    for (let i = 100; i < 400; i++) corrupt[i] ^= 0x5a;
    await assert.rejects(collect(decompress(bufferStream(corrupt))), assertOneLineArchiveInvalid(/invalid gzip stream/));
    await assert.rejects(collect(decompress(bufferStream(gz.subarray(0, gz.length >> 1)))), assertOneLineArchiveInvalid(/invalid gzip stream: unexpected end of file/));
  });
});

describe('zstd', () => {
  const input = sample(3 * 1024 * 1024 + 99, 5);

  test('round trip through compress and decompress, readable by the zstd CLI', async () => {
    const z = await collect(compress(pieces(input), 'zstd'));
    assert.equal(detectCompression(z), 'zstd');
    assert.ok(execFileSync('zstd', ['-d', '-c', '-q'], { input: z, maxBuffer: 64 << 20 }).equals(input));
    assert.ok((await collect(decompress(pieces(z)))).equals(input));
    assert.ok((await collect(compress(pieces(input, 5000), 'zstd'))).equals(z), 'deterministic');
  });

  test('corrupt and truncated zstd fail with a one-line ArchiveInvalid', async () => {
    const z = execFileSync('zstd', ['-c', '-q'], { input });
    const corrupt = Buffer.from(z);
    for (let i = 20; i < 200; i++) corrupt[i] ^= 0xa5;
    await assert.rejects(collect(decompress(bufferStream(corrupt))), assertOneLineArchiveInvalid(/invalid zstd stream/));
    await assert.rejects(collect(decompress(bufferStream(z.subarray(0, z.length >> 1)))), assertOneLineArchiveInvalid(/invalid zstd stream/));
  });
});

describe('decompress', () => {
  test('passes anything that is not gzip or zstd through unchanged', async () => {
    for (const data of [Buffer.from('plain tar bytes'), Buffer.alloc(0), Buffer.from([0x1f])]) {
      assert.ok((await collect(decompress(bufferStream(data)))).equals(data));
    }
  });

  test('an error of the input itself is passed on as it is', async () => {
    async function* failing() {
      yield gzipSync('partial');
      throw new Error('connection reset');
    }
    await assert.rejects(collect(decompress(Readable.from(failing()))), /connection reset/);
    async function* failingZstd() {
      yield execFileSync('zstd', ['-c', '-q'], { input: Buffer.alloc(100_000, 1) }).subarray(0, 20);
      throw new Error('connection reset');
    }
    await assert.rejects(collect(decompress(Readable.from(failingZstd()))), /connection reset/);
  });
});
