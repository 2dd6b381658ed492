import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createIgnoreMatcher, type IgnoreMatcher } from '../dockerfile/index.js';
import { writeFileAtomic } from '../store/atomic.js';
import { sha256 } from '../oci/digest.js';
import { resolveInRoot, sourceFile } from './tree.js';

/** One file of the build context as COPY sees it. */
export interface ContextFile {
  /** Path relative to the context root, '/'-separated, no leading slash. */
  rel: string;
  abs: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  size: number;
  mtimeMs: number;
  linkTarget?: string;
  /** Owner, for trees that keep owners (stages, images, archives); the context's files become root's. */
  uid?: number;
  gid?: number;
  /** "dev:ino" of a regular file with more than one link, so a copy can keep hard links together. */
  inode?: string;
}

interface HashRecord {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: number;
  hash: string;
}

/**
 * The build context: a directory filtered by .dockerignore. Only paths that COPY/ADD select are walked
 * (BuildKit's follow-paths), and file contents are hashed once and remembered across builds by
 * (path, size, mtime, ctime, inode) in the store, so an unchanged context is never read again.
 */
export class BuildContext {
  readonly root: string;
  readonly ignore: IgnoreMatcher;
  private hashes = new Map<string, HashRecord>();
  private dirty = false;

  private constructor(root: string, patterns: readonly string[], private readonly cacheFile: string | undefined) {
    this.root = resolve(root);
    this.ignore = createIgnoreMatcher([...patterns]);
  }

  static async open(root: string, patterns: readonly string[], cacheDir?: string): Promise<BuildContext> {
    const abs = resolve(root);
    const cacheFile = cacheDir ? join(cacheDir, sha256(abs).slice(7, 39) + '.json') : undefined;
    const ctx = new BuildContext(abs, patterns, cacheFile);
    if (cacheFile) {
      try {
        const data = JSON.parse(await readFile(cacheFile, 'utf8')) as { root: string; files: Record<string, HashRecord> };
        if (data.root === abs) ctx.hashes = new Map(Object.entries(data.files));
      } catch {
        /* first build of this context */
      }
    }
    return ctx;
  }

  /** Whether `rel` survives .dockerignore. */
  included(rel: string): boolean {
    return rel === '' || !this.ignore.ignores(rel);
  }

  async stat(rel: string): Promise<ContextFile | undefined> {
    const abs = rel === '' ? this.root : join(this.root, rel);
    const st = await lstat(abs).catch(() => undefined);
    return st ? sourceFile(rel, abs, st) : undefined;
  }

  /** `rel` with its symlinks followed inside the context (an absolute target means the context's root). */
  resolve(rel: string): Promise<string | undefined> {
    return resolveInRoot(rel, async (p) => {
      const abs = p === '' ? this.root : join(this.root, p);
      const st = await lstat(abs).catch(() => undefined);
      return st?.isSymbolicLink() ? readlink(abs) : undefined;
    });
  }

  /** Entries below directory `rel` (not included itself), sorted, honouring .dockerignore. */
  async *walk(rel: string): AsyncGenerator<ContextFile> {
    const abs = rel === '' ? this.root : join(this.root, rel);
    const names = (await readdir(abs)).sort();
    const children = names.map((name) => (rel === '' ? name : `${rel}/${name}`));
    // One directory's entries stat'ed at once: a walk of many small files waits on latency.
    const stats = await Promise.all(children.map((c) => this.stat(c)));
    for (const [i, child] of children.entries()) {
      const f = stats[i];
      if (!f) continue;
      if (f.type === 'directory') {
        if (!this.included(child) && this.ignore.canSkipDir(child)) continue;
        if (this.included(child)) yield f;
        yield* this.walk(child);
      } else if (this.included(child)) yield f;
    }
  }

  /** sha256 of a regular file's content, from the remembered record when the file is unchanged. */
  async contentHash(f: ContextFile): Promise<string> {
    const st = await lstat(f.abs, { bigint: true });
    const rec = this.hashes.get(f.rel);
    const mtimeNs = String(st.mtimeNs);
    const ctimeNs = String(st.ctimeNs);
    if (rec && rec.size === Number(st.size) && rec.mtimeNs === mtimeNs && rec.ctimeNs === ctimeNs && rec.ino === Number(st.ino)) return rec.hash;
    const h = createHash('sha256');
    // Small files in one read: most of a source tree, and a stream per file costs more than the read.
    if (st.size < 1n << 20n) h.update(await readFile(f.abs));
    else for await (const chunk of createReadStream(f.abs)) h.update(chunk as Buffer);
    const hash = 'sha256:' + h.digest('hex');
    this.hashes.set(f.rel, { size: Number(st.size), mtimeNs, ctimeNs, ino: Number(st.ino), hash });
    this.dirty = true;
    return hash;
  }

  async save(): Promise<void> {
    if (!this.cacheFile || !this.dirty) return;
    await writeFileAtomic(this.cacheFile, JSON.stringify({ root: this.root, files: Object.fromEntries(this.hashes) }));
    this.dirty = false;
  }
}
