// What the BuildKit-coverage tests share: one store per test file with the busybox fixture loaded,
// build contexts made from a map of files, kiln run as the CLI, and a loopback HTTP server that
// records the requests it answered.

import { mkdtemp, mkdir, writeFile, symlink, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk, type KilnResult } from '../../support/env.js';

/** A context entry: file content, or a file with a mode, or a symbolic link. */
export type Entry = string | Buffer | { content: string | Buffer; mode: number } | { symlink: string };

export interface Builder {
  work: string;
  root: string;
  /** A new directory holding the given entries (path → entry). */
  context(files: Record<string, Entry>): Promise<string>;
  /** `kiln build --progress plain ARGS… CONTEXT`. */
  build(context: string, args?: string[], opts?: Parameters<typeof kiln>[2]): Promise<KilnResult>;
  /** Build into a fresh directory (type=local output); fails the test when the build fails. */
  tree(context: string, args?: string[]): Promise<string>;
  /** `kiln inspect NAME`'s first entry. */
  inspect(name: string): Promise<any>;
  kiln(args: string[], opts?: Parameters<typeof kiln>[2]): Promise<KilnResult>;
  close(): Promise<void>;
}

export async function openBuilder(prefix: string): Promise<Builder> {
  const work = await mkdtemp(join(tmpdir(), `kiln-bk-${prefix}-`));
  const root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  let n = 0;
  const b: Builder = {
    work,
    root,
    async context(files) {
      const dir = join(work, `ctx-${++n}`);
      await mkdir(dir, { recursive: true });
      for (const [p, e] of Object.entries(files)) {
        const abs = join(dir, p);
        await mkdir(dirname(abs), { recursive: true });
        if (p.endsWith('/')) await mkdir(abs, { recursive: true });
        else if (typeof e === 'object' && 'symlink' in e) await symlink(e.symlink, abs);
        else if (typeof e === 'object' && 'mode' in e) await writeFile(abs, e.content, { mode: e.mode });
        else await writeFile(abs, e);
      }
      return dir;
    },
    build: (context, args = [], opts = {}) => kiln(root, ['build', '--progress', 'plain', ...args, context], opts),
    async tree(context, args = []) {
      const dest = join(work, `out-${++n}`);
      const r = await b.build(context, [...args, '-o', `type=local,dest=${dest}`]);
      if (r.code !== 0) throw new Error(`build of ${context} exited ${r.code}: ${r.stderr}`);
      return dest;
    },
    inspect: async (name) => JSON.parse(await kilnOk(root, ['inspect', name]))[0],
    kiln: (args, opts = {}) => kiln(root, args, opts),
    close: () => rm(work, { recursive: true, force: true }),
  };
  return b;
}

export interface Served {
  url: string;
  requests: { method: string; path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** A response a route gives: a body, with optional Last-Modified and ETag. */
export interface Route {
  body: string | Buffer;
  lastModified?: Date;
  etag?: string;
  contentType?: string;
}

/** An HTTP server on loopback answering GET and HEAD for the given paths, 404 for the rest. */
export async function serve(routes: Record<string, Route> | ((path: string) => Route | undefined)): Promise<Served> {
  const requests: Served['requests'] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? '', path, headers: req.headers });
    const route = typeof routes === 'function' ? routes(path) : routes[path];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    const headers: Record<string, string> = { 'content-length': String(Buffer.byteLength(route.body)), 'content-type': route.contentType ?? 'application/octet-stream' };
    if (route.lastModified) headers['last-modified'] = route.lastModified.toUTCString();
    if (route.etag) headers.etag = `"${route.etag}"`;
    if (route.etag && req.headers['if-none-match'] === headers.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : route.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((ok) => server.close(() => ok())) };
}

/** Files below `dir` over HTTP, as a static server does: enough for git's dumb HTTP protocol. */
export function serveDirectory(dir: string): Promise<Served> {
  return serve((path) => {
    const file = join(dir, decodeURIComponent(path));
    if (!file.startsWith(dir + '/')) return undefined;
    try {
      return { body: readFileSync(file) };
    } catch {
      return undefined;
    }
  });
}
