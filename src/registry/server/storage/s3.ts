// Blobs in an S3-compatible bucket (AWS S3, Ceph radosgw, MinIO…), so that several registry replicas
// can share one store (issue 18). The client settings are the ones radosgw 16.2 accepts; see
// test/support/servers.test.ts for what breaks without them.

import { createReadStream } from 'node:fs';
import { open, readFile, stat as statFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import {
  S3Client,
  HeadBucketCommand,
  CreateBucketCommand,
  ListObjectsV2Command,
  HeadObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { StorageNotFound, type BlobDriver, type MultipartStore } from './driver.js';

export interface S3Options {
  /** URL of an S3-compatible service; default: AWS S3 of the region. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Every object key is `${prefix}/${key}`, to share a bucket with other data. */
  prefix?: string;
  /** Default: AWS_ACCESS_KEY_ID, then the SDK's other sources (shared files, instance roles). */
  accessKey?: string;
  /** Default: AWS_SECRET_ACCESS_KEY. */
  secretKey?: string;
  /** Bucket in the path (http://host/bucket/key) instead of the host name: most non-AWS services. */
  forcePathStyle?: boolean;
  /** Path of a PEM CA bundle the endpoint's certificate is checked against (besides the usual roots). */
  ca?: string;
  /** Clients fetch blobs from presigned URLs (307) instead of through the registry. */
  redirect?: boolean;
}

/** Where transfers are split; the defaults suit production, tests lower them to stay fast. */
export interface S3Tuning {
  /** Files up to this size are stored with one PUT; larger ones in parts. */
  singlePutMax: number;
  /** Size of each part but the last (S3's smallest is 5 MiB). */
  partSize: number;
  /** Parts sent at once by one put or commitFile. */
  partsInFlight: number;
  /** Objects up to this size are moved with one CopyObject (S3's largest is 5 GiB). */
  copyMax: number;
  /** Size of each UploadPartCopy range when moving larger objects. */
  copyPartSize: number;
  /** Milliseconds the bucket check at start may take before the endpoint counts as unreachable. */
  startTimeout: number;
}

const MiB = 1024 * 1024;
const defaultTuning: S3Tuning = {
  singlePutMax: 64 * MiB,
  partSize: 8 * MiB,
  partsInFlight: 4,
  copyMax: 5 * 1024 * MiB,
  copyPartSize: 512 * MiB,
  startTimeout: 8000,
};

export interface S3Driver extends BlobDriver, MultipartStore {
  readonly bucket: string;
  readonly multipart: MultipartStore;
  /** A URL that GETs the object without credentials until it expires. */
  presignGet(key: string, expiresSeconds: number): Promise<string>;
  /** Whether the registry should redirect blob downloads to presigned URLs (storage.s3.redirect). */
  readonly redirect: boolean;
  /** Closes the client's connections. */
  destroy(): void;
}

/** What the SDK throws: service errors carry a code and the HTTP status, network errors a Node code. */
interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}
const codeOf = (e: unknown): string => {
  const err = e as SdkError;
  return err?.Code ?? err?.code ?? err?.name ?? 'Error';
};
const statusOf = (e: unknown): number | undefined => (e as SdkError)?.$metadata?.httpStatusCode;
const isMissing = (e: unknown): boolean => ['NoSuchKey', 'NotFound'].includes(codeOf(e)) || statusOf(e) === 404;
const credentialCodes = ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError'];
const networkCodes = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'TimeoutError', 'AbortError', 'RequestTimeout'];

/** Why a request failed, in words an operator can act on (never the credentials themselves). */
function reason(e: unknown): string {
  const code = codeOf(e);
  const status = statusOf(e);
  if (credentialCodes.includes(code)) return `the credentials were refused (${code})`;
  if (code === 'RequestTimeTooSkewed') return `this machine's clock is too far from the endpoint's (${code})`;
  if (code === 'AccessDenied' || (status === 403 && code !== 'Forbidden')) return `no permission (${code})`;
  if (status === 403) return 'the credentials were refused or lack permission (403)';
  if (code === 'PermanentRedirect' || status === 301) return 'the bucket is in another region (301); set storage.s3.region';
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return `the endpoint's certificate is not trusted (${code}); storage.s3.ca names a CA bundle`;
  if (networkCodes.includes(code) || (e as Error)?.name === 'AbortError') return `the endpoint is unreachable (${code})`;
  const message = (e as SdkError)?.message;
  return `${code}${status ? `, HTTP ${status}` : ''}${message && message !== code && message !== 'UnknownError' ? `: ${message}` : ''}`;
}

