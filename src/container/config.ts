import { createHash } from 'node:crypto';
import { isAbsolute, posix, resolve } from 'node:path';
import type { ContainerConfig } from '../oci/types.js';
import type { NetworkMode } from '../sandbox/executor.js';
import { StartFailed } from './errors.js';
import type { Bind, ContainerRecord } from './record.js';

// What `docker run` makes of an image's config and its own flags, step for step with moby:
// the CLI turns flags into a container Config, the daemon merges the image's config into it
// (daemon/commit.go merge) and, at start, adds its own environment (container.CreateDaemonEnvironment).
// The merged Config is what the container keeps, and what `commit` writes into the new image.

/** The run flags that shape the container's Config. */
export interface RunOptions {
  /** CMD ARGS after the image name. */
  command: string[];
  /** --entrypoint: one program, not split; "" clears the image's entrypoint. */
  entrypoint?: string;
  /** -e and --env-file entries in order: KEY=VALUE, or KEY alone to take the host's value. */
  env: string[];
  workdir?: string;
  user?: string;
  tty: boolean;
  interactive: boolean;
  /** -v HOST:CONTAINER[:ro] and -v CONTAINER (an anonymous volume). */
  volumes: string[];
  network: NetworkMode;
}

/** The default PATH docker gives a Linux container whose config has none (system.DefaultPathEnv). */
export const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const envKey = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);

/** -e KEY without a value takes the host's value, and is dropped when the host has none (docker's ValidateEnv). */
export function resolveEnvFlags(entries: string[], hostEnv: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e === '' || e.startsWith('=')) throw new StartFailed(`invalid environment variable: ${e}`);
    if (e.includes('=')) out.push(e);
    else if (hostEnv[e] !== undefined) out.push(`${e}=${hostEnv[e]}`);
  }
  return out;
}

/** An --env-file: KEY=VALUE or KEY lines, blank lines and # comments skipped, values taken literally. */
export function parseEnvFile(text: string, name: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '').trimStart();
    if (line === '' || line.startsWith('#')) continue;
    if (/\s/.test(envKey(line))) throw new StartFailed(`${name}:${i + 1}: variable '${envKey(line)}' contains whitespaces`);
    out.push(line);
  }
  return out;
}

/** -v specs as binds. Host paths are made absolute; an anonymous volume's source is filled in later. */
export function parseVolumes(specs: string[], cwd = process.cwd()): Bind[] {
  return specs.map((spec) => {
    const parts = spec.split(':');
    let source: string | undefined;
    let destination: string;
    let mode = '';
    if (parts.length === 1) destination = parts[0]!;
    else if (parts.length === 2) {
      if (isAbsolute(parts[0]!) || parts[0]!.startsWith('.')) [source, destination] = parts as [string, string];
      else if (parts[1] === 'ro' || parts[1] === 'rw') [destination, mode] = parts as [string, string];
      else throw new StartFailed(`invalid volume specification "${spec}": named volumes are not supported, give an absolute host path`);
    } else if (parts.length === 3) [source, destination, mode] = parts as [string, string, string];
    else throw new StartFailed(`invalid volume specification "${spec}"`);
    if (!posix.isAbsolute(destination)) throw new StartFailed(`invalid volume specification "${spec}": the container path "${destination}" must be absolute`);
    if (posix.normalize(destination) === '/') throw new StartFailed(`invalid volume specification "${spec}": the destination cannot be "/"`);
    if (mode !== '' && mode !== 'ro' && mode !== 'rw') throw new StartFailed(`invalid volume specification "${spec}": invalid mode "${mode}"`);
    return { source: source ? resolve(cwd, source) : '', destination: posix.normalize(destination), readOnly: mode === 'ro', anonymous: source === undefined };
  });
}

/** Where an anonymous volume for `destination` lives, under the container's directory. */
export function anonymousVolumeName(destination: string): string {
  return createHash('sha256').update(destination).digest('hex').slice(0, 16);
}

/**
 * The container's Config: the run flags, then the image's config merged in (moby daemon/commit.go
 * merge): the image's environment entries the flags do not set, its entrypoint and command unless
 * --entrypoint or a command was given, its working directory and user unless overridden, and its
 * labels, exposed ports, volumes, stop signal, health check and shell.
 */
export function containerConfig(image: ContainerConfig | undefined, opts: RunOptions): ContainerConfig {
  const img = image ?? {};
  const config: ContainerConfig = {};
  const userEnv = resolveEnvFlags(opts.env);
  const env = [...userEnv];
  for (const e of img.Env ?? []) if (!userEnv.some((u) => envKey(u) === envKey(e))) env.push(e);
  if (env.length > 0) config.Env = env;

  if (opts.entrypoint !== undefined) {
    // docker CLI: --entrypoint "" means no entrypoint at all; either way the image's CMD is not used.
    config.Entrypoint = opts.entrypoint === '' ? null : [opts.entrypoint];
    config.Cmd = opts.command.length > 0 ? [...opts.command] : null;
  } else {
    config.Entrypoint = img.Entrypoint ?? null;
    if (opts.command.length > 0) config.Cmd = [...opts.command];
    else {
      config.Cmd = img.Cmd ?? null;
      if (img.ArgsEscaped) config.ArgsEscaped = true;
    }
  }
  const workdir = opts.workdir ?? img.WorkingDir;
  if (workdir) {
    if (!posix.isAbsolute(workdir)) throw new StartFailed(`the working directory '${workdir}' is invalid, it needs to be an absolute path`);
    config.WorkingDir = workdir;
  }
  const user = opts.user ?? img.User;
  if (user) config.User = user;
  if (img.Labels) config.Labels = { ...img.Labels };
  if (img.ExposedPorts) config.ExposedPorts = { ...img.ExposedPorts };
  const volumes = { ...(img.Volumes ?? {}) };
  for (const v of parseVolumes(opts.volumes)) if (v.anonymous) volumes[v.destination] = {};
  if (Object.keys(volumes).length > 0) config.Volumes = volumes;
  if (img.StopSignal) config.StopSignal = img.StopSignal;
  if (img.Healthcheck) config.Healthcheck = img.Healthcheck;
  if (img.Shell) config.Shell = [...img.Shell];
  if (img.OnBuild?.length) config.OnBuild = [...img.OnBuild];
  if (processArgs(config).length === 0) throw new StartFailed('no command specified');
  return config;
}

/** The command line the container runs: entrypoint, then command. */
export function processArgs(config: ContainerConfig): string[] {
  return [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
}

/**
 * The process environment (CreateDaemonEnvironment): PATH, HOSTNAME and, with a terminal,
 * TERM=xterm first, then the Config's entries replacing those of the same name.
 */
export function processEnv(record: ContainerRecord): string[] {
  const env = [`PATH=${defaultPath}`, `HOSTNAME=${hostnameOf(record)}`];
  if (record.host.tty) env.push('TERM=xterm');
  for (const e of record.config.Env ?? []) {
    const i = env.findIndex((x) => envKey(x) === envKey(e));
    if (i >= 0) env[i] = e;
    else env.push(e);
  }
  return env;
}

/** docker names a container's host after the first 12 digits of its ID. */
export function hostnameOf(record: ContainerRecord): string {
  return record.id.slice(0, 12);
}

/** COMMAND as `docker ps` shows it: entrypoint and command joined, quoted, cut at 20 characters. */
export function commandLine(config: ContainerConfig): string {
  return processArgs(config).join(' ');
}
