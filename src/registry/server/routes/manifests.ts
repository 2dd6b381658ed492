import type { Registry } from '../registry.js';
import { mediaTypeOf, query, readBody, sendBuffer, sendEmpty, type Ctx } from '../http.js';
import { isTag, parseManifestReference } from '../names.js';
import { accepts } from '../manifests.js';
import { manifestUnknown, RegistryError, tagInvalid } from '../errors.js';
import type { Actor } from '../service.js';
import { isSystemAdmin } from '../auth/access.js';

// distribution-spec "Pulling manifests" (end-3), "Pushing Manifests" (end-7a, end-7b with ?tag=),
// "Deleting tags" and "Deleting Manifests" (end-9).

export async function getManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['pull']);
  const key = ref.kind === 'tag' ? 't:' + ref.tag : ref.digest;
  // A pull-through cache namespace answers from upstream on a miss or an expired tag (proxy.ts).
  const proxied = await reg.proxy.manifest({ name: ctx.user, address: ctx.req.socket.remoteAddress }, name, ref);
  const m = proxied ?? reg.manifests.cached(name, key) ?? (await reg.manifests.get(name, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }));
  if (!m) throw manifestUnknown(refStr);
  // By tag the client says what it can read; by digest it asked for exactly these bytes.
  if (ref.kind === 'tag' && !accepts(ctx.req.headers.accept, m.mediaType)) {
    throw manifestUnknown(refStr, `manifest is ${m.mediaType}, which the Accept header does not list`);
  }
  // A namespace's signature policy holds back unsigned images (see trust.ts for who passes).
  await reg.signatures.admitPull(name, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }, m, { head: ctx.method === 'HEAD', mayPush: () => reg.auth.may(ctx, name, 'push') });
  const inm = ctx.req.headers['if-none-match'];
  if (inm && inm.includes(m.digest)) {
    sendEmpty(ctx, 304, { 'Docker-Content-Digest': m.digest, ETag: `"${m.digest}"` });
    return;
  }
  sendBuffer(ctx, 200, m.body, m.headers);
  if (ctx.method === 'GET') {
    reg.audit.record({ actor: ctx.user, action: 'pull', repository: name, reference: refStr, digest: m.digest, address: ctx.req.socket.remoteAddress });
    reg.service.notePull(actorOf(reg, ctx), name, refStr, m);
  }
}

/** The request's client, as the registry service sees it (after the route's own auth.require). */
export function actorOf(reg: Registry, ctx: Ctx): Actor {
  return { name: ctx.user, address: ctx.req.socket.remoteAddress, may: (repository, action) => reg.auth.may(ctx, repository, action), administers: (namespace) => administers(reg, ctx, namespace) };
}

/** The namespace's admin role or a system administrator (anyone when authentication is off). */
export async function administers(reg: Registry, ctx: Ctx, namespace: string): Promise<boolean> {
  if (!reg.auth.enabled) return true;
  const p = await reg.auth.principal(ctx);
  if (isSystemAdmin(p)) return true;
  return p.kind === 'user' && (await reg.metadata.getRole(namespace, p.name)) === 'admin';
}

export async function putManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const extraTags = query(ctx).getAll('tag');
  if (extraTags.length && ref.kind !== 'digest') throw new RegistryError('bad-request', '?tag= is only accepted when pushing by digest');
  for (const t of extraTags) if (!isTag(t)) throw tagInvalid(t.slice(0, 200));
  const body = await readBody(ctx, reg.config.limits.manifestSize, () => new RegistryError('manifest-too-large', `manifest larger than ${reg.config.limits.manifestSize} bytes`));
  ctx.bytesIn += body.length;
  const r = await reg.service.pushManifest(actorOf(reg, ctx), name, body, mediaTypeOf(ctx.req.headers['content-type']), ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }, extraTags);
  const headers: Record<string, string | string[]> = { Location: `/v2/${name}/manifests/${r.digest}`, 'Docker-Content-Digest': r.digest };
  // distribution-spec "Pushing Manifests with Subject": tell the client we processed the subject.
  if (r.parsed.subject) headers['OCI-Subject'] = r.parsed.subject.digest;
  if (extraTags.length) headers['OCI-Tag'] = extraTags;
  sendEmpty(ctx, 201, headers);
}

export async function deleteManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['delete'], { denyWhenAuthenticated: true });
  if (ref.kind === 'tag') await reg.service.deleteTag(actorOf(reg, ctx), name, ref.tag);
  else await reg.service.deleteManifest(actorOf(reg, ctx), name, ref.digest);
  sendEmpty(ctx, 202);
}
