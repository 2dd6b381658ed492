import { posix } from 'node:path';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { LayerEntry } from '../archive/index.js';
import { applyLayer } from '../archive/index.js';
import type { CopyStep } from '../dockerfile/index.js';
import type { ContextFile } from './context.js';
import { DirTree, globToRegExp, hasGlob, isContext, type SourceTree } from './tree.js';
import { BuildStepError } from './errors.js';
import type { PathInfo } from '../snapshot/snapshotter.js';

/** A selected source: what it is and where it lands. */
export interface Selection {
  file: ContextFile & { uid?: number; gid?: number };
  /** Absolute destination of this source (a file's path, or the directory its contents go into). */
  target: string;
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
 * Resolve COPY/ADD sources (wildcards, directories, .dockerignore) against their tree, as BuildKit's
 * copy does: a directory's contents are copied, not the directory; several sources need a directory
 * destination. `destIsDir` tells whether an existing destination is a directory in the parent image.
 */
export async function selectSources(inputs: CopyInputs, destIsDir: (p: string) => Promise<boolean>): Promise<Selection[]> {
  const { step, file, tree } = inputs;
  const keyword = step.add ? 'ADD' : 'COPY';
  const fail = (msg: string): never => {
    throw new BuildStepError(file, step.line, `${keyword} failed: ${msg}`);
  };
  const found: (ContextFile & { uid?: number; gid?: number })[] = [];
  let wildcard = false;
  for (const raw of step.sources) {
    const rel = cleanSource(raw, () => fail(`source "${raw}" is outside the build context`));
    if (hasGlob(rel)) {
      wildcard = true;
      const matches = await globMatches(tree, rel);
      if (matches.length === 0) fail(`no source files were specified: "${raw}" matches nothing`);
      found.push(...matches);
      continue;
    }
    const f = await tree.stat(rel);
    if (!f || !tree.included(rel)) {
      fail(`"${raw}" not found: ${isContext(tree) ? 'no such file or directory in the build context' + (f ? ' (excluded by .dockerignore)' : '') : 'no such file or directory in the source stage'}`);
    }
    found.push(f!);
  }
  const dest = step.destPath;
  const count = found.length + step.heredocs.length;
  const explicitDir = dest.endsWith('/');
  if (count > 1 && !explicitDir && !(wildcard && found.length <= 1)) {
    if (!(await destIsDir(dest))) fail(`when using ${keyword} with more than one source file, the destination must be a directory and end with a /`);
  }
  const out: Selection[] = [];
  for (const f of found) {
    if (f.type === 'directory') out.push({ file: f, target: trimSlash(dest) });
    else if (explicitDir || count > 1 || (await destIsDir(dest))) out.push({ file: f, target: posix.join(dest, posix.basename(f.rel || '/')) });
    else out.push({ file: f, target: trimSlash(dest) });
  }
  return out;
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

async function globMatches(tree: SourceTree, pattern: string): Promise<ContextFile[]> {
  const parts = pattern.split('/');
  const firstGlob = parts.findIndex(hasGlob);
  const base = parts.slice(0, firstGlob).join('/');
  const depth = parts.length;
  const re = globToRegExp(pattern);
  const out: ContextFile[] = [];
  const baseStat = await tree.stat(base);
  if (!baseStat || baseStat.type !== 'directory') return out;
  for await (const f of tree.walk(base)) {
    const d = f.rel.split('/').length;
    if (d === depth && re.test(f.rel)) out.push(f);
  }
  return out;
}

export interface EntryOptions {
  /** --chown resolved to ids, or undefined to keep (stages/images) or use root (context). */
  owner?: { uid: number; gid: number };
  /** --chmod as an octal mode. */
  chmod?: number;
  fromContext: boolean;
  /** Metadata of existing paths in the parent image, to keep them unchanged in the layer. */
  existing: (absPath: string) => Promise<PathInfo | undefined>;
  exclude: RegExp[];
  now: number;
}

/** Layer entries for the selected sources, their parent directories included, sorted. */
export async function copyEntries(tree: SourceTree, selections: Selection[], heredocs: { target: string; content: string }[], o: EntryOptions): Promise<LayerEntry[]> {
  const entries = new Map<string, LayerEntry>();
  const ownerOf = (f: { uid?: number; gid?: number }) => o.owner ?? (o.fromContext ? { uid: 0, gid: 0 } : { uid: f.uid ?? 0, gid: f.gid ?? 0 });
  const excluded = (rel: string) => o.exclude.some((re) => re.test(rel));
  const add = (absTarget: string, f: ContextFile & { uid?: number; gid?: number }) => {
    const path = absTarget.replace(/^\/+/, '');
    if (path === '') return;
    const own = ownerOf(f);
    const mode = o.chmod !== undefined && f.type !== 'symlink' ? o.chmod : f.mode;
    const base: LayerEntry = { path, type: f.type, mode, uid: own.uid, gid: own.gid, mtime: Math.floor(f.mtimeMs / 1000) };
    if (f.type === 'file') {
      base.sourcePath = f.abs;
      base.size = f.size;
    }
    if (f.type === 'symlink') base.linkname = f.linkTarget;
    entries.set(path, base);
  };
  for (const s of selections) {
    if (s.file.type === 'directory') {
      const existing = await o.existing(s.target);
      if (!existing || existing.type !== 'directory') add(s.target, s.file);
      for await (const child of tree.walk(s.file.rel)) {
        const sub = s.file.rel === '' ? child.rel : child.rel.slice(s.file.rel.length + 1);
        if (excluded(sub) || excluded(child.rel)) continue;
        add(posix.join(s.target, sub), child);
      }
    } else add(s.target, s.file);
  }
  for (const h of heredocs) {
    const own = o.owner ?? { uid: 0, gid: 0 };
    entries.set(h.target.replace(/^\/+/, ''), { path: h.target.replace(/^\/+/, ''), type: 'file', mode: o.chmod ?? 0o644, uid: own.uid, gid: own.gid, mtime: Math.floor(o.now / 1000), content: h.content });
  }
  // Parent directories: kept as the parent image has them, or created 0755 (owned as --chown says).
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
      entries.set(d, { path: d, type: 'directory', mode: info.mode, uid: info.uid, gid: info.gid, mtime: Math.floor(info.mtimeMs / 1000) });
    } else {
      const own = o.owner ?? { uid: 0, gid: 0 };
      entries.set(d, { path: d, type: 'directory', mode: 0o755, uid: own.uid, gid: own.gid, mtime: Math.floor(o.now / 1000) });
    }
  }
  return [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Parse --chmod: octal only (BuildKit's symbolic modes need the labs frontend). */
export function parseChmod(s: string | undefined, fail: (m: string) => never): number | undefined {
  if (s === undefined) return undefined;
  if (!/^[0-7]{3,4}$/.test(s)) fail(`invalid --chmod "${s}": expected an octal mode such as 755`);
  return parseInt(s, 8);
}

/** Content key of a selection from the context: names, types, modes, sizes and content hashes, never mtimes. */
export async function contextDigest(tree: SourceTree, selections: Selection[], exclude: RegExp[]): Promise<string> {
  const h = createHash('sha256');
  const add = async (f: ContextFile, name: string) => {
    h.update(`${name}\0${f.type}\0${f.mode.toString(8)}\0${f.linkTarget ?? ''}\0`);
    if (f.type === 'file' && isContext(tree)) h.update(await tree.contentHash(f));
    h.update('\n');
  };
  for (const s of selections) {
    h.update(`>${s.target}\n`);
    await add(s.file, '.');
    if (s.file.type === 'directory') {
      for await (const child of tree.walk(s.file.rel)) {
        const sub = s.file.rel === '' ? child.rel : child.rel.slice(s.file.rel.length + 1);
        if (exclude.some((re) => re.test(sub) || re.test(child.rel))) continue;
        await add(child, sub);
      }
    }
  }
  return 'sha256:' + h.digest('hex');
}

/** --exclude patterns (Go filepath.Match, relative to the source). */
export function excludePatterns(patterns: string[]): RegExp[] {
  return patterns.map((p) => globToRegExp(posix.normalize(p).replace(/^\/+/, '').replace(/\/$/, '')));
}

/** ADD of a URL: download to a temp directory; returns a tree with the one file and its name. */
export async function downloadSource(url: string, step: CopyStep, file: string): Promise<{ tree: DirTree; name: string; cleanup: () => Promise<void> }> {
  const fail = (m: string): never => {
    throw new BuildStepError(file, step.line, `ADD failed: ${m}`);
  };
  const dir = await mkdtemp(join(tmpdir(), 'kiln-add-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => fail(`cannot download ${url}: ${e.message}`));
    if (!res.ok || !res.body) fail(`cannot download ${url}: HTTP ${res.status}`);
    const name = decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? 'index.html') || 'index.html';
    const path = join(dir, name);
    const h = createHash('sha256');
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (c: Buffer) => h.update(c));
    await pipeline(body, createWriteStream(path, { mode: 0o600 }));
    const digest = 'sha256:' + h.digest('hex');
    if (step.checksum && step.checksum !== digest) fail(`checksum mismatch for ${url}: got ${digest}, expected ${step.checksum}`);
    const lm = res.headers.get('last-modified');
    const fh = await open(path, 'r+');
    const t = lm ? new Date(lm) : new Date(0);
    await fh.utimes(t, t);
    await fh.chmod(0o600);
    await fh.close();
    return { tree: new DirTree(dir), name, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
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
export async function unpackArchive(path: string, kind: 'tar' | 'gzip' | 'bzip2' | 'xz'): Promise<{ tree: DirTree; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    let input: Readable;
    if (kind === 'bzip2' || kind === 'xz') {
      const child = spawn(kind === 'xz' ? 'xz' : 'bzip2', ['-d', '-c', path], { stdio: ['ignore', 'pipe', 'inherit'] });
      input = child.stdout;
    } else {
      const { createReadStream } = await import('node:fs');
      input = createReadStream(path);
    }
    await applyLayer(input, dir, { whiteouts: 'delete' });
    return { tree: new DirTree(dir), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
