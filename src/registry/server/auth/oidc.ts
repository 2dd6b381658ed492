import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type * as Client from 'openid-client';
import { RegistryError } from '../errors.js';
import type { Metadata, UserRecord } from '../metadata/metadata.js';
import type { AuditLog } from '../audit.js';
import type { Logger } from '../log.js';
import { ProviderUnavailable } from './identity.js';
import { DefaultScopes, isLoopbackUrl, type OidcOptions } from './oidc-options.js';

// Sign-in through an OpenID Provider (issue 21): the authorization code flow of OpenID Connect
// Core 1.0 section 3.1 with PKCE (RFC 7636, S256), by openid-client (panva's certified relying
// party library). A sign-in in progress is a row in the metadata keyed by the SHA-256 of its
// `state`, taken once by the callback (a replayed state finds nothing) and bound to the browser
// that started it by an HttpOnly cookie (a state handed to another browser is refused: login CSRF,
// RFC 9700 section 4.7.1). The ID token's issuer, audience, expiry and nonce are checked, and its
// signature against the provider's JWKS even though it came straight from the token endpoint
// (openid-client's enableNonRepudiationChecks): a token signed by another key is refused.
//
// The provider is asked again about a user once `recheck` has passed since it last vouched for
// them: a refresh token grant (RFC 6749 section 6), whose failure (the user disabled or removed at
// the provider, the grant revoked) refuses their session and CLI secret from then on.

export interface OidcSignIn {
  readonly options: OidcOptions;
  /** Whether the provider's discovery document was read; the error when not (it is retried). */
  status(): Promise<{ available: boolean; error?: string }>;
  /** Start a sign-in: the provider's authorization URL and the value of the browser's binding cookie. */
  begin(next: string): Promise<{ location: string; browser: string; maxAge: number }>;
  /**
   * The provider's redirect back: check it all, create the user at their first sign-in and return
   * them with their groups and the page to show. Every refusal is audited and thrown as a RegistryError.
   */
  complete(query: URLSearchParams, browser: string | undefined, address: string): Promise<{ user: UserRecord; groups: string[]; next: string }>;
  /** What the provider says of the user now: their groups, asking the provider again once `recheck` has passed; or why not. */
  current(user: string): Promise<{ groups: string[] } | { refused: string }>;
}

/** How long a sign-in may take at the provider (the user types a password, maybe a second factor). */
const LoginTtlMs = 10 * 60_000;
/** Discovery that failed is tried again at a sign-in (or the sign-in page's look) at most this often. */
const RetryMs = 1_000;

// Loaded at the first use, so that a registry without auth.oidc (and every other kiln command) never loads it.
let client: typeof Client;
const loadClient = async () => (client ??= await import('openid-client'));

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const sameHash = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** A readable reason from openid-client's and oauth4webapi's errors. */
function describe(e: unknown): string {
  if (!client) return (e as Error)?.message ?? String(e);
  if (e instanceof client.ResponseBodyError) return `${e.error}${e.error_description ? ` (${e.error_description})` : ''}, HTTP ${e.status}`;
  if (e instanceof client.WWWAuthenticateChallengeError) {
    // RFC 6749 section 5.2: a failed client authentication may be a 401 with a challenge.
    const p = e.cause[0]?.parameters;
    return `${p?.error ?? 'refused'}${p?.error_description ? ` (${p.error_description})` : ''}, HTTP ${e.status}`;
  }
  if (e instanceof client.AuthorizationResponseError) return `${e.error}${e.error_description ? ` (${e.error_description})` : ''}`;
  const err = e as Error & { cause?: unknown; code?: string };
  let msg = err?.message ?? String(e);
  const cause = err?.cause as { message?: string; code?: string } | undefined;
  if (cause && typeof cause === 'object' && cause.message && !msg.includes(cause.message)) msg += `: ${cause.code ? `${cause.code} ` : ''}${cause.message}`;
  return msg;
}

/**
 * Whether the provider answered (an error, or a token that fails a check) rather than could not be
 * reached: fetch's TypeError, a timeout, or a response that is no OAuth answer at all (a 502 from a proxy).
 */
