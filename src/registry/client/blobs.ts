import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { Descriptor } from '../../oci/types.js';
import { BlobUnknown } from '../../errors.js';
import { NetworkError, backoff, discard, readBody, sleep } from './http.js';
import { errorSummary } from './auth.js';
import { RegistryRequestFailed, TransferTruncated } from './errors.js';
import { pullScope, pushScope, type RegistrySession } from './session.js';

// Blob transfers (distribution-spec: pulling blobs, pushing blobs). Downloads are streams that
// resume with a Range request where a broken connection left off; uploads skip what the registry
// already has, mount from another repository of the same registry when they can, and send the
// blob in one PUT or in PATCH chunks.

/** How many times one download may resume after a broken connection before giving up. */
const MaxResumes = 5;

/**
 * The blob's bytes as one stream, however many connections it takes. The caller verifies the digest
 * while consuming it (the content store does); this only guarantees the byte count is reached.
 */
export function downloadBlob(session: RegistrySession, repo: string, desc: Descriptor, onBytes: (n: number) => void, onResume: (why: string) => void, signal?: AbortSignal): Readable {
  return Readable.from(blobChunks(session, repo, desc, onBytes, onResume, signal), { objectMode: false });
}

async function* blobChunks(session: RegistrySession, repo: string, desc: Descriptor, onBytes: (n: number) => void, onResume: (why: string) => void, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const where = `blob ${desc.digest} of ${session.endpoint.host}/${repo}`;
  let offset = 0;
  for (let resumes = 0; ; resumes++) {
    signal?.throwIfAborted();
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await session.request('GET', `/v2/${repo}/blobs/${desc.digest}`, { scopes: [pullScope(repo)], headers });
    if (res.status === 404) {
      discard(res);
      throw new BlobUnknown(`${where}: not found (blob unknown to the registry)`);
    }
    let skip = 0;
    if (offset > 0 && res.status === 206) {
      const start = Number(/bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''))?.[1]);
      if (start !== offset) {
        discard(res);
        throw new RegistryRequestFailed(`${where}: asked to resume at byte ${offset}, got Content-Range "${res.headers['content-range'] ?? ''}"`);
      }
    } else if (offset > 0 && res.status === 416) {
      discard(res);
      throw new TransferTruncated(`${where}: the registry has only ${offset} bytes, the manifest says ${desc.size}`);
    } else if (res.status === 200) {
      skip = offset; // the server ignored Range: throw away what we already have
    } else {
      const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
      throw new RegistryRequestFailed(`${where}: GET answered ${res.status}${errorSummary(text)}`, res.status);
    }
    let broke: string | undefined;
    const onAbort = () => res.body.destroy(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const c of res.body) {
        let chunk = c as Buffer;
        if (skip > 0) {
          const drop = Math.min(skip, chunk.length);
          skip -= drop;
          chunk = chunk.subarray(drop);
          if (chunk.length === 0) continue;
        }
        offset += chunk.length;
        onBytes(chunk.length);
        yield chunk;
      }
      if (!res.body.complete) broke = 'connection closed early';
    } catch (e) {
      signal?.throwIfAborted();
      broke = (e as Error).message || 'connection broken';
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (!broke && offset >= desc.size) return;
    if (!broke) broke = `the body ended after ${offset} of ${desc.size} bytes`;
    if (resumes >= MaxResumes) throw new TransferTruncated(`${where}: transfer truncated at ${offset} of ${desc.size} bytes (${broke}), ${MaxResumes} resumes failed`);
    onResume(`${broke}; resuming at byte ${offset}`);
    await sleep(backoff(resumes, session.retry));
  }
}

/** Small blobs (a config) whole, verified by the caller. */
export async function fetchSmallBlob(session: RegistrySession, repo: string, desc: Descriptor, limit = 16 << 20): Promise<Buffer> {
  const res = await session.request('GET', `/v2/${repo}/blobs/${desc.digest}`, { scopes: [pullScope(repo)] });
  if (res.status === 404) {
    discard(res);
    throw new BlobUnknown(`blob ${desc.digest} of ${session.endpoint.host}/${repo}: not found`);
  }
  if (res.status !== 200) throw new RegistryRequestFailed(`blob ${desc.digest}: GET answered ${res.status}`, res.status);
  try {
    return await readBody(res, limit);
  } catch (e) {
    if (e instanceof NetworkError) throw new TransferTruncated(`blob ${desc.digest} of ${session.endpoint.host}/${repo}: ${e.message}`);
    throw e;
  }
}

export interface UploadOptions {
  /** Scopes for every request of this push (the destination's pull,push, and pull on mount sources). */
  scopes: string[];
  /** Repositories of the same registry that have the blob, tried for a cross-repository mount. */
  mountFrom: string[];
  /** Blobs up to this size go in one PUT; larger ones in PATCH chunks of `chunkSize`. */
  monolithicMax: number;
  chunkSize: number;
  onBytes: (n: number) => void;
  onRetry: (why: string) => void;
  signal?: AbortSignal;
}

export type UploadOutcome = { result: 'exists' } | { result: 'mounted'; from: string } | { result: 'pushed' };

