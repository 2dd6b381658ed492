// Which thrown errors are an unreachable backend (503 and Retry-After) and which are not (500, or
// the registry error itself). Real errors where they are cheap to get: pg connecting to a closed
// port, the AWS SDK's S3 client on one; the rest shaped as pg and the SDK shape them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Client, HeadObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { isBackendUnavailable } from '../../../src/registry/server/unavailable.js';
import { registryErrorOf, statusOf } from '../../../src/registry/server/http.js';
import { blobUnknown } from '../../../src/registry/server/errors.js';
import { freePort } from '../../support/daemon.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
const s3Error = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

test('pg: a refused connection, a dropped one, a connect timeout and the server shutting down are unavailable', async () => {
  const port = await freePort();
  const c = new pg.Client({ connectionString: `postgres://x@127.0.0.1:${port}/x`, connectionTimeoutMillis: 2000 });
  const refused = await c.connect().then(() => undefined, (e: unknown) => e);
  assert.ok(refused, 'connecting to a closed port fails');
  assert.equal(isBackendUnavailable(refused), true, String(refused));
  for (const e of [
    new Error('Connection terminated unexpectedly'),
    new Error('Connection terminated'),
    new Error('timeout exceeded when trying to connect'),
    withCode('terminating connection due to administrator command', '57P01'),
    withCode('terminating connection due to crash of another server process', '57P02'),
    withCode('the database system is starting up', '57P03'),
    withCode('connection failure', '08006'),
    withCode('could not establish connection', '08001'),
    withCode('read ECONNRESET', 'ECONNRESET'),
  ]) {
    assert.equal(isBackendUnavailable(e), true, e.message);
  }
});

test('the S3 SDK: a refused connection, a timeout, and 500/503 from the store are unavailable, also wrapped by the driver', async () => {
  const port = await freePort();
  const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  try {
    const refused = await client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'k' })).then(() => undefined, (e: unknown) => e);
    assert.ok(refused);
    assert.equal(isBackendUnavailable(refused), true, String(refused));
    // the S3 driver's errors carry the SDK's as cause
    assert.equal(isBackendUnavailable(new Error('storage s3: get data/x in b: unreachable', { cause: refused })), true);
  } finally {
    client.destroy();
  }
  for (const e of [
    s3Error('ServiceUnavailable', 503),
    s3Error('InternalError', 500),
    Object.assign(new Error('Connection timed out after 3000 ms'), { name: 'TimeoutError' }),
    withCode('socket hang up', 'ECONNRESET'),
    new Error('socket hang up'),
    withCode('connect ETIMEDOUT 10.0.0.1:443', 'ETIMEDOUT'),
    new AggregateError([withCode('connect ECONNREFUSED ::1:9000', 'ECONNREFUSED')], 'all addresses failed'),
  ]) {
    assert.equal(isBackendUnavailable(e), true, e.message);
  }
});

test('answers that are not an outage are not unavailable: missing objects, refused credentials, SQL errors, bugs', () => {
  for (const e of [
    s3Error('NoSuchKey', 404),
    s3Error('AccessDenied', 403),
    s3Error('InvalidAccessKeyId', 403),
    withCode('duplicate key value violates unique constraint', '23505'),
    withCode('relation "blobs" does not exist', '42P01'),
    withCode('could not serialize access', '40001'),
    new TypeError("Cannot read properties of undefined (reading 'key')"),
    'a string',
    undefined,
    null,
  ]) {
    assert.equal(isBackendUnavailable(e), false, String(e));
  }
  // a cycle of causes ends
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  assert.equal(isBackendUnavailable(a), false);
});

test('the HTTP layer: unavailable is 503 UNAVAILABLE with Retry-After: 1; registry errors stay themselves; others are 500', () => {
  const down = registryErrorOf(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'));
  assert.deepEqual(statusOf(down), { status: 503, code: 'UNAVAILABLE' });
  assert.equal(down.headers?.['Retry-After'], '1');
  const unknown = blobUnknown('sha256:00');
  assert.equal(registryErrorOf(unknown), unknown);
  assert.deepEqual(statusOf(registryErrorOf(new Error('bug'))), { status: 500, code: 'UNKNOWN' });
});
