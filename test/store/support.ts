// Helpers for the store and CLI tests: snapshots of a store to prove it unchanged, hand-made tar
// archives (kiln's own header encoder, so hostile names can be written), archive rewriting, and a
// comparable description of a file tree, read from a directory or from a tar.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { Readable } from 'node:stream';
import { encodeHeader, readTar, tarHeader, type TarHeader } from '../../src/archive/index.js';
import { kiln, kilnOk, type KilnResult } from '../support/env.js';

export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A directory shared by the tests of one file, removed after the last of them (call at module level). */
export function fileDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The store as a user sees it

export interface StoreSnapshot {
  index: Buffer;
  images: string;
  blobs: string[];
}

export async function snapshot(root: string): Promise<StoreSnapshot> {
  return { index: readFileSync(join(root, 'index.json')), images: await kilnOk(root, ['images', '--format', 'json']), blobs: blobNames(root) };
}

/** The same, from index.json alone (identical bytes mean identical tags), without running kiln. */
export function indexSnapshot(root: string): StoreSnapshot {
  return { index: readFileSync(join(root, 'index.json')), images: '', blobs: blobNames(root) };
}

export function blobNames(root: string): string[] {
  const dir = join(root, 'blobs', 'sha256');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** A failed command: non-zero exit, exactly one line on stderr starting "Error: " (and matching `message`), nothing on stdout. */
export function assertOneLineError(r: KilnResult, message?: RegExp): void {
  assert.notEqual(r.code, 0, `expected a failure, got exit 0 with stdout ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^Error: \S/);
  if (message) assert.match(lines[0]!, message);
  assert.equal(r.stdout, '');
}

/** The store as it was: index.json byte for byte, the same images, no new tags. */
export async function assertUnchanged(root: string, before: StoreSnapshot): Promise<void> {
  assert.ok(readFileSync(join(root, 'index.json')).equals(before.index), 'index.json changed');
  const images = await kilnOk(root, ['images', '--format', 'json']);
  if (before.images) assert.equal(images, before.images);
}

/** Every blob's content hashes to its name: no partial or corrupt blob is visible. */
export function assertBlobsIntact(root: string): void {
  for (const name of blobNames(root)) {
    assert.equal(sha256hex(readFileSync(join(root, 'blobs', 'sha256', name))), name, `blob ${name} does not match its name`);
  }
}

/** Every index.json entry's manifest, config and layers are present. */
export function assertIndexComplete(root: string): void {
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string) => join(root, 'blobs', 'sha256', d.slice('sha256:'.length));
  for (const m of index.manifests) {
    assert.ok(existsSync(blob(m.digest)), `index.json names manifest ${m.digest}, which is missing`);
    const manifest = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [manifest.config, ...manifest.layers]) assert.ok(existsSync(blob(d.digest)), `manifest ${m.digest} references missing ${d.digest}`);
  }
}

/** Repository:tag → image ID, from `kiln images --format json`. */
export async function tags(root: string): Promise<Map<string, string>> {
  const out = await kilnOk(root, ['images', '--format', 'json']);
  const map = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { Repository: string; Tag: string; ID: string };
    map.set(`${r.Repository}:${r.Tag}`, r.ID);
  }
  return map;
}

// ---------------------------------------------------------------------------------------------
// Tar archives

export interface Entry {
  header: Partial<TarHeader> & Pick<TarHeader, 'path' | 'type'>;
  content?: Buffer | string;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/** A tar of the entries exactly as given: names are not checked, so hostile archives can be made. */
export function makeTar(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const content = e.content === undefined ? Buffer.alloc(0) : Buffer.from(e.content);
    parts.push(encodeHeader(tarHeader({ ...e.header, size: content.length })), content, pad(content.length));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The regular files of a tar archive (an image archive): path → content. */
export async function readArchive(path: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for await (const { header, body } of readTar(Readable.from([readFileSync(path)]))) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    if (header.type === 'file') files.set(header.path.replace(/^\.\//, ''), Buffer.concat(chunks));
  }
  return files;
}

/** An image archive from path → content (directories implied). */
export function writeArchive(files: Map<string, Buffer>): Buffer {
  return makeTar([...files].map(([path, content]) => ({ header: { path, type: 'file' as const }, content })));
}

// ---------------------------------------------------------------------------------------------
// File trees, comparable whether they were unpacked on disk or listed from a tar

export interface Node {
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha?: string;
  link?: string;
}

export function treeOfDir(root: string): Record<string, Node> {
  const out: Record<string, Node> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const abs = join(root, p);
      const st = lstatSync(abs);
      const base = { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (st.isDirectory()) {
        out[p] = { type: 'directory', ...base };
        walk(p);
      } else if (st.isFile()) {
        const data = readFileSync(abs);
        out[p] = { type: 'file', ...base, size: data.length, sha: sha256hex(data) };
      } else if (st.isSymbolicLink()) out[p] = { type: 'symlink', ...base, mode: '777', link: readlinkSync(abs) };
      else if (st.isCharacterDevice()) out[p] = { type: 'char', ...base };
      else if (st.isBlockDevice()) out[p] = { type: 'block', ...base };
      else if (st.isFIFO()) out[p] = { type: 'fifo', ...base };
    }
  };
  walk('');
  return out;
}

export interface TarListing {
  tree: Record<string, Node>;
  /** Entry paths in archive order (to check each appears once). */
  order: string[];
  /** Hardlink entries: path → target. */
  hardlinks: Record<string, string>;
}

/** What extracting the tar would give, hardlinks resolved to their target's content. */
export async function treeOfTar(data: Buffer): Promise<TarListing> {
  const tree: Record<string, Node> = {};
  const order: string[] = [];
  const hardlinks: Record<string, string> = {};
  for await (const { header: h, body } of readTar(Readable.from([data]))) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    const path = h.path.replace(/^\.\//, '').replace(/\/$/, '');
    order.push(path);
    const base = { mode: h.mode.toString(8), uid: h.uid, gid: h.gid };
    if (h.type === 'hardlink') {
      hardlinks[path] = h.linkname;
      const target = tree[h.linkname];
      assert.ok(target, `hardlink ${path} precedes its target ${h.linkname}`);
      tree[path] = { ...target };
    } else if (h.type === 'file') {
      const content = Buffer.concat(chunks);
      tree[path] = { type: 'file', ...base, size: content.length, sha: sha256hex(content) };
    } else if (h.type === 'symlink') tree[path] = { type: 'symlink', ...base, mode: '777', link: h.linkname };
    else tree[path] = { type: h.type, ...base };
  }
  return { tree, order, hardlinks };
}

/** Run a peer tool (skopeo, umoci, tar), failing with its stderr. */
export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
  }
}

export { kiln, kilnOk };