const providerAnswered = (e: unknown) =>
  !(e instanceof TypeError) && !(e instanceof client.ClientError && ['OAUTH_TIMEOUT', 'OAUTH_ABORT', 'OAUTH_RESPONSE_IS_NOT_CONFORM'].includes(e.code ?? ''));

/**
 * A user name the registry can carry: in Basic credentials (RFC 7617 section 2: the first colon
 * ends the user-id), in tokens and the audit log, and never one of robot accounts' names.
 */
export function userNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > 256) return 'is longer than 256 characters';
  if (/[\0-\x1f\x7f]/.test(name)) return 'has control characters';
  if (name.includes(':')) return 'has a colon (Basic credentials end the user name at the first one)';
  if (name.trim() !== name) return 'starts or ends with white space';
  if (name.startsWith('robot$')) return 'starts with robot$ (robot accounts are named so)';
  return undefined;
}

/**
 * The refresh token is kept encrypted (AES-256-GCM) under a key derived from the client secret,
 * which lives in the configuration, not the database: a copy of the database alone reveals none
 * (and a refresh token is of no use without the client secret anyway).
 */
function sealer(o: OidcOptions) {
  const key = Buffer.from(hkdfSync('sha256', o.clientSecret, o.issuer, 'kiln oidc refresh token', 32));
  return {
    seal(plain: string): string {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
      return `v1.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(sealed: string): string | undefined {
      const [v, iv, body] = sealed.split('.');
      if (v !== 'v1' || !iv || !body) return undefined;
      try {
        const b = Buffer.from(body, 'base64url');
        const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        d.setAuthTag(b.subarray(b.length - 16));
        return Buffer.concat([d.update(b.subarray(0, b.length - 16)), d.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}

export function oidcSignIn(o: OidcOptions, deps: { metadata: Metadata; audit?: AuditLog; log?: Logger }): OidcSignIn {
  const { metadata } = deps;
  const box = sealer(o);
  let config: Client.Configuration | undefined;
  let lastError: string | undefined;
  let lastTry = 0;
  let discovering: Promise<void> | undefined;

  const tryDiscovery = (): Promise<void> => {
    if (config) return Promise.resolve();
    if (discovering) return discovering;
    if (Date.now() - lastTry < RetryMs) return Promise.resolve();
    lastTry = Date.now();
    discovering = (async () => {
      try {
        await loadClient();
        const execute = [client.enableNonRepudiationChecks, ...(isLoopbackUrl(new URL(o.issuer)) ? [client.allowInsecureRequests] : [])];
        config = await client.discovery(new URL(o.issuer), o.clientId, undefined, client.ClientSecretBasic(o.clientSecret), { timeout: o.timeout, execute });
        lastError = undefined;
        deps.log?.log('info', 'OpenID Provider discovered', { issuer: o.issuer });
      } catch (e) {
        lastError = `discovery at ${o.issuer} failed: ${describe(e)}`;
        deps.log?.log('error', 'the OpenID Provider is unavailable: OIDC sign-ins are refused until discovery succeeds (local users still sign in)', { issuer: o.issuer, error: lastError });
      } finally {
        discovering = undefined;
      }
    })();
    return discovering;
  };
  // At start, in the background: the registry serves while the provider is away.
  void tryDiscovery();

  const discovered = async (): Promise<Client.Configuration> => {
    await tryDiscovery();
    if (!config) throw new RegistryError('unavailable', `${o.name} is unavailable: ${lastError ?? 'discovery in progress'}; try again shortly`, undefined, { 'Retry-After': '5' });
    return config;
  };

  const scopes = (cfg: Client.Configuration): string => {
    const supported = cfg.serverMetadata().scopes_supported;
    // The default's optional scopes only where the provider lists them: an unknown scope may fail the request (RFC 6749 section 4.1.2.1, invalid_scope).
    const list = o.defaultScopes && Array.isArray(supported) ? DefaultScopes.filter((s) => s === 'openid' || supported.includes(s)) : o.scopes;
    return list.join(' ');
  };

  const record = (action: string, actor: string, detail: string, address = '-') => deps.audit?.record({ actor: actor.slice(0, 256) || '-', action, detail: detail.slice(0, 2000), address });

  /** The claims of the ID token, with the UserInfo endpoint's (OpenID Connect Core section 5.3) for those it lacks. */
  const claimsOf = async (cfg: Client.Configuration, tokens: Client.TokenEndpointResponse & Client.TokenEndpointResponseHelpers, subject?: string): Promise<Record<string, unknown> | undefined> => {
    const id = tokens.claims() as Record<string, unknown> | undefined;
    const sub = (id?.sub as string | undefined) ?? subject;
    const wanted = [o.usernameClaim ?? 'preferred_username', o.groupsClaim];
    if (id && wanted.every((c) => c in id)) return id;
    if (!cfg.serverMetadata().userinfo_endpoint || !sub) return id;
    const info = (await client.fetchUserInfo(cfg, tokens.access_token, sub)) as Record<string, unknown>;
    return { ...info, ...(id ?? {}), ...Object.fromEntries(wanted.filter((c) => id?.[c] === undefined && info[c] !== undefined).map((c) => [c, info[c]])) };
  };

  const groupsOf = (claims: Record<string, unknown>): string[] | undefined => {
    const g = claims[o.groupsClaim];
    if (g === undefined) return undefined;
    const list = typeof g === 'string' ? [g] : Array.isArray(g) ? g.filter((x): x is string => typeof x === 'string' && x !== '') : [];
    return [...new Set(list)].sort();
  };

  // One refresh at a time per user: a provider that rotates refresh tokens treats a second use of
  // the old one as theft and revokes the grant (RFC 9700 section 4.14.2).
  const refreshing = new Map<string, Promise<{ groups: string[] } | { refused: string }>>();

  const refresh = async (user: string): Promise<{ groups: string[] } | { refused: string }> => {
    const acct = await metadata.getOidcAccount(user);
    if (!acct) return { refused: 'no OpenID Connect account' };
    const now = Date.now();
    if (now - acct.checkedAt < o.recheck * 1000) return { groups: acct.groups };
    const refuse = async (why: string) => {
      // Forget the refresh token: the next attempt is a sign-in in the web UI, not another refresh.
      await metadata.putOidcAccount({ ...acct, refreshToken: undefined });
      record('sign-in-failed', user, `oidc: ${why}`);
      deps.log?.log('info', 'OIDC user refused at recheck', { user, reason: why });
      return { refused: why };
    };
    if (!acct.refreshToken) return { refused: `${o.name} last vouched for ${user} more than auth.oidc.recheck ago and gave no refresh token: sign in to the web UI again` };
    const rt = box.open(acct.refreshToken);
    if (!rt) return refuse('the stored refresh token cannot be decrypted (auth.oidc.clientSecret changed?): sign in to the web UI again');
    let cfg: Client.Configuration;
    try {
      cfg = await discovered();
    } catch (e) {
      throw new ProviderUnavailable('oidc', (e as Error).message);
    }
    let tokens;
    let claims;
    try {
      tokens = await client.refreshTokenGrant(cfg, rt);
      claims = await claimsOf(cfg, tokens, acct.subject);
    } catch (e) {
      if (!providerAnswered(e)) throw new ProviderUnavailable('oidc', `cannot reach ${o.issuer}: ${describe(e)}`);
      return refuse(`${o.name} refused the refresh: ${describe(e)}`);
    }
    if (claims?.sub !== undefined && claims.sub !== acct.subject) return refuse(`${o.name} answered the refresh for another subject`);
    const groups = (claims && groupsOf(claims)) ?? acct.groups;
    await metadata.putOidcAccount({ ...acct, groups, refreshToken: box.seal(tokens.refresh_token ?? rt), checkedAt: Date.now() });
    return { groups };
  };

  return {
    options: o,

    async status() {
      await tryDiscovery();
      return config ? { available: true } : { available: false, error: lastError ?? 'discovery in progress' };
    },

    async begin(next) {
      const cfg = await discovered();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const verifier = client.randomPKCECodeVerifier();
      const browser = randomBytes(32).toString('base64url');
      const now = Date.now();
      await metadata.putOidcLogin({ stateHash: sha256(state), browserHash: sha256(browser), nonce, verifier, next, createdAt: now, expiresAt: now + LoginTtlMs });
      const scope = scopes(cfg);
      const params: Record<string, string> = {
        redirect_uri: o.redirectUrl,
        scope,
        state,
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      };
      // OpenID Connect Core section 11: a refresh token for offline_access needs prompt=consent.
      if (scope.split(' ').includes('offline_access')) params.prompt = 'consent';
      return { location: client.buildAuthorizationUrl(cfg, params).href, browser, maxAge: LoginTtlMs / 1000 };
    },

    async complete(query, browser, address) {
      let actor = '-';
      const fail = (reason: 'bad-request' | 'unauthorized' | 'denied' | 'unavailable', why: string): RegistryError => {
        record('sign-in-failed', actor, `oidc: ${why}`, address);
        deps.log?.log('info', 'OIDC sign-in refused', { user: actor, reason: why });
        return new RegistryError(reason, why);
      };
      const state = query.get('state');
      if (!state) throw fail('bad-request', 'the callback carries no state: start the sign-in again');
      const login = await metadata.takeOidcLogin(sha256(state), Date.now());
      if (!login) throw fail('bad-request', 'unknown state (forged, already used or expired): start the sign-in again');
      if (!browser || !sameHash(sha256(browser), login.browserHash)) throw fail('bad-request', 'the state was issued to another browser: start the sign-in again');
      if (query.get('error')) throw fail('unauthorized', `${o.name} refused the sign-in: ${query.get('error')}${query.get('error_description') ? ` (${query.get('error_description')})` : ''}`);
      const cfg = await discovered().catch((e: RegistryError) => {
        throw fail('unavailable', e.message);
      });
      const callback = new URL(o.redirectUrl);
      callback.search = query.toString();
      let tokens;
      let claims;
      try {
        tokens = await client.authorizationCodeGrant(cfg, callback, { pkceCodeVerifier: login.verifier, expectedState: state, expectedNonce: login.nonce, idTokenExpected: true });
        claims = await claimsOf(cfg, tokens);
      } catch (e) {
        if (!providerAnswered(e)) throw fail('unavailable', `cannot reach ${o.issuer}: ${describe(e)}`);
        throw fail('unauthorized', `${o.name}'s answer is refused: ${describe(e)}`);
      }
      if (!claims) throw fail('unauthorized', `${o.name} sent no ID token`);
      const sub = String(claims.sub);
      const raw = o.usernameClaim ? claims[o.usernameClaim] : (claims.preferred_username ?? claims.sub);
      if (typeof raw !== 'string') throw fail('unauthorized', `the ID token has no string claim ${o.usernameClaim ?? 'preferred_username or sub'} (auth.oidc.usernameClaim)`);
      const name = raw.normalize('NFC');
      actor = name;
      const problem = userNameProblem(name);
      if (problem) throw fail('denied', `the user name ${JSON.stringify(name.slice(0, 256))} from claim ${o.usernameClaim ?? 'preferred_username'} ${problem}`);
      const groups = groupsOf(claims) ?? [];
      let user = await metadata.getUser(name);
      if (user && user.provider !== 'oidc') throw fail('denied', `${name} is ${user.provider ? `a user of ${user.provider}` : 'a local user'}, not one of ${o.name}`);
      const acct = await metadata.getOidcAccount(name);
      if (user && acct && acct.subject !== sub) throw fail('denied', `${name} is another account of ${o.name} (subject ${acct.subject}, not ${sub})`);
      const created = !user;
      if (!user) {
        if (!o.autoOnboard) throw fail('denied', `${name} has no account in the registry and auth.oidc.autoOnboard is false: an administrator adds it first (kiln registry oidc add-user)`);
        user = { name, passwordHash: '', admin: false, createdAt: Date.now(), provider: 'oidc' };
        await metadata.putUser(user);
      }
      await metadata.putOidcAccount({ user: name, subject: sub, groups, refreshToken: tokens.refresh_token ? box.seal(tokens.refresh_token) : undefined, checkedAt: Date.now() });
      // What is left from before the user was deleted (user del) keeps no CLI secret.
      if (created && acct?.secretHash) await metadata.setCliSecret(name, undefined, Date.now());
      record('sign-in', name, `oidc${groups.length ? `, groups ${groups.join(', ')}` : ''}`, address);
      return { user, groups, next: login.next };
    },

    current(user) {
      let p = refreshing.get(user);
      if (!p) {
        p = refresh(user).finally(() => refreshing.delete(user));
        refreshing.set(user, p);
      }
      return p;
    },
  };
}
