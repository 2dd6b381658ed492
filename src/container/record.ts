import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import type { NetworkMode } from '../sandbox/executor.js';
import type { ContainerLayer } from '../snapshot/container.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import { writeFileAtomic } from '../store/atomic.js';
import { withStoreLock } from '../store/lock.js';
import type { Store } from '../store/store.js';
import { ContainerUnknown, NameInUse, StartFailed } from './errors.js';
import { supervisorAlive } from './process.js';
import { byCodeUnits } from '../order.js';

// A working container is a directory, <store root>/containers/<id>/, and nothing else — no daemon
// holds it. config.json is what the container was created with and never changes; state.json is
// what it is doing, written by whichever process runs it (see run.ts). The overlay upper and work
// directories live beside them, so the container's changes survive between runs, and so do its log
// and anonymous volumes.
//
//   config.json      ContainerRecord
//   state.json       ContainerState
//   upper/ work/     the overlay's writable layer and its work directory
//   rootfs/          mount point of the merged filesystem while the container runs
//   volumes/<n>/     anonymous volumes (-v /path, the image's VOLUMEs)
//   container.log    stdout and stderr, one JSON object per line (docker's json-file format)
//   supervisor.log   the detached supervisor's own errors

/** A bind mount of the container: a host directory (or an anonymous volume) at `destination`. */
export interface Bind {
  source: string;
  destination: string;
  readOnly: boolean;
  /** An anonymous volume under the container's directory, removed with it. */
  anonymous: boolean;
}

/** How the container runs, beyond what an image config can say (docker's HostConfig). */
export interface HostSettings {
  tty: boolean;
  interactive: boolean;
  autoRemove: boolean;
  init: boolean;
  readOnly: boolean;
  network: NetworkMode;
  binds: Bind[];
  /** Executor name (runc, crun, bwrap, a path); undefined picks the default. */
  runtime?: string;
}

export interface ContainerRecord {
  /** 64 hex digits, as docker's container IDs. */
  id: string;
  name: string;
  created: string;
  /** The image as the user named it (ps shows this). */
  image: string;
  /** The image ID (config digest). */
  imageId: string;
  /** The image's config: the base a commit builds on. */
  imageConfig: ImageConfig;
  /** The image's layers, bottom first: the overlay's lower directories. */
  layers: LayerRef[];
  /** docker's container Config: the image's runtime config merged with the run options. Commit writes it. */
  config: ContainerConfig;
  host: HostSettings;
}

export type ContainerStatus = 'created' | 'running' | 'exited';

export interface ContainerState {
  status: ContainerStatus;
  /** The process running the sandbox: the detached supervisor, or the foreground `kiln run`/`start -a`. */
  pid?: number;
  /** Start time of `pid` (/proc/PID/stat field 22), so a reused pid is not mistaken for it. */
  pidStartTime?: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  /** Why the last start failed, when the command never ran. */
  error?: string;
  /**
   * Paths (relative to the rootfs) the sandbox creates only as mount points (/etc/hosts in an image
   * without one, a volume's directory). Never part of the container's changes while they hold nothing.
   */
  placeholders?: string[];
}

export interface Container {
  record: ContainerRecord;
  state: ContainerState;
  /** <store root>/containers/<id> */
  dir: string;
}

/** The container's writable layer over its image's layers, as the snapshot module mounts it. */
export function layerOf(c: Container): ContainerLayer {
  return { dir: c.dir, layers: c.record.layers };
}

export function containersDir(store: Store): string {
  return join(store.root, 'containers');
}

export function containerDir(store: Store, id: string): string {
  return join(containersDir(store), id);
}

/** docker's rule for container names (daemon/names.go). */
const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function validateName(name: string): string {
  const bare = name.startsWith('/') ? name.slice(1) : name;
  if (!namePattern.test(bare)) throw new StartFailed(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return bare;
}

/** 64 random hex digits whose 12-digit short form is not all decimal (it would read as a number). */
function newId(): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d{12}/.test(id)) return id;
  }
}

// A docker-like generated name: adjective_noun.
const adjectives = ['amber', 'brave', 'calm', 'dusty', 'eager', 'fiery', 'gentle', 'hardy', 'keen', 'lucid', 'mellow', 'nimble', 'placid', 'quiet', 'rustic', 'steady', 'tidy', 'vivid', 'warm', 'zesty'];
const nouns = ['anvil', 'bellows', 'brick', 'cinder', 'clay', 'ember', 'flue', 'forge', 'glaze', 'hearth', 'ingot', 'kettle', 'ladle', 'mortar', 'oven', 'potter', 'slag', 'smelter', 'tile', 'vessel'];

