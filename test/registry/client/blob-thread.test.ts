import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fetchBlobInThread } from '../../../src/registry/client/blob-thread.js';
import { ContentStore } from '../../../src/store/content.js';
import { tempDir } from '../../support/env.js';

// The download thread a --cache-from build uses for big layers: one GET, written and verified on the
// thread; any other answer is an error for the caller to fall back on.

const blob = randomBytes(3 << 20);
const digest = 'sha256:' + createHash('sha256').update(blob).digest('hex');

async function serve(t: { after: (fn: () => void) => void }, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a blob is written on the thread with the headers given, and becomes a verified blob of the store', async (t) => {
  let auth: string | undefined;
  const base = await serve(t, (req, res) => {
    auth = req.headers.authorization;
    res.writeHead(200, { 'content-length': blob.length }).end(blob);
  });
  const content = new ContentStore(await tempDir(t));
  const info = await content.putWritten({ digest, size: blob.length }, (path) =>
    fetchBlobInThread({ url: `${base}/v2/a/blobs/${digest}`, headers: { authorization: 'Bearer t0k' }, digest, size: blob.length, path, what: 'layer 1' }),
  );
  assert.deepEqual(info, { digest, size: blob.length });
  assert.equal(auth, 'Bearer t0k');
  assert.ok(readFileSync(content.blobPath(digest)).equals(blob));
  assert.deepEqual(readdirSync(join(content.root, 'ingest')), []);
});

test('wrong content, a short body, a cut connection or another status fail, and leave no file', async (t) => {
  const bad = Buffer.from(blob);
  bad[1000] ^= 1;
  const base = await serve(t, (req, res) => {
    if (req.url === '/wrong') res.writeHead(200, { 'content-length': bad.length }).end(bad);
    else if (req.url === '/short') res.writeHead(200, { 'content-length': 10 }).end(blob.subarray(0, 10));
    else if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': blob.length });
      res.write(blob.subarray(0, 1 << 20), () => res.destroy());
    } else res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
  });
  const dir = await tempDir(t);
  const content = new ContentStore(dir);
  const fetch = (path: string) => (target: string) => fetchBlobInThread({ url: `${base}${path}`, headers: {}, digest, size: blob.length, path: target, what: 'layer 1' });
  await assert.rejects(content.putWritten({ digest, size: blob.length }, fetch('/wrong')), /layer 1: digest sha256:[0-9a-f]{64}, expected/);
  await assert.rejects(content.putWritten({ digest, size: blob.length }, fetch('/short')), /layer 1: size 10, expected/);
  await assert.rejects(content.putWritten({ digest, size: blob.length }, fetch('/cut')), /layer 1|closed|aborted/);
  await assert.rejects(content.putWritten({ digest, size: blob.length }, fetch('/missing')), /layer 1: GET answered 404/);
  assert.deepEqual(readdirSync(join(dir, 'ingest')), []);
  assert.ok(!existsSync(content.blobPath(digest)));
});
