import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inUserNamespace } from './sandbox/userns.js';
import { kilnCacheDir, ownedByMeAlone } from './userdirs.js';

// Small C programs for what Node.js has no API for (dropping capabilities before an exec, being a
// container's PID 1, mount(2) without a mount(8) process per call), built on first use with the
// host's C compiler ($CC or cc) into a cache directory, named by the source's hash, and committed
// by rename, so that concurrent first uses and an interrupted build are harmless.
//
// A program in the cache is run, often as root, so only a file and a directory owned by this user
// and writable by no one else are trusted, and as real root also every directory above them: `sudo
// kiln` with a user's HOME builds its program in a private directory of its own instead of running
// what that user could have put in their cache. (In a user namespace, a rootless build, the
// program has no more power than the user whose cache it is, and the owners of the directories
// above are unmapped there.)

export interface CProgram {
  /** File name prefix: "kiln-init", "kiln-mount"… */
  name: string;
  source: string;
  /** Link statically: the program runs inside containers, whatever libc their image has. */
  static?: boolean;
}

/** The compiler failed (or there is none); the message has its complaint. */
export class CompileFailed extends Error {}

export function defaultProgramCacheDir(): string {
  return kilnCacheDir('sandbox');
}

const builds = new Map<string, Promise<string>>();

/** Path of `program` compiled, building it on first use (once per process and cache directory). */
export function compiledProgram(program: CProgram, cacheDir = defaultProgramCacheDir()): Promise<string> {
  const key = `${cacheDir}\0${program.name}`;
  let built = builds.get(key);
  if (!built) {
    built = build(program, cacheDir).catch((err) => {
      builds.delete(key);
      throw err;
    });
    builds.set(key, built);
  }
  return built;
}

async function build(program: CProgram, cacheDir: string): Promise<string> {
  const hash = createHash('sha256').update(program.source).update(program.static ? 'static' : 'dynamic').digest('hex').slice(0, 16);
  const file = `${program.name}-${os.arch()}-${hash}`;
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const realRoot = process.geteuid?.() === 0 && !inUserNamespace();
  const trusted = realRoot ? await trustedDirectory(path.resolve(cacheDir)) : await ownedAndPrivate(cacheDir);
  if (trusted && (await ownedAndPrivate(path.join(cacheDir, file)))) return path.join(cacheDir, file);
  // Built in a new directory of our own: moved into the cache if the cache can be trusted, else
  // kept there, for this process only, until it exits.
  const tmp = await mkdtemp(path.join(trusted ? cacheDir : os.tmpdir(), '.build-'));
  if (!trusted) process.once('exit', () => rmSync(tmp, { recursive: true, force: true }));
  try {
    await writeFile(path.join(tmp, 'main.c'), program.source);
    const cc = process.env.CC || 'cc';
    const flags = [...(program.static ? ['-static'] : []), '-O2', '-s', '-o', path.join(tmp, 'prog'), path.join(tmp, 'main.c')];
    await new Promise<void>((resolve, reject) => {
      execFile(cc, flags, (err, _out, stderr) => (err ? reject(new CompileFailed(`${cc}: ${(stderr || err.message).trim()}`)) : resolve()));
    });
    if (!trusted) return path.join(tmp, 'prog');
    await rename(path.join(tmp, 'prog'), path.join(cacheDir, file));
    return path.join(cacheDir, file);
  } finally {
    if (trusted) await rm(tmp, { recursive: true, force: true });
  }
}

/** Whether `p` exists, is this user's and cannot be written by anyone else. */
async function ownedAndPrivate(p: string): Promise<boolean> {
  const st = await lstat(p).catch(() => undefined);
  return st !== undefined && !st.isSymbolicLink() && ownedByMeAlone(st);
}

/**
 * Whether `dir` is this user's and private, and so is every directory above it (or root's): no one
 * else could swap the program, or a directory on its way, between the check and the exec.
 */
async function trustedDirectory(dir: string): Promise<boolean> {
  if (!(await ownedAndPrivate(dir))) return false;
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const st = await lstat(d).catch(() => undefined);
    if (!st || st.isSymbolicLink() || (st.uid !== 0 && st.uid !== process.geteuid?.())) return false;
    // Writable by others only if sticky (as /tmp): then no one else can rename what is in it.
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return false;
    if (d === path.dirname(d)) return true;
  }
}
