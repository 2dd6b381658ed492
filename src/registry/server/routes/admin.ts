import type { Registry } from '../registry.js';
import { requestIdentity } from '../sessions.js';
import { query, readBody, sendJson, type Ctx } from '../http.js';
import { badRequest, denied, manifestUnknown, RegistryError } from '../errors.js';
import { isSystemAdmin, roleAllows, type Action, type NamespacePermission, type Principal } from '../auth/access.js';
import { assertDigest, isName, isTag } from '../names.js';
import { effectiveRole, effectiveRoles } from '../auth/groups.js';
import { admin, parseRole, type ProxySetting } from '../admin.js';
import { parseDuration, parseSize } from '../config.js';
import { webhookRoutes } from './webhooks.js';
import { requirePull } from '../browse.js';
import { replicationApi } from './replication.js';
import { governance, isGovernanceRoute } from './governance.js';

// The management API under /kiln/v1/: namespace members, robot accounts, the audit log, users and
// namespaces — what `kiln registry …` does offline, over HTTP, for those whose role allows it.
// Credentials: HTTP Basic (users) or a Bearer token from /token.

async function who(reg: Registry, ctx: Ctx): Promise<Principal> {
  // A web UI session counts too; its state-changing requests must carry the CSRF token (sessions.ts).
  const p = (await requestIdentity(reg, ctx)).principal;
  if (p.kind === 'anonymous') {
    throw new RegistryError('unauthorized', 'authentication required', undefined, { 'WWW-Authenticate': `Basic realm="${reg.config.auth.service}"` });
  }
  ctx.user = p.name;
  return p;
}

export async function requireNs(reg: Registry, p: Principal, ns: string, perm: NamespacePermission): Promise<void> {
  if (isSystemAdmin(p)) return;
  if (p.kind === 'user' && roleAllows(await effectiveRole(reg.metadata, p, ns), perm)) return;
  throw denied(`${perm} in namespace ${ns} is not allowed for ${p.name}`);
}

function requireSysadmin(p: Principal): void {
  if (!isSystemAdmin(p)) throw denied('only system administrators may do this');
}

export async function jsonBody(ctx: Ctx): Promise<Record<string, unknown>> {
  const raw = await readBody(ctx, 64 * 1024, () => badRequest('body too large'));
  if (raw.length === 0) return {};
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw badRequest('expected a JSON object');
}

/** "repo:tag" or "repo@digest" of a request body's field. */
function parseLocation(v: unknown, field: string): { repository: string; tag?: string; digest?: string } {
  if (typeof v !== 'string') throw badRequest(`${field}: expected "repository:tag" or "repository@digest"`);
  const at = v.indexOf('@');
  const colon = v.lastIndexOf(':');
  const [repository, ref] = at >= 0 ? [v.slice(0, at), { digest: v.slice(at + 1) }] : colon > v.lastIndexOf('/') ? [v.slice(0, colon), { tag: v.slice(colon + 1) }] : [v, { tag: 'latest' }];
  if (!isName(repository)) throw badRequest(`${field}: "${repository.slice(0, 300)}" is not a repository name`);
  if (ref.tag !== undefined && !isTag(ref.tag)) throw badRequest(`${field}: "${ref.tag.slice(0, 200)}" is not a tag`);
  if (ref.digest !== undefined) {
    try {
      assertDigest(ref.digest);
    } catch {
      throw badRequest(`${field}: "${ref.digest.slice(0, 200)}" is not a digest`);
    }
  }
  return { repository, ...ref };
}

/** ?since= / ?until= of the audit log: an ISO 8601 time or Unix milliseconds. */
function auditTime(q: URLSearchParams, field: 'since' | 'until'): number | undefined {
  const v = q.get(field);
  if (!v) return undefined;
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw badRequest(`${field}: "${v.slice(0, 100)}" is not a time (ISO 8601 such as 2026-12-07T10:00:00Z, or Unix milliseconds)`);
  return t;
}

/** ?before= of the audit log: the `next` a previous page answered. */
function auditCursor(q: URLSearchParams): number | undefined {
  const v = q.get('before');
  if (!v) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw badRequest(`before: "${v.slice(0, 100)}" is not a page cursor (the "next" of the previous page)`);
  return Number(v);
}

