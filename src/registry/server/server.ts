import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../../errors.js';
import { parseAddr, type RegistryConfig } from './config.js';
import { openRegistry, type Registry } from './registry.js';
import { ApiVersion, ApiVersionHeader, errorBody, sendError, sendJson, type Ctx } from './http.js';
import { RegistryError } from './errors.js';
import { isBackendUnavailable } from './unavailable.js';
import { assertName } from './names.js';
import type { Logger } from './log.js';
import { getBlob, deleteBlob } from './routes/blobs.js';
import { startUpload, patchUpload, putUpload, uploadStatus, cancelUpload } from './routes/uploads.js';
import { getManifest, putManifest, deleteManifest } from './routes/manifests.js';
import { base, catalog, listReferrers, listTags } from './routes/content.js';
import { token } from './routes/token.js';
import { management } from './routes/admin.js';
import { search } from './routes/search.js';
import { browse, isBrowseRoute } from './routes/browse.js';
import { isOidcRoute, oidcRoutes } from './routes/oidc.js';
import { isUiPath, ui } from './routes/ui.js';

// The HTTP layer: node:http, a small router over the path, and the one try/catch that turns
// errors into responses. Handlers live in routes/ and stay thin.

// /v2/<name>/<kind>/<rest>: the name is greedy, so repositories may contain "blobs" or "tags" as components.
const v2Re = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.+)$/;

const notFound = (ctx: Ctx) => new RegistryError('not-found', `no such endpoint: ${ctx.method} ${ctx.path.slice(0, 200)}`);
const methodNotAllowed = (ctx: Ctx, allow: string) =>
  new RegistryError('method-not-allowed', `${ctx.method} is not allowed on ${ctx.path.slice(0, 200)}`, undefined, { Allow: allow });

async function route(reg: Registry, ctx: Ctx): Promise<void> {
  const p = ctx.path;
  const m = ctx.method;
  const read = m === 'GET' || m === 'HEAD';
  const v2 = v2Re.exec(p);
  if (v2) {
    const name = v2[1]!;
    const kind = v2[2]!;
    const rest = v2[3]!;
    assertName(name);
    if (kind === 'manifests') {
      ctx.route = 'manifest';
      if (rest.includes('/')) throw notFound(ctx);
      if (read) return getManifest(reg, ctx, name, rest);
      if (m === 'PUT') return putManifest(reg, ctx, name, rest);
      if (m === 'DELETE') return deleteManifest(reg, ctx, name, rest);
      throw methodNotAllowed(ctx, 'GET, HEAD, PUT, DELETE');
    }
    if (kind === 'blobs') {
      if (rest === 'uploads' || rest === 'uploads/') {
        ctx.route = 'upload';
        if (m === 'POST') return startUpload(reg, ctx, name);
        throw methodNotAllowed(ctx, 'POST');
      }
      if (rest.startsWith('uploads/')) {
        ctx.route = 'upload';
        const id = rest.slice(8);
        if (id.includes('/')) throw notFound(ctx);
        if (m === 'PATCH') return patchUpload(reg, ctx, name, id);
        if (m === 'PUT') return putUpload(reg, ctx, name, id);
        if (m === 'GET') return uploadStatus(reg, ctx, name, id);
        if (m === 'DELETE') return cancelUpload(reg, ctx, name, id);
        throw methodNotAllowed(ctx, 'GET, PATCH, PUT, DELETE');
      }
      ctx.route = 'blob';
      if (rest.includes('/')) throw notFound(ctx);
      if (read) return getBlob(reg, ctx, name, rest);
      if (m === 'DELETE') return deleteBlob(reg, ctx, name, rest);
      throw methodNotAllowed(ctx, 'GET, HEAD, DELETE');
    }
    if (kind === 'tags' && rest === 'list') {
      ctx.route = 'tags';
      if (read) return listTags(reg, ctx, name);
      throw methodNotAllowed(ctx, 'GET');
    }
    if (kind === 'referrers' && !rest.includes('/')) {
      ctx.route = 'referrers';
      if (read) return listReferrers(reg, ctx, name, rest);
      throw methodNotAllowed(ctx, 'GET');
    }
    throw notFound(ctx);
  }
  if (p === '/v2/' || p === '/v2') {
    ctx.route = 'base';
    if (read) return base(reg, ctx);
    throw methodNotAllowed(ctx, 'GET, HEAD');
  }
  if (p === '/v2/_catalog') {
    ctx.route = 'catalog';
    if (read) return catalog(reg, ctx);
    throw methodNotAllowed(ctx, 'GET');
  }
  if (p === '/token') {
    ctx.route = 'token';
    if (m === 'GET' || m === 'POST') return token(reg, ctx);
    throw methodNotAllowed(ctx, 'GET, POST');
  }
  if (p === '/healthz') {
    ctx.route = 'healthz';
    await reg.metadata.repositoryExists('healthz');
    return sendJson(ctx, 200, { status: 'ok' });
  }
  if (p === '/metrics') {
    ctx.route = 'metrics';
    const text = reg.metrics.render([
      { name: 'kiln_registry_uploads_in_progress', help: 'Upload sessions open.', value: reg.uploads.inProgress },
      { name: 'kiln_registry_storage_bytes', help: 'Bytes of blobs and manifests stored.', value: await reg.metadata.storageBytes() },
      { name: 'kiln_registry_blob_cache_bytes', help: 'Bytes of small blobs held in memory.', value: reg.blobs.cachedBytes },
    ]);
    ctx.res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': Buffer.byteLength(text) });
    ctx.res.end(text);
    return;
  }
  if (p === '/api/v1/search') {
    ctx.route = 'search';
    if (read) return search(reg, ctx);
    throw methodNotAllowed(ctx, 'GET');
  }
  if (p.startsWith('/kiln/v1/')) {
    ctx.route = 'management';
    let parts: string[];
    try {
      parts = p.slice(9).split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw notFound(ctx);
    }
    if (isBrowseRoute(parts)) return browse(reg, ctx, parts);
    if (isOidcRoute(parts)) return oidcRoutes(reg, ctx, parts);
    return management(reg, ctx, parts);
  }
  if (isUiPath(p)) {
    ctx.route = 'ui';
    return ui(reg, ctx);
  }
  throw notFound(ctx);
}

