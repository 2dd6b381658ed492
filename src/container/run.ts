import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ImageUnknown, KilnError } from '../errors.js';
import { createExecutor, defaultExecutor, InvalidUserSpec, resolveUser, SandboxFailed, UnknownUser, type Executor, type Mount } from '../sandbox/index.js';
import { hostPathInRoot } from '../sandbox/rootpath.js';
import { mountContainer, unmountContainer, upperOf, viewImage } from '../snapshot/container.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import { hostPlatform, PlatformUnknown, type Store } from '../store/store.js';
import type { Platform } from '../oci/types.js';
import { checkEmulation } from '../sandbox/emulation.js';
import { anonymousVolumeName, containerConfig, hostnameOf, parseVolumes, processArgs, processEnv, type RunOptions } from './config.js';
import { ContainerStateError, StartFailed } from './errors.js';
import { containerInit, initPath } from './init.js';
import { openLog } from './logs.js';
import { hasPlaceholders, missingMountpoints, removePlaceholders, standardMountpoints } from './placeholders.js';
import { parseSignal, processStartTime, signalContainer, supervisorAlive } from './process.js';
import { createContainer, deleteContainerDir, readState, withContainerLock, writeState, type Bind, type Container, type ContainerState, type HostSettings, layerOf } from './record.js';

// Running a working container without a daemon. Whoever runs it — `kiln run` in the foreground, or a
// detached supervisor (`kiln run -d`, `kiln start`) — mounts the container's filesystem, records itself
// in state.json as the container's process, runs the sandbox, records the exit status and unmounts.
// Other kiln commands find the container's processes from that pid (process.ts) to stop, kill or
// pause it. The supervisor is kiln itself started again with an internal command, in a session of its
// own, so it outlives the command that started it; it reports "running" (or the reason it could not
// start) on a pipe and then only writes the log.

const execFileP = promisify(execFile);

export interface CreateOptions extends RunOptions {
  image: string;
  name?: string;
  autoRemove: boolean;
  init: boolean;
  readOnly: boolean;
  runtime?: string;
  /** The entry of an image index to run (kiln run --platform); the host's by default. */
  platform?: Platform;
}

/** `kiln create` (and the first half of `kiln run`): record a container for `opts.image`; nothing runs yet. */
export async function createFromImage(store: Store, opts: CreateOptions): Promise<Container> {
  let image;
  try {
    image = await store.resolveImage(opts.image, opts.platform);
  } catch (e) {
    if (e instanceof PlatformUnknown) throw new StartFailed(e.message);
    if (e instanceof ImageUnknown) throw new StartFailed(`Unable to find image '${opts.image}' locally (load it with kiln load or pull it)`);
    throw e;
  }
  // A foreign platform's processes run under QEMU: refused here, with the fix, when it is not set up.
  if (opts.platform && opts.platform.architecture !== hostPlatform().architecture) {
    await checkEmulation(opts.platform).catch((e: Error) => {
      throw new StartFailed(e.message);
    });
  }
  const config = containerConfig(image.config.config, opts);
  const binds: Bind[] = parseVolumes(opts.volumes);
  // docker gives each VOLUME of the image an anonymous volume unless a -v already mounts something there.
  for (const destination of Object.keys(image.config.config?.Volumes ?? {})) {
    if (!binds.some((b) => b.destination === destination)) binds.push({ source: '', destination, readOnly: false, anonymous: true });
  }
  const host: HostSettings = {
    tty: opts.tty,
    interactive: opts.interactive,
    autoRemove: opts.autoRemove,
    init: opts.init,
    readOnly: opts.readOnly,
    network: opts.network,
    binds,
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
  };
  const layers: LayerRef[] = image.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: image.config.rootfs.diff_ids[i]! }));
  return createContainer(store, { name: opts.name, image: opts.image, imageId: image.id, imageConfig: image.config, layers, config, host });
}

function executorFor(store: Store, host: HostSettings): Executor {
  // Sandbox state lives in the store, which belongs to whoever runs kiln (a shared /tmp directory
  // would belong to the first user and refuse the others).
  const stateDir = join(store.root, 'sandbox');
  try {
    return host.runtime ? createExecutor(host.runtime, { stateDir }) : defaultExecutor({ stateDir });
  } catch (e) {
    throw new StartFailed((e as Error).message);
  }
}

/** The process's stdio: what the foreground command passes, or nothing (the supervisor only logs). */
export interface Stdio {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Attach the process to kiln's own terminal (run -t in the foreground). */
  terminal: boolean;
}

