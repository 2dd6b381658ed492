import type { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import { unlink } from 'node:fs/promises';
import { byteCache } from './cache.js';
import { blobKey, StorageNotFound, trashKey, type BlobDriver } from './storage/driver.js';
import type { Metadata } from './metadata/metadata.js';
import { blobUnknown } from './errors.js';

/**
 * Blobs of repositories: bytes in the storage driver, existence and repository links in the metadata,
 * small blobs and known links cached in memory. A blob is visible only once its row is committed,
 * and its row is committed only after the verified file was fsynced and renamed into place.
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
  /** Make a verified upload file the blob `digest` of `repository`. */
  commit(repository: string, digest: string, path: string, size: number): Promise<void>;
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

export function blobService(opts: { driver: BlobDriver; metadata: Metadata; cachedBlobSize: number; blobCacheBytes: number; graceSeconds: number }): BlobService {
  const { driver, metadata } = opts;
  const small = byteCache<Buffer>(opts.blobCacheBytes);
  // repository \0 digest -> size, for links known to exist.
  const links = new Map<string, number>();
  // repository \0 digest -> when its link's last use was last written.
  const touched = new Map<string, number>();
  const markTouched = (k: string, at: number) => {
    if (touched.size > 100_000) touched.clear();
    touched.set(k, at);
  };
  const linkKey = (repo: string, digest: string) => repo + '\0' + digest;

  const stat = async (repository: string, digest: string): Promise<number | undefined> => {
    const k = linkKey(repository, digest);
    const known = links.get(k);
    if (known !== undefined) return known;
    const size = await metadata.linkedBlobSize(repository, digest);
    if (size !== undefined) {
      if (links.size > 100_000) links.clear();
      links.set(k, size);
    }
    return size;
  };

  return {
    stat,

    async open(repository, digest, range) {
      const size = await stat(repository, digest);
      if (size === undefined) throw blobUnknown(digest);
      let buf = small.get(digest);
      if (!buf && size <= opts.cachedBlobSize) {
        try {
          buf = await driver.read(blobKey(digest));
        } catch (e) {
          if (e instanceof StorageNotFound) throw blobUnknown(digest);
          throw e;
        }
        small.set(digest, buf, buf.length);
      }
      if (buf) return { size, buffer: range ? buf.subarray(range.start, range.end + 1) : buf };
      try {
        if (driver.openFile) return { size, file: await driver.openFile(blobKey(digest)) };
        return { size, stream: await driver.get(blobKey(digest), range) };
      } catch (e) {
        if (e instanceof StorageNotFound) throw blobUnknown(digest);
        throw e;
      }
    },

    async commit(repository, digest, path, size) {
      try {
        await metadata.exclusive(async (w) => {
          // Inside the write lock, so garbage collection cannot remove the file between rename and row.
          await driver.commitFile(blobKey(digest), path);
          w.recordBlob(digest, size, repository, Date.now());
        });
      } finally {
        await unlink(path).catch(() => {});
      }
      links.set(linkKey(repository, digest), size);
      // The commit just set the link's last use: a HEAD right after it (a client checking before its
      // manifest) need not write it again.
      markTouched(linkKey(repository, digest), Date.now());
    },

    async mount(repository, digest) {
      const ok = await metadata.linkBlob(repository, digest, Date.now());
      if (ok) {
        const size = await metadata.blobSize(digest);
        if (size !== undefined) links.set(linkKey(repository, digest), size);
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
      markTouched(k, now);
      await metadata.touchBlob(repository, digest, now);
      // The write waited for any GC in progress; ask the database, not the cache, whether the blob survived.
      if ((await metadata.linkedBlobSize(repository, digest)) !== undefined) return true;
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

/** Storage keys garbage collection uses: blobs move to the trash inside the transaction, are deleted after it. */
export { blobKey, trashKey };