function generatedName(taken: Set<string>): string {
  for (let attempt = 0; ; attempt++) {
    const pick = (a: string[]) => a[randomBytes(1)[0]! % a.length]!;
    const name = `${pick(adjectives)}_${pick(nouns)}${attempt >= 10 ? attempt : ''}`;
    if (!taken.has(name)) return name;
  }
}

/**
 * Record a new container: its directory, config and a 'created' state. Names are checked and taken
 * under the store's containers lock, so two `kiln run --name x` at once cannot both get x.
 */
export async function createContainer(store: Store, fields: Omit<ContainerRecord, 'id' | 'created' | 'name'> & { name?: string }): Promise<Container> {
  await mkdir(containersDir(store), { recursive: true });
  return withStoreLock(store.root, 'containers', async () => {
    const all = await listContainers(store);
    const byName = new Map(all.map((c) => [c.record.name, c]));
    let name: string;
    if (fields.name !== undefined) {
      name = validateName(fields.name);
      const other = byName.get(name);
      if (other) {
        throw new NameInUse(`Conflict. The container name "/${name}" is already in use by container "${other.record.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
    } else name = generatedName(new Set(byName.keys()));
    const record: ContainerRecord = { ...fields, id: newId(), name, created: new Date().toISOString() };
    const dir = containerDir(store, record.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const sub of ['upper', 'work', 'rootfs']) await mkdir(join(dir, sub));
    const state: ContainerState = { status: 'created' };
    await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state));
    // config.json last: a directory without it is a creation that did not finish, and is ignored.
    await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(record, null, 2));
    return { record, state, dir };
  });
}

async function readContainer(store: Store, id: string): Promise<Container | undefined> {
  const dir = containerDir(store, id);
  let record: ContainerRecord;
  try {
    record = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as ContainerRecord;
  } catch {
    return undefined;
  }
  return { record, state: await readState(dir), dir };
}

/**
 * The container's state as it really is: a 'running' state whose process is gone (killed with
 * SIGKILL, machine rebooted) reads as exited, since nothing runs it any more.
 */
export async function readState(dir: string): Promise<ContainerState> {
  let state: ContainerState;
  try {
    state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as ContainerState;
  } catch {
    state = { status: 'created' };
  }
  if (state.status === 'running' && !supervisorAlive(state)) {
    return { ...state, status: 'exited', exitCode: state.exitCode ?? 255, error: state.error ?? 'the process running the container died', pid: undefined };
  }
  return state;
}

export async function writeState(dir: string, state: ContainerState): Promise<void> {
  await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state));
}

/** Every container, newest first. */
export async function listContainers(store: Store): Promise<Container[]> {
  const ids = await readdir(containersDir(store)).catch(() => [] as string[]);
  const found = await Promise.all(ids.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((id) => readContainer(store, id)));
  return found.filter((c): c is Container => c !== undefined).sort((a, b) => byCodeUnits(b.record.created, a.record.created));
}

/** docker's lookup order: full ID, then name (with or without a leading '/'), then a unique ID prefix. */
export async function resolveContainer(store: Store, ref: string): Promise<Container> {
  const all = await listContainers(store);
  const name = ref.startsWith('/') ? ref.slice(1) : ref;
  const hit = all.find((c) => c.record.id === ref) ?? all.find((c) => c.record.name === name);
  if (hit) return hit;
  if (/^[a-f0-9]+$/.test(ref)) {
    const prefixed = all.filter((c) => c.record.id.startsWith(ref));
    if (prefixed.length === 1) return prefixed[0]!;
    if (prefixed.length > 1) throw new ContainerUnknown(`multiple containers found with provided prefix: ${ref}`);
  }
  throw new ContainerUnknown(`No such container: ${ref}`);
}

/** Serialise what must not overlap on one container: starting it, mounting it to copy, removing it. */
export function withContainerLock<T>(store: Store, id: string, fn: () => Promise<T>): Promise<T> {
  return withStoreLock(store.root, `container-${id.slice(0, 32)}`, fn);
}

/** Remove the container's directory (its writable layer, log, anonymous volumes). It must not be running. */
export async function deleteContainerDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