/** Both writables (either may be missing), for output that goes to the terminal and to the log. */
function tee(a: Writable | undefined, b: Writable | undefined): Writable | undefined {
  if (!a || !b) return a ?? b;
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      b.write(chunk);
      if (!a.write(chunk)) a.once('drain', cb);
      else cb();
    },
  });
}

/**
 * The runtimes report a command that cannot be started each in their own words (runc: "runc run
 * failed: unable to start container process: exec: …", without a newline); kiln prints one form, the
 * part docker shows too: `kiln: unable to start container process: exec: "x": executable file not found in $PATH`.
 */
function startFailures(stderr: Writable | undefined): Writable | undefined {
  if (!stderr) return undefined;
  const marker = 'unable to start container process: ';
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString('utf8');
      const at = text.indexOf(marker);
      const out = at < 0 ? chunk : Buffer.from(`kiln: ${text.slice(at).split('\n')[0]!.trimEnd()}\n`);
      if (!stderr.write(out)) stderr.once('drain', cb);
      else cb();
    },
  });
}

/** The container's mounts: its binds (anonymous volumes made and filled from the image on first use) and the init. */
async function containerMounts(c: Container, rootfs: string): Promise<Mount[]> {
  const mounts: Mount[] = [];
  for (const b of c.record.host.binds) {
    let source = b.source;
    if (b.anonymous) {
      source = join(c.dir, 'volumes', anonymousVolumeName(b.destination));
      if (!existsSync(source)) await fillVolume(rootfs, b.destination, source);
    } else if (!existsSync(source)) {
      // docker run -v creates a missing host directory.
      await mkdir(source, { recursive: true });
    }
    mounts.push({ destination: b.destination, type: 'bind', source, options: ['rbind', b.readOnly ? 'ro' : 'rw'] });
  }
  if (c.record.host.init) mounts.push({ destination: initPath, type: 'bind', source: await containerInit(), options: ['bind', 'ro'] });
  return mounts;
}

/** A new anonymous volume starts with what the image has at its path, as docker's do. */
async function fillVolume(rootfs: string, destination: string, volume: string): Promise<void> {
  await mkdir(join(volume, '..'), { recursive: true });
  const inImage = await hostPathInRoot(rootfs, destination);
  const st = await lstat(inImage).catch(() => undefined);
  if (st?.isDirectory()) await execFileP('cp', ['-a', inImage, volume]);
  else await mkdir(volume, { mode: 0o755 });
}

/**
 * Remove from the (unmounted) writable layer what the sandbox put there for its mounts: /etc/hosts and
 * the like of a run that was killed, and the directories the overlay copied up to hold them.
 */
async function cleanWritableLayer(store: Store, c: Container, placeholders: readonly string[] | undefined): Promise<void> {
  const upper = upperOf(layerOf(c));
  if (!hasPlaceholders(upper, placeholders)) return;
  const image = await viewImage(store, layerOf(c));
  try {
    removePlaceholders(upper, placeholders, image.path);
  } finally {
    await image.release();
  }
}

/** Signals `kiln run` and the supervisor pass on to the container, as docker run's sig-proxy does. */
const forwarded: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

function forwardSignals(state: () => ContainerState): () => void {
  const handler = (sig: NodeJS.Signals) => {
    // Right after the start the sandbox may not exist yet: try again for a while.
    let tries = 0;
    const attempt = () => {
      if (!signalContainer(state(), sig) && ++tries < 100) setTimeout(attempt, 20).unref();
    };
    attempt();
  };
  for (const s of forwarded) process.on(s, handler);
  return () => {
    for (const s of forwarded) process.off(s, handler);
  };
}

/**
 * Run the container's process once, in this process, and return its exit code. `onRunning` is called
 * once the container is recorded as running; a failure before that throws StartFailed and leaves the
 * container as it was.
 */
