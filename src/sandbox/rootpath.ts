import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import path from 'node:path';

// Paths inside a root filesystem, resolved the way runc (filepath-securejoin) and BuildKit
// (continuity fs.RootPath) resolve them: every symlink is followed *inside* the root, an absolute
// link target restarts at the root, and ".." never climbs above it. A hostile image can therefore
// point /etc/passwd or /etc/hosts at "/../../etc/shadow" and still only reach files of its own.

const maxSymlinks = 255;

/**
 * The components of `p` inside `root` after resolving symlinks within the root. Components that do
 * not exist are kept literally (a mount point or a working directory may be about to be created there).
 */
export async function resolveInRoot(root: string, p: string): Promise<string[]> {
  const pending = p.split('/');
  let resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const onHost = path.join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = (await lstat(onHost)).isSymbolicLink();
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > maxSymlinks) throw Object.assign(new Error(`too many levels of symbolic links resolving ${p}`), { code: 'ELOOP' });
    const target = await readlink(onHost);
    if (target.startsWith('/')) resolved = [];
    pending.unshift(...target.split('/'));
  }
  return resolved;
}

/** The host path of `p` inside `root`, symlinks resolved within the root. */
export async function hostPathInRoot(root: string, p: string): Promise<string> {
  return path.join(root, ...(await resolveInRoot(root, p)));
}

/**
 * Reads a regular file inside the root (for /etc/passwd and /etc/group), or returns undefined when it
 * is missing or not a regular file. Opened without following a final symlink and without blocking on
 * a FIFO; larger than `limit` bytes is an error (BuildKit caps these files at 10 MiB as well).
 */
export async function readFileInRoot(root: string, p: string, limit = 10 << 20): Promise<string | undefined> {
  const onHost = await hostPathInRoot(root, p);
  let file;
  try {
    file = await open(onHost, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') return undefined;
    throw err;
  }
  try {
    const st = await file.stat();
    if (!st.isFile()) return undefined;
    if (st.size > limit) throw new Error(`${p} in the image is larger than ${limit} bytes`);
    return await file.readFile({ encoding: 'utf8' });
  } finally {
    await file.close();
  }
}

export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
