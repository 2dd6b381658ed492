import { spawn, spawnSync } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { tempDir } from '../../support/env.js';
import { admin } from '../../../src/registry/server/admin.js';
import { Store, hostPlatform } from '../../../src/store/store.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import type { Platform } from '../../../src/oci/types.js';
import type { RetryPolicy } from '../../../src/registry/client/index.js';
import { client, freePort, sha256, startRegistry, waitFor, type Client, type TestRegistry } from '../server/support.js';

// Test support for the distribution client: registries on loopback (kiln's own in this process,
// Debian's docker-registry as a child process, a fake one for misbehaviour), a recording proxy
// that can break connections, images to push, and an environment (HOME, XDG_RUNTIME_DIR,
// KILN_CONFIG) private to each test.

export type T = { after: (fn: () => Promise<void> | void) => void };
export { sha256, client, startRegistry, type Client, type TestRegistry };

/** Retries kept short so tests about failures stay fast. */
export const fastRetry: RetryPolicy = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };

export const hostOf = (url: string) => url.replace(/^https?:\/\//, '');
export const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

export interface TestEnv {
  dir: string;
  root: string;
  env: NodeJS.ProcessEnv;
}

/** A store root and HOME, XDG_RUNTIME_DIR and KILN_CONFIG of this test's own. */
export async function testEnv(t: T): Promise<TestEnv> {
  const dir = await tempDir(t, 'kiln-dist-');
  const env: NodeJS.ProcessEnv = {
    HOME: join(dir, 'home'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    XDG_CONFIG_HOME: join(dir, 'home', '.config'),
    KILN_CONFIG: join(dir, 'kiln.yaml'),
    DOCKER_CONFIG: '',
    REGISTRY_AUTH_FILE: '',
  };
  await mkdir(join(dir, 'home'), { recursive: true });
  await mkdir(join(dir, 'run'), { recursive: true });
  return { dir, root: join(dir, 'store'), env };
}

/** kiln's registry with token auth and a user allowed to push to `team/…`. */
export async function authRegistry(t: T, user = 'dev', password = 'dev-password'): Promise<TestRegistry> {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser(user, password, false);
  await ops.grant(user, 'team', 'developer');
  return reg;
}

/** Debian's docker-registry (CNCF Distribution) on a free port, with htpasswd basic auth when given a user. */
export async function startDistribution(t: T, creds?: { user: string; password: string }): Promise<{ url: string; host: string; stop(): Promise<void> }> {
  const dir = await tempDir(t, 'kiln-distribution-');
  const port = await freePort();
  let auth = '';
  if (creds) {
    // Distribution's htpasswd accepts bcrypt only; bcryptjs makes the same $2b$ hashes as htpasswd -B.
    await writeFile(join(dir, 'htpasswd'), `${creds.user}:${bcrypt.hashSync(creds.password, 5)}\n`);
    auth = `auth:\n  htpasswd:\n    realm: kiln-test\n    path: ${dir}/htpasswd\n`;
  }
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => [200, 401].includes((await fetch(`${url}/v2/`)).status), 15_000, 'docker-registry');
  // Stopped for good (a test of what a client sees when the registry is gone).
  const stop = () => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGKILL'))));
  return { url, host: `127.0.0.1:${port}`, stop };
}

export interface ProxyLog {
  method: string;
  path: string;
  range?: string;
  status?: number;
}

export type ProxyAction = 'pass' | { status: number; headers?: Record<string, string>; body?: string | Buffer } | { cutAfter: number } | { delayMs: number };

/**
 * A recording HTTP proxy in front of `target`: every request is logged, and `decide` may answer it
 * itself, cut the response body after some bytes (a broken connection), or delay it.
 */
export async function startProxy(t: T, target: string, decide: (req: IncomingMessage, log: ProxyLog[]) => ProxyAction = () => 'pass'): Promise<{ url: string; host: string; log: ProxyLog[]; inFlight: () => number; maxInFlight: () => number }> {
  const log: ProxyLog[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const entry: ProxyLog = { method: req.method!, path: req.url!, range: req.headers.range };
    log.push(entry);
    const action = decide(req, log);
    if (typeof action === 'object' && 'status' in action) {
      entry.status = action.status;
      req.resume();
      res.writeHead(action.status, action.headers ?? {});
      res.end(action.body ?? '');
      return;
    }
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const go = () => {
      const up = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (ur: IncomingMessage) => {
        entry.status = ur.statusCode;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (typeof action === 'object' && 'cutAfter' in action) {
          let n = 0;
          ur.on('data', (c: Buffer) => {
            if (n === Infinity) return;
            if (n + c.length >= action.cutAfter) {
              ur.destroy();
              // destroy only once the bytes before the cut are on the wire
              res.write(c.subarray(0, action.cutAfter - n), () => setTimeout(() => res.socket?.destroy(), 20));
              n = Infinity;
              return;
            }
            n += c.length;
            res.write(c);
          });
          ur.on('end', () => res.end());
        } else ur.pipe(res);
      });
      up.on('error', () => res.socket?.destroy());
      req.pipe(up);
    };
    res.on('close', () => inFlight--);
    if (typeof action === 'object' && 'delayMs' in action) setTimeout(go, action.delayMs);
    else go();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  t.after(() => void server.closeAllConnections());
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, log, inFlight: () => inFlight, maxInFlight: () => maxInFlight };
}

