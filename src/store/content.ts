import { createReadStream, createWriteStream, existsSync, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat, unlink, appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { BlobUnknown } from '../errors.js';
import { EarlyFlush } from './early-flush.js';
import { Digester, DigestingStream, sha256, assertDigest, encodedOf, algorithmOf, isDigest } from '../oci/digest.js';

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface Expectation {
  digest?: string;
  size?: number;
  /** Names the blob in error messages ("layer 2 of busybox"). */
  what?: string;
}

/**
 * Blobs addressed by digest, laid out as an OCI image layout (blobs/<alg>/<hex>) so that skopeo and
 * umoci read the store directly. Writes go to ingest/, are verified while streaming, fsynced, and
 * become visible only by rename. Each process holds a lease listing the digests it wrote, so that a
 * concurrent garbage collection never deletes a blob before the image that uses it is recorded.
 */
export class ContentStore {
  private leasePath: string | undefined;

  constructor(readonly root: string) {}

  blobPath(digest: string): string {
    assertDigest(digest);
    return join(this.root, 'blobs', algorithmOf(digest), encodedOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    return existsSync(this.blobPath(digest));
  }

  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  open(digest: string, range?: { start: number; end?: number }): Readable {
    const path = this.blobPath(digest);
    if (!existsSync(path)) throw new BlobUnknown(`blob ${digest} not found in the store`);
    return createReadStream(path, range);
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobUnknown(`blob ${digest} not found in the store`);
      throw e;
    }
  }

  async readJSON<T>(digest: string): Promise<T> {
    return JSON.parse((await this.read(digest)).toString('utf8')) as T;
  }

  /**
   * Store content, verifying it against `expect` when given. Returns the digest and size. Content that
   * fails verification never becomes visible; a blob already present is not written again.
   */
  async put(src: Readable | AsyncIterable<Uint8Array> | Uint8Array | string, expect: Expectation = {}): Promise<BlobInfo> {
    if (typeof src === 'string') src = Buffer.from(src);
    // Bytes in hand name themselves: when the blob is already here (a rebuilt image's config and
    // manifest), it is not written and fsynced again; when it is not, they need no second hashing.
    const named = src instanceof Uint8Array && expect.digest === undefined && expect.size === undefined ? { digest: sha256(src), size: src.length } : undefined;
    if (named) expect = { ...expect, ...named };
    if (expect.digest && expect.size !== undefined && (await this.holdPresent(expect.digest, expect.size))) {
      if (src instanceof Readable) src.resume();
      else if (!(src instanceof Uint8Array)) for await (const _ of src) void _;
      return { digest: expect.digest, size: expect.size };
    }
    // A source that is itself a DigestingStream (writeLayer's blob) is hashed once, not twice.
    const hashed = src instanceof DigestingStream && !expect.digest && expect.size === undefined ? src : undefined;
    const digester = hashed || named ? undefined : new Digester(expect);
    const input = src instanceof Readable ? src : src instanceof Uint8Array ? Readable.from([src]) : Readable.from(src);
    return this.ingest(async (tmp) => {
      await writeSeeing(input, tmp, digester ? (c) => digester.update(c) : () => {});
      return named ?? (hashed ? { digest: hashed.digest, size: hashed.size } : { digest: digester!.finish(), size: digester!.size });
    });
  }

  /**
   * Store a blob that `write` creates at the path it is given (in the ingest directory), verifying
   * it against `expect` as it writes: a download thread's file (see fetchBlobInThread). The file then
   * becomes the blob as put() makes one (fsync, lease, rename), or is removed if `write` fails.
   */
  async putWritten(expect: { digest: string; size: number }, write: (path: string) => Promise<void>): Promise<BlobInfo> {
    if (await this.holdPresent(expect.digest, expect.size)) return { ...expect };
    return this.ingest(async (tmp) => {
      await write(tmp);
      return { ...expect };
    });
  }

  /**
   * The one way a blob is written: `write` fills a new file in ingest/ and says what it verified
   * there; the file is fsynced and renamed into blobs/, or removed if anything failed.
   */
  private async ingest(write: (tmp: string) => Promise<BlobInfo>): Promise<BlobInfo> {
    const dir = join(this.root, 'ingest');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      const info = await write(tmp);
      const fh = await open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await this.commit(tmp, info.digest);
      return info;
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  /**
   * Whether the blob is already here with this size, leased if so. Leased before it is checked again,
   * as a written blob is leased before its rename: sweep reads leases again after moving its candidates
   * aside and puts back what was leased meanwhile, so a copy seen here after the lease stays.
   */
  private async holdPresent(digest: string, size: number): Promise<boolean> {
    if ((await this.size(digest)) !== size) return false;
    await this.recordInLease(digest);
    return (await this.size(digest)) === size;
  }

  private async commit(tmp: string, digest: string): Promise<void> {
    await this.recordInLease(digest);
    const dest = this.blobPath(digest);
    await mkdir(join(dest, '..'), { recursive: true });
    await rename(tmp, dest);
  }

  /** Lease file of this process: leases/<pid>-<random>, one digest per line; removed at exit. */
  private async recordInLease(digest: string): Promise<void> {
    if (!this.leasePath) {
      const dir = join(this.root, 'leases');
      await mkdir(dir, { recursive: true });
      this.leasePath = join(dir, `${process.pid}-${randomBytes(4).toString('hex')}`);
      const path = this.leasePath;
      process.once('exit', () => {
        try {
          unlinkSync(path);
        } catch {
          /* already gone */
        }
      });
    }
    await appendFile(this.leasePath, digest + '\n');
  }

  /** Drop this process's lease: everything it wrote is now referenced from the index or may go. */
  async releaseLease(): Promise<void> {
    if (this.leasePath) await rm(this.leasePath, { force: true });
    this.leasePath = undefined;
  }

  /** Digests held by the leases of live processes; leases of dead processes are removed. */
  async leasedDigests(): Promise<Set<string>> {
    const dir = join(this.root, 'leases');
    const out = new Set<string>();
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      return out;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      const path = join(dir, name);
      if (!processAlive(pid)) {
        await rm(path, { force: true });
        continue;
      }
      const text = await readFile(path, 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line) out.add(line);
    }
    return out;
  }

  /** Every blob digest present. */
  async *list(): AsyncIterable<BlobInfo> {
    for (const alg of ['sha256', 'sha512']) {
      const dir = join(this.root, 'blobs', alg);
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const s = await stat(join(dir, name)).catch(() => undefined);
        if (s?.isFile()) yield { digest: `${alg}:${name}`, size: s.size };
      }
    }
  }

  /**
   * Delete every blob not in `live`, which the caller computed from its roots and the leases it read.
   * A writer may lease a blob after that read, so the candidates are first moved aside, then the leases
   * are read again and whatever a writer leased meanwhile goes back; a writer leases before it renames
   * a blob in, or before it trusts a copy already present, so no blob it relies on is ever lost.
   */
  async sweep(live: Set<string>): Promise<{ removed: number; bytes: number }> {
    const aside = join(this.root, 'ingest', `${process.pid}-gc-${randomBytes(4).toString('hex')}`);
    await mkdir(aside, { recursive: true });
    const moved: BlobInfo[] = [];
    for await (const blob of this.list()) {
      if (live.has(blob.digest)) continue;
      const ok = await rename(this.blobPath(blob.digest), join(aside, blob.digest.replace(':', '-'))).then(
        () => true,
        () => false,
      );
      if (ok) moved.push(blob);
    }
    const leased = moved.length ? await this.leasedDigests() : new Set<string>();
    let removed = 0;
    let bytes = 0;
    for (const blob of moved) {
      // Same bytes whether or not the writer has meanwhile written it again, so replacing is harmless.
      if (leased.has(blob.digest)) await rename(join(aside, blob.digest.replace(':', '-')), this.blobPath(blob.digest));
      else {
        removed++;
        bytes += blob.size;
      }
    }
    await rm(aside, { recursive: true, force: true });
    return { removed, bytes };
  }

  /** Remove ingest files left by processes that died mid-write. */
  async cleanIngest(): Promise<void> {
    const dir = join(this.root, 'ingest');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const pid = Number(name.split('-')[0]);
      if (processAlive(pid)) continue;
      // A sweep killed before it read the leases again may hold a blob a writer had leased: put its
      // blobs back (whole, verified files); the next gc removes those nobody wants.
      if (name.startsWith(`${pid}-gc-`)) await this.restoreAside(join(dir, name));
      await rm(join(dir, name), { force: true, recursive: true });
    }
  }

  private async restoreAside(aside: string): Promise<void> {
    for (const file of await readdir(aside).catch(() => [] as string[])) {
      const digest = file.replace('-', ':');
      if (!isDigest(digest) || existsSync(this.blobPath(digest))) continue;
      await mkdir(join(this.blobPath(digest), '..'), { recursive: true });
      await rename(join(aside, file), this.blobPath(digest));
    }
  }
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Write `src` to a new file at `path`, handing each chunk to `see` (which may throw to fail the write)
 * on its way. Done by hand rather than with pipeline() and a hashing Transform: each stage of a
 * pipeline pauses and resumes the one before it per 64 KiB socket read, which cost a 51 MB download
 * from a registry on loopback about a quarter of its time (200–250 ms against 155 ms). The file
 * stream's large buffer lets writes run while data arrives, and what is written goes to disk while
 * more arrives (EarlyFlush).
 */