export async function runContainer(store: Store, c: Container, stdio: Stdio, onRunning?: () => void): Promise<number> {
  const executor = executorFor(store, c.record.host);
  // What a killed run left in the writable layer goes before the filesystem is mounted again.
  await cleanWritableLayer(store, c, c.state.placeholders);
  let rootfs: string;
  try {
    rootfs = await mountContainer(store, layerOf(c));
  } catch (e) {
    throw new StartFailed(`cannot mount the container's filesystem: ${(e as Error).message}`);
  }
  let state: ContainerState | undefined;
  let stopForwarding = () => {};
  let log: ReturnType<typeof openLog> | undefined;
  let exitCode = 125;
  let error: string | undefined;
  try {
    const cfg = c.record.config;
    let user;
    try {
      user = await resolveUser(rootfs, cfg.User ?? '');
    } catch (e) {
      if (e instanceof UnknownUser || e instanceof InvalidUserSpec) throw new StartFailed(e.message);
      throw e;
    }
    const mounts = await containerMounts(c, rootfs);
    const args = processArgs(cfg);
    state = {
      status: 'running',
      pid: process.pid,
      pidStartTime: processStartTime(process.pid),
      startedAt: new Date().toISOString(),
      placeholders: await missingMountpoints(rootfs, [...standardMountpoints, ...mounts.map((m) => m.destination)]),
    };
    await writeState(c.dir, state);
    c.state = state;
    onRunning?.();
    const current = state;
    stopForwarding = forwardSignals(() => current);
    log = stdio.terminal ? undefined : openLog(c.dir);
    // -i without a terminal to read from (a detached container): stdin stays open and empty, so a
    // shell waits instead of exiting at once, as with docker run -di.
    const stdin = stdio.stdin ?? (c.record.host.interactive && !stdio.terminal ? new PassThrough() : undefined);
    const result = await executor.run({
      id: `kiln-${c.record.id.slice(0, 12)}-${randomBytes(3).toString('hex')}`,
      rootfs,
      process: {
        args: c.record.host.init ? [initPath, ...args] : args,
        env: processEnv(c.record),
        cwd: cfg.WorkingDir || '/',
        user,
        terminal: stdio.terminal,
      },
      network: c.record.host.network,
      hostname: hostnameOf(c.record),
      mounts,
      readonlyRootfs: c.record.host.readOnly,
      stdin,
      stdout: tee(stdio.stdout, log?.sink('stdout')),
      stderr: startFailures(tee(stdio.stderr, log?.sink('stderr'))),
    });
    exitCode = result.exitCode;
    return exitCode;
  } catch (e) {
    error = (e as Error).message;
    if (e instanceof SandboxFailed) throw new StartFailed(e.message);
    throw e;
  } finally {
    stopForwarding();
    log?.close();
    await unmountContainer(layerOf(c)).catch(() => {});
    if (state) {
      await cleanWritableLayer(store, c, state.placeholders).catch(() => {});
      const finished: ContainerState = {
        status: 'exited',
        startedAt: state.startedAt,
        finishedAt: new Date().toISOString(),
        exitCode,
        ...(error ? { error } : {}),
        ...(state.placeholders?.length ? { placeholders: state.placeholders } : {}),
      };
      await writeState(c.dir, finished).catch(() => {});
      c.state = finished;
    }
  }
}

/** Run in the foreground (`kiln run` without -d, `kiln start -a`), removing the container afterwards with --rm. */
export async function runAttached(store: Store, c: Container, stdio: Stdio): Promise<number> {
  let run: Promise<number> | undefined;
  try {
    await withStarting(store, c, () =>
      new Promise<void>((resolve, reject) => {
        run = runContainer(store, c, stdio, resolve);
        run.catch(reject);
      }),
    );
    return await run!;
  } finally {
    if (c.record.host.autoRemove) await removeContainer(store, c, { force: true });
  }
}

/**
 * Starting is serialised per container: the lock is held until the container is running (or failed
 * to start), so two `kiln start` cannot both mount it.
 */
async function withStarting<T>(store: Store, c: Container, start: () => Promise<T>): Promise<T> {
  return withContainerLock(store, c.record.id, async () => {
    const state = await readState(c.dir);
    if (state.status === 'running') throw new ContainerStateError(`container ${c.record.name} is already running`);
    c.state = state;
    return start();
  });
}

/** The command line of this kiln, to start the supervisor with: node, its flags, the CLI script. */
function kilnCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

/** Internal command name of the supervisor. */
export const superviseCommand = '__supervise';

/** Status pipe between `kiln run -d`/`kiln start` and the supervisor it starts. */
const statusFd = 3;

/**
 * Start the container under a detached supervisor and return once it runs. The supervisor's own
 * errors (not the container's output) go to supervisor.log.
 */
