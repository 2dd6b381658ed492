import { createHash } from 'node:crypto';
import type { Registry } from '../registry.js';
import { mediaTypeOf, query, readBody, sendBuffer, sendEmpty, type Ctx } from '../http.js';
import { isTag, parseManifestReference } from '../names.js';
import { accepts } from '../manifests.js';
import { algorithmOf } from '../../../oci/digest.js';
import { denied, manifestUnknown, RegistryError, tagInvalid, unsupported } from '../errors.js';

// distribution-spec "Pulling manifests" (end-3), "Pushing Manifests" (end-7a, end-7b with ?tag=),
// "Deleting tags" and "Deleting Manifests" (end-9).

export async function getManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['pull']);
  const key = ref.kind === 'tag' ? 't:' + ref.tag : ref.digest;
  const m = reg.manifests.cached(name, key) ?? (await reg.manifests.get(name, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }));
  if (!m) throw manifestUnknown(refStr);
  // By tag the client says what it can read; by digest it asked for exactly these bytes.
  if (ref.kind === 'tag' && !accepts(ctx.req.headers.accept, m.mediaType)) {
    throw manifestUnknown(refStr, `manifest is ${m.mediaType}, which the Accept header does not list`);
  }
  const inm = ctx.req.headers['if-none-match'];
  if (inm && inm.includes(m.digest)) {
    sendEmpty(ctx, 304, { 'Docker-Content-Digest': m.digest, ETag: `"${m.digest}"` });
    return;
  }
  sendBuffer(ctx, 200, m.body, m.headers);
  if (ctx.method === 'GET') reg.audit.record({ actor: ctx.user, action: 'pull', repository: name, reference: refStr, digest: m.digest, address: ctx.req.socket.remoteAddress });
}

export async function putManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['push', 'pull']);
  const extraTags = query(ctx).getAll('tag');
  if (extraTags.length && ref.kind !== 'digest') throw new RegistryError('bad-request', '?tag= is only accepted when pushing by digest');
  for (const t of extraTags) if (!isTag(t)) throw tagInvalid(t.slice(0, 200));
  const body = await readBody(ctx, reg.config.limits.manifestSize, () => new RegistryError('manifest-too-large', `manifest larger than ${reg.config.limits.manifestSize} bytes`));
  const tags = [...(ref.kind === 'tag' ? [ref.tag] : []), ...extraTags];

  // Moving an existing tag to another manifest is "promote": maintainers and admins only.
  if (tags.length && reg.auth.enabled) {
    const alg = ref.kind === 'digest' ? algorithmOf(ref.digest) : 'sha256';
    const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
    for (const t of tags) {
      const current = await reg.metadata.resolveTag(name, t);
      if (current && current !== digest) {
        await reg.auth.require(ctx, name, ['promote'], { denyWhenAuthenticated: true }).catch((e: unknown) => {
          throw e instanceof RegistryError && e.reason === 'denied' ? denied(`tag ${t} exists: moving it (promote) needs the maintainer role`) : e;
        });
      }
    }
  }

  const r = await reg.manifests.put(name, body, mediaTypeOf(ctx.req.headers['content-type']), ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest }, extraTags);
  ctx.bytesIn += body.length;
  await reg.search.indexPushed(name, r.digest, body, r.parsed);
  const headers: Record<string, string | string[]> = { Location: `/v2/${name}/manifests/${r.digest}`, 'Docker-Content-Digest': r.digest };
  // distribution-spec "Pushing Manifests with Subject": tell the client we processed the subject.
  if (r.parsed.subject) headers['OCI-Subject'] = r.parsed.subject.digest;
  if (extraTags.length) headers['OCI-Tag'] = extraTags;
  reg.audit.record({
    actor: ctx.user,
    action: 'push',
    repository: name,
    reference: tags.join(',') || r.digest,
    digest: r.digest,
    detail: r.moved.length ? `moved ${r.moved.map((m) => `${m.tag} from ${m.from}`).join(', ')}` : undefined,
    address: ctx.req.socket.remoteAddress,
  });
  sendEmpty(ctx, 201, headers);
}

export async function deleteManifest(reg: Registry, ctx: Ctx, name: string, refStr: string): Promise<void> {
  const ref = parseManifestReference(refStr);
  await reg.auth.require(ctx, name, ['delete'], { denyWhenAuthenticated: true });
  if (!reg.config.storage.deleteEnabled) throw unsupported('deletion is disabled');
  if (ref.kind === 'tag') {
    const digest = await reg.manifests.deleteTag(name, ref.tag);
    if (!digest) throw manifestUnknown(refStr);
    reg.audit.record({ actor: ctx.user, action: 'delete-tag', repository: name, reference: ref.tag, digest, address: ctx.req.socket.remoteAddress });
  } else {
    const r = await reg.manifests.delete(name, ref.digest);
    if (!r) throw manifestUnknown(refStr);
    reg.audit.record({
      actor: ctx.user,
      action: 'delete-manifest',
      repository: name,
      reference: ref.digest,
      digest: ref.digest,
      detail: r.tags.length ? `untagged ${r.tags.join(', ')}` : undefined,
      address: ctx.req.socket.remoteAddress,
    });
  }
  sendEmpty(ctx, 202);
}