/** Push one blob, reading it with `open(start, end)` (inclusive end) as often as retries need. */
export async function uploadBlob(session: RegistrySession, repo: string, desc: Descriptor, open: (start?: number, end?: number) => Readable, o: UploadOptions): Promise<UploadOutcome> {
  const where = `blob ${desc.digest} to ${session.endpoint.host}/${repo}`;
  // distribution-spec "Checking if content exists in the registry": HEAD, 200 when it is there.
  const head = await session.request('HEAD', `/v2/${repo}/blobs/${desc.digest}`, { scopes: o.scopes });
  discard(head);
  if (head.status === 200) return { result: 'exists' };

  for (let attempt = 0; ; attempt++) {
    o.signal?.throwIfAborted();
    try {
      let location: URL | undefined;
      // Cross-repository mount (spec: "Mounting a blob from another repository"): 201 mounted,
      // 202 not mountable here — then the answer is an ordinary upload session.
      for (const from of attempt === 0 ? o.mountFrom.slice(0, 3) : []) {
        const u = session.url(`/v2/${repo}/blobs/uploads/`);
        u.searchParams.set('mount', desc.digest);
        u.searchParams.set('from', from);
        const res = await session.request('POST', u, { scopes: o.scopes });
        discard(res);
        if (res.status === 201) return { result: 'mounted', from };
        if (res.status === 202 && res.headers.location) {
          location = new URL(String(res.headers.location), res.url);
          break;
        }
      }
      if (!location) location = await startUpload(session, repo, o.scopes, where);
      if (desc.size <= o.monolithicMax) await putMonolithic(session, location, desc, open, o, where);
      else await putChunked(session, location, desc, open, o, where);
      return { result: 'pushed' };
    } catch (e) {
      const retryable = e instanceof RegistryRequestFailed ? e.status === undefined || e.status >= 500 || e.status === 429 : e instanceof NetworkError || (e as Error).name === 'RegistryUnreachable';
      if (!retryable || attempt + 1 >= session.retry.attempts) throw e;
      o.onRetry(`${(e as Error).message}; starting the upload again`);
      await sleep(backoff(attempt, session.retry));
    }
  }
}

async function startUpload(session: RegistrySession, repo: string, scopes: string[], where: string): Promise<URL> {
  const res = await session.request('POST', `/v2/${repo}/blobs/uploads/`, { scopes, headers: { 'content-length': '0' } });
  const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
  if (res.status !== 202 || !res.headers.location) throw new RegistryRequestFailed(`${where}: starting the upload answered ${res.status}${errorSummary(text)}`, res.status);
  return new URL(String(res.headers.location), res.url);
}

function withDigest(location: URL, digest: string): URL {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u;
}

async function putMonolithic(session: RegistrySession, location: URL, desc: Descriptor, open: (start?: number, end?: number) => Readable, o: UploadOptions, where: string): Promise<void> {
  let sent = 0;
  const res = await session.request('PUT', withDigest(location, desc.digest), {
    scopes: o.scopes,
    retry: false,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
    body: () => {
      o.onBytes(-sent); // a replay (after a 401) starts the count again
      sent = 0;
      return counted(open(), (n) => ((sent += n), o.onBytes(n)));
    },
  });
  const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
  if (res.status !== 201) {
    o.onBytes(-sent);
    throw new RegistryRequestFailed(`${where}: PUT answered ${res.status}${errorSummary(text)}`, res.status);
  }
}

async function putChunked(session: RegistrySession, location: URL, desc: Descriptor, open: (start?: number, end?: number) => Readable, o: UploadOptions, where: string): Promise<void> {
  let loc = location;
  let offset = 0;
  let sent = 0;
  try {
    while (offset < desc.size) {
      const end = Math.min(offset + o.chunkSize, desc.size) - 1;
      const start = offset;
      let chunkSent = 0;
      // spec "Pushing a blob in chunks": Content-Range <start>-<end>, inclusive; 202 with the next Location.
      const res = await session.request('PATCH', loc, {
        scopes: o.scopes,
        retry: false,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1), 'content-range': `${start}-${end}` },
        body: () => {
          o.onBytes(-chunkSent);
          sent -= chunkSent;
          chunkSent = 0;
          return counted(open(start, end), (n) => ((chunkSent += n), (sent += n), o.onBytes(n)));
        },
      });
      const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
      if (res.status !== 202) throw new RegistryRequestFailed(`${where}: PATCH ${start}-${end} answered ${res.status}${errorSummary(text)}`, res.status);
      if (res.headers.location) loc = new URL(String(res.headers.location), res.url);
      offset = end + 1;
    }
    const res = await session.request('PUT', withDigest(loc, desc.digest), { scopes: o.scopes, retry: false, headers: { 'content-length': '0' } });
    const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
    if (res.status !== 201) throw new RegistryRequestFailed(`${where}: closing the upload answered ${res.status}${errorSummary(text)}`, res.status);
  } catch (e) {
    o.onBytes(-sent);
    throw e;
  }
}

/** `src` passed through, counting bytes; an error of `src` reaches the reader. */
function counted(src: Readable, onBytes: (n: number) => void): Readable {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  src.on('error', (e) => t.destroy(e));
  return src.pipe(t);
}

export { pushScope };
