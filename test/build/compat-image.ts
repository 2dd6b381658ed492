// What the compatibility suite compares of a built image: the config fields docker users see and
// the flattened root filesystem. Plain data on both sides so kiln's and buildah's images compare
// with one function, and every difference reads as one line.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerConfig } from '../../src/oci/types.js';

/** The config fields the suite compares (and the image author, MAINTAINER's field). */
export interface ComparedConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: string[];
  Volumes?: string[];
  Labels?: Record<string, string>;
  Healthcheck?: unknown;
  StopSignal?: string;
  Shell?: string[];
  OnBuild?: string[];
  author?: string;
}

export const configFields: (keyof ComparedConfig)[] = [
  'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'Healthcheck', 'StopSignal', 'Shell', 'OnBuild', 'author',
];

/**
 * Empty values are absent: Go's omitempty drops them on one side while the other may write `[]`,
 * `{}` or `""`. Sets (ports, volumes) become sorted key lists.
 */
export function comparableConfig(c: ContainerConfig | undefined, author: string | undefined): ComparedConfig {
  const out: ComparedConfig = {};
  const cfg = (c ?? {}) as ContainerConfig & { Healthcheck?: unknown };
  const list = (v: unknown) => (Array.isArray(v) && v.length > 0 ? (v as string[]) : undefined);
  const keys = (v: unknown) => (v && typeof v === 'object' && Object.keys(v).length > 0 ? Object.keys(v).sort() : undefined);
  const put = <K extends keyof ComparedConfig>(k: K, v: ComparedConfig[K] | undefined) => {
    if (v !== undefined && v !== '') out[k] = v;
  };
  put('Env', list(cfg.Env));
  put('Cmd', list(cfg.Cmd));
  put('Entrypoint', list(cfg.Entrypoint));
  put('WorkingDir', cfg.WorkingDir);
  put('User', cfg.User);
  put('ExposedPorts', keys(cfg.ExposedPorts));
  put('Volumes', keys(cfg.Volumes));
  if (cfg.Labels && Object.keys(cfg.Labels).length > 0) out.Labels = { ...cfg.Labels };
  if (cfg.Healthcheck) out.Healthcheck = cfg.Healthcheck;
  put('StopSignal', cfg.StopSignal);
  put('Shell', list(cfg.Shell));
  put('OnBuild', list(cfg.OnBuild));
  put('author', author);
  return out;
}

/** One path of a flattened root filesystem; mtimes are left out on purpose. */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits with setuid/setgid/sticky, octal. */
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** For a file with other hard links in the tree: the first path (sorted) of its group. */
  hardlink?: string;
}

export type Tree = Map<string, TreeEntry>;

/** Generated while RUN executes and never part of an image; both tools may leave empty placeholders. */
const placeholders = new Set(['/etc/hosts', '/etc/resolv.conf', '/etc/hostname']);

/** Walk a root filesystem: every path below `root` (not root itself), with content hashes. */
export async function flattenTree(root: string): Promise<Tree> {
  const tree: Tree = new Map();
  const inodes = new Map<string, string[]>();
  const walk = async (dir: string, rel: string) => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const path = `${rel}/${name}`;
      const st = await lstat(abs, { bigint: true });
      const mode = Number(st.mode);
      const entry: TreeEntry = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other',
        mode: (mode & 0o7777).toString(8).padStart(4, '0'),
        uid: Number(st.uid),
        gid: Number(st.gid),
      };
      if (entry.type === 'file') {
        entry.size = Number(st.size);
        entry.sha256 = await hashFile(abs);
        if (st.nlink > 1n) {
          const key = `${st.dev}:${st.ino}`;
          inodes.set(key, [...(inodes.get(key) ?? []), path]);
        }
      }
      if (entry.type === 'symlink') entry.target = await readlink(abs);
      if (placeholders.has(path) && entry.type === 'file' && entry.size === 0) continue;
      tree.set(path, entry);
      if (entry.type === 'dir') await walk(abs, path);
    }
  };
  await walk(root, '');
  for (const paths of inodes.values()) {
    if (paths.length < 2) continue;
    const first = [...paths].sort()[0]!;
    for (const p of paths) tree.get(p)!.hardlink = first;
  }
  return tree;
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex').slice(0, 16);
}

/** A difference between the two images: a config field, or one path of the tree. */
export interface Difference {
  /** 'config' differences name the field; tree differences the path. */
  kind: 'config' | 'tree';
  where: string;
  /** The fields that differ ('present' when one side lacks the path). */
  fields: string[];
  kiln: unknown;
  buildah: unknown;
}

export function diffConfigs(kiln: ComparedConfig, buildah: ComparedConfig): Difference[] {
  const out: Difference[] = [];
  for (const f of configFields) {
    if (JSON.stringify(kiln[f]) !== JSON.stringify(buildah[f])) out.push({ kind: 'config', where: f, fields: [f], kiln: kiln[f], buildah: buildah[f] });
  }
  return out;
}

export function diffTrees(kiln: Tree, buildah: Tree): Difference[] {
  const out: Difference[] = [];
  const paths = [...new Set([...kiln.keys(), ...buildah.keys()])].sort();
  for (const p of paths) {
    const k = kiln.get(p);
    const b = buildah.get(p);
    if (!k || !b) {
      out.push({ kind: 'tree', where: p, fields: ['present'], kiln: k ? describe(k) : 'absent', buildah: b ? describe(b) : 'absent' });
      continue;
    }
    const fields = (['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'hardlink'] as const).filter((f) => k[f] !== b[f]);
    if (fields.length) out.push({ kind: 'tree', where: p, fields: [...fields], kiln: describe(k), buildah: describe(b) });
  }
  return out;
}

/** `file 0644 0:0 3B sha256:abcd… link=/a` — one line per entry for failure messages. */
export function describe(e: TreeEntry): string {
  const parts: string[] = [e.type, e.mode, `${e.uid}:${e.gid}`];
  if (e.size !== undefined) parts.push(`${e.size}B`, `sha256:${e.sha256}`);
  if (e.target !== undefined) parts.push(`-> ${e.target}`);
  if (e.hardlink !== undefined) parts.push(`hardlink=${e.hardlink}`);
  return parts.join(' ');
}

export function formatDifference(d: Difference): string {
  const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  return `${d.kind === 'config' ? 'config ' : ''}${d.where} [${d.fields.join(',')}]\n      kiln:    ${show(d.kiln)}\n      buildah: ${show(d.buildah)}`;
}
