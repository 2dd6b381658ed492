import { lstat, readlink } from 'node:fs/promises';
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { ContextFile } from './context.js';
import { BuildContext } from './context.js';

/** Where COPY reads from: the build context, or the root filesystem of a stage or image. */
export interface SourceTree {
  stat(rel: string): Promise<ContextFile | undefined>;
  walk(rel: string): Generator<ContextFile>;
  included(rel: string): boolean;
  /**
   * `rel` with every symlink in it followed, never leaving the tree: an absolute link target starts
   * again at the tree's root and `..` stops there (containerd continuity's fs.RootPath, which
   * BuildKit's copy uses for sources with FollowSymlinks). Undefined when a link loops.
   */
  resolve(rel: string): Promise<string | undefined>;
  /** A regular file's identity (size, times, inode) as the tree saw it, for LayerEntry.sourceId. */
  identity?(f: ContextFile): string | undefined;
}

/** A plain directory (a mounted view of a stage or image, an unpacked archive): nothing ignored, owners kept. */
export class DirTree implements SourceTree {
  constructor(readonly root: string) {}

  included(): boolean {
    return true;
  }

  async stat(rel: string): Promise<ContextFile | undefined> {
    return this.statSync(rel);
  }

  private statSync(rel: string): ContextFile | undefined {
    const abs = rel === '' ? this.root : join(this.root, rel);
    const st = lstatOrUndefined(abs);
    if (!st) return undefined;
    const f = sourceFile(rel, abs, st);
    if (f) {
      f.uid = st.uid;
      f.gid = st.gid;
    }
    return f;
  }

  // Synchronous metadata calls, as in archive/pack.ts: a tree of many small files costs a few
  // system calls per file, and a round trip through libuv's thread pool per call costs far more.
  *walk(rel: string): Generator<ContextFile> {
    const abs = rel === '' ? this.root : join(this.root, rel);
    for (const name of readdirSync(abs).sort()) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const f = this.statSync(child);
      if (!f) continue;
      yield f;
      if (f.type === 'directory') yield* this.walk(child);
    }
  }

  resolve(rel: string): Promise<string | undefined> {
    return resolveInRoot(rel, async (p) => {
      const st = await lstat(p === '' ? this.root : join(this.root, p)).catch(() => undefined);
      return st?.isSymbolicLink() ? readlink(join(this.root, p)) : undefined;
    });
  }
}

/** lstat of a path that may not exist. */
export function lstatOrUndefined(abs: string): Stats | undefined {
  try {
    return lstatSync(abs);
  } catch {
    return undefined;
  }
}

/** The ContextFile for an lstat result; undefined for devices and fifos, which COPY skips. */
export function sourceFile(rel: string, abs: string, st: Stats): ContextFile | undefined {
  // BuildKit copies a socket as an empty regular file (testCopySocket); a socket cannot be opened
  // for reading, so its content is read from /dev/null.
  if (st.isSocket()) return { rel, abs: '/dev/null', type: 'file', mode: st.mode & 0o7777, size: 0, mtimeMs: st.mtimeMs };
  const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : undefined;
  if (!type) return undefined;
  const f: ContextFile = { rel, abs, type, mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs };
  if (type === 'symlink') f.linkTarget = readlinkSync(abs);
  // Hard links are kept within one copy (BuildKit: fsutil copy's inode map), so remember the inode.
  if (type === 'file' && st.nlink > 1) f.inode = `${st.dev}:${st.ino}`;
  return f;
}

/**
 * Follow the symlinks in a root-relative path, component by component, as containerd's
 * fs.RootPath does: a link's target is read, an absolute one restarts at the root, `..` never
 * climbs above it. `readLink(p)` returns the target when `p` (root-relative) is a symlink.
 */
export async function resolveInRoot(rel: string, readLink: (p: string) => Promise<string | undefined>): Promise<string | undefined> {
  let done: string[] = [];
  let todo = rel.split('/').filter((c) => c !== '' && c !== '.');
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    const target = await readLink([...done, c].join('/'));
    if (target === undefined) {
      done.push(c);
      continue;
    }
    // Linux gives up after 40 links (ELOOP); continuity after 255.
    if (++hops > 255) return undefined;
    if (target.startsWith('/')) done = [];
    todo = [...target.split('/').filter((x) => x !== '' && x !== '.'), ...todo];
  }
  return done.join('/');
}

export function isContext(t: SourceTree): t is BuildContext {
  return t instanceof BuildContext;
}

/** Go filepath.Match semantics for one path: * and ? never cross '/', [..] classes, \ escapes. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^')) cls = '^' + cls.slice(1).replace(/[\]\\]/g, '\\$&');
        else cls = cls.replace(/[\]\\]/g, '\\$&');
        re += `[${cls}]`;
        i = end;
      }
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export function hasGlob(p: string): boolean {
  return /[*?[]/.test(p);
}
