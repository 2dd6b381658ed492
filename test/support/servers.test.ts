// The real servers the registry's PostgreSQL and S3 backends are tested against (issue 18) start,
// serve their protocol to the maintained clients the backends use, and survive a restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import pg from 'pg';
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  UploadPartCopyCommand,
  ListMultipartUploadsCommand,
  AbortMultipartUploadCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  DeleteObjectCommand,
  DeleteObjectsCommand,
} from '@aws-sdk/client-s3';
import { startPostgres } from './postgres.js';
import { startRadosgw, type Radosgw } from './radosgw.js';

const skip = process.getuid?.() !== 0 && 'not root: the PostgreSQL and Ceph test servers are set up as root (scripts/setup.sh installs them)';

async function query(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

test('a throwaway PostgreSQL 15 cluster answers SQL on its loopback port and its socket, and keeps its rows across restart()', { skip, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const db = await startPostgres(t);
  t.diagnostic(`PostgreSQL started in ${Date.now() - started} ms`);
  assert.match(db.url, /^postgres:\/\/kiln@127\.0\.0\.1:\d+\/kiln$/);

  assert.match((await query(db.url, 'SELECT version() AS v')).rows[0].v, /^PostgreSQL 15\./);
  await query(db.url, 'CREATE TABLE blobs (digest text PRIMARY KEY, size bigint NOT NULL)');
  await query(db.url, 'INSERT INTO blobs VALUES ($1, $2), ($3, $4)', ['sha256:aa', 5, 'sha256:bb', 7]);
  assert.deepEqual((await query(db.url, 'SELECT digest, size::int FROM blobs ORDER BY digest')).rows, [
    { digest: 'sha256:aa', size: 5 },
    { digest: 'sha256:bb', size: 7 },
  ]);

  const viaSocket = new pg.Client({ host: db.socketDir, port: db.port, user: 'kiln', database: 'kiln' });
  await viaSocket.connect();
  assert.equal((await viaSocket.query('SELECT count(*)::int AS n FROM blobs')).rows[0].n, 2);

  // a connection open across the restart is ended by the server; a new one finds the rows
  const ended = new Promise<void>((resolve) => viaSocket.on('error', () => resolve()));
  const restarted = Date.now();
  await db.restart();
  t.diagnostic(`PostgreSQL restarted in ${Date.now() - restarted} ms`);
  await ended;
  assert.equal((await query(db.url, 'SELECT sum(size)::int AS s FROM blobs')).rows[0].s, 12);
  await viaSocket.end().catch(() => {});
});

/** The client settings radosgw 16.2 accepts (see the streamed PUT below). */
function s3Client(gw: Radosgw): S3Client {
  return new S3Client({
    endpoint: gw.endpoint,
    region: gw.region,
    credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey },
    forcePathStyle: true,
    // the SDK's default (WHEN_SUPPORTED) sends a streamed body as aws-chunked with a trailing CRC32
    // (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER), which radosgw 16.2 does not know:
    // PutObject of a stream fails with 411 MissingContentLength. WHEN_REQUIRED sends it as it is,
    // UNSIGNED-PAYLOAD with a Content-Length (so a stream needs ContentLength, as S3 requires anyway)
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function getBytes(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('radosgw on a single-node Ceph serves S3: a bucket, a streamed PUT read back byte for byte, a multipart upload of 5 MiB + 1 byte, a part copied from a range, abandoned uploads listed and aborted, a listing and deletes, across restart()', { skip, timeout: 180_000 }, async (t) => {
  const started = Date.now();
  const gw = await startRadosgw(t);
  t.diagnostic(`Ceph (mon, memstore OSD, radosgw) started in ${Date.now() - started} ms`);
  assert.match(gw.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  const s3 = s3Client(gw);
  t.after(() => s3.destroy());
  const Bucket = 'kiln-blobs';

  await s3.send(new CreateBucketCommand({ Bucket }));

  // a stream of unknown shape, as a blob upload arrives: chunks of uneven sizes
  const small = randomBytes(300_001);
  await s3.send(new PutObjectCommand({ Bucket, Key: 'blobs/small', Body: Readable.from([small.subarray(0, 1), small.subarray(1, 65_537), small.subarray(65_537)]), ContentLength: small.length }));
  assert.ok((await getBytes(s3, Bucket, 'blobs/small')).equals(small));

  // S3's smallest part is 5 MiB, except the last: the registry's upload sessions rely on both
  const part1 = randomBytes(5 * 1024 * 1024);
  const part2 = randomBytes(1);
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'blobs/large' }));
  const parts = [];
  for (const [i, body] of [part1, part2].entries()) {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key: 'blobs/large', UploadId, PartNumber: i + 1, Body: body }));
    parts.push({ ETag, PartNumber: i + 1 });
  }
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'blobs/large', UploadId, MultipartUpload: { Parts: parts } }));
  const large = await getBytes(s3, Bucket, 'blobs/large');
  assert.equal(large.length, 5 * 1024 * 1024 + 1);
  assert.equal(sha256(large), sha256(Buffer.concat([part1, part2])));

  // what upload sessions also use: a part copied from an object's range (short chunks joined
  // server-side), the listing and abort of abandoned uploads, HEAD for a blob's size
  const copy = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'blobs/copied' }));
  const copied = await s3.send(new UploadPartCopyCommand({ Bucket, Key: 'blobs/copied', UploadId: copy.UploadId, PartNumber: 1, CopySource: `${Bucket}/blobs/small`, CopySourceRange: 'bytes=0-99' }));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'blobs/copied', UploadId: copy.UploadId, MultipartUpload: { Parts: [{ ETag: copied.CopyPartResult?.ETag, PartNumber: 1 }] } }));
  assert.ok((await getBytes(s3, Bucket, 'blobs/copied')).equals(small.subarray(0, 100)));
  const abandoned = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'uploads/abandoned' }));
  await s3.send(new UploadPartCommand({ Bucket, Key: 'uploads/abandoned', UploadId: abandoned.UploadId, PartNumber: 1, Body: Buffer.from('x') }));
  const open = await s3.send(new ListMultipartUploadsCommand({ Bucket }));
  assert.deepEqual(open.Uploads?.map((u) => [u.Key, u.UploadId]), [['uploads/abandoned', abandoned.UploadId]]);
  await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: 'uploads/abandoned', UploadId: abandoned.UploadId }));
  assert.equal((await s3.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads?.length ?? 0, 0);
  assert.equal((await s3.send(new HeadObjectCommand({ Bucket, Key: 'blobs/large' }))).ContentLength, 5 * 1024 * 1024 + 1);
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'blobs/copied' }));

  const listing = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'blobs/' }));
  assert.deepEqual(listing.Contents?.map((o) => [o.Key, o.Size]), [['blobs/large', 5 * 1024 * 1024 + 1], ['blobs/small', small.length]]);

  const restarted = Date.now();
  await gw.restart();
  t.diagnostic(`radosgw restarted in ${Date.now() - restarted} ms`);
  assert.ok((await getBytes(s3, Bucket, 'blobs/small')).equals(small), 'objects survive a restart of radosgw');

  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'blobs/small' }));
  // DeleteObjects is one operation S3 requires a body checksum for: the SDK sends x-amz-checksum-crc32
  // even WHEN_REQUIRED, and radosgw 16.2 takes it (it does not insist on Content-MD5)
  const multi = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'blobs/large' }] } }));
  assert.deepEqual(multi.Deleted?.map((d) => d.Key), ['blobs/large']);
  assert.equal((await s3.send(new ListObjectsV2Command({ Bucket }))).KeyCount, 0);
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'blobs/small' })), { name: 'NoSuchKey' });
  // No DeleteBucket: kiln never deletes a bucket, and radosgw 16.2 takes 25 s over it here; the
  // bucket goes with the cluster's directory.
});
