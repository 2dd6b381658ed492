import type { Registry } from '../registry.js';
import { mediaTypeOf, query, readBody, sendJson, type Ctx } from '../http.js';
import { RegistryError, badRequest } from '../errors.js';
import { assertName } from '../names.js';
import { endSession, requestIdentity, startSession } from '../sessions.js';
import { image, lineage, repositories, sbomPackages, tags } from '../browse.js';
import { layerTree } from '../layer-tree.js';
import { searchAnswer } from './search.js';
import { assertDigest } from '../names.js';

// The browsing half of /kiln/v1/ (issue 20), for the web UI and scripts; anonymous callers see
// public namespaces. Credentials: a session cookie (POST /kiln/v1/session), Basic or Bearer.
//   POST   /kiln/v1/session      {"username","password"} -> cookie, {"user","admin","csrf","expiresAt"}
//   GET    /kiln/v1/session      who the cookie signs in ({"user": null} when no one) and its CSRF token
//   DELETE /kiln/v1/session      sign out (needs the CSRF token)
//   GET    /kiln/v1/repositories?filter=&n=&last=
//   GET    /kiln/v1/tags?repository=&sort=&n=&last=
//   GET    /kiln/v1/image?repository=&reference=
//   GET    /kiln/v1/layer?repository=&reference=&layer=N&path=/DIR&n=&last=   what layer N adds, changes, removes
//   GET    /kiln/v1/lineage?repository=&reference=          the images built on it
//   GET    /kiln/v1/sbom?repository=&digest=                the packages an SBOM referrer lists
//   GET    /kiln/v1/search?package=NAME[&version=RANGE] | ?base=DIGEST   as /api/v1/search

const browseRoutes = new Set(['session', 'repositories', 'tags', 'image', 'layer', 'lineage', 'sbom', 'search']);

/** Whether the path below /kiln/v1/ is one of these routes (the rest is the management API). */
export function isBrowseRoute(parts: string[]): boolean {
  return parts.length === 1 && browseRoutes.has(parts[0]!);
}

const noStore = { 'Cache-Control': 'no-store' };

function repositoryParam(q: URLSearchParams): string {
  const r = q.get('repository');
  if (!r) throw badRequest('repository: expected a repository name (?repository=team/app)');
  return assertName(r);
}

export async function browse(reg: Registry, ctx: Ctx, parts: string[]): Promise<void> {
  const [a] = parts;
  const m = ctx.method;
  const read = m === 'GET' || m === 'HEAD';
  if (a === 'session') {
    if (m === 'POST') {
      // JSON only: a cross-site form cannot send it without a CORS preflight, so no other site can
      // sign a visitor in to an account of its choosing (login CSRF).
      if (mediaTypeOf(ctx.req.headers['content-type']) !== 'application/json') throw badRequest('expected an application/json body {"username", "password"}');
      let body: { username?: unknown; password?: unknown };
      try {
        body = JSON.parse((await readBody(ctx, 16 * 1024, () => badRequest('body too large'))).toString('utf8')) as typeof body;
      } catch {
        throw badRequest('expected a JSON object {"username", "password"}');
      }
      if (typeof body?.username !== 'string' || typeof body.password !== 'string' || !body.username) throw badRequest('username and password: expected strings');
      // Auth.login's 401 names Basic in WWW-Authenticate, which would make a browser ask for a
      // password itself: the form says it instead.
      const p = await reg.auth.login(ctx, body.username, body.password).catch((e: unknown) => {
        throw e instanceof RegistryError && e.reason === 'unauthorized' ? new RegistryError('unauthorized', e.message) : e;
      });
      ctx.user = p.name;
      if (p.kind !== 'user') throw badRequest('robot accounts sign in with docker login, not to the web UI');
      const s = await startSession(reg, p.name);
      return sendJson(ctx, 200, { user: p.name, admin: p.user.admin, csrf: s.csrf, expiresAt: s.expiresAt }, { ...noStore, 'Set-Cookie': s.setCookie });
    }
    const id = await requestIdentity(reg, ctx);
    if (m === 'DELETE') return sendJson(ctx, 200, {}, { ...noStore, 'Set-Cookie': await endSession(reg, id) });
    if (read) {
      const p = id.principal;
      if (p.kind === 'anonymous') return sendJson(ctx, 200, { user: null, auth: reg.auth.enabled }, noStore);
      return sendJson(ctx, 200, { user: p.name, admin: p.kind === 'user' && p.user.admin, auth: reg.auth.enabled, ...(id.session ? { csrf: id.session.csrf, expiresAt: id.session.expiresAt } : {}) }, noStore);
    }
    throw new RegistryError('method-not-allowed', `${m} is not allowed on /kiln/v1/session`, undefined, { Allow: 'GET, POST, DELETE' });
  }
  if (!read) throw new RegistryError('method-not-allowed', `${m} is not allowed on /kiln/v1/${a}`, undefined, { Allow: 'GET' });
  const { principal } = await requestIdentity(reg, ctx);
  const q = query(ctx);
  if (a === 'repositories') return sendJson(ctx, 200, await repositories(reg, principal, q), noStore);
  if (a === 'tags') return sendJson(ctx, 200, await tags(reg, principal, repositoryParam(q), q), noStore);
  if (a === 'search') return sendJson(ctx, 200, await searchAnswer(reg, q, await reg.auth.pullableBy(principal)), noStore);
  if (a === 'sbom') return sendJson(ctx, 200, await sbomPackages(reg, principal, repositoryParam(q), assertDigest(q.get('digest') ?? '')), noStore);
  const reference = q.get('reference');
  if (!reference) throw badRequest('reference: expected a tag or a digest (?reference=latest)');
  if (a === 'layer') return sendJson(ctx, 200, await layerTree(reg, principal, repositoryParam(q), reference, q), noStore);
  if (a === 'lineage') return sendJson(ctx, 200, await lineage(reg, principal, repositoryParam(q), reference), noStore);
  return sendJson(ctx, 200, await image(reg, principal, repositoryParam(q), reference), noStore);
}
