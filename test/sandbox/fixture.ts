import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { findProgram } from '../../src/sandbox/program.js';

// Root filesystems for sandbox tests, made from the host's static busybox: bin/busybox plus a
// symlink per applet the tests use (symlinks are slow to make on some disks; the full list is ~400).
// Nothing else — no /etc, /proc, /dev — so tests see what a run adds.

const busybox = '/usr/bin/busybox';
const applets = [
  'cat', 'env', 'echo', 'grep', 'hostname', 'id', 'ip', 'ls', 'mkdir', 'mknod', 'ps', 'pwd',
  'sh', 'sleep', 'sort', 'tail', 'test', 'touch', 'tr', 'true', 'wc',
];

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `kiln-test-${prefix}-`));
}

export async function makeBusyboxRootfs(dir: string): Promise<string> {
  const rootfs = path.join(dir, 'rootfs');
  await mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await copyFile(busybox, path.join(rootfs, 'bin', 'busybox'));
  await Promise.all(applets.map((a) => symlink('busybox', path.join(rootfs, 'bin', a))));
  return rootfs;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Why the sandbox tests cannot run here, or undefined when they can. */
export function sandboxUnavailable(tool: 'runc' | 'bwrap'): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!findProgram(busybox)) return `needs ${busybox}`;
  if (!findProgram(tool)) return `needs ${tool}`;
  if (tool === 'bwrap' && !findProgram(process.env.CC || 'cc')) return 'needs a C compiler for the bwrap init program';
  return undefined;
}

/** A Writable that keeps what it is given. */
export class Capture extends Writable {
  private chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
