import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { algorithmOf } from '../../oci/digest.js';
import type { BlobDriver, MultipartStore } from './storage/driver.js';
import type { UploadRecord, UploadRows } from './metadata/metadata.js';
import { newObjectKey } from './blobs.js';
import { blobUploadInvalid, blobUploadUnknown, digestInvalid, RegistryError, sizeInvalid } from './errors.js';
import type { StagedBlob, UploadSession, Uploads } from './uploads.js';

// Upload sessions that any replica can continue (issue 18). The session is a database row; its
// bytes go straight into an S3 multipart upload at the blob's final key. S3 refuses parts under
// 5 MiB except the last, and clients send chunks of any size, so bytes that do not yet fill a
// part wait in a temporary object and go out with the next request's bytes. Every request first
// claims the row at the offset it expects (compare-and-set), so two requests can never write the
// same part, and a chunk that reaches another replica simply continues there. The running hash
// lives in the memory of the replica that took the bytes; a replica that lacks it reads the
// finished object back to verify the digest.

/** Parts are this big; S3's minimum is 5 MiB and its limit 10,000 parts (so blobs up to 80 GiB). */
const partSize = 8 * 1024 * 1024;
/** How long one request may hold a session; a replica killed mid-request blocks its session this long. */
const claimMs = 10 * 60_000;

interface Hashing {
  /** The hash of the first `offset` bytes. */
  offset: number;
  hash: Hash;
}

const pendingKey = (id: string) => `_uploads/${id}/pending`;

