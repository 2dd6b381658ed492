import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { assertSpecError } from './conformance.js';
import { pushBlob, pushImage, randomImage, sha256, startRegistry, waitFor } from './support.js';

// Bad input: each answers with the spec's error and status, never a 500, and leaves storage consistent.

/** Send raw bytes and collect what comes back until the server closes (or `ms` passes). */
function raw(port: number, data: string | Buffer, opts: { endAfterWrite?: boolean; ms?: number } = {}): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString(), closedByServer: false });
    }, opts.ms ?? 5000);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString(), closedByServer: true });
    });
    s.write(data);
    if (opts.endAfterWrite) s.end();
  });
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { errors: { code: string }[] };

async function uploadFiles(root: string): Promise<string[]> {
  return (await readdir(`${root}/blobs/_uploads`).catch(() => [])) as string[];
}

test('a truncated upload (the client hangs up mid-body) leaves no blob and no partial data in the session', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const post = await c.req('POST', '/v2/bad/truncated/blobs/uploads/');
  const loc = post.headers.get('location')!;
  const data = randomBytes(10_000);
  const r = await raw(
    reg.port,
    Buffer.concat([Buffer.from(`PUT ${loc}?digest=${sha256(data)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000\r\n\r\n`), data.subarray(0, 4000)]),
    { endAfterWrite: true, ms: 3000 },
  );
  // Either no answer, or (the client half-closed) a 400 for the incomplete request.
  assert.ok(r.text === '' || statusOf(r.text) === 400, r.text.slice(0, 100));
  assert.equal((await c.req('HEAD', `/v2/bad/truncated/blobs/${sha256(data)}`)).status, 404);
  await waitFor(async () => (await c.req('GET', loc)).headers.get('range') === '0-0', 3000, 'rollback');
  // The hung-up request may still hold the session for a moment (the status shows its offset before
  // the request began): the session refuses a second writer meanwhile, then takes the whole blob.
  let done = await c.req('PUT', `${loc}?digest=${sha256(data)}`, { body: data });
  for (let i = 0; i < 60 && done.status === 400 && /another request is writing/.test(done.text()); i++) {
    await new Promise((r) => setTimeout(r, 50));
    done = await c.req('PUT', `${loc}?digest=${sha256(data)}`, { body: data });
  }
  assert.equal(done.status, 201, 'the session can still be completed');
});

test('a digest mismatch is 400 DIGEST_INVALID and leaves neither blob nor temporary file', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const data = randomBytes(3000);
  const claimed = sha256(randomBytes(3000));
  assertSpecError(await c.req('POST', `/v2/bad/mismatch/blobs/uploads/?digest=${claimed}`, { body: data }), 400, 'DIGEST_INVALID');
  assert.equal((await c.req('HEAD', `/v2/bad/mismatch/blobs/${claimed}`)).status, 404);
  assert.equal((await c.req('HEAD', `/v2/bad/mismatch/blobs/${sha256(data)}`)).status, 404);
  assert.deepEqual(await uploadFiles(reg.root), []);
  assertSpecError(await c.req('POST', `/v2/bad/mismatch/blobs/uploads/?digest=md5:abcdef`, { body: data }), 400, 'DIGEST_INVALID');
  assertSpecError(await c.req('POST', `/v2/bad/mismatch/blobs/uploads/?digest-algorithm=md5`), 400, 'DIGEST_INVALID');
});

test('Content-Range out of order is 416 with the current Range; a malformed one is 400 BLOB_UPLOAD_INVALID; a short chunk is 400 SIZE_INVALID', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const loc = (await c.req('POST', '/v2/bad/range/blobs/uploads/')).headers.get('location')!;
  assert.equal((await c.req('PATCH', loc, { body: randomBytes(100), headers: { 'content-range': '0-99' } })).status, 202);
  const r = await c.req('PATCH', loc, { body: randomBytes(100), headers: { 'content-range': '50-149' } });
  assertSpecError(r, 416, 'BLOB_UPLOAD_INVALID');
  assert.equal(r.headers.get('range'), '0-99');
  assert.equal(r.headers.get('location'), loc);
  assertSpecError(await c.req('PATCH', loc, { body: randomBytes(10), headers: { 'content-range': 'bytes=abc' } }), 400, 'BLOB_UPLOAD_INVALID');
  assertSpecError(await c.req('PATCH', loc, { body: randomBytes(10), headers: { 'content-range': '100-199' } }), 400, 'SIZE_INVALID');
  assert.equal((await c.req('GET', loc)).headers.get('range'), '0-99', 'failed chunks were rolled back');
});

