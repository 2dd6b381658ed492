import type { Credential } from './credentials.js';
import { readBody, sendWithRetry, type RetryPolicy } from './http.js';
import { RegistryUnauthorized, RegistryRequestFailed } from './errors.js';

// Docker registry authentication (distribution docs/spec/auth/token.md and oauth.md):
// a 401 carries `WWW-Authenticate: Bearer realm=…,service=…,scope=…` → ask the realm for a token
// (Basic credentials, or anonymously; an identity token is exchanged by the OAuth2 refresh grant),
// then send `Authorization: Bearer <token>`. `WWW-Authenticate: Basic` → send the credentials as they are.

export interface Challenge {
  scheme: 'bearer' | 'basic';
  realm?: string;
  service?: string;
  scope?: string;
}

/** RFC 9110 11.6.1: the first challenge of a WWW-Authenticate header, with its quoted parameters. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme, realm: params.realm, service: params.service, scope: params.scope };
}

export interface Token {
  value: string;
  /** ms since the epoch after which the token is not used any more. */
  expires: number;
}

/** Ask the token endpoint for a token covering `scopes`. */
export async function fetchToken(challenge: Challenge, scopes: string[], cred: Credential | undefined, host: string, retry: RetryPolicy): Promise<Token> {
  if (!challenge.realm) throw new RegistryRequestFailed(`${host}: Bearer challenge without a realm`);
  let realm: URL;
  try {
    realm = new URL(challenge.realm);
  } catch {
    throw new RegistryRequestFailed(`${host}: Bearer challenge with an invalid realm "${challenge.realm.slice(0, 200)}"`);
  }
  let res;
  if (cred?.identityToken) {
    // oauth.md: an identity token (refresh token) is exchanged with a POST, never sent in a URL.
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.secret, client_id: 'kiln', service: challenge.service ?? '' });
    if (scopes.length) form.set('scope', scopes.join(' '));
    const body = Buffer.from(form.toString());
    res = await sendWithRetry({ method: 'POST', url: realm, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length) }, body: () => body }, retry);
  } else {
    if (challenge.service) realm.searchParams.set('service', challenge.service);
    for (const s of scopes) realm.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (cred) {
      realm.searchParams.set('account', cred.username);
      headers.authorization = basicHeader(cred);
    }
    res = await sendWithRetry({ method: 'GET', url: realm, headers }, retry);
  }
  const text = (await readBody(res, 1 << 20)).toString('utf8');
  if (res.status === 401 || res.status === 403) {
    throw new RegistryUnauthorized(cred ? `${host}: unauthorized: incorrect username or password` : `${host}: unauthorized: authentication required (kiln login ${host})`);
  }
  if (res.status !== 200) throw new RegistryRequestFailed(`${host}: token endpoint answered ${res.status}${errorSummary(text)}`, res.status);
  let doc: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RegistryRequestFailed(`${host}: token endpoint answered something that is not JSON`);
  }
  const value = doc.token ?? doc.access_token;
  if (!value) throw new RegistryRequestFailed(`${host}: token endpoint answered without a token`);
  // token.md: expires_in defaults to 60 seconds; keep a margin so a token never expires in flight.
  const lifetime = (typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60) * 1000;
  const issued = doc.issued_at ? Date.parse(doc.issued_at) : NaN;
  const start = Number.isFinite(issued) && issued <= Date.now() ? issued : Date.now();
  return { value, expires: start + lifetime - Math.min(10_000, lifetime / 4) };
}

export function basicHeader(cred: Credential): string {
  return 'Basic ' + Buffer.from(`${cred.username}:${cred.secret}`).toString('base64');
}

/** ": CODE message" from a distribution-spec error body, or "" when there is none. */
export function errorSummary(text: string): string {
  try {
    const doc = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[]; details?: string };
    const e = doc.errors?.[0];
    if (e) return `: ${[e.code, e.message].filter(Boolean).join(' ')}`;
    if (typeof doc.details === 'string') return `: ${doc.details}`;
  } catch {
    /* not JSON */
  }
  const line = text.trim().split('\n')[0]?.slice(0, 200);
  return line ? `: ${line}` : '';
}
