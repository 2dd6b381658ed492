import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

// HTTP for the registry client: node:http with keep-alive agents (layers stream straight from the
// socket to the content store, never through memory), redirects the way registries use them (blob
// GETs sent on to object storage, without our Authorization header when the host changes), and
// retries with exponential backoff on connection failures, 5xx and 429.

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** Makes the body; called again for each attempt, so a retry sends it whole. */
  body?: () => Readable | Buffer;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  /** The URL that answered, after redirects. */
  url: URL;
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Delay before the first retry; doubled each time, with jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DefaultRetry: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 5_000 };

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

/**
 * node:https and its agent, loaded with the first https request: TLS adds some 7 ms to the start of
 * every process that loads it, which a push to or pull from a registry on plain HTTP never uses.
 */
let tls: { lib: typeof https; agent: https.Agent } | undefined;
function httpsClient(): { lib: typeof https; agent: https.Agent } {
  if (!tls) {
    const lib = createRequire(import.meta.url)('node:https') as typeof https;
    tls = { lib, agent: new lib.Agent({ keepAlive: true, maxSockets: 32 }) };
  }
  return tls;
}

/** Seconds without any byte on a connection before it counts as broken (and a download resumes). */
const IdleTimeoutMs = 60_000;
const MaxRedirects = 5;

/** A network failure before or during a response (refused, reset, timed out, closed early). */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** One request, following redirects; rejects with NetworkError when no response arrives. */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  let url = req.url;
  let method = req.method;
  let headers = { ...req.headers };
  let body = req.body;
  for (let hop = 0; ; hop++) {
    const res = await sendOnce(method, url, headers, body);
    const location = res.headers.location;
    if (![301, 302, 303, 307, 308].includes(res.status) || !location || hop >= MaxRedirects) return res;
    res.body.resume();
    const next = new URL(location, url);
    // RFC 9110 15.4: 303 (and, by custom, 301/302 of a non-GET) turn into a GET without a body.
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method !== 'GET' && method !== 'HEAD')) {
      method = 'GET';
      body = undefined;
      delete headers['content-length'];
      delete headers['content-type'];
    }
    // Credentials are for the registry; a redirect to object storage carries its own (signed URL).
    if (next.host !== url.host) {
      headers = { ...headers };
      delete headers.authorization;
    }
    url = next;
  }
}

function sendOnce(method: string, url: URL, headers: Record<string, string>, body: HttpRequest['body']): Promise<HttpResponse> {
  const { lib, agent } = url.protocol === 'https:' ? httpsClient() : { lib: http, agent: httpAgent };
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method, headers: { 'user-agent': 'kiln/0.1', ...headers }, agent });
    req.setTimeout(IdleTimeoutMs, () => req.destroy(new NetworkError(`${method} ${url.host}: no answer for ${IdleTimeoutMs / 1000}s`, 'ETIMEDOUT')));
    req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof NetworkError ? e : new NetworkError(e.message, e.code)));
    req.on('response', (res) => {
      res.on('error', () => {}); // reported to whoever reads the body
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    const b = body?.();
    if (b === undefined) req.end();
    else if (Buffer.isBuffer(b)) req.end(b);
    else {
      b.on('error', (e) => req.destroy(e));
      b.pipe(req);
    }
  });
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504 || status === 500;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function backoff(attempt: number, policy: RetryPolicy, retryAfter?: string): number {
  const after = retryAfter ? Number(retryAfter) : NaN;
  if (Number.isFinite(after) && after >= 0) return Math.min(after * 1000, policy.maxDelayMs);
  const base = Math.min(policy.baseDelayMs * 2 ** attempt, policy.maxDelayMs);
  return base / 2 + Math.random() * (base / 2);
}

/**
 * send() with retries: a connection failure or a 5xx/429 answer is tried again after a growing
 * pause (Retry-After when the server gives one). The last answer or error is what the caller gets.
 */
export async function sendWithRetry(req: HttpRequest, policy: RetryPolicy = DefaultRetry, onRetry?: (why: string) => void): Promise<HttpResponse> {
  for (let attempt = 0; ; attempt++) {
    const last = attempt + 1 >= policy.attempts;
    let res: HttpResponse;
    try {
      res = await send(req);
    } catch (e) {
      if (last || !(e instanceof NetworkError)) throw e;
      onRetry?.(e.message);
      await sleep(backoff(attempt, policy));
      continue;
    }
    if (last || !isRetryableStatus(res.status)) return res;
    res.body.resume();
    onRetry?.(`HTTP ${res.status}`);
    await sleep(backoff(attempt, policy, res.headers['retry-after'] as string | undefined));
  }
}

/** A small response body (manifest, token, error), refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit = 4 << 20): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.body.destroy();
    throw new NetworkError(`${res.url.host}: response of ${declared} bytes is larger than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n > limit) {
        res.body.destroy();
        throw new NetworkError(`${res.url.host}: response larger than the ${limit} bytes allowed`);
      }
      chunks.push(c as Buffer);
    }
  } catch (e) {
    if (e instanceof NetworkError) throw e;
    throw new NetworkError(`${res.url.host}: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code);
  }
  return Buffer.concat(chunks);
}

/** Drain and discard a body so the connection goes back to the pool. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}