/** "proxy": {"url", "username", "password", "ttl": "5m" | seconds} or null (not a proxy any more); undefined: unchanged. */
function proxySetting(v: unknown): ProxySetting | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest('proxy: expected {"url": …, "username"?, "password"?, "ttl"?} or null');
  const p = v as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!['url', 'username', 'password', 'ttl'].includes(k)) throw badRequest(`proxy.${k.slice(0, 50)}: unknown field (url, username, password, ttl)`);
  if (typeof p.url !== 'string') throw badRequest('proxy.url: expected the upstream registry as http(s)://host[:port][/path]');
  if (p.username !== undefined && typeof p.username !== 'string') throw badRequest('proxy.username: expected a string');
  if (p.password !== undefined && typeof p.password !== 'string') throw badRequest('proxy.password: expected a string');
  return { url: p.url, username: p.username as string | undefined, password: p.password as string | undefined, ttlSeconds: p.ttl === undefined ? undefined : parseDuration(p.ttl, 'proxy.ttl') };
}

/** Which signatures a manifest has, by which key or certificate, verified against its namespace's policy or not. */
async function signatureStatus(reg: Registry, ctx: Ctx, repository: string, digest: string): Promise<void> {
  if (!isName(repository)) throw badRequest(`"${repository.slice(0, 300)}" is not a repository name`);
  try {
    assertDigest(digest);
  } catch {
    throw badRequest(`"${digest.slice(0, 200)}" is not a digest`);
  }
  // Whoever may pull the repository, by credentials or by the web UI's session (it shows this on the image page).
  await requirePull(reg, (await requestIdentity(reg, ctx)).principal, repository);
  const m = await reg.manifests.get(repository, { digest });
  if (!m) throw manifestUnknown(digest);
  return sendJson(ctx, 200, await reg.signatures.status(repository, m));
}

