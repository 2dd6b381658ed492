import { before, test } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type RegistryConfig } from '../../../src/registry/server/config.js';
import { serve, type RunningRegistry } from '../../../src/registry/server/server.js';
import { logger, type Logger } from '../../../src/registry/server/log.js';
import { startPostgres, type Postgres } from '../../support/postgres.js';
import { suiteScope } from '../../support/daemon.js';
import { kiln, type KilnResult } from '../../support/env.js';

// Test support for the registry server: an in-process registry on loopback, a small HTTP client
// that follows Docker token authentication, and random images to push.

export const sha256 = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

export interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
  text(): string;
  json<T = any>(): T;
}

export interface Client {
  url: string;
  req(method: string, path: string, opts?: { headers?: Record<string, string>; body?: Buffer | string }): Promise<Res>;
}

/** A client; with credentials it answers Bearer challenges by asking the realm for a token, like docker does. */
export function client(url: string, creds?: { user: string; password: string } | { token: string }): Client {
  const tokens = new Map<string, string>();
  const once = async (method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<Res> => {
    const r = await fetch(url + path, { method, headers, body: body as BodyInit | undefined, redirect: 'manual' });
    const buf = Buffer.from(await r.arrayBuffer());
    return { status: r.status, headers: r.headers, body: buf, text: () => buf.toString('utf8'), json: () => JSON.parse(buf.toString('utf8')) };
  };
  return {
    url,
    async req(method, path, opts = {}) {
      const headers = { ...(opts.headers ?? {}) };
      if (creds && 'token' in creds) headers.authorization = `Bearer ${creds.token}`;
      const scopeKey = path.split('/').slice(2, -2).join('/');
      const cached = tokens.get(scopeKey);
      if (cached && !headers.authorization) headers.authorization = `Bearer ${cached}`;
      let r = await once(method, path, headers, opts.body);
      const ch = r.headers.get('www-authenticate');
      if (r.status === 401 && ch?.startsWith('Bearer ') && creds && 'user' in creds) {
        const params = Object.fromEntries([...ch.slice(7).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
        const u = new URL(params.realm!);
        if (params.service) u.searchParams.set('service', params.service);
        if (params.scope) u.searchParams.set('scope', params.scope);
        const tr = await fetch(u, { headers: { authorization: 'Basic ' + Buffer.from(`${creds.user}:${creds.password}`).toString('base64') } });
        if (tr.status !== 200) return r;
        const tok = ((await tr.json()) as { token: string }).token;
        tokens.set(scopeKey, tok);
        r = await once(method, path, { ...headers, authorization: `Bearer ${tok}` }, opts.body);
      }
      return r;
    },
  };
}

export interface TestRegistry extends RunningRegistry {
  root: string;
  config: RegistryConfig;
  client(creds?: Parameters<typeof client>[1]): Client;
}

// The registry's behaviour tests run against each metadata backend: SQLite by default, and
// PostgreSQL when a file in on-postgres/ imports them after onPostgres(): every registry they
// start then keeps its metadata in a database of its own on one server for the file.
let postgres: { server: Postgres; databases: number } | undefined;

/**
 * Make the tests registered after this call (the imported test file's) use PostgreSQL. Skips
 * with the reason when the server cannot run here (it needs root and Debian's postgresql-15).
 */
export async function onPostgres(): Promise<boolean> {
  if (process.getuid?.() !== 0 || !existsSync('/usr/lib/postgresql/15/bin/postgres')) {
    test('the registry on PostgreSQL', { skip: 'needs root and Debian\'s postgresql-15 (scripts/setup.sh installs it)' }, () => {});
    return false;
  }
  const scope = suiteScope();
  before(async () => {
    postgres = { server: await startPostgres(scope), databases: 0 };
  });
  return true;
}

/** The configuration of a test registry at `root`: a free loopback port, no request log, no GC timer. */
export function testConfig(root: string): RegistryConfig {
  const config = defaultConfig(root);
  config.http.addr = '127.0.0.1:0';
  config.log.requests = false;
  config.gc.interval = 0;
  return config;
}

/** A registry in this process on a free loopback port, in a temporary root removed after the test. */
export async function startRegistry(
  t: { after: (fn: () => Promise<void> | void) => void },
  tweak: (c: RegistryConfig) => void = () => {},
  opts: { log?: Logger } = {},
): Promise<TestRegistry> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  const config = testConfig(root);
  if (postgres) {
    config.database = { ...config.database, driver: 'postgres', postgres: { url: await postgres.server.createDatabase(`registry_${++postgres.databases}`) } };
  }
  tweak(config);
  const running = await serve(config, { log: opts.log ?? logger('error', () => {}) });
  t.after(async () => {
    await running.close();
    await rm(root, { recursive: true, force: true });
  });
  return Object.assign(running, { root, config, client: (creds?: Parameters<typeof client>[1]) => client(running.url, creds) });
}

/** `kiln registry ARGS…` against a test registry's data (its root, or its PostgreSQL database), as an administrator would type it. */
export async function registryCli(reg: TestRegistry, args: string[], opts: Parameters<typeof kiln>[2] = {}): Promise<KilnResult> {
  if (reg.config.database.driver !== 'postgres') return kiln(reg.root, ['registry', ...args, '--root', reg.root], opts);
  const file = join(reg.root, 'cli.yaml');
  await writeFile(file, `root: ${reg.root}\ndatabase:\n  driver: postgres\n  postgres:\n    url: ${reg.config.database.postgres!.url}\n`);
  return kiln(reg.root, ['registry', ...args, '--config', file], opts);
}

/** How many rows a metadata table of a test registry holds, on either backend. */
export async function tableRows(reg: TestRegistry, table: string): Promise<number> {
  if (!/^[a-z_]+$/.test(table)) throw new Error(`table name ${table}`);
  if (reg.config.database.driver === 'postgres') {
    const c = new pg.Client({ connectionString: reg.config.database.postgres!.url });
    await c.connect();
    try {
      return (await c.query(`SELECT COUNT(*)::int AS n FROM ${table}`)).rows[0].n as number;
    } finally {
      await c.end();
    }
  }
  const db = new Database(reg.config.database.sqlite.path, { readonly: true });
  try {
    return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The PEM of the key the test registry signs tokens with: in its file, or shared in PostgreSQL. */
export async function tokenKeyPem(reg: TestRegistry): Promise<string> {
  if (reg.config.database.driver !== 'postgres') return readFile(reg.config.auth.tokenKey, 'utf8');
  return reg.registry.metadata.sharedValue('token-signing-key', () => {
    throw new Error('the registry has no shared token key');
  });
}

export function uniqueRepo(prefix = 'test'): string {
  return `${prefix}/r${randomBytes(5).toString('hex')}`;
}

/** Monolithic push (POST then PUT); returns the digest. */
export async function pushBlob(c: Client, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const post = await c.req('POST', `/v2/${repo}/blobs/uploads/`);
  if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${post.text()}`);
  const loc = post.headers.get('location')!;
  const u = new URL(loc, c.url);
  u.searchParams.set('digest', digest);
  const put = await c.req('PUT', u.pathname + u.search, { body: data, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${put.text()}`);
  return digest;
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

/** A random image: a config and `layers` random layers, as an OCI (or Docker) manifest. */
export function randomImage(opts: { layers?: number; layerSize?: number; docker?: boolean; subject?: { digest: string; size: number; mediaType: string }; artifactType?: string; annotations?: Record<string, string> } = {}): TestImage {
  const layers = Array.from({ length: opts.layers ?? 2 }, () => randomBytes(opts.layerSize ?? 1024));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) }, nonce: randomBytes(8).toString('hex') }));
  const mediaType = opts.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    config: { mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: opts.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
    ...(opts.subject ? { subject: opts.subject } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const manifest = Buffer.from(JSON.stringify(m));
  return { config, layers, manifest, digest: sha256(manifest), mediaType };
}

export async function pushImage(c: Client, repo: string, ref: string, img: TestImage): Promise<Res> {
  for (const b of [img.config, ...img.layers]) await pushBlob(c, repo, b);
  return c.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
}

export function indexOf(images: TestImage[], extra: Record<string, unknown> = {}): { body: Buffer; digest: string; mediaType: string } {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map((i, n) => ({ mediaType: i.mediaType, digest: i.digest, size: i.manifest.length, platform: { architecture: n % 2 ? 'arm64' : 'amd64', os: 'linux' } })),
      ...extra,
    }),
  );
  return { body, digest: sha256(body), mediaType };
}

/** A free port on loopback for servers started as child processes. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export async function waitFor(cond: () => Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export { rm };
