import type { Registry } from '../registry.js';
import { query, sendJson, type Ctx } from '../http.js';
import { assertDigest, isTag } from '../names.js';
import { badRequest, nameUnknown } from '../errors.js';
import { MediaType } from '../../../oci/mediatypes.js';

// distribution-spec "Content Discovery": tags list (end-8a, end-8b), referrers (end-12a, end-12b);
// plus Distribution's /v2/_catalog, and the base endpoint (end-1).

export async function base(reg: Registry, ctx: Ctx): Promise<void> {
  await reg.auth.requireAuthenticated(ctx);
  sendJson(ctx, 200, {});
}

function pageSize(ctx: Ctx): number | undefined {
  const n = query(ctx).get('n');
  if (n === null || n === '') return undefined;
  if (!/^\d{1,9}$/.test(n)) throw badRequest(`n=${n.slice(0, 20)}: expected a non-negative integer`);
  return Number(n);
}

/** RFC 5988 Link to the next page, as the spec asks when more results are available. */
function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

export async function listTags(reg: Registry, ctx: Ctx, name: string): Promise<void> {
  await reg.auth.require(ctx, name, ['pull']);
  const n = pageSize(ctx);
  const last = query(ctx).get('last') ?? undefined;
  if (last !== undefined && last !== '' && !isTag(last)) throw badRequest('last: not a tag');
  const tags = await reg.metadata.listTags(name, last || undefined, n === undefined ? undefined : n + 1);
  if (!tags) throw nameUnknown(name);
  if (n === 0) {
    sendJson(ctx, 200, { name, tags: [] });
    return;
  }
  const more = n !== undefined && tags.length > n;
  const page = more ? tags.slice(0, n) : tags;
  sendJson(ctx, 200, { name, tags: page }, more ? { Link: nextLink(`/v2/${name}/tags/list`, n!, page[page.length - 1]!) } : {});
}

export async function listReferrers(reg: Registry, ctx: Ctx, name: string, ref: string): Promise<void> {
  const digest = assertDigest(ref);
  await reg.auth.require(ctx, name, ['pull']);
  const artifactType = query(ctx).get('artifactType');
  let list = await reg.metadata.referrers(name, digest);
  if (artifactType) list = list.filter((m) => m.artifactType === artifactType);
  const manifests = list.map((m) => ({
    mediaType: m.mediaType,
    digest: m.digest,
    size: m.body.length,
    ...(m.artifactType ? { artifactType: m.artifactType } : {}),
    ...(m.annotations ? { annotations: m.annotations } : {}),
  }));
  sendJson(
    ctx,
    200,
    { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests },
    { 'Content-Type': MediaType.OciIndex, ...(artifactType ? { 'OCI-Filters-Applied': 'artifactType' } : {}) },
  );
}

export async function catalog(reg: Registry, ctx: Ctx): Promise<void> {
  await reg.auth.requireAuthenticated(ctx, 'registry:catalog:*');
  const n = pageSize(ctx);
  const last = query(ctx).get('last') || undefined;
  const visible = await reg.auth.pullable(ctx);
  const repos: string[] = [];
  let after = last;
  const want = n ?? Infinity;
  // Read in pages until enough visible repositories are found (or none are left).
  for (;;) {
    const batch = await reg.metadata.listRepositories(after, 1000);
    for (const r of batch) if (visible(r)) repos.push(r);
    if (batch.length < 1000 || repos.length > want) break;
    after = batch[batch.length - 1];
  }
  if (n === 0) {
    sendJson(ctx, 200, { repositories: [] });
    return;
  }
  const more = repos.length > want;
  const page = more ? repos.slice(0, want) : repos;
  sendJson(ctx, 200, { repositories: page }, more ? { Link: nextLink('/v2/_catalog', n!, page[page.length - 1]!) } : {});
}