export async function startDetached(store: Store, c: Container): Promise<void> {
  await withStarting(store, c, async () => {
    const [node, ...args] = kilnCommand();
    const errors = openSync(join(c.dir, 'supervisor.log'), 'a', 0o600);
    let child;
    try {
      child = spawn(node!, [...args, '--root', store.root, superviseCommand, c.record.id], {
        detached: true,
        stdio: ['ignore', 'ignore', errors, 'pipe'],
        env: { ...process.env, KILN_ROOT: store.root },
      });
    } finally {
      closeSync(errors);
    }
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const report = await new Promise<string>((resolve) => {
      let text = '';
      const pipe = child.stdio[statusFd] as Readable;
      pipe.setEncoding('utf8');
      pipe.on('data', (s: string) => (text += s));
      pipe.on('error', () => resolve(text));
      pipe.on('close', () => resolve(text));
    });
    if (report.startsWith('running')) {
      child.unref();
      return;
    }
    await exited;
    const reason = report.startsWith('error ') ? report.slice(6).trim() : readFileSync(join(c.dir, 'supervisor.log'), 'utf8').trim().split('\n').pop() || 'the supervisor exited';
    throw new StartFailed(reason);
  });
}

/** The supervisor's body: run the container, report on the status pipe, keep the log, honour --rm. */
export async function supervise(store: Store, c: Container): Promise<number> {
  let reported = false;
  const report = (text: string) => {
    if (reported) return;
    reported = true;
    try {
      writeSync(statusFd, text);
      closeSync(statusFd);
    } catch {
      // the starter is gone; nothing to tell
    }
  };
  try {
    return await runContainer(store, c, { terminal: false }, () => report('running\n'));
  } catch (e) {
    report(`error ${(e as Error).message}\n`);
    if (!(e instanceof KilnError)) throw e;
    return e.exitCode;
  } finally {
    if (c.record.host.autoRemove) await deleteContainerDir(c.dir);
  }
}

async function waitForExit(c: Container, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const state = await readState(c.dir);
    if (state.status !== 'running') return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deliver a signal, waiting a little for a sandbox that is still being set up. */
async function deliver(c: Container, state: ContainerState, signal: NodeJS.Signals): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (signalContainer(state, signal)) return;
    if (!supervisorAlive(state)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new ContainerStateError(`cannot find the processes of container ${c.record.name}`);
}

/**
 * docker stop: the image's STOPSIGNAL (or SIGTERM), then SIGKILL after `timeoutSeconds`. A container
 * that is not running is left as it is.
 */
export async function stopContainer(c: Container, opts: { timeoutSeconds: number; signal?: string }): Promise<void> {
  const state = await readState(c.dir);
  if (state.status !== 'running') return;
  const name = opts.signal ?? c.record.config.StopSignal ?? 'SIGTERM';
  const signal = parseSignal(name);
  if (!signal) throw new ContainerStateError(`invalid signal: ${name}`);
  await deliver(c, state, signal);
  if (await waitForExit(c, opts.timeoutSeconds * 1000)) return;
  await deliver(c, state, 'SIGKILL');
  if (!(await waitForExit(c, 30_000))) throw new ContainerStateError(`container ${c.record.name} did not stop`);
}

/** docker kill: send `signal` (default SIGKILL) to a running container's PID 1. */
export async function killContainer(c: Container, signalName = 'SIGKILL'): Promise<void> {
  const signal = parseSignal(signalName);
  if (!signal) throw new ContainerStateError(`invalid signal: ${signalName}`);
  const state = await readState(c.dir);
  if (state.status !== 'running') throw new ContainerStateError(`cannot kill container: ${c.record.name}: container ${c.record.id} is not running`);
  await deliver(c, state, signal);
  if (signal === 'SIGKILL') await waitForExit(c, 30_000);
}

/** docker rm: a running container only with force (killed first); its writable layer, log and anonymous volumes go with it. */
export async function removeContainer(store: Store, c: Container, opts: { force: boolean }): Promise<void> {
  const state = await readState(c.dir);
  if (state.status === 'running') {
    if (!opts.force) {
      throw new ContainerStateError(`cannot remove container "/${c.record.name}": container is running: stop the container before removing or force remove`);
    }
    await deliver(c, state, 'SIGKILL').catch(() => {});
    if (!(await waitForExit(c, 30_000))) throw new ContainerStateError(`container ${c.record.name} did not stop`);
  }
  await withContainerLock(store, c.record.id, async () => {
    // A killed supervisor may have left the filesystem mounted.
    await unmountContainer(layerOf(c)).catch(() => {});
    await deleteContainerDir(c.dir);
  });
}
