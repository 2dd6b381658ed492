import { lstatSync, readdirSync } from 'node:fs';
import { sourceIdentity, type FileIdentity } from '../archive/identity.js';
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

/**
 * A record as saved: a tuple, not an object keyed by path. JSON of 20,000 arrays is written and read
 * in a third of the time of an object with 20,000 keys (25 against 75 ms).
 */
type SavedRecord = [rel: string, size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string];

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
  // Only the numbers later checks need are kept, not the Stats (with its four Dates): a walk of 20,000
  // files otherwise keeps some 5 MB alive, which every young-generation collection copies again.
  private stats = new Map<string, { file: ContextFile | undefined; st: FileIdentity | undefined }>();
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
        const data = JSON.parse(await readFile(cacheFile, 'utf8')) as { root: string; records?: SavedRecord[] };
        if (data.root === abs && Array.isArray(data.records)) {
          ctx.hashes = new Map(data.records.map(([rel, size, mtimeMs, ctimeMs, ino, hash]) => [rel, { size, mtimeMs, ctimeMs, ino, hash }]));
        }
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

  private lstat(rel: string): { file: ContextFile | undefined; st: FileIdentity | undefined } {
    let known = this.stats.get(rel);
    if (!known) {
      const abs = rel === '' ? this.root : join(this.root, rel);
      const st = lstatSync(abs, { throwIfNoEntry: false });
      known = st ? { file: sourceFile(rel, abs, st), st: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, dev: st.dev, ino: st.ino } } : { file: undefined, st: undefined };
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
  *walk(rel: string): Generator<ContextFile> {
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

  /** The content hash remembered for a regular file, if the file is unchanged since (see remember). */
  rememberedHash(f: ContextFile): string | undefined {
    const st = this.statOf(f);
    const rec = this.hashes.get(f.rel);
    // Times as the double-precision milliseconds lstat gives (sub-microsecond), compared as numbers:
    // turning 20,000 nanosecond BigInts into strings cost an unchanged context's rebuild 0.1 s.
    return rec && rec.size === st.size && rec.mtimeMs === st.mtimeMs && rec.ctimeMs === st.ctimeMs && rec.ino === st.ino ? rec.hash : undefined;
  }

  /** Remember a file's content hash with the metadata this build saw, for later builds (save). */
  remember(f: ContextFile, hash: string): void {
    const st = this.statOf(f);
    this.hashes.set(f.rel, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, hash });
    this.dirty = true;
  }

  identity(f: ContextFile): string | undefined {
    return f.type === 'file' ? sourceIdentity(this.statOf(f)) : undefined;
  }

  /** The lstat this build took of a file of the context (or takes now, for one outside it). */
  private statOf(f: ContextFile): FileIdentity {
    return (f.abs === this.root || f.abs.startsWith(this.root + '/') ? this.lstat(f.rel).st : undefined) ?? lstatSync(f.abs);
  }

  async save(): Promise<void> {
    if (!this.cacheFile || !this.dirty) return;
    const records: SavedRecord[] = [];
    for (const [rel, r] of this.hashes) records.push([rel, r.size, r.mtimeMs, r.ctimeMs, r.ino, r.hash]);
    await writeFileAtomic(this.cacheFile, JSON.stringify({ root: this.root, records }));
    this.dirty = false;
  }
}

