import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import { RegistryError, unavailable, type Reason } from './errors.js';
import { isBackendUnavailable } from './unavailable.js';

/** One request as the handlers see it. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path without the query, not decoded (encoded slashes stay encoded and fail name validation). */
  path: string;
  rawQuery: string;
  /** Route name for metrics and logs ("manifest", "blob", "upload"…). */
  route: string;
  /** Who made the request, for logs and the audit log ("-" when unknown). */
  user: string;
  bytesIn: number;
  bytesOut: number;
  start: number;
}

let queryCache: WeakMap<Ctx, URLSearchParams> = new WeakMap();
export function query(ctx: Ctx): URLSearchParams {
  let q = queryCache.get(ctx);
  if (!q) queryCache.set(ctx, (q = new URLSearchParams(ctx.rawQuery)));
  return q;
}
export function resetQueryCache(): void {
  queryCache = new WeakMap();
}

/** Headers every registry response carries (Docker registry API v2, kept for clients that check it). */
export const ApiVersionHeader = 'Docker-Distribution-API-Version';
export const ApiVersion = 'registry/2.0';

// The one place where a registry error becomes an HTTP status and an error code of the
// OCI distribution-spec "Error Codes" table.
const statusTable: Record<Reason, [number, string]> = {
  'blob-unknown': [404, 'BLOB_UNKNOWN'],
  'blob-upload-invalid': [400, 'BLOB_UPLOAD_INVALID'],
  'blob-upload-unknown': [404, 'BLOB_UPLOAD_UNKNOWN'],
  'digest-invalid': [400, 'DIGEST_INVALID'],
  'manifest-blob-unknown': [400, 'MANIFEST_BLOB_UNKNOWN'],
  'manifest-invalid': [400, 'MANIFEST_INVALID'],
  'manifest-unknown': [404, 'MANIFEST_UNKNOWN'],
  // distribution-spec "Pushing Manifests": over the size limit SHOULD be 413.
  'manifest-too-large': [413, 'MANIFEST_INVALID'],
  'name-invalid': [400, 'NAME_INVALID'],
  'name-unknown': [404, 'NAME_UNKNOWN'],
  'tag-invalid': [400, 'MANIFEST_INVALID'],
  'size-invalid': [400, 'SIZE_INVALID'],
  // distribution-spec "Pushing a blob in chunks": out-of-order chunks MUST get 416.
  'chunk-out-of-order': [416, 'BLOB_UPLOAD_INVALID'],
  // RFC 9110 15.5.17: a Range no byte of the blob satisfies.
  'range-not-satisfiable': [416, 'SIZE_INVALID'],
  unauthorized: [401, 'UNAUTHORIZED'],
  denied: [403, 'DENIED'],
  // distribution-spec "Content Management": disabled deletion answers 405.
  unsupported: [405, 'UNSUPPORTED'],
  'method-not-allowed': [405, 'UNSUPPORTED'],
  'not-found': [404, 'NAME_UNKNOWN'],
  'too-many-requests': [429, 'TOOMANYREQUESTS'],
  'headers-too-large': [431, 'SIZE_INVALID'],
  'bad-request': [400, 'UNSUPPORTED'],
  // Distribution's errcode.ErrorCodeUnavailable: the database or the bucket is unreachable for now.
  unavailable: [503, 'UNAVAILABLE'],
  // RFC 9110 15.6.3 Bad Gateway: a pull-through cache's upstream failed; the code as Distribution's proxy would give.
  'upstream-failed': [502, 'UNAVAILABLE'],
  internal: [500, 'UNKNOWN'],
};

export function statusOf(err: RegistryError): { status: number; code: string } {
  const [status, code] = statusTable[err.reason];
  return { status, code };
}

/** The spec's JSON error body for an error (used also outside a request, for 431 on the raw socket). */
export function errorBody(err: RegistryError): string {
  const { code } = statusOf(err);
  const e: Record<string, unknown> = { code, message: err.message };
  if (err.detail !== undefined) e.detail = err.detail;
  return JSON.stringify({ errors: [e] });
}

/**
 * A thrown error as a registry error: an unreachable backend is 503 (a client retries), anything
 * else unknown is 500.
 */
export function registryErrorOf(e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  return isBackendUnavailable(e) ? unavailable() : new RegistryError('internal', 'internal error');
}

/** Turn anything thrown by a handler into the spec's error response; unknown errors are 500 and logged by the caller. */
export function sendError(ctx: Ctx, e: unknown, extra?: RegistryError[]): void {
  const err = registryErrorOf(e);
  const { status } = statusOf(err);
  const body =
    extra && extra.length
      ? JSON.stringify({ errors: [err, ...extra].map((x) => ({ code: statusOf(x).code, message: x.message, ...(x.detail !== undefined ? { detail: x.detail } : {}) })) })
      : errorBody(err);
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: OutgoingHttpHeaders = {
    [ApiVersionHeader]: ApiVersion,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...err.headers,
  };
  // A request whose body we did not read: close the connection rather than drain an upload we refused.
  if (!ctx.req.complete && status !== 401) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(ctx.method === 'HEAD' ? undefined : body);
  ctx.bytesOut += ctx.method === 'HEAD' ? 0 : Buffer.byteLength(body);
}

export function sendJson(ctx: Ctx, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  const body = Buffer.from(JSON.stringify(value));
  ctx.res.writeHead(status, { [ApiVersionHeader]: ApiVersion, 'Content-Type': 'application/json', 'Content-Length': body.length, ...headers });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
  if (ctx.method !== 'HEAD') ctx.bytesOut += body.length;
}

export function sendBuffer(ctx: Ctx, status: number, body: Buffer, headers: OutgoingHttpHeaders): void {
  ctx.res.writeHead(status, headers);
  if (ctx.method === 'HEAD') ctx.res.end();
  else {
    ctx.res.end(body);
    ctx.bytesOut += body.length;
  }
}

export function sendEmpty(ctx: Ctx, status: number, headers: OutgoingHttpHeaders = {}): void {
  ctx.res.writeHead(status, { [ApiVersionHeader]: ApiVersion, 'Content-Length': 0, ...headers });
  ctx.res.end();
}

/** Read a request body of at most `limit` bytes; more is RegistryError(onTooLarge). */
export function readBody(ctx: Ctx, limit: number, onTooLarge: () => RegistryError): Promise<Buffer> {
  const declared = Number(ctx.req.headers['content-length'] ?? NaN);
  if (declared > limit) return Promise.reject(onTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    ctx.req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      ctx.bytesIn += c.length;
      if (size > limit) {
        failed = true;
        reject(onTooLarge());
        return;
      }
      chunks.push(c);
    });
    ctx.req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    ctx.req.on('error', (e) => {
      if (!failed) reject(e);
    });
    ctx.req.on('aborted', () => {
      if (!failed) reject(new RegistryError('bad-request', 'request aborted'));
    });
  });
}

/** Scheme and host clients reach us by: the configured public URL, else the Host header. */
export function baseUrl(ctx: Ctx, publicUrl: string | undefined, tls: boolean): string {
  if (publicUrl) return publicUrl;
  const host = ctx.req.headers.host ?? '127.0.0.1';
  return `${tls ? 'https' : 'http'}://${host}`;
}

export function mediaTypeOf(contentType: string | undefined): string {
  if (!contentType) return '';
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}