/** Routes below /kiln/v1/; `parts` are the decoded path components after it. */
export async function management(reg: Registry, ctx: Ctx, parts: string[]): Promise<void> {
  // repositories/REPO/manifests/DIGEST/signatures: readable by whoever may pull REPO, as the referrers are.
  if (parts[0] === 'repositories' && parts.length >= 5 && parts[parts.length - 3] === 'manifests' && parts[parts.length - 1] === 'signatures' && ctx.method === 'GET') {
    return signatureStatus(reg, ctx, parts.slice(1, -3).join('/'), parts[parts.length - 2]!);
  }
  const p = await who(reg, ctx);
  const ops = admin(reg.metadata, p.name);
  const m = ctx.method;
  const [a, b, c, d] = parts;
  if (a === 'namespaces' && b !== undefined && c === 'webhooks') return webhookRoutes(reg, ctx, p, b, parts.slice(3));
  if (isGovernanceRoute(parts, m)) return governance(reg, ctx, p, parts);

  if (a === 'namespaces' && b === undefined && m === 'GET') {
    const all = await ops.namespaces();
    if (isSystemAdmin(p)) return sendJson(ctx, 200, { namespaces: all });
    const mine = new Set((await effectiveRoles(reg.metadata, p)).keys());
    return sendJson(ctx, 200, { namespaces: all.filter((n) => mine.has(n.name) || n.public) });
  }
  if (a === 'namespaces' && b !== undefined && c === undefined && m === 'PUT') {
    // {"public": true|false, "quota": bytes | "10GiB" | null}; fields left out stay as they are.
    requireSysadmin(p);
    const body = await jsonBody(ctx);
    if (body.public !== undefined && typeof body.public !== 'boolean') throw badRequest('public: expected true or false');
    const quotaBytes = body.quota === undefined ? undefined : body.quota === null ? null : parseSize(body.quota, 'quota');
    await ops.setNamespace(b, { public: body.public as boolean | undefined, quotaBytes, proxy: proxySetting(body.proxy) });
    reg.proxy.invalidate();
    const ns = (await ops.namespaces()).find((n) => n.name === b);
    return sendJson(ctx, 200, ns ?? { name: b });
  }
  if (a === 'namespaces' && b !== undefined && c === 'retention') {
    // Rules: GET (members), POST {"repos","tags","kind","value"} and DELETE /ID (namespace admins);
    // POST …/retention/run?dryRun=true&force=true evaluates them (namespace admins).
    if (d === undefined && m === 'GET') {
      await requireNs(reg, p, b, 'members:read');
      return sendJson(ctx, 200, { rules: await ops.retention(b) });
    }
    await requireNs(reg, p, b, 'members:write');
    if (d === undefined && m === 'POST') {
      const body = await jsonBody(ctx);
      if (typeof body.repos !== 'string' || typeof body.kind !== 'string') throw badRequest('repos and kind: expected strings');
      if (body.tags !== undefined && typeof body.tags !== 'string') throw badRequest('tags: expected a pattern');
      if (body.value !== undefined && typeof body.value !== 'number') throw badRequest('value: expected a number');
      return sendJson(ctx, 201, await ops.addRetention(b, { repos: body.repos, tags: body.tags as string | undefined, kind: body.kind, value: body.value as number | undefined }));
    }
    if (d === 'run' && m === 'POST') {
      const q = query(ctx);
      const dryRun = q.get('dryRun') === 'true';
      const plan = await ops.runRetention(b, { dryRun, force: q.get('force') === 'true' });
      // Tags went behind this process's caches' back (other replicas hear it from the database).
      if (!dryRun) reg.manifests.invalidate();
      if (!dryRun) reg.events.publish(p.name, { type: 'retention', namespace: b, dryRun, tags: plan.tags, untagged: plan.untagged });
      return sendJson(ctx, 200, plan);
    }
    if (d !== undefined && m === 'DELETE') {
      const rule = /^\d+$/.test(d) ? (await ops.retention(b)).find((r) => r.id === Number(d)) : undefined;
      if (!rule) throw new RegistryError('not-found', `no retention rule ${d.slice(0, 30)} in ${b}`);
      await ops.removeRetention(rule.id);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'namespaces' && b !== undefined && c === 'immutable') {
    // Namespace admins add rules; only system administrators remove one (no role bypasses a rule).
    if (d === undefined && m === 'GET') {
      await requireNs(reg, p, b, 'members:read');
      return sendJson(ctx, 200, { rules: await ops.immutable(b) });
    }
    if (d === undefined && m === 'POST') {
      await requireNs(reg, p, b, 'members:write');
      const body = await jsonBody(ctx);
      if (typeof body.repos !== 'string' || typeof body.tags !== 'string') throw badRequest('repos and tags: expected patterns (strings)');
      return sendJson(ctx, 201, await ops.addImmutable(b, { repos: body.repos, tags: body.tags, excludeRepos: body.excludeRepos === true, excludeTags: body.excludeTags === true }));
    }
    if (d !== undefined && m === 'DELETE') {
      requireSysadmin(p);
      const rule = /^\d+$/.test(d) ? (await ops.immutable(b)).find((r) => r.id === Number(d)) : undefined;
      if (!rule) throw new RegistryError('not-found', `no immutability rule ${d.slice(0, 30)} in ${b}`);
      await ops.removeImmutable(rule.id);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'namespaces' && b !== undefined && c === 'members') {
    if (d === undefined && m === 'GET') {
      await requireNs(reg, p, b, 'members:read');
      return sendJson(ctx, 200, { members: await ops.members(b) });
    }
    if (d !== undefined && m === 'PUT') {
      await requireNs(reg, p, b, 'members:write');
      const body = await jsonBody(ctx);
      const role = parseRole(String(body.role ?? ''));
      await ops.grant(d, b, role);
      return sendJson(ctx, 200, { namespace: b, user: d, role });
    }
    if (d !== undefined && m === 'DELETE') {
      await requireNs(reg, p, b, 'members:write');
      await ops.revoke(d, b);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'namespaces' && b !== undefined && c === 'groups') {
    // Group bindings: GET (members), PUT /GROUP {"role"} and DELETE /GROUP (namespace admins).
    if (d === undefined && m === 'GET') {
      await requireNs(reg, p, b, 'members:read');
      return sendJson(ctx, 200, { groups: await ops.groupBindings(b) });
    }
    if (d !== undefined && m === 'PUT') {
      await requireNs(reg, p, b, 'members:write');
      const body = await jsonBody(ctx);
      const role = parseRole(String(body.role ?? ''));
      await ops.grantGroup(d, b, role);
      return sendJson(ctx, 200, { namespace: b, group: d, role });
    }
    if (d !== undefined && m === 'DELETE') {
      await requireNs(reg, p, b, 'members:write');
      await ops.revokeGroup(d, b);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'namespaces' && b !== undefined && c === 'robots') {
    await requireNs(reg, p, b, 'robots:write');
    if (d === undefined && m === 'GET') return sendJson(ctx, 200, { robots: await ops.robots(b) });
    if (d === undefined && m === 'POST') {
      const body = await jsonBody(ctx);
      const actions = Array.isArray(body.actions) ? body.actions.map(String) : ['pull'];
      const expiresIn = body.expiresIn === undefined ? undefined : parseDuration(body.expiresIn, 'expiresIn');
      return sendJson(ctx, 201, await ops.addRobot(b, String(body.name ?? ''), actions, expiresIn));
    }
    if (d !== undefined && m === 'DELETE') {
      const robot = await reg.metadata.getRobot(d);
      if (!robot || robot.namespace !== b) throw badRequest(`no robot "${d}" in ${b}`);
      await ops.deleteRobot(d);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'audit' && b === undefined && m === 'GET') {
    const q = query(ctx);
    const ns = q.get('namespace') ?? undefined;
    if (ns) await requireNs(reg, p, ns, 'audit:read');
    else if (!isSystemAdmin(p)) throw denied('the whole audit log is for system administrators: filter by a namespace (?namespace=NS)');
    await reg.audit.flush();
    const limit = Math.min(1000, Math.max(1, Number(q.get('limit') ?? 100) || 100));
    // A page more than asked tells whether there is a next one; ?before=NEXT reads it.
    const filter = { namespace: ns, actor: q.get('actor') || undefined, action: q.get('action') || undefined, since: auditTime(q, 'since'), until: auditTime(q, 'until'), before: auditCursor(q) };
    const events = await reg.metadata.listAudit({ ...filter, limit: limit + 1 });
    const more = events.length > limit;
    if (more) events.length = limit;
    return sendJson(ctx, 200, { events, ...(more ? { next: String(events[events.length - 1]!.id) } : {}) });
  }
  if (a === 'users') {
    requireSysadmin(p);
    if (b === undefined && m === 'GET') return sendJson(ctx, 200, { users: await ops.listUsers() });
    if (b !== undefined && m === 'PUT') {
      const body = await jsonBody(ctx);
      const exists = await reg.metadata.getUser(b);
      if (!exists) await ops.addUser(b, String(body.password ?? ''), body.admin === true);
      else {
        if (body.password !== undefined) await ops.setPassword(b, String(body.password));
        if (body.admin !== undefined) await ops.setAdmin(b, body.admin === true);
      }
      return sendJson(ctx, exists ? 200 : 201, { name: b });
    }
    if (b !== undefined && m === 'DELETE') {
      await ops.deleteUser(b);
      return sendJson(ctx, 200, {});
    }
  }
  if (a === 'promote' && b === undefined && m === 'POST') {
    // {"source": "team/app@sha256:…" or "team/app:tag", "destination": "team/app:prod"}
    const body = await jsonBody(ctx);
    const source = parseLocation(body.source, 'source');
    const destination = parseLocation(body.destination, 'destination');
    if (destination.tag === undefined) throw badRequest('destination: give a tag (repository:tag)');
    const actor = { name: p.name, address: ctx.req.socket.remoteAddress, may: async (repo: string, action: Action) => (await reg.auth.actionsFor(p, repo)).includes(action) };
    const r = await reg.service.promote(actor, source, { repository: destination.repository, tag: destination.tag });
    return sendJson(ctx, 200, { destination: `${destination.repository}:${destination.tag}`, digest: r.digest });
  }
  if (a === 'replication') return replicationApi(reg, ctx, p, parts.slice(1));
  if (a === 'gc' && b === undefined && m === 'POST') {
    requireSysadmin(p);
    const r = await reg.gc({ dryRun: query(ctx).get('dryRun') === 'true', actor: p.name });
    return sendJson(ctx, 200, r);
  }
  throw new RegistryError('not-found', `no such management endpoint: ${m} /kiln/v1/${parts.join('/')}`);
}
