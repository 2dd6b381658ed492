import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DefaultDomain } from '../../reference/reference.js';
import { CredentialHelperFailed, RegistriesConfigInvalid } from './errors.js';

// Credentials where docker and podman keep them, so an existing `docker login` or `podman login`
// works unchanged:
//   ~/.docker/config.json ($DOCKER_CONFIG/config.json): "auths" (base64 user:password, or an
//     identitytoken), "credHelpers" (per registry) and "credsStore" (all registries), the last two
//     naming a docker-credential-<helper> program spoken to on stdin/stdout;
//   ${XDG_RUNTIME_DIR}/containers/auth.json ($REGISTRY_AUTH_FILE), podman's file with the same "auths".
// Secrets travel to helpers on stdin, never as arguments (docker-credential-helpers protocol).

export interface Credential {
  username: string;
  /** A password, or an OAuth2 refresh token when `identityToken` is set. */
  secret: string;
  identityToken?: boolean;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/** Docker Hub credentials live under this key, for historical reasons. */
export const DockerHubAuthKey = 'https://index.docker.io/v1/';

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

export function containersAuthPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE) out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) out.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  return out;
}

/** The key a server is stored under: docker.io as Docker Hub's legacy URL, others as host[:port]. */
export function serverKey(server: string): string {
  const host = hostOfServer(server);
  return host === DefaultDomain ? DockerHubAuthKey : host;
}

/** "https://registry.example.com/v2/" → "registry.example.com"; Docker Hub's names → docker.io. */
export function hostOfServer(server: string): string {
  const h = server.replace(/^[a-z]+:\/\//i, '').split('/')[0]!.toLowerCase();
  return h === 'index.docker.io' || h === 'registry-1.docker.io' || h === '' ? DefaultDomain : h;
}

async function readJsonFile(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (e) {
    throw new RegistriesConfigInvalid(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** An auths entry for `host`, whichever spelling it was stored under (with or without scheme and path). */
function findEntry<T>(map: Record<string, T> | undefined, host: string): T | undefined {
  if (!map) return undefined;
  for (const [key, value] of Object.entries(map)) if (hostOfServer(key) === host) return value;
  return undefined;
}

function decodeEntry(e: AuthEntry | undefined): Credential | undefined {
  if (!e) return undefined;
  let username = e.username ?? '';
  let password = e.password ?? '';
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  if (e.identitytoken) return { username, secret: e.identitytoken, identityToken: true };
  if (username && password) return { username, secret: password };
  return undefined;
}

/** Credentials for a registry host (host[:port], docker.io for Docker Hub), or undefined for anonymous access. */
export async function findCredential(host: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const h = hostOfServer(host);
  const docker = await readJsonFile(dockerConfigPath(env));
  if (docker) {
    const helper = findEntry(docker.credHelpers, h) ?? docker.credsStore;
    if (helper) {
      const c = await helperGet(helper, serverKey(h), env);
      if (c) return c;
    }
    const c = decodeEntry(findEntry(docker.auths, h));
    if (c) return c;
  }
  for (const path of containersAuthPaths(env)) {
    const c = decodeEntry(findEntry((await readJsonFile(path))?.auths, h));
    if (c) return c;
  }
  return undefined;
}

/** Store credentials as `docker login` does: in the configured helper, else base64 in config.json. Returns where. */
export async function saveCredential(server: string, cred: Credential, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = dockerConfigPath(env);
  const h = hostOfServer(server);
  const key = serverKey(h);
  const config = (await readJsonFile(path)) ?? {};
  config.auths ??= {};
  for (const k of Object.keys(config.auths)) if (hostOfServer(k) === h) delete config.auths[k];
  const helper = findEntry(config.credHelpers, h) ?? config.credsStore;
  let where: string;
  if (helper) {
    await runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: cred.identityToken ? '<token>' : cred.username, Secret: cred.secret }), env);
    // docker leaves an empty entry so that `docker info` lists the registry
    config.auths[key] = {};
    where = `docker-credential-${helper}`;
  } else {
    config.auths[key] = cred.identityToken
      ? { identitytoken: cred.secret, auth: Buffer.from(`${cred.username}:`).toString('base64') }
      : { auth: Buffer.from(`${cred.username}:${cred.secret}`).toString('base64') };
    where = path;
  }
  await writePrivateFile(path, JSON.stringify(config, null, '\t') + '\n');
  return where;
}

/** Remove stored credentials for a server; false when there were none. */
export async function eraseCredential(server: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const path = dockerConfigPath(env);
  const h = hostOfServer(server);
  const config = await readJsonFile(path);
  if (!config) return false;
  let found = false;
  for (const k of Object.keys(config.auths ?? {})) {
    if (hostOfServer(k) === h) {
      delete config.auths![k];
      found = true;
    }
  }
  const helper = findEntry(config.credHelpers, h) ?? config.credsStore;
  if (helper) {
    try {
      await runHelper(helper, 'erase', serverKey(h), env);
      found = true;
    } catch (e) {
      if (!/not found/i.test((e as Error).message)) throw e;
    }
  }
  if (found) await writePrivateFile(path, JSON.stringify(config, null, '\t') + '\n');
  return found;
}

async function helperGet(helper: string, key: string, env: NodeJS.ProcessEnv): Promise<Credential | undefined> {
  let out: string;
  try {
    out = await runHelper(helper, 'get', key, env);
  } catch (e) {
    // The protocol's answer for "nothing stored" is an error whose message says so.
    if (/credentials not found|not found in native keychain/i.test((e as Error).message)) return undefined;
    throw e;
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CredentialHelperFailed(`docker-credential-${helper} get: answered something that is not JSON`);
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === '<token>') return { username: '', secret: parsed.Secret, identityToken: true };
  return { username: parsed.Username ?? '', secret: parsed.Secret };
}

function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string, env: NodeJS.ProcessEnv): Promise<string> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new CredentialHelperFailed(`${program}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found in PATH' : e.message}`)));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) resolve(stdout);
      // Helpers print their error on stdout; neither stream ever holds the secret we sent.
      else reject(new CredentialHelperFailed(`${program} ${action}: ${(stdout.trim() || Buffer.concat(err).toString('utf8').trim() || `exit status ${code}`).split('\n')[0]}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** config.json holds secrets: written 0600 in a 0700 directory, atomically (temp file, fsync, rename). */
async function writePrivateFile(path: string, data: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
