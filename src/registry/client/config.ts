import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { DefaultDomain } from '../../reference/reference.js';
import { RegistriesConfigInvalid } from './errors.js';

// The `registries` section of kiln's config file ($KILN_CONFIG, else $XDG_CONFIG_HOME/kiln/config.yaml):
//
//   registries:
//     docker.io:
//       mirrors: [mirror.example.com, "http://10.0.0.5:5000/dockerhub"]   # tried in order before docker.io
//     registry.lan:5000:
//       insecure: true                                                     # plain HTTP
//
// Other sections of the file belong to other parts of kiln and are left alone here.

export interface RegistryHostConfig {
  /** Hosts (optionally with scheme and a repository path prefix) tried in order before the registry itself, for pulls. */
  mirrors: string[];
  /** Speak plain HTTP to this registry. */
  insecure: boolean;
}

export interface RegistriesConfig {
  /** Path the configuration was read from, for messages; undefined when there was no file. */
  source?: string;
  hosts: Map<string, RegistryHostConfig>;
}

/** Where a registry is reached: the base URL, and the repository prefix a mirror may put before names. */
export interface Endpoint {
  /** The registry a reference names: "docker.io", "localhost:5000". */
  registry: string;
  /** host[:port] actually contacted; credentials are looked up by it. */
  host: string;
  /** "https://registry-1.docker.io", "http://127.0.0.1:5000". */
  url: string;
  /** Repository path prefix on a mirror ("dockerhub" makes library/busybox dockerhub/library/busybox); "" otherwise. */
  prefix: string;
  mirror: boolean;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_CONFIG) return env.KILN_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'kiln', 'config.yaml');
}

export async function loadRegistriesConfig(env: NodeJS.ProcessEnv = process.env): Promise<RegistriesConfig> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { hosts: new Map() };
    throw new RegistriesConfigInvalid(`${path}: ${(e as Error).message}`);
  }
  // The YAML parser is loaded only when there is a file to read: most pushes and pulls have none.
  const { parse: parseYaml } = await import('yaml');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new RegistriesConfigInvalid(`${path}: ${(e as Error).message}`);
  }
  return parseRegistriesConfig((doc as { registries?: unknown } | null)?.registries, path);
}

export function parseRegistriesConfig(section: unknown, source = 'config'): RegistriesConfig {
  const hosts = new Map<string, RegistryHostConfig>();
  if (section === undefined || section === null) return { source, hosts };
  const fail = (why: string): never => {
    throw new RegistriesConfigInvalid(`${source}: registries: ${why}`);
  };
  if (typeof section !== 'object' || Array.isArray(section)) fail('must be a map of registry host to settings');
  for (const [host, value] of Object.entries(section as Record<string, unknown>)) {
    const v = (value ?? {}) as Record<string, unknown>;
    if (typeof v !== 'object' || Array.isArray(v)) fail(`${host}: must be a map (mirrors, insecure)`);
    for (const key of Object.keys(v)) if (key !== 'mirrors' && key !== 'insecure') fail(`${host}: unknown key "${key}" (known: mirrors, insecure)`);
    const mirrors = v.mirrors ?? [];
    if (!Array.isArray(mirrors) || mirrors.some((m) => typeof m !== 'string' || m === '')) fail(`${host}: mirrors must be a list of hosts`);
    if (v.insecure !== undefined && typeof v.insecure !== 'boolean') fail(`${host}: insecure must be true or false`);
    hosts.set(canonicalRegistry(host), { mirrors: mirrors as string[], insecure: v.insecure === true });
  }
  return { source, hosts };
}

/** docker.io, index.docker.io and registry-1.docker.io are one registry. */
export function canonicalRegistry(host: string): string {
  const h = host.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? DefaultDomain : h;
}

/** localhost, 127.0.0.0/8 and ::1 speak plain HTTP unless told otherwise, as docker allows. */
export function isLoopback(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  return name === '::1';
}

function endpointOf(registry: string, spec: string, config: RegistriesConfig, mirror: boolean): Endpoint {
  const explicit = /^(https?):\/\//.exec(spec)?.[1];
  const rest = spec.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const slash = rest.indexOf('/');
  const host = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1);
  const insecure = config.hosts.get(canonicalRegistry(host))?.insecure ?? false;
  const scheme = explicit ?? (insecure || isLoopback(host) ? 'http' : 'https');
  const contacted = host === DefaultDomain ? 'registry-1.docker.io' : host;
  return { registry, host: contacted, url: `${scheme}://${contacted}`, prefix, mirror };
}

/** Where to pull from: each configured mirror in order, then the registry itself. */
export function pullEndpoints(registry: string, config: RegistriesConfig): Endpoint[] {
  const reg = canonicalRegistry(registry);
  const mirrors = config.hosts.get(reg)?.mirrors ?? [];
  return [...mirrors.map((m) => endpointOf(reg, m, config, true)), endpointOf(reg, reg, config, false)];
}

/** Pushes go to the registry itself, never to a mirror. */
export function pushEndpoint(registry: string, config: RegistriesConfig): Endpoint {
  const reg = canonicalRegistry(registry);
  return endpointOf(reg, reg, config, false);
}