/** Checks (and creates when missing) the bucket, so a misconfiguration fails at start, not at the first push. */
export async function openS3Driver(opts: S3Options, tuning: Partial<S3Tuning> = {}): Promise<S3Driver> {
  const t: S3Tuning = { ...defaultTuning, ...tuning };
  if (t.partSize < 5 * MiB || t.copyPartSize < 5 * MiB) throw new Error('storage s3: parts must be at least 5 MiB (S3 refuses smaller ones)');
  const { bucket } = opts;
  const endpoint = opts.endpoint ?? `https://s3.${opts.region}.amazonaws.com`;
  const where = `bucket ${bucket} at ${endpoint}`;

  const accessKeyId = opts.accessKey ?? process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = opts.secretKey ?? process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId !== !secretAccessKey) throw new Error(`storage s3 (${where}): an access key needs its secret key and the other way round`);
  const sessionToken = opts.accessKey ? undefined : process.env.AWS_SESSION_TOKEN;

  const ca = opts.ca ? await readFile(opts.ca, 'utf8').catch((e: Error) => {
    throw new Error(`storage s3 (${where}): cannot read the CA bundle ${opts.ca}: ${e.message}`);
  }) : undefined;
  const sockets = { keepAlive: true, maxSockets: 64 };
  const httpsAgent = new https.Agent({ ...sockets, ...(ca ? { ca: [...rootCertificates, ca] } : {}) });
  const httpAgent = new http.Agent(sockets);
  const client = new S3Client({
    endpoint: opts.endpoint,
    region: opts.region,
    forcePathStyle: opts.forcePathStyle ?? false,
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, sessionToken } } : {}),
    // radosgw 16.2 knows neither aws-chunked bodies with trailing checksums nor the new checksum headers
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent, httpsAgent, connectionTimeout: 3000 }),
  });
  const destroy = () => {
    client.destroy();
    httpAgent.destroy();
    httpsAgent.destroy();
  };
  try {
    await ensureBucket(client, bucket, t.startTimeout);
  } catch (e) {
    destroy();
    throw new Error(`storage s3: cannot use ${where}: ${reason(e)}`, { cause: e });
  }
  return s3Driver(client, opts, t, where, destroy);
}

async function ensureBucket(client: S3Client, Bucket: string, timeoutMs: number): Promise<void> {
  const abortSignal = AbortSignal.timeout(timeoutMs);
  try {
    await client.send(new HeadBucketCommand({ Bucket }), { abortSignal });
    return;
  } catch (e) {
    // HEAD answers carry no body, so a 403 says neither whether the keys or the permissions are
    // wrong: a GET of the listing gets the error code that tells
    if (statusOf(e) === 403) await client.send(new ListObjectsV2Command({ Bucket, MaxKeys: 1 }), { abortSignal });
    if (!isMissing(e) && codeOf(e) !== 'NoSuchBucket') throw e;
  }
  try {
    await client.send(new CreateBucketCommand({ Bucket }), { abortSignal });
  } catch (e) {
    // another replica starting at the same time created it first
    if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(codeOf(e))) throw e;
    await client.send(new HeadBucketCommand({ Bucket }), { abortSignal });
  }
}

/** Exactly `size` bytes per chunk but the last, whatever sizes the stream delivers. */
async function* fixedChunks(source: AsyncIterable<Buffer | string>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let have = 0;
  for await (const data of source) {
    let buf = typeof data === 'string' ? Buffer.from(data) : data;
    while (have + buf.length >= size) {
      const take = size - have;
      pending.push(buf.subarray(0, take));
      yield Buffer.concat(pending, size);
      pending = [];
      have = 0;
      buf = buf.subarray(take);
    }
    if (buf.length > 0) {
      pending.push(buf);
      have += buf.length;
    }
  }
  if (have > 0) yield Buffer.concat(pending, have);
}

type Part = { partNumber: number; etag: string };

/** Runs `send` for each item with at most `limit` running; the first failure stops taking new items. */
async function bounded<T>(items: AsyncIterable<T>, limit: number, send: (item: T) => Promise<Part>): Promise<Part[]> {
  const done: Part[] = [];
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  try {
    for await (const item of items) {
      const task: Promise<void> = send(item).then(
        (part) => void done.push(part),
        (error: unknown) => void (failure ??= { error }),
      ).finally(() => running.delete(task));
      running.add(task);
      if (running.size >= limit) await Promise.race(running);
      if (failure) break;
    }
  } finally {
    await Promise.allSettled(running);
  }
  if (failure) throw failure.error;
  return done.sort((a, b) => a.partNumber - b.partNumber);
}