function writeSeeing(src: Readable, path: string, see: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    // A source that failed before it got here (while the ingest directory was made) has already
    // emitted its error and its close: nothing would come, and the promise would never settle.
    if (src.destroyed) {
      reject(src.errored ?? new Error('the content stream closed before its end'));
      return;
    }
    const out = createWriteStream(path, { flags: 'wx', mode: 0o644, highWaterMark: 4 << 20 });
    let failed = false;
    let ended = false;
    let fd: number | undefined;
    const flush = new EarlyFlush();
    out.once('open', (n: number) => (fd = n));
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      src.destroy();
      out.destroy();
      // Settled once the file is closed, so that the caller's unlink finds nothing still writing.
      if (out.closed) reject(e);
      else out.once('close', () => reject(e));
    };
    out.on('error', fail);
    out.on('close', () => {
      if (!failed) resolve();
    });
    src.on('error', fail);
    src.on('close', () => {
      if (!ended) fail(new Error('the content stream closed before its end'));
    });
    src.on('data', (c: Buffer) => {
      if (failed) return;
      try {
        see(c);
      } catch (e) {
        fail(e as Error);
        return;
      }
      if (!out.write(c)) {
        src.pause();
        out.once('drain', () => src.resume());
      }
      if (fd !== undefined) flush.wrote(fd, c.length);
    });
    src.on('end', () => {
      ended = true;
      // The descriptor stays open until a flush under way has returned.
      void flush.idle().then(() => !failed && out.end());
    });
  });
}
