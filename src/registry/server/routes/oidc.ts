import type { Registry } from '../registry.js';
import { query, sendJson, type Ctx } from '../http.js';
import { RegistryError, badRequest, denied } from '../errors.js';
import { statusOf } from '../http.js';
import { requestIdentity, secureCookies, startSession } from '../sessions.js';
import { isSystemAdmin } from '../auth/access.js';

// OpenID Connect sign-in and CLI secrets under /kiln/v1/ (issue 21; docs/registry.md, "OpenID Connect"):
//   GET    /kiln/v1/oidc                   {"configured","name","available","error"}: for the sign-in page
//   GET    /kiln/v1/oidc/login?next=PATH   302 to the provider (a browser navigation); sets the binding cookie
//   GET    /kiln/v1/oidc/callback          the provider's redirect back: 303 to PATH with the session cookie
//   GET    /kiln/v1/cli-secret             {"user","provider","exists","createdAt"} of the caller
//   POST   /kiln/v1/cli-secret             make (or replace) the caller's secret: {"secret","createdAt"}, shown once
//   DELETE /kiln/v1/cli-secret[?user=NAME] revoke the caller's (a system administrator: anyone's)
// POST and DELETE of the caller's own secret need a web UI session (and its CSRF token): a leaked
// CLI secret cannot be used to replace itself.

const BindingCookie = 'kiln_oidc';
const noStore = { 'Cache-Control': 'no-store' };

export function isOidcRoute(parts: string[]): boolean {
  return (parts[0] === 'oidc' && parts.length <= 2) || (parts[0] === 'cli-secret' && parts.length === 1);
}

function bindingCookie(ctx: Ctx): string | undefined {
  for (const part of (ctx.req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === BindingCookie) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The callback and the login redirect are browser navigations, so a refusal is a page (a script
 * asking for JSON gets the usual error body); it says why and links back to the sign-in page.
 */
function sendFailure(ctx: Ctx, e: unknown, clear?: string): void {
  if (!(e instanceof RegistryError)) throw e;
  if ((ctx.req.headers.accept ?? '').includes('application/json')) throw e;
  const { status } = statusOf(e);
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head><body><h1>Sign-in failed</h1><p role="alert">${escapeHtml(e.message)}</p><p><a href="/ui/sign-in">Back to the sign-in page</a></p></body></html>`;
  ctx.res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Content-Security-Policy': "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    ...noStore,
    ...(clear ? { 'Set-Cookie': clear } : {}),
    ...e.headers,
  });
  ctx.res.end(body);
  ctx.bytesOut += Buffer.byteLength(body);
}

/** A page of the registry to go to after the sign-in: a path, never another site (//host, /\host). */
const safeNext = (next: string | null): string => (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') && !/[\0-\x1f]/.test(next) ? next : '/');

export async function oidcRoutes(reg: Registry, ctx: Ctx, parts: string[]): Promise<void> {
  const m = ctx.method;
  const addr = ctx.req.socket.remoteAddress ?? '-';
  const cookie = (value: string, maxAge: number) => `${BindingCookie}=${value}; Path=/kiln/v1/oidc; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secureCookies(reg) ? '; Secure' : ''}`;
  if (parts[0] === 'oidc') {
    if (m !== 'GET' && m !== 'HEAD') throw new RegistryError('method-not-allowed', `${m} is not allowed on /kiln/v1/${parts.join('/')}`, undefined, { Allow: 'GET' });
    const oidc = reg.oidc;
    if (parts.length === 1) {
      if (!oidc) return sendJson(ctx, 200, { configured: false }, noStore);
      const s = await oidc.status();
      return sendJson(ctx, 200, { configured: true, name: oidc.options.name, ...s }, noStore);
    }
    if (!oidc) throw new RegistryError('not-found', 'OpenID Connect is not configured (auth.oidc)');
    if (parts[1] === 'login') {
      try {
        const started = await oidc.begin(safeNext(query(ctx).get('next')));
        ctx.res.writeHead(302, { Location: started.location, 'Set-Cookie': cookie(started.browser, started.maxAge), ...noStore, 'Content-Length': 0 });
        ctx.res.end();
        return;
      } catch (e) {
        return sendFailure(ctx, e);
      }
    }
    if (parts[1] === 'callback') {
      const clear = cookie('', 0);
      try {
        const done = await oidc.complete(query(ctx), bindingCookie(ctx), addr);
        ctx.user = done.user.name;
        const s = await startSession(reg, done.user.name);
        ctx.res.writeHead(303, { Location: done.next, 'Set-Cookie': [s.setCookie, clear], ...noStore, 'Content-Length': 0 });
        ctx.res.end();
        return;
      } catch (e) {
        return sendFailure(ctx, e, clear);
      }
    }
    throw new RegistryError('not-found', `no such endpoint: /kiln/v1/${parts.join('/')}`);
  }

  // cli-secret
  const id = await requestIdentity(reg, ctx);
  const p = id.principal;
  if (p.kind !== 'user') throw new RegistryError('unauthorized', 'sign in first');
  const other = query(ctx).get('user');
  if (m === 'GET' || m === 'HEAD') {
    const name = other ?? p.name;
    if (name !== p.name && !isSystemAdmin(p)) throw denied('only a system administrator sees another user\'s CLI secret status');
    const u = name === p.name ? p.user : await reg.metadata.getUser(name);
    if (!u) throw badRequest(`no such user: ${name}`);
    return sendJson(ctx, 200, { user: u.name, provider: u.provider ?? 'local', ...(await reg.cliSecrets.status(u.name)) }, noStore);
  }
  if (m === 'DELETE' && other !== null && other !== p.name) {
    if (!isSystemAdmin(p)) throw denied('only a system administrator revokes another user\'s CLI secret');
    await reg.cliSecrets.revoke(other, p.name, addr);
    return sendJson(ctx, 200, {}, noStore);
  }
  if (m !== 'POST' && m !== 'DELETE') throw new RegistryError('method-not-allowed', `${m} is not allowed on /kiln/v1/cli-secret`, undefined, { Allow: 'GET, POST, DELETE' });
  if (!id.session) throw denied('a CLI secret is made and revoked from a web UI session (sign in to the web UI), not with credentials sent by a client');
  if (m === 'DELETE') {
    await reg.cliSecrets.revoke(p.name, p.name, addr);
    return sendJson(ctx, 200, {}, noStore);
  }
  const made = await reg.cliSecrets.create(p.name, p.name, addr);
  return sendJson(ctx, 200, { user: p.name, ...made }, noStore);
}