test('path traversal in names and digests (../, encoded slashes) is refused with NAME_INVALID or DIGEST_INVALID', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  for (const path of ['/v2/../../etc/manifests/latest', '/v2/a/../b/manifests/latest', '/v2/a%2Fb/manifests/latest', '/v2/a/%2e%2e/manifests/latest', '/v2/a/..%2F..%2Fx/tags/list']) {
    const r = await raw(reg.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r.text), 400, path);
    assert.equal(bodyOf(r.text).errors[0]!.code, 'NAME_INVALID', path);
  }
  for (const ref of ['sha256:..%2F..%2Fetc', 'sha256:../../x', 'sha256:' + 'A'.repeat(64)]) {
    const r = await raw(reg.port, `GET /v2/a/b/blobs/${ref} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.ok([400, 404].includes(statusOf(r.text)), ref);
    assert.ok(['DIGEST_INVALID', 'NAME_UNKNOWN'].includes(bodyOf(r.text).errors[0]!.code), ref);
  }
  const up = await raw(reg.port, `PATCH /v2/a/b/blobs/uploads/..%2F..%2Fregistry.db HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`);
  assert.equal(statusOf(up.text), 404);
  assert.equal(bodyOf(up.text).errors[0]!.code, 'BLOB_UPLOAD_UNKNOWN');
  const dots = await raw(reg.port, `PUT /v2/a/b/manifests/.. HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
  assert.equal(statusOf(dots.text), 400);
  assert.equal(bodyOf(dots.text).errors[0]!.code, 'MANIFEST_INVALID');
  void c;
});

test('huge headers get 431 with the spec\'s JSON error body', async (t) => {
  const reg = await startRegistry(t);
  const r = await raw(reg.port, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  assert.equal(statusOf(r.text), 431);
  assert.ok(bodyOf(r.text).errors[0]!.code);
  assert.equal((await reg.client().req('GET', '/v2/')).status, 200, 'still serving');
});

test('malformed HTTP gets 400 with a JSON error body', async (t) => {
  const reg = await startRegistry(t);
  const r = await raw(reg.port, 'THIS IS NOT HTTP\r\n\r\n');
  assert.equal(statusOf(r.text), 400);
  assert.ok(bodyOf(r.text).errors[0]!.code);
});

test('slow clients that never finish: the connection is closed when idle and the upload session expires', async (t) => {
  const reg = await startRegistry(t, (cfg) => {
    cfg.http.idleTimeout = 1;
    cfg.uploads.sessionTimeout = 1;
  });
  const c = reg.client();
  const loc = (await c.req('POST', '/v2/bad/slow/blobs/uploads/')).headers.get('location')!;
  const r = await raw(reg.port, `PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`, { ms: 10_000 });
  assert.ok(r.closedByServer, 'server closed the idle connection');
  await waitFor(async () => (await c.req('GET', loc)).status === 404, 10_000, 'session expiry');
  assertSpecError(await c.req('PATCH', loc, { body: 'x' }), 404, 'BLOB_UPLOAD_UNKNOWN');
  await waitFor(async () => (await uploadFiles(reg.root)).length === 0, 5000, 'temporary files removed');
});

test('bad tokens and wrong passwords are 401 UNAUTHORIZED with a challenge', async (t) => {
  const reg = await startRegistry(t, (cfg) => (cfg.auth.enabled = true));
  for (const token of ['garbage', 'a.b.c', '']) {
    const r = await reg.client().req('GET', '/v2/x/y/manifests/latest', { headers: { authorization: `Bearer ${token}` } });
    assertSpecError(r, 401, 'UNAUTHORIZED');
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
  }
  const r = await fetch(`${reg.url}/token?service=kiln-registry`, { headers: { authorization: 'Basic ' + Buffer.from('nobody:wrong-password').toString('base64') } });
  assert.equal(r.status, 401);
  assertSpecError(await reg.client().req('GET', '/v2/_catalog'), 401, 'UNAUTHORIZED');
});

test('unknown repositories, blobs, uploads and endpoints get 404 with the matching code', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  assertSpecError(await c.req('GET', '/v2/no/such/manifests/latest'), 404, 'MANIFEST_UNKNOWN');
  assertSpecError(await c.req('GET', '/v2/no/such/tags/list'), 404, 'NAME_UNKNOWN');
  assertSpecError(await c.req('GET', `/v2/no/such/blobs/${sha256('x')}`), 404, 'BLOB_UNKNOWN');
  assertSpecError(await c.req('GET', '/v2/no/such/blobs/uploads/4f7e1b9a-0000-4000-8000-000000000000'), 404, 'BLOB_UPLOAD_UNKNOWN');
  assertSpecError(await c.req('DELETE', '/v2/no/such/manifests/latest'), 404, 'MANIFEST_UNKNOWN');
  assertSpecError(await c.req('GET', '/nothing-here'), 404);
  assertSpecError(await c.req('POST', '/v2/no/such/manifests/latest'), 405, 'UNSUPPORTED');
});

