import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import Database from 'better-sqlite3';
import { kilnMain } from '../../support/env.js';
import { client, freePort, pushBlob, randomImage, sha256, waitFor, type TestImage } from './support.js';

// Durability: a registry killed with SIGKILL in the middle of uploads and manifest writes restarts
// with no partial blob or manifest visible and every completed push intact.

function startServer(root: string, port: number): ChildProcess {
  return spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`], { stdio: 'ignore' });
}

/** An upload that sends part of a large body and then stalls, so the kill finds it mid-stream. */
function stalledUpload(port: number, path: string, size: number): void {
  const req = request({ host: '127.0.0.1', port, method: 'PUT', path, headers: { 'content-length': size, 'content-type': 'application/octet-stream' } });
  req.on('error', () => {});
  req.write(randomBytes(Math.floor(size / 2)));
}

test('SIGKILL in the middle of uploads and manifest writes: after restart no partial blob or manifest is visible and every completed push is intact', { timeout: 120_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-crash-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const port = await freePort();
  let server = startServer(root, port);
  t.after(() => void server.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const c = client(url);
  await waitFor(async () => (await c.req('GET', '/v2/')).status === 200, 15_000, 'server start');

  const completed: { repo: string; tag: string; img: TestImage }[] = [];
  let stop = false;
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const img = randomImage({ layers: 3, layerSize: 64 * 1024 + w * 1000 });
      const repo = `crash/w${w}`;
      try {
        for (const b of [img.config, ...img.layers]) await pushBlob(c, repo, b);
        const r = await c.req('PUT', `/v2/${repo}/manifests/t${i}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
        if (r.status === 201) completed.push({ repo, tag: `t${i}`, img });
      } catch {
        return; // the server died under us
      }
    }
  };
  const workers = Array.from({ length: 6 }, (_, w) => worker(w));
  await waitFor(async () => completed.length >= 12, 30_000, 'some completed pushes');
  // Large uploads caught half-way when the kill comes.
  for (let i = 0; i < 4; i++) {
    const loc = (await c.req('POST', '/v2/crash/stalled/blobs/uploads/')).headers.get('location')!;
    stalledUpload(port, `${loc}?digest=${sha256(randomBytes(1))}`, 8 * 1024 * 1024);
  }
  await new Promise((r) => setTimeout(r, 150));
  server.kill('SIGKILL');
  stop = true;
  await Promise.all(workers);
  const done = completed.length;
  assert.ok(done >= 12);

  server = startServer(root, port);
  await waitFor(async () => (await c.req('GET', '/v2/')).status === 200, 15_000, 'server restart');

  // Every completed push pulls completely, bytes verified.
  for (const p of completed) {
    const m = await c.req('GET', `/v2/${p.repo}/manifests/${p.tag}`);
    assert.equal(m.status, 200, `${p.repo}:${p.tag}`);
    assert.deepEqual(m.body, p.img.manifest);
    for (const b of [p.img.config, ...p.img.layers]) {
      const r = await c.req('GET', `/v2/${p.repo}/blobs/${sha256(b)}`);
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), sha256(b));
    }
  }
  // Every stored blob holds exactly the bytes its row promises: nothing partial was put in place
  // (the server, restarted, holds the database; a read-only connection sees its committed rows).
  const db = new Database(join(root, 'registry.db'), { readonly: true });
  const rows = db.prepare("SELECT digest, key FROM blobs WHERE state = 'live'").all() as { digest: string; key: string }[];
  db.close();
  assert.ok(rows.length > 0);
  for (const r of rows) assert.equal(`sha256:${createHash('sha256').update(await readFile(join(root, 'blobs', r.key))).digest('hex')}`, r.digest, r.key);
  // Every tag that resolves serves a manifest whose blobs are all there.
  for (let w = 0; w < 6; w++) {
    const tags = await c.req('GET', `/v2/crash/w${w}/tags/list`);
    if (tags.status !== 200) continue;
    for (const tag of tags.json<{ tags: string[] }>().tags) {
      const m = await c.req('GET', `/v2/crash/w${w}/manifests/${tag}`);
      assert.equal(m.status, 200);
      const doc = m.json<{ config: { digest: string }; layers: { digest: string }[] }>();
      for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) assert.equal((await c.req('HEAD', `/v2/crash/w${w}/blobs/${d}`)).status, 200);
    }
  }
  // Upload sessions did not survive, and their temporary files are gone.
  assert.deepEqual(await readdir(join(root, 'blobs', '_uploads')), []);
  t.diagnostic(`${done} pushes completed before the kill`);
});
