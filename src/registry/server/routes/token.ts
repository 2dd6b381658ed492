import type { Registry } from '../registry.js';
import { query, readBody, sendJson, mediaTypeOf, type Ctx } from '../http.js';
import { badRequest, RegistryError } from '../errors.js';
import { parseBasic } from '../auth/auth.js';
import type { Principal } from '../auth/access.js';
import { TokenInvalid } from '../auth/tokens.js';

// The token endpoint of Docker registry token authentication (distribution docs/spec/auth/token.md):
// GET with optional Basic credentials and scope= parameters; and the OAuth2 form (oauth.md):
// POST grant_type=password or grant_type=refresh_token. Only actions the principal is allowed are granted.

function checkService(reg: Registry, service: string | null): void {
  if (service !== null && service !== '' && service !== reg.config.auth.service) throw badRequest(`unknown service "${service.slice(0, 100)}"`);
}

async function principalFromRefresh(reg: Registry, token: string): Promise<Principal> {
  const invalid = () => new RegistryError('unauthorized', 'invalid refresh token');
  let claims;
  try {
    claims = await reg.auth.tokens.verify(token);
  } catch (e) {
    if (e instanceof TokenInvalid) throw invalid();
    throw e;
  }
  if (!claims.refresh) throw invalid();
  const p = await reg.auth.renew(claims.sub);
  if (!p) throw invalid();
  return p;
}

export async function token(reg: Registry, ctx: Ctx): Promise<void> {
  const ttl = reg.config.auth.tokenExpiration;
  if (ctx.method === 'GET') {
    const q = query(ctx);
    checkService(reg, q.get('service'));
    const creds = parseBasic(ctx.req.headers.authorization);
    const p: Principal = creds ? await reg.auth.login(ctx, creds.name, creds.password) : { kind: 'anonymous', name: 'anonymous' };
    ctx.user = p.name;
    const scopes = q.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const access = await reg.auth.grantScopes(p, scopes);
    const t = await reg.auth.tokens.issue(p.name, access, ttl, false, await reg.auth.tokenGroups(p));
    const out: Record<string, unknown> = { token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt };
    if (q.get('offline_token') === 'true' && p.kind !== 'anonymous') out.refresh_token = (await reg.auth.tokens.issue(p.name, [], reg.config.auth.refreshTokenExpiration, true)).token;
    sendJson(ctx, 200, out, { 'Cache-Control': 'no-store' });
    return;
  }
  // POST: application/x-www-form-urlencoded (RFC 6749 4.3 and 6).
  if (mediaTypeOf(ctx.req.headers['content-type']) !== 'application/x-www-form-urlencoded') throw badRequest('expected an application/x-www-form-urlencoded body');
  const form = new URLSearchParams((await readBody(ctx, 64 * 1024, () => badRequest('form too large'))).toString('utf8'));
  checkService(reg, form.get('service'));
  const grantType = form.get('grant_type');
  let p: Principal;
  let refresh: string | undefined;
  if (grantType === 'password') {
    const name = form.get('username') ?? '';
    p = await reg.auth.login(ctx, name, form.get('password') ?? '');
    if (form.get('access_type') === 'offline') refresh = (await reg.auth.tokens.issue(p.name, [], reg.config.auth.refreshTokenExpiration, true)).token;
  } else if (grantType === 'refresh_token') {
    const rt = form.get('refresh_token') ?? '';
    p = await principalFromRefresh(reg, rt);
    refresh = rt;
  } else {
    throw badRequest(`unsupported grant_type "${(grantType ?? '').slice(0, 50)}": password or refresh_token`);
  }
  ctx.user = p.name;
  const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
  const access = await reg.auth.grantScopes(p, scopes);
  const t = await reg.auth.tokens.issue(p.name, access, ttl, false, await reg.auth.tokenGroups(p));
  const scopeOut = access.filter((a) => a.actions.length).map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' ');
  sendJson(
    ctx,
    200,
    { access_token: t.token, token_type: 'Bearer', expires_in: t.expiresIn, issued_at: t.issuedAt, scope: scopeOut, ...(refresh ? { refresh_token: refresh } : {}) },
    { 'Cache-Control': 'no-store' },
  );
}
