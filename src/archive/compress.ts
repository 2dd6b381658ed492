// Layer compression. gzip is done in-process on both cores; zstd by the zstd CLI, which is
// multi-threaded itself. Decompression detects the format from the first bytes, so a layer whose
// media type lies about its compression still reads.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { Readable, pipeline } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { ArchiveInvalid, KilnError } from '../errors.js';
import type { Compression } from '../oci/mediatypes.js';

export interface CompressOptions {
  /** gzip: zlib level 0-9 (default 6); zstd: 1-19 (default 3). */
  level?: number;
  /** gzip: bytes compressed per job on the thread pool (default 1 MiB). */
  blockSize?: number;
  /** gzip: jobs in flight at once (default: cores + 1, so a finished job's successor is ready). */
  concurrency?: number;
}

/** Compresses a stream. The output depends only on the input and the options: no names, no timestamps. */
export function compress(input: Readable, c: Compression, opts: CompressOptions = {}): Readable {
  switch (c) {
    case 'none':
      return input;
    case 'gzip':
      return Readable.from(gzipParallel(input, opts), { objectMode: false });
    case 'zstd':
      // -T0: one worker per core; zstd's output does not depend on the number of workers.
      return Readable.from(throughProcess('zstd', ['-q', '-c', '-T0', `-${opts.level ?? 3}`], input, 'zstd compression failed'), {
        objectMode: false,
      });
  }
}

/** The compression a stream's first bytes announce: gzip (RFC 1952 magic 1f 8b), zstd (RFC 8878 magic 28 b5 2f fd), else none. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Decompresses gzip or zstd, or passes anything else through. Corrupt or truncated input fails with ArchiveInvalid. */
export function decompress(input: Readable): Readable {
  return Readable.from(decompressing(input), { objectMode: false });
}

