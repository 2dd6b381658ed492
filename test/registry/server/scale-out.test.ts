// The registry on an S3-compatible store (a real Ceph radosgw): the distribution-spec checks pass
// with blobs in the bucket and upload sessions in the database, and a session's bytes may arrive
// in chunks of any size (S3 refuses parts under 5 MiB except the last).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checks } from './conformance.js';
import { sha256, startRegistry, type Client, type TestRegistry } from './support.js';
import { startRadosgw, type Radosgw } from '../../support/radosgw.js';
import { suiteScope } from '../../support/daemon.js';
import type { RegistryConfig } from '../../../src/registry/server/config.js';

const skip = process.getuid?.() !== 0 && 'not root: the Ceph test cluster is set up as root (scripts/setup.sh installs it)';

let bucketCount = 0;
function onS3(gw: Radosgw): (c: RegistryConfig) => void {
  const bucket = `kiln-${process.pid}-${++bucketCount}`;
  return (c) => {
    c.storage.driver = 's3';
    c.storage.s3 = { endpoint: gw.endpoint, region: gw.region, bucket, accessKey: gw.accessKey, secretKey: gw.secretKey, forcePathStyle: true };
  };
}

describe('the registry on S3 (radosgw)', { skip }, () => {
  const scope = suiteScope();
  let gw: Radosgw;
  let reg: TestRegistry;
  let c: Client;

  test('start radosgw and a registry on it', async () => {
    gw = await startRadosgw(scope);
    reg = await startRegistry(scope, onS3(gw));
    c = reg.client();
  });

  describe('OCI distribution-spec conformance', () => {
    for (const check of checks) test(check.name, () => check.run(c, 's3'));
  });

  test('a chunked upload in pieces of every size (under, at and over a part) arrives whole, and its blob is an S3 object under a key of its own', async () => {
    const sizes = [1, 3 << 20, 5 << 20, (8 << 20) + 7, 100, 9 << 20, 0, 2];
    const data = randomBytes(sizes.reduce((a, b) => a + b, 0));
    const post = await c.req('POST', '/v2/s3/chunks/blobs/uploads/');
    assert.equal(post.status, 202);
    let loc = post.headers.get('location')!;
    let at = 0;
    for (const n of sizes.filter((x) => x > 0)) {
      const r = await c.req('PATCH', loc, { body: data.subarray(at, at + n), headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + n - 1}` } });
      assert.equal(r.status, 202, r.text());
      at += n;
      assert.equal(r.headers.get('range'), `0-${at - 1}`);
      loc = r.headers.get('location')!;
    }
    const digest = sha256(data);
    const id = loc.split('?')[0]!.split('/').pop()!;
    const put = await c.req('PUT', `${loc}${loc.includes('?') ? '&' : '?'}digest=${digest}`);
    assert.equal(put.status, 201, put.text());
    const got = await c.req('GET', `/v2/s3/chunks/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.equal(sha256(got.body), digest);
    const row = await reg.registry.metadata.blob(digest);
    assert.ok(row && row.key.startsWith('data/'), JSON.stringify(row));
    const stat = await reg.registry.driver.stat(row.key);
    assert.equal(stat?.size, data.length);
    // Nothing is left of the session: no temporary object, no multipart upload, no row.
    assert.equal(await reg.registry.metadata.getUpload(id), undefined);
    const objects: string[] = [];
    for await (const o of reg.registry.driver.list(`_uploads/${id}`)) objects.push(o.key);
    const multiparts: string[] = [];
    for await (const m of reg.registry.driver.multipart!.listMultipart('data')) multiparts.push(m.key);
    assert.deepEqual({ objects, multiparts }, { objects: [], multiparts: [] });
  });

  test('a chunk out of order is refused with 416 and the session keeps what it had; a wrong digest ends the session and stores nothing', async () => {
    const post = await c.req('POST', '/v2/s3/order/blobs/uploads/');
    const loc = post.headers.get('location')!;
    const first = randomBytes(1000);
    const r1 = await c.req('PATCH', loc, { body: first, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-999' } });
    assert.equal(r1.status, 202);
    const skipAhead = await c.req('PATCH', loc, { body: randomBytes(10), headers: { 'content-type': 'application/octet-stream', 'content-range': '2000-2009' } });
    assert.equal(skipAhead.status, 416);
    assert.equal(skipAhead.headers.get('range'), '0-999');
    const status = await c.req('GET', loc);
    assert.equal(status.headers.get('range'), '0-999');
    const wrong = await c.req('PUT', `${loc}?digest=${sha256(Buffer.from('something else'))}`);
    assert.equal(wrong.status, 400);
    assert.equal((await c.req('GET', loc)).status, 404);
    assert.equal(await reg.registry.metadata.blob(sha256(Buffer.from('something else'))), undefined);
  });

  test('a session abandoned past the timeout is purged: its row, its temporary object and its multipart upload', async () => {
    const short = await startRegistry(scope, (cfg) => {
      onS3(gw)(cfg);
      cfg.uploads.sessionTimeout = 1;
    });
    const sc = short.client();
    const loc = (await sc.req('POST', '/v2/s3/abandoned/blobs/uploads/')).headers.get('location')!;
    // Over one part (a multipart upload exists) plus a short tail (a temporary object exists).
    const r = await sc.req('PATCH', loc, { body: randomBytes((8 << 20) + 10), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 202);
    const pending = async () => {
      const found: string[] = [];
      for await (const o of short.registry.driver.list('_uploads')) found.push(o.key);
      for await (const m of short.registry.driver.multipart!.listMultipart('data')) found.push(m.key);
      return found;
    };
    assert.equal((await pending()).length, 2);
    const deadline = Date.now() + 10_000;
    while ((await sc.req('GET', loc)).status !== 404 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    assert.equal((await sc.req('GET', loc)).status, 404);
    while ((await pending()).length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(await pending(), []);
  });
});
