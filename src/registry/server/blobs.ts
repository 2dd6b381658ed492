import type { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import { unlink } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { byteCache } from './cache.js';
import { StorageNotFound, type BlobDriver } from './storage/driver.js';
import type { BlobRow, Metadata } from './metadata/metadata.js';
import { blobUnknown } from './errors.js';
import type { StagedBlob } from './uploads.js';

/**
 * Blobs of repositories: bytes in the storage driver, existence and repository links in the metadata,
 * small blobs and known links cached in memory. A blob is visible only once its row is committed,
 * and its row is committed only after the verified bytes are durably in place under their key.
 */
export interface BlobService {
  /** Size when the repository has the blob (HEAD), else undefined. */
  stat(repository: string, digest: string): Promise<number | undefined>;
  /**
   * The blob's bytes: from memory for small blobs, else an open file when the driver keeps local
   * files (the caller reads the range it wants and closes it), else a stream of the range.
   * BLOB_UNKNOWN when the repository does not have it.
   */
  open(repository: string, digest: string, range?: { start: number; end: number }): Promise<{ size: number; buffer?: Buffer; file?: FileHandle; stream?: Readable }>;
  /** Make a verified upload the blob `digest` of `repository`. */
  commit(repository: string, digest: string, staged: StagedBlob): Promise<void>;
  /** Throw away a verified upload that is refused (a quota): nothing of it stays. */
  discard(staged: StagedBlob): Promise<void>;
  /**
   * Where the client may fetch the blob straight from the store (storage.s3.redirect), for blobs
   * too big for the memory cache; undefined when the blob is served here.
   */
  redirect(repository: string, digest: string): Promise<string | undefined>;
  /** Cross-repository mount: link a blob the registry has; false when it does not. */
  mount(repository: string, digest: string): Promise<boolean>;
  /**
   * A client just checked the blob exists: restart its grace period so GC keeps it until the
   * manifest comes. False when garbage collection removed it meanwhile (the client must upload it).
   */
  touch(repository: string, digest: string): Promise<boolean>;
  unlink(repository: string, digest: string): Promise<boolean>;
  /** Drop caches (after GC, or when another process changed the data). */
  invalidate(): void;
  readonly cachedBytes: number;
}

export function blobService(opts: {
  driver: BlobDriver;
  metadata: Metadata;
  cachedBlobSize: number;
  blobCacheBytes: number;
  graceSeconds: number;
  /** A recorded blob whose bytes storage does not have (lost, or deleted behind the registry's back). */
  onMissing?: (digest: string, key: string) => void;
}): BlobService {
  const { driver, metadata } = opts;
  const small = byteCache<Buffer>(opts.blobCacheBytes);
  // repository \0 digest -> size, for links known to exist.
  const links = new Map<string, BlobRow>();
  // repository \0 digest -> when its link's last use was last written.
  const touched = new Map<string, number>();
  const markTouched = (k: string, at: number) => {
    if (touched.size > 100_000) touched.clear();
    touched.set(k, at);
  };
  const linkKey = (repo: string, digest: string) => repo + '\0' + digest;

  const remember = (k: string, row: BlobRow) => {
    if (links.size > 100_000) links.clear();
    links.set(k, row);
  };
  // With replicas, a link another replica just removed (DELETE, GC) must not be answered from here
  // until its notification arrives: the database is asked every time (one indexed read). On SQLite
  // one process serves, and other processes' writes reach its caches through onExternalChange.
  const cacheLinks = metadata.kind !== 'postgres';
  const linked = async (repository: string, digest: string): Promise<BlobRow | undefined> => {
    const k = linkKey(repository, digest);
    const known = cacheLinks ? links.get(k) : undefined;
    if (known !== undefined) return known;
    const row = await metadata.linkedBlob(repository, digest);
    if (row) remember(k, row);
    return row;
  };

  /**
   * The row says the registry has the blob and storage has no object: answer BLOB_UNKNOWN (never
   * other bytes), stop serving it everywhere, and let garbage collection repair the row.
   */
  const missing = async (repository: string, digest: string, key: string) => {
    links.delete(linkKey(repository, digest));
    small.delete(digest);
    opts.onMissing?.(digest, key);
    await metadata.reportMissing(digest, key);
    return blobUnknown(digest);
  };

  return {
    async stat(repository, digest) {
      return (await linked(repository, digest))?.size;
    },

    async open(repository, digest, range) {
      const row = await linked(repository, digest);
      if (row === undefined) throw blobUnknown(digest);
      const { size, key } = row;
      let buf = small.get(digest);
      if (!buf && size <= opts.cachedBlobSize) {
        try {
          buf = await driver.read(key);
        } catch (e) {
          if (e instanceof StorageNotFound) throw await missing(repository, digest, key);
          throw e;
        }
        small.set(digest, buf, buf.length);
      }
      if (buf) return { size, buffer: range ? buf.subarray(range.start, range.end + 1) : buf };
      try {
        if (driver.openFile) return { size, file: await driver.openFile(key) };
        return { size, stream: await driver.get(key, range) };
      } catch (e) {
        if (e instanceof StorageNotFound) throw await missing(repository, digest, key);
        throw e;
      }
    },

    async commit(repository, digest, staged) {
      // A key of its own for every upload, so that a collector deleting an earlier copy of the
      // digest cannot delete these bytes (see gc.ts). Until the row names it, the object is an
      // orphan that only a collector past the grace period would remove.
      const { size } = staged;
      let key = staged.key;
      if (key === undefined) {
        key = newObjectKey();
        try {
          await driver.commitFile(key, staged.path!);
        } finally {
          await unlink(staged.path!).catch(() => {});
        }
      }
      const recorded = await metadata.recordBlob(digest, size, repository, key, Date.now());
      // The registry had the digest already: its bytes stay, these go.
      if (recorded.key !== key) await driver.delete(key);
      remember(linkKey(repository, digest), { size, key: recorded.key });
      // The commit just set the link's last use: a HEAD right after it (a client checking before its
      // manifest) need not write it again.
      markTouched(linkKey(repository, digest), Date.now());
    },

    async discard(staged) {
      if (staged.key !== undefined) await driver.delete(staged.key);
      if (staged.path !== undefined) await unlink(staged.path).catch(() => {});
    },

    async redirect(repository, digest) {
      if (!driver.redirect || !driver.presignGet) return undefined;
      const row = await linked(repository, digest);
      if (!row || row.size <= opts.cachedBlobSize) return undefined;
      // As long as Distribution's: enough for a slow client to start, short enough to leak little.
      return driver.presignGet(row.key, 20 * 60);
    },

    async mount(repository, digest) {
      const ok = await metadata.linkBlob(repository, digest, Date.now());
      if (ok) {
        const row = await metadata.blob(digest);
        if (row) remember(linkKey(repository, digest), row);
        markTouched(linkKey(repository, digest), Date.now());
      }
      return ok;
    },

    async touch(repository, digest) {
      // At most one write per link and quarter grace period: HEAD stays a read.
      const k = linkKey(repository, digest);
      const now = Date.now();
      const last = touched.get(k) ?? 0;
      if (now - last < (opts.graceSeconds * 1000) / 4) return true;
      await metadata.touchBlob(repository, digest, now);
      // Only once the write is in: a failed one must not excuse the next HEAD from writing.
      markTouched(k, now);
      // Ask the database, not the cache, whether the blob survived a collector that ran meanwhile.
      if ((await metadata.linkedBlob(repository, digest)) !== undefined) return true;
      links.delete(k);
      touched.delete(k);
      return false;
    },

    async unlink(repository, digest) {
      links.delete(linkKey(repository, digest));
      return metadata.unlinkBlob(repository, digest);
    },

    invalidate() {
      small.clear();
      links.clear();
      touched.clear();
    },

    get cachedBytes() {
      return small.bytes;
    },
  };
}

/** Storage key for new bytes: random, fanned out over 256 directories. */
export function newObjectKey(id: string = randomUUID()): string {
  return `data/${id.slice(0, 2)}/${id}`;
}