export interface RunningRegistry {
  readonly registry: Registry;
  readonly server: Server;
  /** http(s)://host:port */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Answer errors Node's HTTP parser raises before a request exists (huge headers, garbage, timeouts). */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let e: RegistryError;
  let status: string;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    e = new RegistryError('headers-too-large', 'request headers too large');
    status = '431 Request Header Fields Too Large';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    e = new RegistryError('bad-request', 'request timed out');
    status = '408 Request Timeout';
  } else {
    e = new RegistryError('bad-request', 'malformed HTTP request');
    status = '400 Bad Request';
  }
  const body = errorBody(e);
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\n${ApiVersionHeader}: ${ApiVersion}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export async function serve(config: RegistryConfig, opts: { log?: Logger } = {}): Promise<RunningRegistry> {
  const reg = await openRegistry(config, opts);
  const logRequests = config.log.requests && reg.log.enabled('info');

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const ctx: Ctx = {
      req,
      res,
      method: req.method ?? 'GET',
      path: q < 0 ? url : url.slice(0, q),
      rawQuery: q < 0 ? '' : url.slice(q + 1),
      route: 'unknown',
      user: '-',
      bytesIn: 0,
      bytesOut: 0,
      start: performance.now(),
    };
    res.once('close', () => {
      const seconds = (performance.now() - ctx.start) / 1000;
      const status = res.writableFinished ? res.statusCode : 499;
      reg.metrics.request(ctx.route, ctx.method, status, seconds, ctx.bytesIn, ctx.bytesOut);
      if (logRequests) {
        reg.log.log('info', 'request', {
          method: ctx.method,
          path: ctx.path,
          status,
          bytes: ctx.bytesOut,
          bytes_in: ctx.bytesIn,
          duration_ms: Math.round(seconds * 1e5) / 100,
          user: ctx.user,
          remote: req.socket.remoteAddress,
        });
      }
    });
    let done: Promise<void> | void;
    try {
      done = route(reg, ctx);
    } catch (e) {
      fail(ctx, e);
      return;
    }
    if (done) done.catch((e: unknown) => fail(ctx, e));
  };

  const fail = (ctx: Ctx, e: unknown) => {
    if (e instanceof UsageError) e = new RegistryError('bad-request', e.message);
    // An outage of PostgreSQL or the bucket fails every request at once: one line each, no stack.
    if (!(e instanceof RegistryError) && isBackendUnavailable(e)) reg.log.log('warn', 'request failed: backend unavailable', { method: ctx.method, path: ctx.path, error: String(e) });
    else if (!(e instanceof RegistryError)) reg.log.log('error', 'request failed', { method: ctx.method, path: ctx.path, error: (e as Error)?.stack ?? String(e) });
    sendError(ctx, e, (e as { others?: RegistryError[] }).others);
  };

  const server: Server = config.http.tls
    ? createHttpsServer({ cert: readFileSync(config.http.tls.certificate), key: readFileSync(config.http.tls.key), maxHeaderSize: config.http.maxHeaderSize }, handler)
    : createHttpServer({ maxHeaderSize: config.http.maxHeaderSize }, handler);
  // Uploads may take long, so no limit on a whole request; an idle connection (also one that stops
  // sending its body) is closed after idleTimeout, and headers must arrive within 30 seconds.
  server.requestTimeout = 0;
  server.headersTimeout = Math.min(30_000, config.http.idleTimeout * 1000);
  server.keepAliveTimeout = 65_000;
  server.timeout = config.http.idleTimeout * 1000;
  server.on('clientError', onClientError);

  const { host, port } = parseAddr(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `${config.http.tls ? 'https' : 'http'}://${shownHost}:${actualPort}`;
  reg.webhooks.listening(url);
  reg.log.log('info', 'listening', { url, root: config.root, auth: config.auth.enabled, storage: config.storage.driver, database: config.database.driver });

  return {
    registry: reg,
    server,
    url,
    port: actualPort,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await reg.close();
    },
  };
}
