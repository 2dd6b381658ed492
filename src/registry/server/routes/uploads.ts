import type { Registry } from '../registry.js';
import { actorOf } from './manifests.js';
import { query, sendEmpty, type Ctx } from '../http.js';
import { assertDigest, assertName, isName, namespaceOf } from '../names.js';
import { blobUploadInvalid, digestInvalid, RegistryError } from '../errors.js';
import type { UploadSession } from '../uploads.js';

// distribution-spec "Pushing blobs": monolithic POST ?digest= (end-4b), POST then PUT (end-4a, end-6),
// chunked PATCH (end-5) with Content-Range ordering, status (end-13), cancel (end-14) and
// cross-repository mount (end-11).

const uploadUrl = (name: string, id: string) => `/v2/${name}/blobs/uploads/${id}`;
const blobUrl = (name: string, digest: string) => `/v2/${name}/blobs/${digest}`;
const rangeOf = (s: UploadSession) => `0-${Math.max(0, s.offset - 1)}`;

function hasBody(ctx: Ctx): boolean {
  const len = ctx.req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return ctx.req.headers['transfer-encoding'] !== undefined;
}

function declaredLength(ctx: Ctx): number | undefined {
  const len = ctx.req.headers['content-length'];
  if (len === undefined) return undefined;
  const n = Number(len);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** "start-end" as the spec writes it; clients also send "bytes start-end/total". */
function contentRange(ctx: Ctx): { start: number; length: number } | undefined {
  const h = ctx.req.headers['content-range'];
  if (h === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(h.trim());
  if (!m) throw blobUploadInvalid(`malformed Content-Range "${h.slice(0, 100)}"`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new RegistryError('chunk-out-of-order', `Content-Range ${h.slice(0, 100)} ends before it starts`);
  return { start, length: end - start + 1 };
}

async function appendChunk(reg: Registry, ctx: Ctx, name: string, s: UploadSession): Promise<void> {
  const range = contentRange(ctx);
  const length = range?.length ?? declaredLength(ctx);
  try {
    await reg.uploads.append(s, ctx.req, { start: range?.start, length }, (n) => (ctx.bytesIn += n));
  } catch (e) {
    if (e instanceof RegistryError && e.reason === 'chunk-out-of-order') {
      throw new RegistryError(e.reason, e.message, e.detail, { ...e.headers, Location: uploadUrl(name, s.id), 'Docker-Upload-UUID': s.id });
    }
    throw e;
  }
}

async function complete(reg: Registry, ctx: Ctx, name: string, s: UploadSession, digest: string): Promise<void> {
  // A session begun before its namespace became a pull-through cache is refused at its end.
  await reg.proxy.refuseWrite(name, 'push').catch(async (e: unknown) => {
    await reg.uploads.cancel(s);
    throw e;
  });
  const staged = await reg.uploads.finish(s, digest);
  try {
    // A blob over the namespace's quota is refused whole: its bytes go, nothing is linked.
    await reg.service.admitBlob(actorOf(reg, ctx), name, digest, staged.size).catch(async (e: unknown) => {
      await reg.blobs.discard(staged);
      throw e;
    });
    await reg.blobs.commit(name, digest, staged);
  } finally {
    await staged.done?.();
  }
  sendEmpty(ctx, 201, { Location: blobUrl(name, digest), 'Docker-Content-Digest': digest });
}

export async function startUpload(reg: Registry, ctx: Ctx, name: string): Promise<void> {
  const q = query(ctx);
  const mount = q.get('mount');
  // A mount uses pull on `from` when the token has it and uploads without it, so the challenge
  // names that scope too, as Distribution does; only a valid name goes into the header.
  const from = mount !== null ? q.get('from') : null;
  await reg.auth.require(ctx, name, ['push', 'pull'], { wanted: from !== null && isName(from) ? [{ repository: from, actions: ['pull'] }] : undefined });
  await reg.proxy.refuseWrite(name, mount !== null ? 'mount' : 'push');
  if (mount !== null) {
    const digest = assertDigest(mount);
    let source: string | undefined;
    if (from !== null) {
      assertName(from);
      if ((await reg.auth.may(ctx, from, 'pull')) && (await reg.blobs.stat(from, digest)) !== undefined) source = from;
    } else if (!reg.auth.enabled) {
      // distribution-spec: "MAY treat the from parameter as optional" — any repository will do.
      if ((await reg.metadata.blob(digest)) !== undefined) source = '*';
    } else {
      // With auth, only from the same namespace, where the caller's role covers every repository.
      source = await reg.metadata.blobRepositoryInNamespace(namespaceOf(name), digest);
    }
    const size = source ? (await reg.metadata.blob(digest))?.size : undefined;
    if (source && size !== undefined) await reg.service.admitBlob(actorOf(reg, ctx), name, digest, size);
    if (source && (await reg.blobs.mount(name, digest))) {
      reg.audit.record({ actor: ctx.user, action: 'mount', repository: name, digest, detail: source === '*' ? undefined : `from ${source}`, address: ctx.req.socket.remoteAddress });
      sendEmpty(ctx, 201, { Location: blobUrl(name, digest), 'Docker-Content-Digest': digest });
      return;
    }
    // Not mountable: an ordinary upload session instead (202), as the spec asks.
  }
  const alg = q.get('digest-algorithm');
  if (alg !== null && alg !== 'sha256' && alg !== 'sha512') throw digestInvalid(`unsupported digest algorithm "${alg.slice(0, 50)}"`);
  const digestParam = q.get('digest');
  const digest = digestParam !== null ? assertDigest(digestParam) : undefined;
  const s = await reg.uploads.start(name, (digest ? digest.slice(0, digest.indexOf(':')) : (alg ?? 'sha256')) as 'sha256' | 'sha512');
  if (digest) {
    try {
      await reg.uploads.append(s, ctx.req, { length: declaredLength(ctx) }, (n) => (ctx.bytesIn += n));
      await complete(reg, ctx, name, s, digest);
    } catch (e) {
      await reg.uploads.cancel(s);
      throw e;
    }
    return;
  }
  sendEmpty(ctx, 202, { Location: uploadUrl(name, s.id), Range: '0-0', 'Docker-Upload-UUID': s.id });
}

export async function patchUpload(reg: Registry, ctx: Ctx, name: string, id: string): Promise<void> {
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const s = await reg.uploads.get(name, id);
  await appendChunk(reg, ctx, name, s);
  sendEmpty(ctx, 202, { Location: uploadUrl(name, s.id), Range: rangeOf(s), 'Docker-Upload-UUID': s.id });
}

export async function putUpload(reg: Registry, ctx: Ctx, name: string, id: string): Promise<void> {
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const s = await reg.uploads.get(name, id);
  const d = query(ctx).get('digest');
  if (d === null) throw digestInvalid('the closing PUT needs ?digest=');
  const digest = assertDigest(d);
  if (hasBody(ctx)) await appendChunk(reg, ctx, name, s);
  await complete(reg, ctx, name, s, digest);
}

export async function uploadStatus(reg: Registry, ctx: Ctx, name: string, id: string): Promise<void> {
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const s = await reg.uploads.get(name, id);
  sendEmpty(ctx, 204, { Location: uploadUrl(name, s.id), Range: rangeOf(s), 'Docker-Upload-UUID': s.id });
}

export async function cancelUpload(reg: Registry, ctx: Ctx, name: string, id: string): Promise<void> {
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const s = await reg.uploads.get(name, id);
  await reg.uploads.cancel(s);
  sendEmpty(ctx, 204);
}