function s3Driver(client: S3Client, opts: S3Options, t: S3Tuning, where: string, destroy: () => void): S3Driver {
  const Bucket = opts.bucket;
  const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const full = (key: string): string => (prefix ? `${prefix}/${key}` : key);
  const relative = (objectKey: string): string => (prefix && objectKey.startsWith(`${prefix}/`) ? objectKey.slice(prefix.length + 1) : objectKey);
  // list prefixes name a "directory", as with the filesystem driver: "sha256" lists sha256/…, not sha2560/…
  const listPrefix = (p: string): string => {
    const dir = p.replace(/\/+$/, '');
    return dir ? `${full(dir)}/` : prefix ? `${prefix}/` : '';
  };
  // CopySource is bucket/key with the key URL-encoded (slashes may stay)
  const copySource = (key: string): string => `${Bucket}/${encodeURIComponent(full(key)).replace(/%2F/g, '/')}`;

  const fail = (op: string, key: string, e: unknown): Error => new Error(`storage s3: ${op} ${key} in ${where}: ${reason(e)}`, { cause: e });
  const notFoundOr = (op: string, key: string) => (e: unknown): never => {
    throw isMissing(e) ? new StorageNotFound(key) : fail(op, key, e);
  };

  async function getObject(key: string, range?: { start: number; end: number }) {
    const r = await client
      .send(new GetObjectCommand({ Bucket, Key: full(key), Range: range ? `bytes=${range.start}-${range.end}` : undefined }))
      .catch(notFoundOr('get', key));
    return r.Body as Readable & { transformToByteArray(): Promise<Uint8Array> };
  }

  async function putObject(key: string, body: Buffer | Readable, length: number): Promise<void> {
    await client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body, ContentLength: length })).catch((e: unknown) => {
      throw fail('put', key, e);
    });
  }

  /** One multipart upload from parts produced on demand; aborted when any part fails, so no parts linger. */
  async function uploadInParts(key: string, parts: AsyncIterable<{ partNumber: number; body: Buffer }>): Promise<void> {
    const uploadId = await multipart.createMultipart(key);
    try {
      const done = await bounded(parts, t.partsInFlight, async (p) => ({
        partNumber: p.partNumber,
        etag: await multipart.uploadPart(key, uploadId, p.partNumber, p.body, p.body.length),
      }));
      await multipart.completeMultipart(key, uploadId, done);
    } catch (e) {
      await multipart.abortMultipart(key, uploadId).catch(() => {});
      throw e;
    }
  }

  async function* fileParts(localPath: string, size: number): AsyncGenerator<{ partNumber: number; body: Buffer }> {
    // whole parts in memory, not file streams: the SDK can resend a buffer when it retries a part
    const fh = await open(localPath, 'r');
    try {
      for (let offset = 0, partNumber = 1; offset < size; offset += t.partSize, partNumber++) {
        const length = Math.min(t.partSize, size - offset);
        const body = Buffer.allocUnsafe(length);
        const { bytesRead } = await fh.read(body, 0, length, offset);
        if (bytesRead !== length) throw new Error(`storage s3: ${localPath} changed while it was uploaded`);
        yield { partNumber, body };
      }
    } finally {
      await fh.close();
    }
  }

  async function copyInParts(from: string, to: string, size: number): Promise<void> {
    const uploadId = await multipart.createMultipart(to);
    async function* ranges() {
      for (let start = 0, partNumber = 1; start < size; start += t.copyPartSize, partNumber++) {
        yield { partNumber, range: `bytes=${start}-${Math.min(start + t.copyPartSize, size) - 1}` };
      }
    }
    try {
      const done = await bounded(ranges(), t.partsInFlight, async ({ partNumber, range }) => {
        const r = await client
          .send(new UploadPartCopyCommand({ Bucket, Key: full(to), UploadId: uploadId, PartNumber: partNumber, CopySource: copySource(from), CopySourceRange: range }))
          .catch(notFoundOr('move', from));
        return { partNumber, etag: r.CopyPartResult?.ETag ?? '' };
      });
      await multipart.completeMultipart(to, uploadId, done);
    } catch (e) {
      await multipart.abortMultipart(to, uploadId).catch(() => {});
      throw e;
    }
  }

  const multipart: MultipartStore = {
    async createMultipart(key) {
      const r = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: full(key) })).catch((e: unknown) => {
        throw fail('create multipart upload of', key, e);
      });
      if (!r.UploadId) throw new Error(`storage s3: create multipart upload of ${key} in ${where}: no UploadId in the answer`);
      return r.UploadId;
    },

    async uploadPart(key, uploadId, partNumber, body, length) {
      const r = await client.send(new UploadPartCommand({ Bucket, Key: full(key), UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: length })).catch((e: unknown) => {
        throw fail(`upload part ${partNumber} of`, key, e);
      });
      if (!r.ETag) throw new Error(`storage s3: upload part ${partNumber} of ${key} in ${where}: no ETag in the answer`);
      return r.ETag;
    },

    async completeMultipart(key, uploadId, parts) {
      const Parts = [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ PartNumber: p.partNumber, ETag: p.etag }));
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: full(key), UploadId: uploadId, MultipartUpload: { Parts } })).catch((e: unknown) => {
        throw fail('complete multipart upload of', key, e);
      });
    },

    async abortMultipart(key, uploadId) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key: full(key), UploadId: uploadId })).catch((e: unknown) => {
        if (codeOf(e) !== 'NoSuchUpload' && statusOf(e) !== 404) throw fail('abort multipart upload of', key, e);
      });
    },

    async *listMultipart(p) {
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        const r = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: listPrefix(p), KeyMarker, UploadIdMarker })).catch((e: unknown) => {
          throw fail('list multipart uploads under', p || '/', e);
        });
        for (const u of r.Uploads ?? []) {
          if (u.Key && u.UploadId) yield { key: relative(u.Key), uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) };
        }
        [KeyMarker, UploadIdMarker] = r.IsTruncated ? [r.NextKeyMarker, r.NextUploadIdMarker] : [undefined, undefined];
      } while (KeyMarker);
    },
  };

  return {
    name: 's3',
    bucket: Bucket,
    redirect: opts.redirect ?? false,
    multipart,
    ...multipart,
    destroy,

    async stat(key) {
      try {
        const r = await client.send(new HeadObjectCommand({ Bucket, Key: full(key) }));
        return { size: r.ContentLength ?? 0, modified: r.LastModified ?? new Date(0) };
      } catch (e) {
        if (isMissing(e)) return undefined;
        throw fail('stat', key, e);
      }
    },

    get: (key, range) => getObject(key, range),

    async read(key) {
      const body = await getObject(key);
      return Buffer.from(await body.transformToByteArray());
    },

    async put(key, source) {
      // an S3 PUT is atomic, but needs its length up front: a stream that fits one part is sent
      // whole, a longer one in parts (the object appears only when the upload completes)
      const chunks = fixedChunks(source, t.partSize);
      const first = await chunks.next();
      if (first.done) return putObject(key, Buffer.alloc(0), 0);
      const second = await chunks.next();
      if (second.done) return putObject(key, first.value, first.value.length);
      await uploadInParts(
        key,
        (async function* () {
          yield { partNumber: 1, body: first.value };
          yield { partNumber: 2, body: second.value };
          let partNumber = 3;
          for await (const body of chunks) yield { partNumber: partNumber++, body };
        })(),
      );
    },

    async commitFile(key, localPath) {
      // the caller deletes localPath once this resolves
      const { size } = await statFile(localPath);
      if (size <= t.singlePutMax) return putObject(key, createReadStream(localPath), size);
      await uploadInParts(key, fileParts(localPath, size));
    },

    async *list(p) {
      let ContinuationToken: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket, Prefix: listPrefix(p), ContinuationToken })).catch((e: unknown) => {
          throw fail('list', p || '/', e);
        });
        for (const o of r.Contents ?? []) {
          if (o.Key) yield { key: relative(o.Key), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) };
        }
        ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },

    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: full(key) })).catch((e: unknown) => {
        if (!isMissing(e)) throw fail('delete', key, e);
      });
    },

    async move(from, to) {
      // S3 has no rename: a copy, then the delete of the source; readers of `to` see all or nothing
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: full(from) })).catch(notFoundOr('move', from));
      const size = head.ContentLength ?? 0;
      if (size <= t.copyMax) {
        await client.send(new CopyObjectCommand({ Bucket, Key: full(to), CopySource: copySource(from) })).catch(notFoundOr('move', from));
      } else {
        await copyInParts(from, to, size);
      }
      await client.send(new DeleteObjectCommand({ Bucket, Key: full(from) })).catch((e: unknown) => {
        if (!isMissing(e)) throw fail('delete (after moving it)', from, e);
      });
    },

    async presignGet(key, expiresSeconds) {
      return getSignedUrl(client, new GetObjectCommand({ Bucket, Key: full(key) }), { expiresIn: expiresSeconds });
    },
  };
}