/** A registry that answers whatever `handle` says: for content no honest registry serves. */
export async function fakeRegistry(t: T, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; host: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  t.after(() => void server.closeAllConnections());
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` };
}

export interface Image {
  config: Buffer;
  layers: Buffer[];
  layerTypes: string[];
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

/** An image of random gzip layers (real gzip streams, so tools that unpack them could). */
export function makeImage(opts: { layers?: number; layerSize?: number; platform?: Platform; layerType?: string } = {}): Image {
  const p = opts.platform ?? hostPlatform();
  const layers = Array.from({ length: opts.layers ?? 2 }, () => gzipSync(randomBytes(opts.layerSize ?? 2048), { level: 0 }));
  const config = Buffer.from(
    JSON.stringify({ architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}), rootfs: { type: 'layers', diff_ids: layers.map(() => sha256(randomBytes(8))) }, config: {} }),
  );
  const layerTypes = layers.map(() => opts.layerType ?? MediaType.OciLayerGzip);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
      layers: layers.map((l, i) => ({ mediaType: layerTypes[i], digest: sha256(l), size: l.length })),
    }),
  );
  return { config, layers, layerTypes, manifest, digest: sha256(manifest), mediaType: MediaType.OciManifest };
}

export function makeIndex(images: { image: Image; platform: Platform }[]): { body: Buffer; digest: string; mediaType: string } {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: images.map(({ image, platform }) => ({ mediaType: image.mediaType, digest: image.digest, size: image.manifest.length, platform })),
    }),
  );
  return { body, digest: sha256(body), mediaType: MediaType.OciIndex };
}

/** Upload an image with plain HTTP requests (no kiln client code), to `repo:ref`. */
export async function seedImage(c: Client, repo: string, ref: string, img: Image): Promise<void> {
  for (const b of [img.config, ...img.layers]) {
    const post = await c.req('POST', `/v2/${repo}/blobs/uploads/`);
    if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${post.text()}`);
    const u = new URL(post.headers.get('location')!, c.url);
    u.searchParams.set('digest', sha256(b));
    const put = await c.req('PUT', u.pathname + u.search, { body: b, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`PUT blob: ${put.status} ${put.text()}`);
  }
  const r = await c.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
  if (r.status !== 201) throw new Error(`PUT manifest: ${r.status} ${r.text()}`);
}

export async function seedIndex(c: Client, repo: string, ref: string, entries: { image: Image; platform: Platform }[]): Promise<string> {
  for (const e of entries) await seedImage(c, repo, e.image.digest, e.image);
  const idx = makeIndex(entries);
  const r = await c.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: idx.body, headers: { 'content-type': idx.mediaType } });
  if (r.status !== 201) throw new Error(`PUT index: ${r.status} ${r.text()}`);
  return idx.digest;
}

/** Put an image's blobs in a store and record it under `name`. */
export async function storeImage(root: string, img: Image, name: string): Promise<Store> {
  const store = await Store.open(root);
  for (const b of [img.config, img.manifest, ...img.layers]) await store.content.put(b);
  await store.addImage({ mediaType: img.mediaType, digest: img.digest, size: img.manifest.length }, [name]);
  return store;
}

/** The store holds no image, and no half-written file in ingest/. */
export async function assertNothingPartial(root: string): Promise<{ images: number; ingest: string[] }> {
  const store = await Store.open(root);
  const images = (await store.listImages()).length;
  const ingest = await readdir(join(root, 'ingest')).catch(() => [] as string[]);
  return { images, ingest };
}
