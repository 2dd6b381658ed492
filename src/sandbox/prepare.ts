import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SandboxFailed } from './errors.js';
import type { Mount, RunRequest } from './executor.js';
import { etcMounts, pseudoFilesystemDirs, writeEtcFiles } from './layout.js';
import { ensureWorkingDir, mountpointKind, prepareMountpoints, removeMountpoints, type MountTarget } from './mountpoints.js';

// The part of a run that does not depend on the runtime: a private work directory with the
// generated /etc files, the mount points created in the rootfs, the working directory; and undoing
// all of it afterwards.

export function defaultStateDir(): string {
  return path.join(os.tmpdir(), 'kiln-sandbox');
}

export interface PreparedRun {
  /** Private to this run (runc's bundle); removed by finishRun. */
  workDir: string;
  /** /etc/hosts, /etc/resolv.conf, /etc/hostname bind mounts, destinations resolved inside the rootfs. */
  etcMounts: Mount[];
  /** req.mounts with destinations resolved inside the rootfs. */
  mounts: Mount[];
  createdMountpoints: string[];
}

// runc's container id rule (libcontainer validateID); kiln uses the same for every runtime.
const idPattern = /^[\w+.-]{1,1024}$/;

export async function prepareRun(req: RunRequest, stateDir: string): Promise<PreparedRun> {
  if (!idPattern.test(req.id) || req.id === '.' || req.id === '..') throw new SandboxFailed(`invalid sandbox id "${req.id}": use letters, digits, _ + - .`);
  if (!path.isAbsolute(req.process.cwd)) throw new SandboxFailed(`working directory "${req.process.cwd}" is not absolute`);
  if (req.process.args.length === 0) throw new SandboxFailed('no command to run');
  const bad = req.process.env.find((e) => e.indexOf('=') <= 0);
  if (bad !== undefined) throw new SandboxFailed(`environment entry "${bad}" is not KEY=VALUE`);
  if (!(await stat(req.rootfs)).isDirectory()) throw new SandboxFailed(`rootfs ${req.rootfs} is not a directory`);

  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const workDir = await mkdtemp(path.join(stateDir, `${req.id.slice(0, 64)}-`));
  try {
    const etc = etcMounts(await writeEtcFiles(workDir, req));
    const mounts = req.mounts ?? [];
    const targets: MountTarget[] = [
      ...pseudoFilesystemDirs.map((destination): MountTarget => ({ destination, kind: 'dir' })),
      ...etc.map((m): MountTarget => ({ destination: m.destination, kind: 'file' })),
      ...(await Promise.all(mounts.map(async (m): Promise<MountTarget> => ({ destination: m.destination, kind: await mountpointKind(m) })))),
    ];
    const prepared = await prepareMountpoints(req.rootfs, targets);
    const resolved = prepared.destinations.slice(pseudoFilesystemDirs.length);
    const run: PreparedRun = {
      workDir,
      etcMounts: etc.map((m, i) => ({ ...m, destination: resolved[i]! })),
      mounts: mounts.map((m, i) => ({ ...m, destination: resolved[etc.length + i]! })),
      createdMountpoints: prepared.created,
    };
    try {
      await ensureWorkingDir(req.rootfs, req.process.cwd, req.process.user, prepared.destinations);
    } catch (err) {
      await removeMountpoints(req.rootfs, prepared.created);
      throw err;
    }
    return run;
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

/** Removes the mount points kiln created and the work directory; returns RunResult.createdMountpoints. */
export async function finishRun(req: RunRequest, run: PreparedRun): Promise<string[]> {
  try {
    return await removeMountpoints(req.rootfs, run.createdMountpoints);
  } finally {
    await rm(run.workDir, { recursive: true, force: true });
  }
}
