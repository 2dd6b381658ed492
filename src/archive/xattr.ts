// Extended attributes, which Node cannot read or write by itself. @napi-rs/xattr ships prebuilt
// binaries and, unlike fs-xattr, never follows a symlink in the last path component (it calls
// llistxattr/lgetxattr/lsetxattr), which is what both packing and safe extraction need.
// Its calls are synchronous: each is one system call of a few microseconds.

import { createRequire } from 'node:module';

interface Binding {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
  setAttributeSync(path: string, name: string, value: Uint8Array | string): void;
}

let binding: Binding | null | undefined;

function load(): Binding | null {
  if (binding === undefined) {
    try {
      binding = createRequire(import.meta.url)('@napi-rs/xattr') as Binding;
    } catch {
      binding = null; // no binary for this platform: layers are packed without xattrs
    }
  }
  return binding;
}

/** Whether this platform can read and write xattrs at all. */
export function xattrsSupported(): boolean {
  return load() !== null;
}

/** The xattrs of `path` itself (a symlink's own, never its target's), names sorted. */
export function readXattrs(path: string, keep: (name: string) => boolean = () => true): Record<string, Buffer> {
  const b = load();
  const out: Record<string, Buffer> = {};
  if (!b) return out;
  let names: string[];
  try {
    names = b.listAttributesSync(path);
  } catch (err) {
    if (isUnsupported(err)) return out; // the filesystem has no xattrs
    throw err;
  }
  for (const name of names.sort()) {
    if (!keep(name)) continue;
    const value = b.getAttributeSync(path, name);
    if (value) out[name] = value;
  }
  return out;
}

export function readXattr(path: string, name: string): Buffer | null {
  const b = load();
  if (!b) return null;
  try {
    return b.getAttributeSync(path, name);
  } catch (err) {
    if (isUnsupported(err)) return null;
    throw err;
  }
}

/** Sets an xattr on `path` itself, never through a symlink in the last component. */
export function writeXattr(path: string, name: string, value: Uint8Array | string): void {
  const b = load();
  if (!b) throw new Error(`cannot set xattr ${name} on ${path}: extended attributes are not supported on this platform`);
  try {
    b.setAttributeSync(path, name, value);
  } catch (err) {
    throw new Error(`cannot set xattr ${name} on ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The binding reports errno only in its message, e.g. "Operation not permitted (os error 1)". */
export function xattrErrno(err: unknown): number | undefined {
  const m = /\(os error (\d+)\)/.exec(String((err as Error)?.message ?? err));
  return m ? Number(m[1]) : undefined;
}

const ENOTSUP = 95;
const EPERM = 1;

function isUnsupported(err: unknown): boolean {
  return xattrErrno(err) === ENOTSUP;
}

/** Refused because of privilege or filesystem support, rather than a real failure. */
export function isXattrPermissionError(err: unknown): boolean {
  const e = xattrErrno(err);
  return e === EPERM || e === ENOTSUP;
}