test('manifests of the wrong media type, mismatched Content-Type, bad schemaVersion or invalid tags are 400 MANIFEST_INVALID', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  const img = randomImage();
  assert.equal((await pushImage(c, 'bad/manifest', 'ok', img)).status, 201);
  const put = (tag: string, body: string | Buffer, type: string) => c.req('PUT', `/v2/bad/manifest/manifests/${tag}`, { body, headers: { 'content-type': type } });
  assertSpecError(await put('a', img.manifest, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 400, 'MANIFEST_INVALID');
  assertSpecError(await put('a', img.manifest, 'application/vnd.oci.image.index.v1+json'), 400, 'MANIFEST_INVALID');
  assertSpecError(await put('a', JSON.stringify({ schemaVersion: 1, name: 'x' }), 'application/json'), 400, 'MANIFEST_INVALID');
  assertSpecError(await put('a', '[1,2]', 'application/vnd.oci.image.manifest.v1+json'), 400, 'MANIFEST_INVALID');
  const noDigest = JSON.parse(img.manifest.toString());
  noDigest.layers[0].digest = 'sha256:short';
  assertSpecError(await put('a', JSON.stringify(noDigest), img.mediaType), 400, 'MANIFEST_INVALID');
  assertSpecError(await put('-bad', img.manifest, img.mediaType), 400, 'MANIFEST_INVALID');
  assertSpecError(await put('x'.repeat(129), img.manifest, img.mediaType), 400, 'MANIFEST_INVALID');
  assertSpecError(await c.req('GET', '/v2/bad/manifest/tags/list?n=abc'), 400);
  assert.equal((await c.req('GET', '/v2/bad/manifest/manifests/ok')).status, 200, 'the good manifest is untouched');
  const blob = await pushBlob(c, 'bad/manifest', randomBytes(10));
  assert.equal((await c.req('GET', `/v2/bad/manifest/blobs/${blob}`)).status, 200);
});

test('none of the bad requests above produced a 500 (metrics count requests by status)', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  await c.req('GET', '/v2/%00/manifests/x');
  await c.req('PUT', '/v2/a/b/manifests/latest', { body: Buffer.alloc(5 * 1024 * 1024) });
  await c.req('PATCH', '/v2/a/b/blobs/uploads/', { body: 'x' });
  await c.req('GET', `/v2/a/b/blobs/${sha256('x')}`, { headers: { range: 'bytes=9-1' } });
  const m = await (await fetch(`${reg.url}/metrics`)).text();
  assert.match(m, /kiln_registry_http_requests_total\{route="manifest",method="PUT",status="413"\} 1/);
  assert.doesNotMatch(m, /status="5\d\d"/);
});
