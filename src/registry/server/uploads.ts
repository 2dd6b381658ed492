import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { algorithmOf } from '../../oci/digest.js';
import { syncFile } from './storage/filesystem.js';
import { blobUploadInvalid, blobUploadUnknown, digestInvalid, RegistryError, sizeInvalid } from './errors.js';

// Upload sessions (distribution-spec "Pushing blobs"): one temporary file each, hashed as bytes
// arrive, verified when the client closes the session. Nothing here is visible to readers: the
// blob service commits a verified file by fsync and rename.

export interface UploadSession {
  readonly id: string;
  readonly repository: string;
  readonly algorithm: 'sha256' | 'sha512';
  /** Bytes received so far. */
  offset: number;
}

/** A verified upload, ready to become a blob: a local file to store, or bytes already stored under a key. */
export interface StagedBlob {
  size: number;
  path?: string;
  key?: string;
  /** Called once the blob is recorded (or failed to be): the session's last traces go. */
  done?: () => Promise<void>;
}

/**
 * Upload sessions: local files on one machine (here), or rows and multipart uploads that every
 * replica shares (shared-uploads.ts).
 */
export interface Uploads {
  start(repository: string, algorithm?: 'sha256' | 'sha512'): Promise<UploadSession>;
  /** The session, or BLOB_UPLOAD_UNKNOWN (also for a session of another repository, or one that expired). */
  get(repository: string, id: string): Promise<UploadSession>;
  /**
   * Append a chunk. `start` (from Content-Range) must equal the current offset (else 416) and
   * `length` (from Content-Range or Content-Length) must be what arrives; on any failure the chunk
   * is rolled back, so the session stays as it was before the request.
   */
  append(s: UploadSession, source: Readable, expect: { start?: number; length?: number }, onBytes?: (n: number) => void): Promise<void>;
  /** Verify the digest and hand over the finished bytes, durable; the session ends either way. */
  finish(s: UploadSession, digest: string): Promise<StagedBlob>;
  cancel(s: UploadSession): Promise<void>;
  readonly inProgress: number;
  close(): Promise<void>;
}

/** How much of an upload may wait in the page cache before it is written back (see append). */
const writebackBytes = 8 * 1024 * 1024;

/** A session of this process: its temporary file and the running hash of what it holds. */
interface LocalSession extends UploadSession {
  readonly path: string;
  startedAt: number;
  touchedAt: number;
  busy: boolean;
  hash: Hash;
}

export async function openUploads(dir: string, timeoutSeconds: number): Promise<Uploads> {
  // Sessions do not survive a restart (their hash state lived in memory): clear what a crash left.
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const sessions = new Map<string, LocalSession>();
  const local = (s: UploadSession): LocalSession => {
    const l = sessions.get(s.id);
    if (!l) throw blobUploadUnknown(s.id);
    return l;
  };

  const end = async (s: LocalSession, keepFile = false) => {
    sessions.delete(s.id);
    if (!keepFile) await unlink(s.path).catch(() => {});
  };

  const sweep = setInterval(
    () => {
      const cutoff = Date.now() - timeoutSeconds * 1000;
      for (const s of sessions.values()) if (!s.busy && s.touchedAt < cutoff) void end(s);
    },
    Math.max(250, Math.min(60_000, (timeoutSeconds * 1000) / 4)),
  );
  sweep.unref();

  return {
    async start(repository, algorithm = 'sha256') {
      const id = randomUUID();
      const path = join(dir, id);
      const fh = await open(path, 'wx', 0o600);
      await fh.close();
      const now = Date.now();
      const s: LocalSession = { id, repository, algorithm, path, offset: 0, startedAt: now, touchedAt: now, busy: false, hash: createHash(algorithm) };
      sessions.set(id, s);
      return s;
    },

    async get(repository, id) {
      const s = sessions.get(id);
      if (!s || s.repository !== repository) throw blobUploadUnknown(id.slice(0, 100));
      return s;
    },

    async append(session, source, expect, onBytes) {
      const s = local(session);
      if (s.busy) throw blobUploadInvalid('another request is writing to this upload');
      if (expect.start !== undefined && expect.start !== s.offset) {
        throw new RegistryError('chunk-out-of-order', `chunk starts at ${expect.start}, the upload has ${s.offset} bytes`, undefined, {
          Range: `0-${Math.max(0, s.offset - 1)}`,
        });
      }
      s.busy = true;
      const before = s.offset;
      const hash = s.hash.copy();
      const fh = await open(s.path, 'r+');
      let pos = before;
      // Large uploads start writing back to disk while the rest arrives, so the fsync that makes the
      // finished file durable (finish) has little left to wait for. One sync in flight at a time.
      let syncing: Promise<void> | undefined;
      let syncFailure: unknown;
      let unsynced = 0;
      try {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          if (expect.length !== undefined && pos - before + chunk.length > expect.length) throw sizeInvalid(`chunk is longer than the ${expect.length} bytes declared`);
          hash.update(chunk);
          let written = 0;
          while (written < chunk.length) written += (await fh.write(chunk, written, chunk.length - written, pos + written)).bytesWritten;
          pos += chunk.length;
          onBytes?.(chunk.length);
          unsynced += chunk.length;
          if (unsynced >= writebackBytes && !syncing) {
            unsynced = 0;
            // A failed sync fails the chunk: Linux may not report the lost write-back to a later fsync.
            syncing = fh.datasync().then(
              () => void (syncing = undefined),
              (e: unknown) => void (syncFailure ??= e),
            );
          }
          if (syncFailure) throw syncFailure;
        }
        await syncing;
        if (syncFailure) throw syncFailure;
        if (expect.length !== undefined && pos - before !== expect.length) throw sizeInvalid(`chunk has ${pos - before} bytes, ${expect.length} declared`);
        s.hash = hash;
        s.offset = pos;
      } catch (e) {
        await syncing;
        await fh.truncate(before).catch(() => {});
        throw e;
      } finally {
        await fh.close();
        s.busy = false;
        s.touchedAt = Date.now();
      }
    },

    async finish(session, digest) {
      const s = local(session);
      if (s.busy) throw blobUploadInvalid('another request is writing to this upload');
      let actual: string;
      if (algorithmOf(digest) === s.algorithm) actual = `${s.algorithm}:${s.hash.copy().digest('hex')}`;
      else {
        // The client announced another algorithm only now: hash the file again.
        const h = createHash(algorithmOf(digest));
        for await (const c of createReadStream(s.path)) h.update(c as Buffer);
        actual = `${algorithmOf(digest)}:${h.digest('hex')}`;
      }
      if (actual !== digest) {
        await end(s);
        throw digestInvalid('provided digest did not match uploaded content', { expected: digest, actual });
      }
      await end(s, true);
      // Synced here, by each upload on its own, so that committing it (under the metadata write
      // lock, which all pushes share) renames a clean file and does not wait for its data to reach disk.
      try {
        await syncFile(s.path);
      } catch (e) {
        await unlink(s.path).catch(() => {});
        throw e;
      }
      return { path: s.path, size: s.offset };
    },

    async cancel(session) {
      const s = sessions.get(session.id);
      if (s) await end(s);
    },

    get inProgress() {
      return sessions.size;
    },

    async close() {
      clearInterval(sweep);
      for (const s of [...sessions.values()]) await end(s);
    },
  };
}
