import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat, unlink, copyFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { tempPathFor } from '../../../store/atomic.js';
import { StorageNotFound, type BlobDriver } from './driver.js';

const notFound = (e: unknown): boolean => (e as NodeJS.ErrnoException)?.code === 'ENOENT';

/** Fsync a file's data, or a directory so a rename inside it survives a crash (POSIX leaves that to the caller). */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
const syncDir = syncFile;

/** Blobs as files under one directory: write to a temporary file, fsync, rename — containerd's commit. */
export function filesystemDriver(root: string): BlobDriver {
  const pathOf = (key: string): string => {
    if (key.split('/').some((p) => p === '..' || p === '' || p === '.')) throw new Error(`storage: bad key ${key}`);
    return join(root, ...key.split('/'));
  };

  const openFile = (key: string) =>
    open(pathOf(key), 'r').catch((e: unknown) => {
      throw notFound(e) ? new StorageNotFound(key) : e;
    });

  async function place(tmp: string, final: string): Promise<void> {
    await mkdir(dirname(final), { recursive: true });
    await rename(tmp, final);
    await syncDir(dirname(final));
  }

  return {
    name: 'filesystem',

    async stat(key) {
      try {
        const s = await stat(pathOf(key));
        return s.isFile() ? { size: s.size, modified: s.mtime } : undefined;
      } catch (e) {
        if (notFound(e)) return undefined;
        throw e;
      }
    },

    openFile,

    async get(key, range) {
      // Open first so a missing file is an error here, not an 'error' event later in the response.
      const fh = await openFile(key);
      return createReadStream('', { fd: fh, start: range?.start, end: range?.end, highWaterMark: 1024 * 1024, autoClose: true });
    },

    async read(key) {
      try {
        return await readFile(pathOf(key));
      } catch (e) {
        throw notFound(e) ? new StorageNotFound(key) : e;
      }
    },

    async put(key, source) {
      const final = pathOf(key);
      await mkdir(dirname(final), { recursive: true });
      const tmp = tempPathFor(final);
      try {
        const out = createWriteStream(tmp, { flags: 'wx' });
        await pipeline(source, out);
        await syncFile(tmp);
        await place(tmp, final);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw e;
      }
    },

    async commitFile(key, localPath) {
      const final = pathOf(key);
      await syncFile(localPath);
      try {
        await place(localPath, final);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
        // Uploads configured on another filesystem: copy beside the target, then rename.
        const tmp = tempPathFor(final);
        await copyFile(localPath, tmp);
        await syncFile(tmp);
        await place(tmp, final);
        await unlink(localPath).catch(() => {});
      }
    },

    async *list(prefix) {
      const trimmed = prefix.replace(/\/+$/, '');
      const start = trimmed ? pathOf(trimmed) : root;
      const walk = async function* (dir: string): AsyncGenerator<{ key: string; size: number; modified: Date }> {
        let entries;
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (e) {
          if (notFound(e)) return;
          throw e;
        }
        for (const ent of entries) {
          const p = join(dir, ent.name);
          if (ent.isDirectory()) yield* walk(p);
          else if (ent.isFile() && !ent.name.startsWith('.')) {
            const s = await stat(p).catch(() => undefined);
            if (s) yield { key: relative(root, p).split(sep).join('/'), size: s.size, modified: s.mtime };
          }
        }
      };
      yield* walk(start);
    },

    async delete(key) {
      await unlink(pathOf(key)).catch((e: unknown) => {
        if (!notFound(e)) throw e;
      });
    },

    async move(from, to) {
      const dst = pathOf(to);
      await mkdir(dirname(dst), { recursive: true });
      try {
        await rename(pathOf(from), dst);
      } catch (e) {
        throw notFound(e) ? new StorageNotFound(from) : e;
      }
      await syncDir(dirname(dst));
    },
  };
}
