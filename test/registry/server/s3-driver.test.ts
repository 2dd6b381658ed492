// The S3 blob driver (issue 18) against a real radosgw (Debian's Ceph 16.2): the BlobDriver
// semantics the filesystem driver has, the multipart primitives shared upload sessions build on,
// presigned URLs, the bucket check at start, and the storage.s3 configuration.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { StorageNotFound, type BlobDriver } from '../../../src/registry/server/storage/driver.js';
import { openS3Driver, type S3Driver, type S3Options, type S3Tuning } from '../../../src/registry/server/storage/s3.js';
import { loadConfig } from '../../../src/registry/server/config.js';
import { freePort, runToLog, suiteScope } from '../../support/daemon.js';
import { startRadosgw, type Radosgw } from '../../support/radosgw.js';

const skip = process.getuid?.() !== 0 && 'not root: the Ceph test server is set up as root (scripts/setup.sh installs it)';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const drain = async (r: Readable): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};
const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};
/** Uneven chunks, as a blob upload arrives from a socket. */
const unevenStream = (b: Buffer): Readable => Readable.from([b.subarray(0, 1), b.subarray(1, 70_001), b.subarray(70_001, 3 * MiB + 17), b.subarray(3 * MiB + 17)]);
/** Parts at S3's 5 MiB minimum so multipart paths run on small files. */
const smallParts: Partial<S3Tuning> = { singlePutMax: 5 * MiB, partSize: 5 * MiB, copyMax: 5 * MiB, copyPartSize: 5 * MiB };

