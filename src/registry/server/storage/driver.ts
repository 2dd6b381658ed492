import type { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

/**
 * Where blob bytes live, addressed by a key ("sha256/ab/abcd…"). The registry decides what the
 * keys mean; a driver only stores bytes. The filesystem driver is the default; an S3-compatible
 * driver fits behind the same methods.
 */
export interface BlobDriver {
  readonly name: string;
  /** Size of the object, or undefined when there is none. */
  stat(key: string): Promise<{ size: number; modified: Date } | undefined>;
  /** Read the object, or the inclusive byte range [start, end] of it. Throws StorageNotFound. */
  get(key: string, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * The object as an open local file, for drivers that keep objects in local files: the server then
   * sends it with reused buffers instead of a stream (see send-file.ts). Throws StorageNotFound.
   */
  openFile?(key: string): Promise<FileHandle>;
  /** Read a small object whole. Throws StorageNotFound. */
  read(key: string): Promise<Buffer>;
  /** Store a stream under key so that readers see all of it or nothing (temporary object, sync, rename). */
  put(key: string, source: Readable): Promise<void>;
  /** Move a finished local file (an upload session's temporary file) durably into place under key. */
  commitFile(key: string, localPath: string): Promise<void>;
  /** Keys under a prefix, with sizes; order unspecified. */
  list(prefix: string): AsyncIterable<{ key: string; size: number; modified: Date }>;
  /** Remove the object; no error when it is already gone. */
  delete(key: string): Promise<void>;
  /** Rename an object (atomic on a filesystem). Throws StorageNotFound when from is missing. */
  move(from: string, to: string): Promise<void>;
  /** When set (storage.s3.redirect), blob downloads are redirected to presignGet's URLs. */
  readonly redirect?: boolean;
  /** A short-lived URL that reads the object straight from the store. */
  presignGet?(key: string, expiresSeconds: number): Promise<string>;
  /** Release connections (drivers that hold any). */
  destroy?(): void;
  /** Present on drivers whose uploads can be assembled from parts in the store itself (S3). */
  multipart?: MultipartStore;
}

export class StorageNotFound extends Error {
  constructor(readonly key: string) {
    super(`storage: ${key} not found`);
  }
}

/** Keys of committed blobs: sha256/ab/abcdef… (the two-character fan-out keeps directories small). */
export function blobKey(digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return `${alg}/${hex.slice(0, 2)}/${hex}`;
}

/** Keys of blobs that garbage collection has taken out and will delete once its transaction commits. */
export function trashKey(digest: string): string {
  return `_trash/${digest.replace(':', '-')}`;
}

export function digestOfKey(key: string): string | undefined {
  const m = /^(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]+)$/.exec(key);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

/**
 * S3 multipart uploads: parts of at least 5 MiB except the last, any replica may add parts. An upload
 * session of the registry can then live in the bucket instead of a replica's local file.
 */
export interface MultipartStore {
  /** Returns the UploadId. */
  createMultipart(key: string): Promise<string>;
  /** Returns the part's ETag, which completeMultipart needs. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer | Readable, length: number): Promise<string>;
  completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<void>;
  /** No error when the upload is already gone. */
  abortMultipart(key: string, uploadId: string): Promise<void>;
  /** Uploads begun and neither completed nor aborted, under a prefix (keys without the driver's prefix). */
  listMultipart(prefix: string): AsyncIterable<{ key: string; uploadId: string; initiated: Date }>;
}
