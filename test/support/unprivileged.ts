// An unprivileged user for rootless tests, as a distribution's useradd makes one (with subordinate
// id ranges), and a way to run kiln as that user against a store it owns.

import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, repoRoot } from './env.js';

export const rootlessUser = 'kiln-rootless';
export const isRoot = process.getuid?.() === 0;

function ensureUser(): void {
  try {
    execFileSync('id', [rootlessUser], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', rootlessUser]);
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = execFileSync('cat', [f], { encoding: 'utf8' });
    if (!text.split('\n').some((l) => l.startsWith(`${rootlessUser}:`))) execFileSync('sh', ['-c', `echo ${rootlessUser}:300000:65536 >> ${f}`]);
  }
}

export interface Unprivileged {
  /** A world-readable work directory, removed when the test ends. */
  dir: string;
  /** The busybox fixture archive, readable by the user. */
  busybox: string;
  /** A store the user owns. */
  userRoot: string;
  /** A directory the user may write into. */
  userOut: string;
  /** Run kiln as the user with KILN_ROOT=userRoot; throws with stderr on a non-zero exit. */
  kiln: (args: string) => string;
}

/** Needs root (to create the user); a copy of kiln goes where the user can read it. */
export async function unprivileged(t: { after: (fn: () => Promise<void> | void) => void }): Promise<Unprivileged> {
  ensureUser();
  const dir = await mkdtemp(join(tmpdir(), 'kiln-rootless-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const app = join(dir, 'app');
  await mkdir(app);
  execFileSync('cp', ['-a', '--reflink=auto', join(repoRoot, 'dist'), join(repoRoot, 'node_modules'), join(repoRoot, 'package.json'), app]);
  const busybox = join(dir, 'busybox.tar');
  await copyFile(fixture('busybox'), busybox);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  const userRoot = join(dir, 'user-store');
  const userOut = join(dir, 'user-out');
  await mkdir(userRoot);
  await mkdir(userOut);
  execFileSync('chown', [`${rootlessUser}:${rootlessUser}`, userRoot, userOut]);
  const kiln = (args: string) => {
    try {
      return execFileSync('su', [rootlessUser, '-s', '/bin/sh', '-c', `cd ${dir} && KILN_ROOT=${userRoot} node ${app}/dist/bin/kiln.cjs ${args}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { status?: number; stderr?: string };
      throw new Error(`kiln ${args} (as ${rootlessUser}) exited ${err.status}: ${err.stderr}`);
    }
  };
  return { dir, busybox, userRoot, userOut, kiln };
}