describe('S3 blob driver on radosgw', { skip, timeout: 60_000 }, () => {
  let gw: Radosgw;
  let opts: (bucket: string, more?: Partial<S3Options>) => S3Options;
  const drivers: S3Driver[] = [];
  const open = async (o: S3Options, tuning?: Partial<S3Tuning>) => {
    const d = await openS3Driver(o, tuning);
    drivers.push(d);
    return d;
  };
  let d: S3Driver; // prefix reg/p1 in bucket kiln-blobs
  let raw: S3Driver; // same bucket, no prefix: sees the keys as stored
  // registered now, in the describe: the cluster lives until the suite's last test has run
  const scope = suiteScope();

  before(async () => {
    const started = Date.now();
    gw = await startRadosgw(scope);
    console.log(`# radosgw started in ${Date.now() - started} ms`);
    opts = (bucket, more = {}) => ({ endpoint: gw.endpoint, region: gw.region, bucket, accessKey: gw.accessKey, secretKey: gw.secretKey, forcePathStyle: true, ...more });
    d = await open(opts('kiln-blobs', { prefix: '/reg/p1/' }), smallParts);
    raw = await open(opts('kiln-blobs'));
  });
  after(() => drivers.forEach((x) => x.destroy()));

  test('put, read, get, ranges, stat, delete, move; keys carry the prefix in the bucket', async () => {
    const blob = randomBytes(300_001);
    await d.put('sha256/ab/one', unevenStream(blob));
    assert.ok((await d.read('sha256/ab/one')).equals(blob));
    assert.ok((await drain(await d.get('sha256/ab/one'))).equals(blob));
    assert.ok((await drain(await d.get('sha256/ab/one', { start: 10, end: 19 }))).equals(blob.subarray(10, 20)), 'the range is inclusive');
    assert.ok((await drain(await d.get('sha256/ab/one', { start: 300_000, end: 300_000 }))).equals(blob.subarray(300_000)));

    const st = await d.stat('sha256/ab/one');
    assert.equal(st?.size, blob.length);
    assert.ok(st && Math.abs(st.modified.getTime() - Date.now()) < 60_000, 'modified is the object\'s LastModified');
    assert.equal((await raw.stat('reg/p1/sha256/ab/one'))?.size, blob.length, 'stored under <prefix>/<key>');
    assert.equal(await raw.stat('sha256/ab/one'), undefined);

    await d.put('empty', Readable.from([]));
    assert.equal((await d.read('empty')).length, 0);

    await d.move('sha256/ab/one', '_trash/one');
    assert.equal(await d.stat('sha256/ab/one'), undefined, 'move removes the source');
    assert.ok((await d.read('_trash/one')).equals(blob));

    await d.delete('_trash/one');
    assert.equal(await d.stat('_trash/one'), undefined);
    await d.delete('_trash/one');
    await d.delete('never/was');
  });

  test('missing keys: stat is undefined, get, read and move throw StorageNotFound', async () => {
    assert.equal(await d.stat('sha256/00/missing'), undefined);
    await assert.rejects(d.get('sha256/00/missing'), (e: unknown) => e instanceof StorageNotFound && e.key === 'sha256/00/missing');
    await assert.rejects(d.get('sha256/00/missing', { start: 0, end: 3 }), StorageNotFound);
    await assert.rejects(d.read('sha256/00/missing'), StorageNotFound);
    await assert.rejects(d.move('sha256/00/missing', 'sha256/00/elsewhere'), StorageNotFound);
    assert.equal(await d.stat('sha256/00/elsewhere'), undefined);
  });

  test('list pages through more than 1000 keys, with and without the driver prefix, and names directories', async () => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    const queue = [...keys];
    await Promise.all(Array.from({ length: 32 }, async () => {
      for (let k = queue.pop(); k; k = queue.pop()) await d.put(k, Readable.from([Buffer.from(k)]));
    }));
    await d.put('manyother/x', Readable.from([Buffer.from('x')]));

    const listed = await collect(d.list('many/'));
    assert.deepEqual(listed.map((o) => o.key).sort(), keys, 'every key once, without the driver prefix; not manyother/');
    assert.ok(listed.every((o) => o.size === 9 && o.modified instanceof Date && !Number.isNaN(o.modified.getTime())));
    assert.equal((await collect(d.list('many'))).length, 1100, 'a prefix without its slash names the same directory');
    const viaRaw = await collect(raw.list('reg/p1/many'));
    assert.equal(viaRaw.length, 1100);
    assert.ok(viaRaw.every((o) => o.key.startsWith('reg/p1/many/')));
    assert.ok((await collect(d.list(''))).some((o) => o.key === 'manyother/x'), 'the empty prefix lists everything under the driver prefix');
    assert.deepEqual(await collect(d.list('nothing/here')), []);
  });

  test('a stream longer than one part is stored in parts; commitFile above the threshold too, keeping the local file', async () => {
    const long = randomBytes(11 * MiB + 3);
    await d.put('streamed', unevenStream(long));
    assert.equal(sha256(await d.read('streamed')), sha256(long));

    const dir = await mkdtemp(join(tmpdir(), 'kiln-s3-'));
    try {
      const big = randomBytes(6 * MiB + 5);
      await writeFile(join(dir, 'big'), big);
      await d.commitFile('sha256/cd/big', join(dir, 'big'));
      assert.equal((await d.stat('sha256/cd/big'))?.size, big.length);
      assert.equal(sha256(await d.read('sha256/cd/big')), sha256(big));
      assert.ok(existsSync(join(dir, 'big')), 'the caller deletes the local file, not the driver');

      const small = randomBytes(1000);
      await writeFile(join(dir, 'small'), small);
      await d.commitFile('sha256/cd/small', join(dir, 'small'));
      assert.ok((await d.read('sha256/cd/small')).equals(small));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.deepEqual(await collect(d.listMultipart('')), [], 'completed uploads leave no pending ones');

    // above copyMax, move copies ranges with UploadPartCopy
    await d.move('sha256/cd/big', 'sha256/cd/moved');
    assert.equal(await d.stat('sha256/cd/big'), undefined);
    assert.equal((await d.stat('sha256/cd/moved'))?.size, 6 * MiB + 5);
    assert.deepEqual(await collect(d.listMultipart('')), []);
  });

  test('multipart primitives: parts of 5 MiB and a short last one, pending uploads listed, abort', async () => {
    const asBlobDriver: BlobDriver = d;
    assert.ok(asBlobDriver.multipart, 'code holding a BlobDriver finds the multipart primitives');
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(123)];
    const id = await d.multipart.createMultipart('_uploads/session-1');
    const etags: string[] = [];
    // any order, a stream body too: replicas add parts as they arrive
    etags[2] = await d.multipart.uploadPart('_uploads/session-1', id, 3, Readable.from([parts[2]!]), parts[2]!.length);
    etags[0] = await d.multipart.uploadPart('_uploads/session-1', id, 1, parts[0]!, parts[0]!.length);
    etags[1] = await d.multipart.uploadPart('_uploads/session-1', id, 2, parts[1]!, parts[1]!.length);

    const pending = await collect(d.multipart.listMultipart('_uploads'));
    assert.deepEqual(pending.map((u) => [u.key, u.uploadId]), [['_uploads/session-1', id]], 'listed without the driver prefix');
    assert.ok(Date.now() - pending[0]!.initiated.getTime() < 60_000);
    assert.deepEqual(await collect(d.multipart.listMultipart('other')), []);

    await d.multipart.completeMultipart('_uploads/session-1', id, [2, 0, 1].map((i) => ({ partNumber: i + 1, etag: etags[i]! })));
    assert.equal(sha256(await d.read('_uploads/session-1')), sha256(Buffer.concat(parts)));
    assert.deepEqual(await collect(d.multipart.listMultipart('_uploads')), []);

    const abandoned = await d.multipart.createMultipart('_uploads/session-2');
    await d.multipart.uploadPart('_uploads/session-2', abandoned, 1, Buffer.from('x'), 1);
    assert.deepEqual((await collect(d.multipart.listMultipart(''))).map((u) => u.uploadId), [abandoned]);
    await d.multipart.abortMultipart('_uploads/session-2', abandoned);
    assert.deepEqual(await collect(d.multipart.listMultipart('')), []);
    assert.equal(await d.stat('_uploads/session-2'), undefined);
    await d.multipart.abortMultipart('_uploads/session-2', abandoned);
    await d.multipart.abortMultipart('_uploads/never', '2~no-such-upload-id');
  });

  test('presignGet: a URL plain fetch can GET, until it expires', async () => {
    const blob = randomBytes(4096);
    await d.put('sha256/ef/signed', Readable.from([blob]));
    assert.equal(d.redirect, false);
    const url = await d.presignGet('sha256/ef/signed', 60);
    assert.ok(url.startsWith(`${gw.endpoint}/kiln-blobs/reg/p1/sha256/ef/signed?`), url.replace(/Signature=[0-9a-f]+/, 'Signature=…'));
    const r = await fetch(url);
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(blob));

    const short = await d.presignGet('sha256/ef/signed', 1);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const expired = await fetch(short);
    await expired.arrayBuffer();
    assert.equal(expired.status, 403, 'an expired URL is refused');
  });

  test('openS3Driver creates a missing bucket, also when two replicas start at once, with keys from the environment', async () => {
    const s3 = new S3Client({ endpoint: gw.endpoint, region: gw.region, forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey } });
    after(() => s3.destroy());
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: 'kiln-new' })), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 404);
    const created = await open(opts('kiln-new'));
    await s3.send(new HeadBucketCommand({ Bucket: 'kiln-new' }));
    await created.put('k', Readable.from([Buffer.from('v')]));
    assert.equal((await created.read('k')).toString(), 'v');

    const [a, b] = await Promise.all([open(opts('kiln-race')), open(opts('kiln-race'))]);
    await a.put('from-a', Readable.from([Buffer.from('a')]));
    assert.equal((await b.read('from-a')).toString(), 'a', 'both replicas use the one bucket');

    const saved = [process.env.AWS_ACCESS_KEY_ID, process.env.AWS_SECRET_ACCESS_KEY];
    process.env.AWS_ACCESS_KEY_ID = gw.accessKey;
    process.env.AWS_SECRET_ACCESS_KEY = gw.secretKey;
    try {
      const fromEnv = await open(opts('kiln-new', { accessKey: undefined, secretKey: undefined }));
      assert.equal((await fromEnv.read('k')).toString(), 'v');
    } finally {
      [process.env.AWS_ACCESS_KEY_ID, process.env.AWS_SECRET_ACCESS_KEY] = saved;
      if (saved[0] === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved[1] === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });

  test('openS3Driver fails fast and clearly for an unreachable endpoint and for refused credentials', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    await assert.rejects(open(opts('kiln-blobs', { endpoint: closed })), (e: Error) => {
      assert.match(e.message, new RegExp(`bucket kiln-blobs at ${closed.replace(/\./g, '\\.')}: the endpoint is unreachable`));
      return true;
    });
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);

    await assert.rejects(open(opts('kiln-blobs', { secretKey: 'not-the-secret-key-0000000000000000000000' })), (e: Error) => {
      assert.match(e.message, /bucket kiln-blobs at http:\/\/127\.0\.0\.1:\d+: the credentials were refused \(SignatureDoesNotMatch\)/);
      assert.doesNotMatch(e.message, /not-the-secret|kiln-test-secret/, 'secrets stay out of messages');
      return true;
    });
    await assert.rejects(open(opts('kiln-blobs', { accessKey: 'NOSUCHACCESSKEY00000' })), /bucket kiln-blobs .*the credentials were refused \(InvalidAccessKeyId\)/);
  });

  test('openS3Driver gives up on an endpoint that accepts connections and never answers, within its start timeout', async (t) => {
    const silent = createServer(() => {});
    const sockets = new Set<Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      sockets.forEach((s) => s.destroy());
      silent.close();
    });
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const started = Date.now();
    await assert.rejects(open(opts('kiln-blobs', { endpoint }), { startTimeout: 1000 }), (e: Error) => {
      assert.match(e.message, new RegExp(`bucket kiln-blobs at ${endpoint.replace(/\./g, '\\.')}: the endpoint is unreachable`));
      return true;
    });
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  test('TLS: an endpoint whose certificate is signed by the CA bundle of `ca`; without it, the certificate is named', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-s3-tls-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    await runToLog('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=kiln test s3', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { logFile: join(dir, 'openssl.out') });
    // TLS in front of radosgw, passing the bytes through: the signed Host header stays the client's
    const gwPort = Number(new URL(gw.endpoint).port);
    const proxy = createTlsServer({ key: await readFile(key), cert: await readFile(cert) }, (s) => {
      const upstream = connect(gwPort, '127.0.0.1');
      s.pipe(upstream).pipe(s);
      s.on('error', () => upstream.destroy());
      upstream.on('error', () => s.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.after(() => void proxy.close());
    const endpoint = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    const secure = await open(opts('kiln-blobs', { endpoint, ca: cert, prefix: 'tls' }));
    await secure.put('over-tls', Readable.from([Buffer.from('sealed')]));
    assert.equal(await d.stat('over-tls'), undefined, 'stored under its own prefix, not reg/p1');
    assert.equal((await raw.read('tls/over-tls')).toString(), 'sealed');
    secure.destroy();
    await assert.rejects(open(opts('kiln-blobs', { endpoint })), /bucket kiln-blobs at https:\/\/127\.0\.0\.1:\d+: the endpoint's certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  });

  test('openS3Driver names a lack of permission: a user who does not own the bucket', async () => {
    await runToLog('/usr/bin/radosgw-admin', ['-c', join(gw.dir, 'ceph.conf'), 'user', 'create', '--uid=stranger', '--display-name=stranger', '--access-key=KILNSTRANGERKEY00000', '--secret-key=stranger-secret-0000000000000000000000000'], { logFile: join(gw.dir, 'log', 'stranger.out') });
    await assert.rejects(open(opts('kiln-blobs', { accessKey: 'KILNSTRANGERKEY00000', secretKey: 'stranger-secret-0000000000000000000000000' })), (e: Error) => {
      assert.match(e.message, /bucket kiln-blobs at http:\/\/127\.0\.0\.1:\d+: no permission \(AccessDenied\)/);
      return true;
    });
  });
});

describe('storage.s3 configuration', () => {
  let dir: string;
  before(async () => void (dir = await mkdtemp(join(tmpdir(), 'kiln-s3-config-'))));
  after(() => rm(dir, { recursive: true, force: true }));
  const load = async (yaml: string) => {
    await writeFile(join(dir, 'registry.yaml'), yaml);
    return loadConfig({ file: join(dir, 'registry.yaml'), defaultRoot: join(dir, 'root') });
  };

  test('driver s3 with its settings parses; region and flags have defaults; ca is resolved against the file', async () => {
    const c = await load('storage:\n  driver: s3\n  s3:\n    endpoint: https://rgw.example.com:7480/\n    bucket: blobs\n    prefix: prod\n    accessKey: AK\n    secretKey: SK\n    forcePathStyle: true\n    ca: ca.pem\n    redirect: true\n');
    assert.equal(c.storage.driver, 's3');
    assert.deepEqual(c.storage.s3, { endpoint: 'https://rgw.example.com:7480', region: 'us-east-1', bucket: 'blobs', prefix: 'prod', accessKey: 'AK', secretKey: 'SK', forcePathStyle: true, ca: join(dir, 'ca.pem'), redirect: true });
    const minimal = await load('storage:\n  driver: s3\n  s3:\n    bucket: blobs\n    region: eu-west-3\n');
    assert.deepEqual(minimal.storage.s3, { endpoint: undefined, region: 'eu-west-3', bucket: 'blobs', prefix: undefined, accessKey: undefined, secretKey: undefined, forcePathStyle: false, ca: undefined, redirect: false });
    assert.equal((await load('storage:\n  driver: filesystem\n')).storage.s3, undefined);
  });

  test('a missing bucket, an unknown key, a wrong type and s3 settings without driver s3 are refused', async () => {
    await assert.rejects(load('storage:\n  driver: s3\n'), { name: 'UsageError', message: /storage\.s3\.bucket: required/ });
    await assert.rejects(load('storage:\n  driver: s3\n  s3:\n    region: us-east-1\n'), /storage\.s3\.bucket: required/);
    await assert.rejects(load('storage:\n  driver: s3\n  s3:\n    bucket: b\n    secret: x\n'), /storage\.s3\.secret: unknown setting/);
    await assert.rejects(load('storage:\n  driver: s3\n  s3:\n    bucket: b\n    forcePathStyle: "yes"\n'), /storage\.s3\.forcePathStyle: expected true or false/);
    await assert.rejects(load('storage:\n  driver: s3\n  s3:\n    bucket: b\n    endpoint: rgw:7480\n'), /storage\.s3\.endpoint: expected an http/);
    await assert.rejects(load('storage:\n  s3:\n    bucket: b\n'), /storage\.s3: set, but storage\.driver is filesystem/);
    await assert.rejects(load('storage:\n  driver: gcs\n'), /storage\.driver: "gcs" is not available \(filesystem, s3\)/);
  });
});
