// Shared helpers for the archive tests: temporary directories, a comparable description of a
// directory tree, and hand-made (possibly hostile) tar archives written with tar-stream, an
// implementation independent of kiln's own.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { readXattrs } from '../../src/archive/xattr.js';

/** A fresh directory under the system temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'kiln-archive-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => {
      for (const m of mountsUnder(dir).reverse()) execFileSync('umount', [m]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m) => m && (m === dir || m.startsWith(dir + '/')));
}

export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface Described {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime?: number;
  size?: number;
  sha?: string;
  link?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
  /** For a file with several links: the first path (in sorted order) sharing its inode. */
  sameInodeAs?: string;
}

/** Every entry under root (not root itself), as comparable plain data. */
export function describeTree(root: string, opts: { mtimes?: boolean; dirMtimes?: boolean } = {}): Record<string, Described> {
  const out: Record<string, Described> = {};
  const inodes = new Map<string, string>();
  const visit = (rel: string): void => {
    for (const name of readdirSync(rel ? join(root, rel) : root).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(root, r);
      const st = lstatSync(abs, { bigint: true });
      const d: Described = {
        type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'other',
        mode: (Number(st.mode) & 0o7777).toString(8),
        uid: Number(st.uid),
        gid: Number(st.gid),
      };
      if (d.type === 'symlink') delete (d as Partial<Described>).mode;
      if (opts.mtimes !== false && (d.type !== 'dir' || opts.dirMtimes !== false)) d.mtime = Number(st.mtimeNs / 1_000_000_000n);
      if (d.type === 'file') {
        const data = readFileSync(abs);
        d.size = data.length;
        d.sha = sha256hex(data).slice(0, 16);
      }
      if (d.type === 'symlink') d.link = readlinkSync(abs);
      if (d.type === 'char' || d.type === 'block') d.rdev = `${Number(st.rdev) >> 8}:${Number(st.rdev) & 0xff}`;
      if (d.type !== 'symlink') {
        const x = readXattrs(abs, (n) => n !== 'security.selinux');
        if (Object.keys(x).length) d.xattrs = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.toString('hex')]));
      }
      if (d.type !== 'dir' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first) d.sameInodeAs = first;
        else inodes.set(key, r);
      }
      out[r] = d;
      if (d.type === 'dir') visit(r);
    }
  };
  visit('');
  return out;
}

export interface Crafted {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

/** A tar archive of exactly these entries, names untouched, made with tar-stream. */
export async function craftTar(entries: Crafted[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = collect(pack);
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      mtime: new Date((e.mtime ?? 1_600_000_000) * 1000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
    };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') pack.entry(header, e.content ?? '', (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return done;
}

/** Names and types in a tar, as tar-stream reads them. */
export async function tarListing(data: Buffer): Promise<{ name: string; type: string; linkname: string | null; pax: Record<string, string> | null; mtime: number }[]> {
  const extract = tar.extract();
  Readable.from([data]).pipe(extract);
  const out = [];
  for await (const entry of extract) {
    const h = entry.header as tar.Header & { pax?: Record<string, string> | null };
    out.push({ name: h.name, type: String(h.type), linkname: h.linkname ?? null, pax: h.pax ?? null, mtime: (h.mtime?.getTime() ?? 0) / 1000 });
    entry.resume();
  }
  return out;
}

export function bufferStream(b: Buffer): Readable {
  return Readable.from([b]);
}