async function* decompressing(input: Readable): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let headSize = 0;
  let ended = false;
  while (headSize < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value);
    headSize += r.value.length;
  }
  const first = Buffer.concat(head);
  async function* whole(): AsyncGenerator<Buffer> {
    try {
      if (first.length > 0) yield first;
      while (!ended) {
        const r = await it.next();
        if (r.done) ended = true;
        else yield r.value;
      }
    } finally {
      if (!ended) await it.return?.();
    }
  }

  switch (detectCompression(first)) {
    case 'none':
      yield* whole();
      return;
    case 'zstd':
      yield* throughProcess('zstd', ['-d', '-q', '-c'], Readable.from(whole()), 'invalid zstd stream');
      return;
    case 'gzip': {
      // Node's gunzip reads concatenated members, as RFC 1952 section 2.2 allows.
      const gunzip = zlib.createGunzip();
      pipeline(Readable.from(whole()), gunzip, () => {});
      try {
        for await (const chunk of gunzip) yield chunk as Buffer;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'string' && code.startsWith('Z_')) {
          throw new ArchiveInvalid(`invalid gzip stream: ${(err as Error).message}`);
        }
        throw err;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Parallel gzip, the way pigz does it: the input is cut into blocks that are deflated
// independently on libuv's thread pool, several at once, and stitched together in order into a
// single gzip member. Each block but the last ends with a sync flush (so it ends on a byte boundary
// and is not final) and is primed with the previous block's last 32 KiB as its dictionary, so
// matches reach across block boundaries and the ratio stays that of serial gzip. One member rather
// than concatenated members because a few readers still stop after the first member.
// RFC 1951 (deflate), RFC 1952 (gzip member: header, deflate data, CRC-32, ISIZE).

const deflateRaw = promisify(zlib.deflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;
const WINDOW = 32 * 1024;
// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix): no name, no time, so output is reproducible.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

async function* gzipParallel(input: AsyncIterable<Buffer>, opts: CompressOptions): AsyncGenerator<Buffer> {
  const level = opts.level ?? zlib.constants.Z_DEFAULT_COMPRESSION;
  const blockSize = opts.blockSize ?? 1024 * 1024;
  const window = opts.concurrency ?? availableParallelism() + 1;
  const inflight: Promise<Buffer[]>[] = [];
  let previous: Block | undefined;
  let held: Block | undefined;
  let crc = 0;
  let length = 0;

  const dispatch = (block: Block, last: boolean): void => {
    const size = block.length;
    const options: zlib.ZlibOptions = {
      level,
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
      // Room for the whole deflated block in one output buffer (deflate grows incompressible data
      // by a few bytes per 16 KiB): zlib's default 16 KiB would call back into JS 64 times per block.
      chunkSize: Math.max(64 * 1024, size + (size >> 8) + 1024),
    };
    if (previous && previous.length > 0) options.dictionary = slice(previous, Math.max(0, previous.length - WINDOW), WINDOW);
    const job = (async () => {
      // Incompressible blocks (random data, already-compressed files) are stored: deflating them at
      // level 6 costs ~10× the time of storing and saves nothing. The choice depends on the block's
      // content only, so output stays reproducible.
      if (level !== 0 && (await incompressible(block))) return stored(block, last);
      return [await deflateRaw(block.parts.length === 1 ? block.parts[0]! : Buffer.concat(block.parts, size), options)];
    })();
    job.catch(() => {}); // awaited in order below; this only keeps an early failure from being "unhandled"
    inflight.push(job);
    previous = block;
  };

  yield GZIP_HEADER;
  for await (const block of blocks(input, blockSize)) {
    for (const part of block.parts) crc = crc32(part, crc);
    length += block.length;
    // Hold one block back: only the last one may be deflated with Z_FINISH.
    if (held) dispatch(held, false);
    held = block;
    while (inflight.length >= window) yield* await inflight.shift()!;
  }
  dispatch(held ?? { parts: [], length: 0 }, true);
  while (inflight.length > 0) yield* await inflight.shift()!;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  yield trailer;
}

/**
 * A block of input as the pieces it arrived in: storing a block copies nothing, and only a block
 * that is deflated is joined into one buffer for zlib.
 */
interface Block {
  parts: Buffer[];
  length: number;
}

/** `count` bytes of a block from `offset` (as a view when they lie in one piece). */
function slice(block: Block, offset: number, count: number): Buffer {
  const out: Buffer[] = [];
  let skip = offset;
  let want = Math.min(count, block.length - offset);
  for (const part of block.parts) {
    if (want <= 0) break;
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    const piece = part.subarray(skip, skip + want);
    out.push(piece);
    want -= piece.length;
    skip = 0;
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

/** The largest stored block deflate allows (LEN is 16 bits). */
const STORED_MAX = 0xffff;

/**
 * A block as deflate stored blocks (RFC 1951 section 3.2.4), written here rather than by zlib at
 * level 0, which would copy it through the thread pool for the same bytes: each stored block is a
 * 5-byte header followed by views of the input. Stored blocks start and end on a byte boundary, as
 * every block before them ends (sync flush), so they splice in anywhere.
 */
function stored(block: Block, last: boolean): Buffer[] {
  const out: Buffer[] = [];
  const header = (n: number, final: boolean) => {
    const h = Buffer.allocUnsafe(5);
    h[0] = final ? 1 : 0; // BFINAL, BTYPE 00 (stored); the rest of the byte is padding
    h.writeUInt16LE(n, 1);
    h.writeUInt16LE(~n & 0xffff, 3);
    out.push(h);
  };
  let left = block.length;
  if (left === 0) header(0, last);
  let room = 0;
  for (const part of block.parts) {
    for (let off = 0; off < part.length; ) {
      if (room === 0) {
        room = Math.min(STORED_MAX, left);
        header(room, last && room === left);
      }
      const piece = part.subarray(off, off + room);
      out.push(piece);
      off += piece.length;
      room -= piece.length;
      left -= piece.length;
    }
  }
  return out;
}

const PROBE_SLICES = 4;
const PROBE_SLICE = 4 * 1024;

/**
 * Whether fast deflate of samples spread over the block (4 × 4 KiB) saves under 3%: then deflate
 * at any level would save next to nothing on the whole block either. (Level 1 deflates random data
 * at only ~30 MB/s, so larger samples cost more than they tell.)
 */
async function incompressible(block: Block): Promise<boolean> {
  if (block.length < 128 * 1024) return false;
  const step = Math.floor(block.length / PROBE_SLICES);
  const sample = Buffer.concat(Array.from({ length: PROBE_SLICES }, (_, i) => slice(block, i * step, PROBE_SLICE)));
  const probe = await deflateRaw(sample, { level: 1 });
  return probe.length > sample.length * 0.97;
}

/** Re-cuts a byte stream into blocks of exactly `size` bytes (the last may be shorter, never empty), copying nothing. */
async function* blocks(input: AsyncIterable<Buffer | string>, size: number): AsyncGenerator<Block> {
  let parts: Buffer[] = [];
  let buffered = 0;
  for await (const c of input) {
    let chunk = typeof c === 'string' ? Buffer.from(c) : c;
    while (buffered + chunk.length >= size) {
      const take = size - buffered;
      parts.push(chunk.subarray(0, take));
      yield { parts, length: size };
      parts = [];
      buffered = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length > 0) {
      parts.push(chunk);
      buffered += chunk.length;
    }
  }
  if (buffered > 0) yield { parts, length: buffered };
}

// zlib.crc32 arrived in Node 20.15; older 20.x fall back to a table-driven CRC-32 (ISO-HDLC, as gzip uses).
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let crcTable: Uint32Array | undefined;
function crc32(data: Uint8Array, value: number): number {
  if (nativeCrc32) return nativeCrc32(data, value);
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------

/**
 * Streams `input` through an external filter process (stdin to stdout). A non-zero exit fails with
 * ArchiveInvalid carrying the first line the process printed on stderr; an error of `input`
 * itself is passed on unchanged. Stopping early kills the process.
 */
async function* throughProcess(cmd: string, args: string[], input: Readable, what: string): AsyncGenerator<Buffer> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let stdinFailed = false;
  child.stdin.on('error', () => {
    stdinFailed = true; // EPIPE when the process gives up on bad input: its exit status says why
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => {});
  let inputError: unknown;
  const feeding = (async () => {
    try {
      for await (const chunk of input) {
        if (!child.stdin.write(chunk)) await once(child.stdin, 'drain');
      }
      child.stdin.end();
    } catch (err) {
      if (!stdinFailed) inputError = err;
      child.stdin.destroy();
      if (inputError) child.kill();
    }
  })();
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    let code: number | null;
    try {
      code = await exited;
    } catch (err) {
      throw new KilnError(`${what}: cannot run ${cmd}: ${(err as Error).message}`);
    }
    if (code === 0) await feeding; // it ends with stdin; after a failure it may wait on input forever
    if (inputError) throw inputError;
    if (code !== 0) {
      const line = stderr
        .trim()
        .split('\n')[0]
        ?.replace(/^(zstd: )?(\/\*stdin\*\\\s*:\s*)?/, '');
      throw new ArchiveInvalid(`${what}: ${line || `${cmd} exited with status ${code}`}`);
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    input.destroy();
  }
}
