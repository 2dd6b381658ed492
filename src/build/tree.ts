import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContextFile } from './context.js';
import { BuildContext } from './context.js';

/** Where COPY reads from: the build context, or the root filesystem of a stage or image. */
export interface SourceTree {
  stat(rel: string): Promise<ContextFile | undefined>;
  walk(rel: string): AsyncGenerator<ContextFile>;
  included(rel: string): boolean;
}

/** A plain directory (a mounted view of a stage or image): nothing ignored, owners kept. */
export class DirTree implements SourceTree {
  constructor(readonly root: string) {}

  included(): boolean {
    return true;
  }

  async stat(rel: string): Promise<ContextFile | undefined> {
    const abs = rel === '' ? this.root : join(this.root, rel);
    const st = await lstat(abs).catch(() => undefined);
    if (!st) return undefined;
    const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : undefined;
    if (!type) return undefined;
    const f: ContextFile & { uid: number; gid: number } = {
      rel,
      abs,
      type,
      mode: st.mode & 0o7777,
      size: st.size,
      mtimeMs: st.mtimeMs,
      uid: st.uid,
      gid: st.gid,
    };
    if (type === 'symlink') f.linkTarget = await readlink(abs);
    return f;
  }

  async *walk(rel: string): AsyncGenerator<ContextFile> {
    const abs = rel === '' ? this.root : join(this.root, rel);
    for (const name of (await readdir(abs)).sort()) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const f = await this.stat(child);
      if (!f) continue;
      yield f;
      if (f.type === 'directory') yield* this.walk(child);
    }
  }
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
