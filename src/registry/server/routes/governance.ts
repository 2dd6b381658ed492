import type { Registry } from '../registry.js';
import { query, sendJson, type Ctx } from '../http.js';
import { badRequest, denied, RegistryError, tagInvalid } from '../errors.js';
import { isSystemAdmin, NamespacePermissions, roleAllows, type Action, type Principal } from '../auth/access.js';
import { effectiveRole } from '../auth/groups.js';
import { assertDigest, assertName, isNamespace, isTag, namespaceOf } from '../names.js';
import type { Actor } from '../service.js';

// The governance half of /kiln/v1/ the web UI's pages use (issue 20), for scripts too:
//   GET    /kiln/v1/permissions?namespace=NS | ?repository=REPO   what the caller may do there
//   DELETE /kiln/v1/repositories/REPO/tags/TAG                    as DELETE /v2/REPO/manifests/TAG
//   DELETE /kiln/v1/repositories/REPO/manifests/DIGEST            as DELETE /v2/REPO/manifests/DIGEST
//   GET    /kiln/v1/gc                                            the last garbage collection's report
// Deletes go through the registry service, as /v2/ does, so the same checks (role, deletion
// enabled, pull-through caches, immutable tags), audit records and events apply. The permissions
// answer is how the UI decides which buttons to show; it is computed by the same functions the
// routes check with, and every route checks again.

/** The caller as the registry service sees them: what they may do is what auth.actionsFor says. */
function actorOf(reg: Registry, ctx: Ctx, p: Principal): Actor {
  return {
    name: p.name,
    address: ctx.req.socket.remoteAddress,
    may: async (repository: string, action: Action) => (await reg.auth.actionsFor(p, repository)).includes(action),
    administers: async (ns: string) => isSystemAdmin(p) || (await effectiveRole(reg.metadata, p, ns)) === 'admin',
  };
}

/** Whether the path below /kiln/v1/ (decoded components) is one of these routes. */
export function isGovernanceRoute(parts: string[], method: string): boolean {
  if (parts[0] === 'permissions' && parts.length === 1) return true;
  if (parts[0] === 'gc' && parts.length === 1 && method === 'GET') return true;
  const kind = parts[parts.length - 2];
  return parts[0] === 'repositories' && parts.length >= 4 && (kind === 'tags' || kind === 'manifests') && method === 'DELETE';
}

export async function governance(reg: Registry, ctx: Ctx, p: Principal, parts: string[]): Promise<void> {
  const [a] = parts;
  if (a === 'permissions') {
    if (ctx.method !== 'GET') throw new RegistryError('method-not-allowed', `${ctx.method} is not allowed on /kiln/v1/permissions`, undefined, { Allow: 'GET' });
    const q = query(ctx);
    const repository = q.get('repository');
    const ns = repository ? namespaceOf(assertName(repository)) : q.get('namespace');
    if (!ns || !isNamespace(ns)) throw badRequest('namespace: expected a namespace (?namespace=team) or a repository (?repository=team/app)');
    const admin = isSystemAdmin(p);
    const role = await effectiveRole(reg.metadata, p, ns);
    // Namespace settings (visibility, quota) and garbage collection are system administrators'
    // (routes/admin.ts, requireSysadmin).
    const permissions = [...NamespacePermissions.filter((x) => admin || roleAllows(role, x)), ...(admin ? ['namespace:write', 'gc'] : [])];
    return sendJson(ctx, 200, { namespace: ns, role: role ?? null, systemAdmin: admin, actions: await reg.auth.actionsFor(p, repository ?? `${ns}/x`), permissions }, { 'Cache-Control': 'no-store' });
  }
  if (a === 'gc') {
    if (!isSystemAdmin(p)) throw denied('only system administrators may do this');
    await reg.audit.flush();
    const [last] = await reg.metadata.listAudit({ action: 'gc', limit: 1 });
    return sendJson(ctx, 200, { last: last ?? null });
  }
  const repository = assertName(parts.slice(1, -2).join('/'));
  const ref = parts[parts.length - 1]!;
  const actor = actorOf(reg, ctx, p);
  if (parts[parts.length - 2] === 'tags') {
    if (!isTag(ref)) throw tagInvalid(ref.slice(0, 200));
    const digest = await reg.service.deleteTag(actor, repository, ref);
    return sendJson(ctx, 200, { repository, tag: ref, digest });
  }
  const r = await reg.service.deleteManifest(actor, repository, assertDigest(ref));
  return sendJson(ctx, 200, { repository, digest: ref, tags: r.tags });
}
