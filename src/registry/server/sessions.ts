import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Registry } from './registry.js';
import type { Ctx } from './http.js';
import { RegistryError, denied } from './errors.js';
import type { Principal } from './auth/access.js';
import { ProviderUnavailable } from './auth/identity.js';

// Web UI sessions (issue 20). Signing in with the registry's users (the same password check and
// login rate limit as /token, Auth.login) gives a cookie holding a random id; the database keeps
// only the id's SHA-256 with the user, an expiry and a CSRF token, so every replica knows the
// session and a copy of the database signs no one in.
//
// Cookie: HttpOnly (page scripts never see it), SameSite=Lax (other sites' subrequests and POSTs
// do not carry it), Secure when the registry is reached over TLS, Path=/.
// CSRF: a request authenticated by the cookie that changes anything (not GET or HEAD) must carry
// the session's token in X-Kiln-CSRF. Another site's page cannot read the token (no CORS on the
// registry) and cannot set a custom header on a cross-site request without a CORS preflight the
// registry refuses. Requests with an Authorization header (Bearer or Basic) are not authenticated
// by the cookie at all, so scripts need no token.

export const SessionCookie = 'kiln_session';
export const CsrfHeader = 'x-kiln-csrf';
/** How long a sign-in lasts; the page signs in again after it. */
export const SessionLifetimeMs = 12 * 3600_000;

const hashId = (id: string) => createHash('sha256').update(id).digest('hex');

/** The session cookie's value, if the request carries one (RFC 6265 section 5.4 cookie-string). */
export function sessionCookie(ctx: Ctx): string | undefined {
  const h = ctx.req.headers.cookie;
  if (!h) return undefined;
  for (const part of h.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SessionCookie) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** Cookies get Secure when the registry is reached over TLS. */
export const secureCookies = (reg: Registry) => !!reg.config.http.tls || !!reg.config.http.publicUrl?.startsWith('https:');

function cookie(reg: Registry, value: string, maxAgeSeconds: number): string {
  return `${SessionCookie}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secureCookies(reg) ? '; Secure' : ''}`;
}

/** A request's principal with the session it came from, when it came from one. */
export interface RequestIdentity {
  principal: Principal;
  session?: { user: string; csrf: string; expiresAt: number; idHash: string };
}

/**
 * Who sent the request: credentials in Authorization (Auth.principal) win and never need a CSRF
 * token; else the session cookie, whose state-changing requests must carry the CSRF token (403
 * otherwise); else anonymous. An unknown or expired cookie on a state-changing request is 401.
 */
export async function requestIdentity(reg: Registry, ctx: Ctx): Promise<RequestIdentity> {
  if (ctx.req.headers.authorization) return { principal: await reg.auth.principal(ctx) };
  const id = sessionCookie(ctx);
  const unsafe = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  const anonymous: RequestIdentity = { principal: { kind: 'anonymous', name: 'anonymous' } };
  if (!id) return anonymous;
  const s = await reg.metadata.getSession(hashId(id), Date.now());
  const user = s ? await reg.metadata.getUser(s.user) : undefined;
  const groups = s && user?.provider ? await providerGroups(reg, user.name, user.provider) : undefined;
  if (!s || !user || groups === false) {
    if (s && groups === false) await reg.metadata.deleteSession(s.idHash);
    if (unsafe) throw new RegistryError('unauthorized', 'the session has expired: sign in again');
    return anonymous;
  }
  if (unsafe) {
    const sent = ctx.req.headers[CsrfHeader];
    const ok = typeof sent === 'string' && sent.length === s.csrf.length && timingSafeEqual(Buffer.from(sent), Buffer.from(s.csrf));
    if (!ok) throw denied(`a request signed in by the session cookie must carry the session's CSRF token in ${CsrfHeader}`);
  }
  ctx.user = user.name;
  return { principal: { kind: 'user', name: user.name, user, ...(groups ? { groups } : {}) }, session: { user: user.name, csrf: s.csrf, expiresAt: s.expiresAt, idHash: s.idHash } };
}

/**
 * The groups a provider's user is in now, so that group bindings count in the web UI as they do for
 * tokens: a directory (LDAP) is asked at each request, as /token asks it; false when the provider
 * no longer knows the user, which ends the session.
 */
async function providerGroups(reg: Registry, user: string, provider: string): Promise<readonly string[] | false> {
  if (provider === 'oidc') return oidcGroups(reg, user);
  const p = await reg.auth.renew(user);
  return p?.kind === 'user' ? (p.groups ?? []) : false;
}

/**
 * An OpenID Provider's user's groups, with the provider asked again once auth.oidc.recheck has
 * passed (auth/oidc.ts); false when it no longer vouches for them, which ends the session.
 */
async function oidcGroups(reg: Registry, user: string): Promise<readonly string[] | false> {
  if (!reg.oidc) return false;
  try {
    const now = await reg.oidc.current(user);
    return 'refused' in now ? false : now.groups;
  } catch (e) {
    if (e instanceof ProviderUnavailable) throw new RegistryError('unavailable', `cannot check the session now: ${e.message}`, undefined, { 'Retry-After': '5' });
    throw e;
  }
}

/** Start a session for a user who just signed in; returns the Set-Cookie header and the CSRF token. */
export async function startSession(reg: Registry, user: string): Promise<{ setCookie: string; csrf: string; expiresAt: number }> {
  const now = Date.now();
  // Expired sessions go on each sign-in: the table holds at most a lifetime's sign-ins.
  await reg.metadata.purgeSessions(now);
  const id = randomBytes(32).toString('base64url');
  const csrf = randomBytes(32).toString('base64url');
  const expiresAt = now + SessionLifetimeMs;
  await reg.metadata.putSession({ idHash: hashId(id), user, csrf, createdAt: now, expiresAt });
  return { setCookie: cookie(reg, id, Math.floor(SessionLifetimeMs / 1000)), csrf, expiresAt };
}

/** End the request's session (if any); returns the Set-Cookie header that clears the cookie. */
export async function endSession(reg: Registry, identity: RequestIdentity): Promise<string> {
  if (identity.session) await reg.metadata.deleteSession(identity.session.idHash);
  return cookie(reg, '', 0);
}