export function sharedUploads(opts: { rows: UploadRows; driver: BlobDriver; multipart: MultipartStore; timeoutSeconds: number; partBytes?: number }): Uploads {
  const { rows, driver, multipart: store } = opts;
  const part = opts.partBytes ?? partSize;
  const hashes = new Map<string, Hashing>();

  const session = (r: UploadRecord): UploadSession => ({ id: r.id, repository: r.repository, algorithm: r.algorithm, offset: r.offset });

  /** Claim the session at the offset the caller saw; the errors a client gets when it cannot. */
  const claim = async (s: UploadSession, start: number | undefined) => {
    if (start !== undefined && start !== s.offset) throw outOfOrder(start, s.offset);
    const token = randomUUID();
    const r = await rows.claimUpload(s.id, s.offset, token, Date.now() + claimMs);
    if (r === undefined) throw blobUploadUnknown(s.id);
    if (r === 'busy') throw blobUploadInvalid('another request is writing to this upload');
    if (r === 'offset') {
      const now = await rows.getUpload(s.id);
      throw outOfOrder(start ?? s.offset, now?.offset ?? s.offset);
    }
    return { record: r, token };
  };

  /** The bytes waiting for a part, from the temporary object. */
  const readPending = async (r: UploadRecord): Promise<Buffer> => (r.pending.length ? driver.read(r.pending[0]!.key) : Buffer.alloc(0));

  const end = async (r: UploadRecord) => {
    hashes.delete(r.id);
    if (r.multipartId) await store.abortMultipart(r.key, r.multipartId).catch(() => {});
    await driver.delete(pendingKey(r.id)).catch(() => {});
    await rows.deleteUpload(r.id);
  };

  const sweep = setInterval(
    () => void purge(Date.now() - opts.timeoutSeconds * 1000).catch(() => {}),
    Math.max(250, Math.min(60_000, (opts.timeoutSeconds * 1000) / 4)),
  );
  sweep.unref();

  /** Sessions abandoned for longer than the timeout, and multipart uploads whose session is gone. */
  const purge = async (before: number) => {
    for (const r of await rows.staleUploads(before)) await end(r);
    // Hashes of sessions another replica finished or purged.
    for (const id of [...hashes.keys()]) if (!(await rows.getUpload(id))) hashes.delete(id);
    for await (const m of store.listMultipart('data')) {
      if (m.initiated.getTime() >= before) continue;
      const id = m.key.slice(m.key.lastIndexOf('/') + 1);
      if (!(await rows.getUpload(id))) await store.abortMultipart(m.key, m.uploadId).catch(() => {});
    }
  };

  return {
    async start(repository, algorithm = 'sha256') {
      const id = randomUUID();
      const now = Date.now();
      const r: UploadRecord = { id, repository, algorithm, offset: 0, key: newObjectKey(id), parts: [], pending: [], startedAt: now, touchedAt: now };
      await rows.createUpload(r);
      hashes.set(id, { offset: 0, hash: createHash(algorithm) });
      return session(r);
    },

    async get(repository, id) {
      const r = /^[0-9a-f-]{36}$/.test(id) ? await rows.getUpload(id) : undefined;
      if (!r || r.repository !== repository) throw blobUploadUnknown(id.slice(0, 100));
      return session(r);
    },

    async append(s, source, expect, onBytes) {
      const { record: r, token } = await claim(s, expect.start);
      let update: Parameters<UploadRows['releaseUpload']>[2];
      try {
        const known = hashes.get(r.id);
        const hash = known && known.offset === r.offset ? known.hash.copy() : undefined;
        let buffered = [await readPending(r)];
        let bufferedBytes = buffered[0]!.length;
        const parts = [...r.parts];
        let multipartId = r.multipartId;
        let received = 0;
        const sendPart = async (bytes: Buffer) => {
          multipartId ??= await store.createMultipart(r.key);
          const partNumber = parts.length + 1;
          const etag = await store.uploadPart(r.key, multipartId, partNumber, bytes, bytes.length);
          parts.push({ partNumber, etag, size: bytes.length });
        };
        for await (const chunk of source as AsyncIterable<Buffer>) {
          received += chunk.length;
          if (expect.length !== undefined && received > expect.length) throw sizeInvalid(`chunk is longer than the ${expect.length} bytes declared`);
          hash?.update(chunk);
          onBytes?.(chunk.length);
          buffered.push(chunk);
          bufferedBytes += chunk.length;
          while (bufferedBytes >= part) {
            const all = Buffer.concat(buffered);
            await sendPart(all.subarray(0, part));
            buffered = [all.subarray(part)];
            bufferedBytes = buffered[0]!.length;
          }
        }
        if (expect.length !== undefined && received !== expect.length) throw sizeInvalid(`chunk has ${received} bytes, ${expect.length} declared`);
        const rest = Buffer.concat(buffered);
        if (rest.length) await driver.put(pendingKey(r.id), Readable.from([rest]));
        else if (r.pending.length) await driver.delete(pendingKey(r.id));
        const offset = r.offset + received;
        update = { offset, multipartId, parts, pending: rest.length ? [{ key: pendingKey(r.id), size: rest.length }] : [], touchedAt: Date.now() };
        if (hash) hashes.set(r.id, { offset, hash });
        else hashes.delete(r.id);
      } finally {
        // Without an update the session stays as it was before the request; parts it sent are
        // overwritten by the next request, which reuses their numbers.
        const kept = await rows.releaseUpload(r.id, token, update);
        if (update && !kept) throw blobUploadInvalid('the upload was taken over by another request');
      }
      s.offset = update.offset;
    },

    async finish(s, digest) {
      const { record: r, token } = await claim(s, undefined);
      let finished = false;
      try {
        const rest = await readPending(r);
        if (!r.multipartId) await driver.put(r.key, Readable.from([rest]));
        else {
          const parts = [...r.parts];
          if (rest.length) parts.push({ partNumber: parts.length + 1, etag: await store.uploadPart(r.key, r.multipartId, parts.length + 1, rest, rest.length), size: rest.length });
          await store.completeMultipart(r.key, r.multipartId, parts.map(({ partNumber, etag }) => ({ partNumber, etag })));
        }
        finished = true;
        const known = hashes.get(r.id);
        let actual: string;
        if (known && known.offset === r.offset && algorithmOf(digest) === r.algorithm) actual = `${r.algorithm}:${known.hash.digest('hex')}`;
        else {
          // The bytes reached another replica, or the client names another algorithm only now.
          const h = createHash(algorithmOf(digest));
          for await (const c of await driver.get(r.key)) h.update(c as Buffer);
          actual = `${algorithmOf(digest)}:${h.digest('hex')}`;
        }
        if (actual !== digest) {
          await driver.delete(r.key);
          throw digestInvalid('provided digest did not match uploaded content', { expected: digest, actual });
        }
        hashes.delete(r.id);
        await driver.delete(pendingKey(r.id)).catch(() => {});
        const staged: StagedBlob = {
          size: r.offset,
          key: r.key,
          // The row keeps the key in use (GC's orphan check) until the blob's own row has it.
          done: () => rows.deleteUpload(r.id),
        };
        return staged;
      } catch (e) {
        // A session whose object was completed cannot take more bytes: it ends. Before that, the
        // client may try again.
        if (finished || e instanceof RegistryError) await end({ ...r, multipartId: finished ? undefined : r.multipartId });
        else await rows.releaseUpload(r.id, token);
        throw e;
      }
    },

    async cancel(s) {
      const r = await rows.getUpload(s.id);
      if (r) await end(r);
    },

    get inProgress() {
      return hashes.size;
    },

    async close() {
      clearInterval(sweep);
    },
  };
}

function outOfOrder(start: number, offset: number): RegistryError {
  return new RegistryError('chunk-out-of-order', `chunk starts at ${start}, the upload has ${offset} bytes`, undefined, { Range: `0-${Math.max(0, offset - 1)}` });
}
