import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, truncate } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { pushBlob, sha256, startRegistry, uniqueRepo, waitFor } from './support.js';

// Blobs too large for the memory cache are read from their file into reused buffers (send-file.ts):
// these tests make sure a reused buffer never shows up in another response, ranges cross chunk
// boundaries correctly, and clients that leave (or files that are shorter than recorded) leak nothing.
// Large uploads are written back to disk while they arrive (uploads.ts): their bytes stay intact.

const openFds = async () => (await readdir('/proc/self/fd')).length;

/** GET that resolves with the bytes received and whether the response ended cleanly. */
function download(url: string, headers: Record<string, string> = {}, abortAfter?: number): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let got = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (abortAfter !== undefined && got >= abortAfter) req.destroy();
      });
      const done = (complete: boolean) => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete });
      res.on('end', () => done(res.complete));
      res.on('close', () => done(res.complete));
      res.on('error', () => done(false));
    });
    req.on('error', (e) => (abortAfter !== undefined ? resolve({ status: 0, body: Buffer.alloc(0), complete: false }) : reject(e)));
    req.end();
  });
}

test('concurrent GETs of different large blobs each get exactly their own bytes', async (t) => {
  const r = await startRegistry(t, (c) => (c.limits.cachedBlobSize = 0));
  const c = r.client();
  const repo = uniqueRepo('download');
  // Sizes around the 256 KiB chunk: not a multiple, exactly one, one byte over, several and a bit.
  const blobs = [1, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024 + 12345, 777_777].map((n) => randomBytes(n));
  const digests = await Promise.all(blobs.map((b) => pushBlob(c, repo, b)));
  const rounds = await Promise.all(
    Array.from({ length: 3 }, () => Promise.all(digests.map((d) => download(`${r.url}/v2/${repo}/blobs/${d}`)))),
  );
  for (const round of rounds) {
    round.forEach((res, i) => {
      assert.equal(res.status, 200);
      assert.ok(res.complete);
      assert.ok(res.body.equals(blobs[i]!), `blob ${i} (${blobs[i]!.length} bytes) came back intact`);
    });
  }
});

test('Range GETs of a large blob cross chunk boundaries and end at its last byte', async (t) => {
  const r = await startRegistry(t, (c) => (c.limits.cachedBlobSize = 0));
  const c = r.client();
  const repo = uniqueRepo('download');
  const data = randomBytes(1024 * 1024 + 99);
  const d = await pushBlob(c, repo, data);
  const k = 256 * 1024;
  const cases: [string, number, number][] = [
    [`bytes=${k - 10}-${k + 10}`, k - 10, k + 10],
    [`bytes=${k}-`, k, data.length - 1],
    ['bytes=-1', data.length - 1, data.length - 1],
    [`bytes=0-${3 * k}`, 0, 3 * k],
  ];
  for (const [range, s, e] of cases) {
    const res = await download(`${r.url}/v2/${repo}/blobs/${d}`, { range });
    assert.equal(res.status, 206, range);
    assert.ok(res.body.equals(data.subarray(s, e + 1)), range);
  }
});

test('clients that leave in the middle of a large blob leave no open file behind, and later GETs are intact', async (t) => {
  const r = await startRegistry(t, (c) => (c.limits.cachedBlobSize = 0));
  const c = r.client();
  const repo = uniqueRepo('download');
  const data = randomBytes(8 * 1024 * 1024);
  const d = await pushBlob(c, repo, data);
  const url = `${r.url}/v2/${repo}/blobs/${d}`;
  await download(url);
  const before = await openFds();
  const left = await Promise.all(Array.from({ length: 6 }, () => download(url, {}, 300 * 1024)));
  for (const l of left) assert.ok(!l.complete);
  await waitFor(async () => (await openFds()) <= before, 5000, 'file descriptors of abandoned downloads closed');
  const again = await download(url);
  assert.ok(again.complete && again.body.equals(data));
});

test('a blob file shorter than its recorded size drops the connection instead of hanging or sending other bytes', async (t) => {
  const r = await startRegistry(t, (c) => (c.limits.cachedBlobSize = 0));
  const c = r.client();
  const repo = uniqueRepo('download');
  const data = randomBytes(1024 * 1024);
  const d = await pushBlob(c, repo, data);
  const stored = await r.registry.metadata.blob(d);
  assert.ok(stored, 'the pushed blob has a row');
  await truncate(join(r.config.storage.filesystem.rootdirectory, stored.key), 600 * 1024);
  const before = await openFds();
  const res = await download(`${r.url}/v2/${repo}/blobs/${d}`);
  assert.equal(res.status, 200);
  assert.ok(!res.complete, 'the response is cut short, not completed');
  assert.ok(res.body.length <= 600 * 1024 && res.body.equals(data.subarray(0, res.body.length)));
  await waitFor(async () => (await openFds()) <= before, 5000, 'file descriptor closed');
});

test('uploads larger than the write-back threshold, in several PATCHes, commit intact; a bad chunk after them rolls back only itself', async (t) => {
  const r = await startRegistry(t);
  const c = r.client();
  const repo = uniqueRepo('upload');
  const parts = [randomBytes(12 * 1024 * 1024), randomBytes(9 * 1024 * 1024 + 7)];
  const whole = Buffer.concat(parts);
  let loc = (await c.req('POST', `/v2/${repo}/blobs/uploads/`)).headers.get('location')!;
  let offset = 0;
  for (const p of parts) {
    const res = await c.req('PATCH', loc, { body: p, headers: { 'content-range': `${offset}-${offset + p.length - 1}` } });
    assert.equal(res.status, 202, res.text());
    offset += p.length;
    loc = res.headers.get('location')!;
  }
  // Declared longer than sent: SIZE_INVALID, and the upload keeps the bytes it had.
  const bad = await c.req('PATCH', loc, { body: randomBytes(1000), headers: { 'content-range': `${offset}-${offset + 1999}` } });
  assert.equal(bad.status, 400);
  assert.equal((await c.req('GET', loc)).headers.get('range'), `0-${whole.length - 1}`);
  const u = new URL(loc, r.url);
  u.searchParams.set('digest', sha256(whole));
  assert.equal((await c.req('PUT', u.pathname + u.search)).status, 201);
  const res = await download(`${r.url}/v2/${repo}/blobs/${sha256(whole)}`);
  assert.ok(res.complete && res.body.equals(whole));
});
