import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { sourceIdentity } from '../archive/materialize.js';
import { lstat, readFile, readlink } from 'node:fs/promises';
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
  mtimeMs: number;
  ctimeMs: number;
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
  // Metadata is read once per build: the key's walk, its hash check and the copy's walk then see one
  // state of each file, and a context of 20,000 files is not lstat'ed three times over.
  private stats = new Map<string, { file: ContextFile | undefined; st: Stats | undefined }>();
  private listings = new Map<string, string[]>();

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
    return this.statSync(rel);
  }

  private statSync(rel: string): ContextFile | undefined {
    return this.lstat(rel).file;
  }

  private lstat(rel: string): { file: ContextFile | undefined; st: Stats | undefined } {
    let known = this.stats.get(rel);
    if (!known) {
      const abs = rel === '' ? this.root : join(this.root, rel);
      const st = lstatSync(abs, { throwIfNoEntry: false });
      known = { file: st ? sourceFile(rel, abs, st) : undefined, st };
      this.stats.set(rel, known);
    }
    return known;
  }

  /** `rel` with its symlinks followed inside the context (an absolute target means the context's root). */
  resolve(rel: string): Promise<string | undefined> {
    return resolveInRoot(rel, async (p) => {
      const abs = p === '' ? this.root : join(this.root, p);
      const st = await lstat(abs).catch(() => undefined);
      return st?.isSymbolicLink() ? readlink(abs) : undefined;
    });
  }

  /**
   * Entries below directory `rel` (not included itself), sorted, honouring .dockerignore. Metadata
   * calls are synchronous (see DirTree.walk): contexts of many small files are common.
   */
  async *walk(rel: string): AsyncGenerator<ContextFile> {
    let names = this.listings.get(rel);
    if (!names) this.listings.set(rel, (names = readdirSync(rel === '' ? this.root : join(this.root, rel)).sort()));
    for (const name of names) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const f = this.statSync(child);
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
    const st = this.statOf(f);
    const rec = this.hashes.get(f.rel);
    // Times as the double-precision milliseconds lstat gives (sub-microsecond), compared as numbers:
    // turning 20,000 nanosecond BigInts into strings cost an unchanged context's rebuild 0.1 s.
    if (rec && rec.size === st.size && rec.mtimeMs === st.mtimeMs && rec.ctimeMs === st.ctimeMs && rec.ino === st.ino) return rec.hash;
    const hash = await fileDigest(f.abs, st.size);
    this.hashes.set(f.rel, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, hash });
    this.dirty = true;
    return hash;
  }

  identity(f: ContextFile): string | undefined {
    return f.type === 'file' ? sourceIdentity(this.statOf(f)) : undefined;
  }

  /** The lstat this build took of a file of the context (or takes now, for one outside it). */
  private statOf(f: ContextFile): Stats {
    return (f.abs === this.root || f.abs.startsWith(this.root + '/') ? this.lstat(f.rel).st : undefined) ?? lstatSync(f.abs);
  }

  async save(): Promise<void> {
    if (!this.cacheFile || !this.dirty) return;
    await writeFileAtomic(this.cacheFile, JSON.stringify({ root: this.root, files: Object.fromEntries(this.hashes) }));
    this.dirty = false;
  }
}

/** Files up to this size are read in one synchronous call; larger ones are streamed. */
const SMALL_FILE = 64 * 1024;

/** sha256 of a file's content ("sha256:…"). */
export async function fileDigest(abs: string, size: number): Promise<string> {
  const h = createHash('sha256');
  if (size <= SMALL_FILE) h.update(readFileSync(abs));
  else for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
  return 'sha256:' + h.digest('hex');
}
