import { pipeline } from 'node:stream/promises';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Registry } from '../registry.js';
import { ApiVersion, ApiVersionHeader, sendBuffer, sendEmpty, type Ctx } from '../http.js';
import { assertDigest } from '../names.js';
import { sendFile } from '../send-file.js';
import { blobUnknown, RegistryError, unsupported } from '../errors.js';
import { proxyDenied } from '../proxy.js';
import { administers } from './manifests.js';

// distribution-spec "Pulling blobs" (end-2), "Checking if content exists" and "Deleting Blobs" (end-10).

/** RFC 9110 14.2: one byte range; anything we cannot parse is ignored and the whole blob is sent. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = () => new RegistryError('range-not-satisfiable', `range ${header.slice(0, 100)} not satisfiable for ${size} bytes`, undefined, { 'Content-Range': `bytes */${size}` });
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (start >= size || last < start) throw unsatisfiable();
  return { start, end: Math.min(last, size - 1) };
}

export async function getBlob(reg: Registry, ctx: Ctx, name: string, ref: string): Promise<void> {
  const digest = assertDigest(ref);
  await reg.auth.require(ctx, name, ['pull']);
  let size = await reg.blobs.stat(name, digest);
  if (size === undefined) {
    // Manifests are content too: Distribution serves them from the blob endpoint, and so do we.
    const m = await reg.manifests.get(name, { digest });
    if (m) {
      size = m.body.length;
      const range = parseRange(ctx.req.headers.range, size);
      const body = range ? m.body.subarray(range.start, range.end + 1) : m.body;
      sendBuffer(ctx, range ? 206 : 200, body, blobHeaders(digest, size, range, m.mediaType));
      return;
    }
    // A pull-through cache fetches it from upstream, streaming it to this client when it can (proxy.ts).
    const whole = ctx.method === 'GET' && ctx.req.headers.range === undefined;
    const respond = (n: number) => {
      ctx.res.writeHead(200, blobHeaders(digest, n, undefined));
      ctx.bytesOut += n;
      return ctx.res;
    };
    if (await reg.proxy.blob({ name: ctx.user, address: ctx.req.socket.remoteAddress }, name, digest, whole ? respond : undefined)) return;
    size = await reg.blobs.stat(name, digest);
    if (size === undefined) throw blobUnknown(digest);
  }
  if (ctx.method === 'HEAD' && !(await reg.blobs.touch(name, digest))) throw blobUnknown(digest);
  const range = parseRange(ctx.req.headers.range, size);
  const headers = blobHeaders(digest, size, range);
  if (ctx.method === 'HEAD') {
    sendBuffer(ctx, range ? 206 : 200, Buffer.alloc(0), headers);
    return;
  }
  const redirect = await reg.blobs.redirect(name, digest);
  if (redirect) {
    // The client follows it with its own Range header (RFC 9110 15.4.8: 307 keeps the method).
    sendEmpty(ctx, 307, { Location: redirect, 'Docker-Content-Digest': digest });
    return;
  }
  const blob = await reg.blobs.open(name, digest, range);
  if (blob.buffer) {
    sendBuffer(ctx, range ? 206 : 200, blob.buffer, headers);
    return;
  }
  ctx.res.writeHead(range ? 206 : 200, headers);
  ctx.bytesOut += range ? range.end - range.start + 1 : size;
  // Headers are out: a failure now (client gone, file cut short) can only drop the connection.
  const body = blob.file ? sendFile(ctx.res, blob.file, range?.start ?? 0, range?.end ?? size - 1) : pipeline(blob.stream!, ctx.res);
  await body.catch(() => ctx.res.destroy());
}

function blobHeaders(digest: string, size: number, range: { start: number; end: number } | undefined, type = 'application/octet-stream'): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {
    [ApiVersionHeader]: ApiVersion,
    'Content-Type': type,
    'Content-Length': range ? range.end - range.start + 1 : size,
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Cache-Control': 'max-age=31536000',
  };
  if (range) h['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  return h;
}

export async function deleteBlob(reg: Registry, ctx: Ctx, name: string, ref: string): Promise<void> {
  const digest = assertDigest(ref);
  await reg.auth.require(ctx, name, ['delete'], { denyWhenAuthenticated: true });
  if (!reg.config.storage.deleteEnabled) throw unsupported('blob deletion is disabled');
  const proxy = await reg.proxy.upstreamOf(name);
  if (proxy && !(await administers(reg, ctx, proxy.namespace))) throw proxyDenied(proxy, 'delete');
  if (!(await reg.blobs.unlink(name, digest))) throw blobUnknown(digest);
  reg.audit.record({ actor: ctx.user, action: 'delete-blob', repository: name, digest, address: ctx.req.socket.remoteAddress });
  sendEmpty(ctx, 202, { 'Docker-Content-Digest': digest });
}
