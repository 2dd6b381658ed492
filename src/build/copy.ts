// COPY and ADD: choosing the sources and turning them into layer entries, the way BuildKit's
// dockerfile frontend (dockerfile2llb/convert_copy.go) and its file op (tonistiigi/fsutil copy,
// solver/llbsolver/file) do it. The layer is written straight from the sources: no sandbox, no mount.
import { posix } from 'node:path';
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { LayerEntry } from '../archive/index.js';
import { applyChmod, createIgnoreMatcher, InvalidChmod, parseChmod, type Chmod, type CopyStep } from '../dockerfile/index.js';
import type { ContextFile } from './context.js';
import { FileHasher } from './filehash.js';
import { DirTree, globToRegExp, hasGlob, isContext, resolveInRoot, type SourceTree } from './tree.js';
import { BuildStepError } from './errors.js';
import type { PathInfo } from '../snapshot/snapshotter.js';

/** A selected source: what it is and where it lands. */
export interface Selection {
  file: ContextFile;
  /** Absolute destination of this source (a file's path, or the directory its contents go into). */
  target: string;
  /** The name the source was given by (a followed symlink keeps its own name); default: the file's. */
  name?: string;
  /**
   * A directory copied as itself, with its mode and owner (COPY --parents), rather than as a place
   * for its contents; with `directoryOnly` just the directory (a parent kept by --parents).
   */
  keepDirectory?: boolean;
  directoryOnly?: boolean;
}

export interface CopyInputs {
  step: CopyStep;
  file: string;
  tree: SourceTree;
}

/** Clean a source path and keep it inside its root (sources outside the context are errors). */
export function cleanSource(src: string, where: () => never): string {
  const n = posix.normalize(src);
  if (n === '..' || n.startsWith('../')) where();
  return posix.normalize('/' + n).slice(1).replace(/\/$/, '');
}

/**
 * Resolve COPY/ADD sources against their tree, as BuildKit's copy does: wildcards (a pattern that
 * matches nothing is allowed next to others: AllowEmptyWildcard), a source that is a symlink is
 * followed inside the tree (FollowSymlinks), a directory's contents are copied rather than the
 * directory, several sources need a directory destination, and --parents keeps each source's path.
 * `destIsDir` tells whether an existing destination is a directory in the parent image.
 */
export async function selectSources(inputs: CopyInputs, destIsDir: (p: string) => Promise<boolean>): Promise<Selection[]> {
  const { step, file, tree } = inputs;
  const keyword = step.add ? 'ADD' : 'COPY';
  const fail = (msg: string): never => {
    throw new BuildStepError(file, step.line, `${keyword} failed: ${msg}`);
  };
  const notFound = (raw: string, excluded: boolean): never =>
    fail(`"${raw}" not found: ${isContext(tree) ? 'no such file or directory in the build context' + (excluded ? ' (excluded by .dockerignore)' : '') : 'no such file or directory in the source stage'}`);
  if (step.parents) return selectWithParents(inputs, fail, notFound);

  /** A source path as given (its name) and the file it resolves to. */
  const found: { file: ContextFile; name: string }[] = [];
  let wildcard = false;
  for (const raw of step.sources) {
    const rel = cleanSource(raw, () => fail(`source "${raw}" is outside the build context`));
    const paths = hasGlob(rel) ? await globMatches(tree, rel) : [rel];
    if (hasGlob(rel)) wildcard = true;
    for (const p of paths) {
      const real = await tree.resolve(p);
      const f = real === undefined ? undefined : await tree.stat(real);
      if (!f || !tree.included(real!)) {
        if (p === rel) notFound(raw, !!f);
        continue;
      }
      found.push({ file: f, name: posix.basename(p) || posix.basename(f.rel) });
    }
  }
  const dest = step.destPath;
  // ADD unpacks each archive it is given into the destination as a directory (BuildKit's
  // AttemptUnpack, testDockerfileAddArchiveWildcard: ADD *.tar /dest), so archives are not files
  // that need a directory destination.
  let archives = 0;
  if (step.add && step.unpack !== false) for (const { file: f } of found) if (f.type === 'file' && (await archiveKind(f.abs))) archives++;
  const count = found.length - archives + step.heredocs.length;
  const explicitDir = dest.endsWith('/');
  // One source as written (a wildcard matching several) is one copy in BuildKit, which never asks for a
  // directory: directories it matches merge their contents into the destination (ADD dir* /5,
  // testExcludedFilesOnCopy). Several sources as written keep the classic builder's rule.
  const written = step.sources.length + step.heredocs.length;
  if (count > 1 && !explicitDir && !(wildcard && (found.length - archives <= 1 || written === 1))) {
    if (!(await destIsDir(dest))) fail(`when using ${keyword} with more than one source file, the destination must be a directory and end with a /`);
  }
  const out: Selection[] = [];
  for (const { file: f, name } of found) {
    if (f.type === 'directory') out.push({ file: f, target: trimSlash(dest), name });
    else if (explicitDir || count > 1 || (await destIsDir(dest))) out.push({ file: f, target: posix.join(dest, name), name });
    else out.push({ file: f, target: trimSlash(dest), name });
  }
  return out;
}

