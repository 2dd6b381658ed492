import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ContentStore } from '../../src/store/content.js';
import { EarlyFlush } from '../../src/store/early-flush.js';
import { fileDir } from './support.js';

// Blobs are sent to disk while they are written (EarlyFlush): what reaches the store must be
// exactly what was sent, and a stream that fails while a flush runs must leave nothing behind.

/** A stream of `total` random bytes in 64 KiB chunks, a turn of the event loop apart (as a socket's). */
function slowStream(total: number, failAt?: number): { stream: PassThrough; data: Buffer } {
  const data = randomBytes(total);
  const stream = new PassThrough();
  stream.on('error', () => {});
  let at = 0;
  const next = () => {
    if (failAt !== undefined && at >= failAt) return stream.destroy(new Error('connection reset'));
    if (at >= total) return stream.end();
    stream.write(data.subarray(at, at + 65536));
    at += 65536;
    setImmediate(next);
  };
  setImmediate(next);
  return { stream, data };
}

test('a 24 MiB stream, flushed three times along the way, is stored byte for byte', async () => {
  const dir = fileDir('kiln-early-flush-');
  const content = new ContentStore(dir);
  const { stream, data } = slowStream(24 << 20);
  const info = await content.put(stream);
  assert.equal(info.digest, 'sha256:' + createHash('sha256').update(data).digest('hex'));
  assert.equal(info.size, data.length);
  assert.ok(readFileSync(join(dir, 'blobs', 'sha256', info.digest.slice(7))).equals(data));
  assert.deepEqual(readdirSync(join(dir, 'ingest')), []);
});

test('a stream that fails after flushes have started leaves no file behind', async () => {
  const dir = fileDir('kiln-early-flush-');
  const content = new ContentStore(dir);
  const { stream } = slowStream(24 << 20, 17 << 20);
  await assert.rejects(content.put(stream), /connection reset/);
  assert.deepEqual(readdirSync(join(dir, 'ingest')), []);
  assert.ok(!existsSync(join(dir, 'blobs', 'sha256')) || readdirSync(join(dir, 'blobs', 'sha256')).length === 0);
});

test('EarlyFlush starts one flush at a time, waits for it, and ignores a descriptor that cannot be flushed', async () => {
  const dir = fileDir('kiln-early-flush-');
  const fd = openSync(join(dir, 'f'), 'w');
  const flush = new EarlyFlush(4);
  writeSync(fd, 'abc');
  flush.wrote(fd, 3);
  assert.equal((flush as unknown as { running?: Promise<void> }).running, undefined, 'under the threshold: no flush');
  writeSync(fd, 'defg');
  flush.wrote(fd, 4);
  const first = (flush as unknown as { running?: Promise<void> }).running;
  assert.ok(first, 'a flush runs');
  flush.wrote(fd, 100);
  assert.equal((flush as unknown as { running?: Promise<void> }).running, first, 'no second flush while one runs');
  await flush.idle();
  assert.equal((flush as unknown as { running?: Promise<void> }).running, undefined);
  closeSync(fd);
  // /dev/null cannot be synced (EINVAL): the failure is left to the final fsync, which reports it.
  const devnull = openSync('/dev/null', 'w');
  const other = new EarlyFlush(1);
  other.wrote(devnull, 1);
  await other.idle();
  closeSync(devnull);
});
