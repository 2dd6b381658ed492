import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

/** A name for a temporary file beside `path`, so that the final rename stays on one filesystem. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Write a small file so that readers see either the old content or the new, never a mix:
 * temp file, fsync, rename (containerd's content store commits the same way). `durable: false`
 * skips the fsync, for a file whose loss in a crash costs nothing (see Store.open): on ext4 the
 * first fsync after a directory tree is made commits the journal, some 40–50 ms.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { durable?: boolean } = {}): Promise<void> {
  const tmp = await writeTemp(path, data, opts.durable !== false);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Create `path` with `data` unless it exists, atomically and without a lock: the content is linked
 * into place, which fails if another process got there first. Not fsynced (see writeFileAtomic):
 * only for a file whose empty or missing form means the same as `data`.
 */
export async function createFileIfAbsent(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = await writeTemp(path, data, false);
  try {
    await link(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** `data` in a new temporary file beside `path` (its directory made if missing), fsynced if `sync`. */
async function writeTemp(path: string, data: string | Uint8Array, sync: boolean): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}
