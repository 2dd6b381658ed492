import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

// Finding runtime binaries on the host. runc usually lives in /usr/sbin, which a non-login PATH
// may lack, so the sbin directories are searched after PATH.

const sbinDirs = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable program `name` (a bare name or a path), or undefined. */
export function findProgram(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? path.resolve(name) : undefined;
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d !== ''), ...sbinDirs];
  for (const dir of dirs) {
    const candidate = path.resolve(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