/**
 * COPY --parents: each source is a pattern below the root of its tree, or below the part before a
 * `/./` pivot; what matches lands at the same relative path under the destination, with the
 * directories on the way copied as they are in the source (BuildKit: IncludePatterns on a copy of
 * the pivot's contents, parents created from the source's metadata). A source without wildcards
 * must exist (RequiredPaths).
 */
async function selectWithParents(inputs: CopyInputs, fail: (m: string) => never, notFound: (raw: string, excluded: boolean) => never): Promise<Selection[]> {
  const { step, tree } = inputs;
  const dest = trimSlash(step.destPath);
  const out = new Map<string, Selection>();
  for (const raw of step.sources) {
    const pivot = raw.indexOf('/./');
    const baseRaw = pivot >= 0 ? raw.slice(0, pivot) : '';
    const patternRaw = pivot >= 0 ? raw.slice(pivot + 3) : raw;
    const base = cleanSource(baseRaw, () => fail(`source "${raw}" is outside the build context`));
    const pattern = cleanSource(patternRaw, () => fail(`source "${raw}" is outside the build context`));
    // A pivot may itself be a wildcard (/test/a/b*/./c): each directory it matches is a pivot.
    const bases = hasGlob(base) ? await globMatches(tree, base) : [base];
    let pivots = 0;
    for (const b of bases) {
      const resolvedBase = await tree.resolve(b);
      const baseFile = resolvedBase === undefined ? undefined : await tree.stat(resolvedBase);
      if (resolvedBase === undefined || !baseFile || baseFile.type !== 'directory') continue;
      pivots++;
      // BuildKit copies the pivot's contents filtered by the pattern, so the destination directory is
      // made even when nothing matches (testCopyParentsMissingDirectory, wildcard-nonexistent).
      if (!out.has(dest)) out.set(dest, { file: baseFile, target: dest, directoryOnly: true });
      const realBase = resolvedBase;
      const under = (p: string) => (realBase === '' ? p : `${realBase}/${p}`);
      const matcher = createIgnoreMatcher([pattern]);
      const prefix = pattern.split('/');
      const firstGlob = prefix.findIndex(hasGlob);
      const walkFrom = firstGlob < 0 ? pattern : prefix.slice(0, firstGlob).join('/');
      const matches: ContextFile[] = [];
      const start = await tree.stat(under(walkFrom));
      if (start && tree.included(under(walkFrom))) {
        if (matcher.ignores(walkFrom)) matches.push(start);
        else if (start.type === 'directory') {
          let inside: string | undefined;
          for (const f of tree.walk(start.rel)) {
            if (inside !== undefined && f.rel.startsWith(inside)) continue;
            const rel = realBase === '' ? f.rel : f.rel.slice(realBase.length + 1);
            if (!matcher.ignores(rel)) continue;
            matches.push(f);
            inside = f.type === 'directory' ? f.rel + '/' : undefined;
          }
        }
      }
      if (matches.length === 0 && !hasGlob(raw)) notFound(raw, !!start);
      for (const f of matches) {
        const rel = realBase === '' ? f.rel : f.rel.slice(realBase.length + 1);
        const parts = rel.split('/');
        for (let i = 1; i < parts.length; i++) {
          const p = parts.slice(0, i).join('/');
          const target = posix.join(dest, p);
          if (out.has(target)) continue;
          const dir = await tree.stat(under(p));
          if (dir) out.set(target, { file: dir, target, keepDirectory: true, directoryOnly: true });
        }
        const target = posix.join(dest, rel);
        // Keyed by source too: two pivots may bring the same path, and both contents are copied.
        out.set(`${target}\0${f.rel}`, { file: f, target, keepDirectory: f.type === 'directory' });
      }
    }
    if (pivots === 0 && !hasGlob(raw)) notFound(raw, false);
  }
  return [...out.values()];
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** Paths (relative to the tree) that a wildcard source matches, as Go's filepath.Match per path. */
async function globMatches(tree: SourceTree, pattern: string): Promise<string[]> {
  const parts = pattern.split('/');
  const firstGlob = parts.findIndex(hasGlob);
  const base = await tree.resolve(parts.slice(0, firstGlob).join('/'));
  if (base === undefined) return [];
  const rest = parts.slice(firstGlob);
  const re = globToRegExp(rest.join('/'));
  const out: string[] = [];
  const baseStat = await tree.stat(base);
  if (!baseStat || baseStat.type !== 'directory') return [];
  for (const f of tree.walk(base)) {
    const rel = base === '' ? f.rel : f.rel.slice(base.length + 1);
    if (rel.split('/').length === rest.length && re.test(rel)) out.push(f.rel);
  }
  return out;
}

/**
 * What a COPY reads of a path in its parent image: enough to resolve its destination through
 * symlinks and to keep the owner and mode of the directories it writes into. Not their mtime: the
 * copy modifies those directories, so the layer gives them the build's time, as a diff of BuildKit's
 * copied snapshot does. Reading this little of the parent is what lets the solver prepare a COPY
 * while the RUN before it still runs, and check afterwards that the RUN changed none of it.
 */
export type DestInfo = Pick<PathInfo, 'type' | 'mode' | 'uid' | 'gid' | 'linkTarget'>;

export function destInfo(info: PathInfo | undefined): DestInfo | undefined {
  if (!info) return undefined;
  return { type: info.type, mode: info.mode, uid: info.uid, gid: info.gid, ...(info.linkTarget !== undefined ? { linkTarget: info.linkTarget } : {}) };
}

export function sameDestInfo(a: DestInfo | undefined, b: DestInfo | undefined): boolean {
  if (!a || !b) return a === b;
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.linkTarget === b.linkTarget;
}

/** What --exclude patterns test: a path relative to the copied source. */
export interface ExcludeTest {
  test(relPath: string): boolean;
}

export interface EntryOptions {
  /** --chown resolved to ids, or undefined to keep (stages/images) or use root (context). */
  owner?: { uid: number; gid: number };
  /** --chmod, octal or symbolic. */
  chmod?: Chmod;
  fromContext: boolean;
  /** What the parent image has at a path (not following a final symlink). */
  existing: (absPath: string) => Promise<DestInfo | undefined>;
  exclude: ExcludeTest[];
  now: number;
}

/**
 * Layer entries for the selected sources, their parent directories included, sorted. Destinations
 * are resolved through the parent image's symlinks (BuildKit: fs.RootPath on the destination), so
 * a COPY into a symlinked directory lands in its target instead of replacing the link.
 */
export async function copyEntries(tree: SourceTree, selections: Selection[], heredocs: { target: string; content: string }[], o: EntryOptions): Promise<LayerEntry[]> {
  const entries = new Map<string, LayerEntry>();
  const root = { uid: 0, gid: 0 };
  // An unpacked archive keeps its entries' modes: BuildKit's unpack takes --chown but no mode.
  o = tree instanceof UnpackedArchive ? { ...o, chmod: undefined } : o;
  const ownerOf = (f: { uid?: number; gid?: number }) => o.owner ?? (o.fromContext ? root : { uid: f.uid ?? 0, gid: f.gid ?? 0 });
  const excluded = (rel: string) => o.exclude.some((e) => e.test(rel));
  const inImage = (p: string) => resolveDestination(p, o.existing);
  // Directories the copy creates (a destination, missing parents): an octal --chmod's permission bits,
  // else 0755 (a symbolic one too), owned as --chown says or by root (fsutil copy: MkdirAll(dest, mode,
  // chown), mode set only by an octal CopyInfo.Mode).
  const createdDirMode = o.chmod?.kind === 'octal' ? o.chmod.mode & 0o777 : 0o755;
  const createdDir = (path: string): LayerEntry => ({ path, type: 'directory', mode: createdDirMode, uid: (o.owner ?? root).uid, gid: (o.owner ?? root).gid, mtime: Math.floor(o.now / 1000) });
  const add = (absTarget: string, f: ContextFile, links: Map<string, string>) => {
    const path = absTarget.replace(/^\/+/, '');
    if (path === '') return;
    const own = ownerOf(f);
    const mode = o.chmod !== undefined && f.type !== 'symlink' ? applyChmod(o.chmod, f.mode, f.type === 'directory') : f.mode;
    const base: LayerEntry = { path, type: f.type, mode, uid: own.uid, gid: own.gid, mtime: Math.floor(f.mtimeMs / 1000) };
    const first = f.inode !== undefined ? links.get(f.inode) : undefined;
    if (first !== undefined && first !== path && entries.get(first)?.type === 'file') {
      base.type = 'hardlink';
      base.linkname = first;
    } else if (f.type === 'file') {
      base.sourcePath = f.abs;
      base.size = f.size;
      const id = tree.identity?.(f);
      if (id !== undefined) base.sourceId = id;
      if (f.inode !== undefined) links.set(f.inode, path);
    }
    if (f.type === 'symlink') base.linkname = f.linkTarget;
    entries.set(path, base);
  };
  for (const s of selections) {
    // Hard links are kept within one source, as each source is one fsutil copy with its own inode map.
    const links = new Map<string, string>();
    let target = await inImage(s.target);
    const there = await o.existing(target);
    if (s.file.type !== 'directory') {
      // A destination that resolves to an existing directory takes the file inside it.
      if (there?.type === 'directory') target = posix.join(target, s.name ?? posix.basename(s.file.rel));
      add(target, s.file, links);
      continue;
    }
    if (!there || there.type !== 'directory') {
      if (s.keepDirectory) add(target, s.file, links);
      else if (target !== '/') entries.set(target.slice(1), createdDir(target.slice(1)));
    }
    if (s.directoryOnly) continue;
    // Unpacking follows the image's symlinks in an entry's parent directories, as extracting the tar
    // in the image's root does (MkdirAll of the parent): var/run/x lands in run/x when var/run is a
    // link to /run (testDockerfileAddArchiveThroughAbsoluteSymlink).
    const unpacking = tree instanceof UnpackedArchive;
    for (const child of tree.walk(s.file.rel)) {
      const sub = s.file.rel === '' ? child.rel : child.rel.slice(s.file.rel.length + 1);
      if (excluded(sub)) continue;
      const dest = posix.join(target, sub);
      add(unpacking ? posix.join(await inImage(posix.dirname(dest)), posix.basename(dest)) : dest, child, links);
    }
  }
  for (const h of heredocs) {
    const own = o.owner ?? root;
    const path = (await inImage(h.target)).replace(/^\/+/, '');
    // A heredoc is a 0644 file before --chmod applies (convert_copy.go: llb.Mkfile(f, 0644, data)).
    const mode = o.chmod !== undefined ? applyChmod(o.chmod, 0o644, false) : 0o644;
    entries.set(path, { path, type: 'file', mode, uid: own.uid, gid: own.gid, mtime: Math.floor(o.now / 1000), content: h.content });
  }
  // Parent directories: owner and mode kept as the parent image has them, or created.
  const parents = new Set<string>();
  for (const p of entries.keys()) {
    let d = posix.dirname(p);
    while (d !== '.' && d !== '/' && !entries.has(d)) {
      parents.add(d);
      d = posix.dirname(d);
    }
  }
  for (const d of parents) {
    const info = await o.existing('/' + d);
    if (info && info.type === 'directory') {
      entries.set(d, { path: d, type: 'directory', mode: info.mode, uid: info.uid, gid: info.gid, mtime: Math.floor(o.now / 1000) });
    } else entries.set(d, createdDir(d));
  }
  const sorted = [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // The walk made the first name it visited the file and the others links to it, but byte order can
  // put a link first ("once/" is walked before "once-alias/", yet "once-alias/…" < "once/…"): the
  // first name in layer order must carry the content, as a hardlink's target precedes it in a tar.
  const carrier = new Map<string, LayerEntry>();
  for (const e of sorted) {
    const group = e.type === 'hardlink' ? e.linkname! : e.type === 'file' ? e.path : undefined;
    if (group === undefined) continue;
    const first = carrier.get(group);
    if (!first) {
      carrier.set(group, e);
      if (e.type === 'hardlink') {
        const file = entries.get(group)!;
        Object.assign(e, { type: 'file', sourcePath: file.sourcePath, size: file.size, sourceId: file.sourceId, linkname: undefined });
      }
    } else if (first !== e) {
      Object.assign(e, { type: 'hardlink', linkname: first.path, sourcePath: undefined, size: undefined, sourceId: undefined });
    }
  }
  return sorted;
}

/** An absolute destination with the parent image's symlinks followed inside the image's root. */
async function resolveDestination(abs: string, existing: EntryOptions['existing']): Promise<string> {
  const resolved = await resolveInRoot(abs, async (p) => {
    const info = await existing('/' + p);
    return info?.type === 'symlink' ? info.linkTarget : undefined;
  });
  return '/' + (resolved ?? abs.replace(/^\/+/, ''));
}

/** Parse --chmod (octal or symbolic, dockerfile/chmod.ts); a value BuildKit refuses fails the step. */
export function chmodOf(s: string | undefined, fail: (m: string) => never): Chmod | undefined {
  if (s === undefined) return undefined;
  try {
    return parseChmod(s);
  } catch (e) {
    if (e instanceof InvalidChmod) fail(e.message);
    throw e;
  }
}

/**
 * Content key of a selection: names, types, modes, owners (outside the context), link targets, hard
 * links and content hashes of exactly the selected files, never mtimes.
 */
export async function contextDigest(tree: SourceTree, selections: Selection[], exclude: ExcludeTest[], signal?: AbortSignal): Promise<string> {
  // The key's text in walk order, with a placeholder (an index into the hasher's results) for each
  // content hash not remembered from an earlier build: those are read while the walk goes on, by a
  // thread of their own when there are many (FileHasher).
  const parts: (string | number)[] = [];
  const hasher = new FileHasher();
  const toRemember: [ContextFile, number][] = [];
  const context = isContext(tree) ? tree : undefined;
  let count = 0;
  // Without a turn of the event loop now and then, walking 20,000 files would hold up everything
  // else for a while (a download ahead, a cancelled build's exit). Only then: a promise per file
  // cost more than the rest of this loop.
  const breathe = async () => {
    await new Promise((r) => setImmediate(r));
    signal?.throwIfAborted();
  };
  const add = (f: ContextFile, name: string, links: Map<string, string>) => {
    parts.push(`${name}\0${f.type}\0${f.mode.toString(8)}\0${f.linkTarget ?? ''}\0${f.uid ?? ''}:${f.gid ?? ''}\0`);
    const first = f.inode !== undefined ? links.get(f.inode) : undefined;
    if (first !== undefined) parts.push(`hardlink\0${first}`);
    else if (f.type === 'file') {
      if (f.inode !== undefined) links.set(f.inode, name);
      const known = context?.rememberedHash(f);
      if (known) parts.push(known);
      else {
        const at = hasher.add({ abs: f.abs, size: f.size });
        parts.push(at);
        if (context) toRemember.push([f, at]);
      }
    }
    parts.push('\n');
  };
  let hashes: string[];
  try {
    for (const s of selections) {
      const links = new Map<string, string>();
      parts.push(`>${s.target}\0${s.name ?? ''}\0${s.keepDirectory ? 'keep' : ''}${s.directoryOnly ? 'only' : ''}\n`);
      add(s.file, '.', links);
      if (s.file.type === 'directory' && !s.directoryOnly) {
        for (const child of tree.walk(s.file.rel)) {
          const sub = s.file.rel === '' ? child.rel : child.rel.slice(s.file.rel.length + 1);
          if (exclude.some((e) => e.test(sub))) continue;
          add(child, sub, links);
          if (++count % 256 === 0) await breathe();
        }
      }
    }
    hashes = await hasher.done(signal);
  } finally {
    await hasher.close();
  }
  for (const [f, at] of toRemember) context!.remember(f, hashes[at]!);
  // One update: 60,000 small ones each cross into the hash's native code.
  return 'sha256:' + createHash('sha256').update(parts.map((p) => (typeof p === 'number' ? hashes[p]! : p)).join('')).digest('hex');
}

/**
 * --exclude patterns, matched as BuildKit does (moby/patternmatcher, as in .dockerignore: `**`,
 * `!` exceptions, a matching directory excludes what is below it) against paths relative to each
 * copied source.
 */
export function excludePatterns(patterns: string[]): ExcludeTest[] {
  if (patterns.length === 0) return [];
  const m = createIgnoreMatcher(patterns);
  return [{ test: (rel: string) => m.ignores(rel) }];
}

/** Whether a local file is a tar archive ADD unpacks (plain, gzip, bzip2, xz). */
export async function archiveKind(path: string): Promise<'tar' | 'gzip' | 'bzip2' | 'xz' | undefined> {
  const fh = await open(path, 'r');
  const buf = Buffer.alloc(512);
  const { bytesRead } = await fh.read(buf, 0, 512, 0);
  await fh.close();
  const b = buf.subarray(0, bytesRead);
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return undefined;
}

/**
 * Unpack a local archive for ADD into a temp directory (with the archive module's confinement: no
 * entry escapes it) and return it as a tree whose contents are copied into the destination.
 */
export async function unpackArchive(path: string, kind: 'tar' | 'gzip' | 'bzip2' | 'xz'): Promise<{ tree: UnpackedArchive; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
  // The unpacked root stands for the destination directory, which ADD creates 0755.
  await chmod(dir, 0o755);
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const { applyLayer } = await import('../archive/index.js'); // layer code: only when an ADD unpacks
    if (kind === 'bzip2' || kind === 'xz') {
      const tool = kind === 'xz' ? 'xz' : 'bzip2';
      const child = spawn(tool, ['-d', '-c', path], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Read the output at once: Node resumes (and so drops) the unread output of a child that exits.
      const out = new PassThrough();
      child.stdout.pipe(out);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code) => resolve(code ?? 1));
      });
      const applied = applyLayer(out, dir, { whiteouts: 'delete' });
      const [code] = await Promise.all([exited, applied]);
      if (code !== 0) throw new Error(`${tool} -d failed: ${stderr.trim() || `exit code ${code}`}`);
    } else {
      await applyLayer(createReadStream(path), dir, { whiteouts: 'delete' });
    }
    return { tree: new UnpackedArchive(dir), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** The contents of a local archive ADD unpacked: copied with the archive's modes and owners. */
export class UnpackedArchive extends DirTree {}
