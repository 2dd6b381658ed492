import { UsageError } from '../../../errors.js';
import { parseDuration } from '../config.js';

// auth.oidc in the registry's configuration (docs/registry.md, "OpenID Connect"), checked at
// start so that a mistake names its key instead of failing at the first sign-in.

export interface OidcOptions {
  /** The provider's issuer URL; discovery reads <issuer>/.well-known/openid-configuration. */
  issuer: string;
  /** Shown on the sign-in page ("Sign in with …"); default: the issuer's host. */
  name: string;
  clientId: string;
  clientSecret: string;
  /** Scopes asked for; the default's optional ones (groups, offline_access) only when the provider lists them. */
  scopes: string[];
  /** Whether `scopes` is the default (then the provider's scopes_supported trims it). */
  defaultScopes: boolean;
  /** The claim that names the user; default preferred_username, else sub. */
  usernameClaim?: string;
  groupsClaim: string;
  /** <registry>/kiln/v1/oidc/callback, as registered at the provider. */
  redirectUrl: string;
  /** Create a user at their first sign-in; false: only users that already have a record sign in. */
  autoOnboard: boolean;
  /** Seconds a sign-in (web session or CLI secret) is trusted before the provider is asked again (refresh). */
  recheck: number;
  /** Seconds for each request to the provider. */
  timeout: number;
}

export const DefaultScopes = ['openid', 'profile', 'email', 'groups', 'offline_access'];
export const CallbackPath = '/kiln/v1/oidc/callback';

/** http:// only for a provider on this machine (tests, a sidecar); anywhere else the code and tokens would cross the network in the clear. */
export function isLoopbackUrl(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

type Obj = Record<string, unknown>;
const Keys = ['issuer', 'name', 'clientId', 'clientSecret', 'scopes', 'usernameClaim', 'groupsClaim', 'redirectUrl', 'autoOnboard', 'recheck', 'timeout'];

/** Parse auth.oidc; `publicUrl` (http.publicUrl) gives redirectUrl's default. */
export function parseOidcOptions(v: unknown, publicUrl: string | undefined): OidcOptions {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('auth.oidc: expected a mapping');
  const o = v as Obj;
  for (const k of Object.keys(o)) if (!Keys.includes(k)) throw new UsageError(`auth.oidc.${k}: unknown setting (known: ${Keys.join(', ')})`);
  const str = (k: string, required: boolean): string | undefined => {
    const x = o[k];
    if (x === undefined) {
      if (required) throw new UsageError(`auth.oidc.${k}: required`);
      return undefined;
    }
    if (typeof x !== 'string' || x === '') throw new UsageError(`auth.oidc.${k}: expected a string`);
    return x;
  };
  const url = (k: string, s: string): URL => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new UsageError(`auth.oidc.${k}: "${s}" is not a URL`);
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackUrl(u))) throw new UsageError(`auth.oidc.${k}: "${s}" must be https:// (http:// only on loopback)`);
    if (u.search || u.hash) throw new UsageError(`auth.oidc.${k}: "${s}" must have no query or fragment`);
    return u;
  };
  const issuer = str('issuer', true)!;
  const issuerUrl = url('issuer', issuer);
  let redirect = str('redirectUrl', false);
  if (redirect === undefined) {
    if (!publicUrl) throw new UsageError(`auth.oidc.redirectUrl: required (the registry's ${CallbackPath}, as registered at the provider) unless http.publicUrl is set`);
    redirect = publicUrl + CallbackPath;
  }
  const redirectUrl = url('redirectUrl', redirect);
  if (redirectUrl.pathname !== CallbackPath) throw new UsageError(`auth.oidc.redirectUrl: "${redirect}" must end in ${CallbackPath} (the registry's callback)`);
  let scopes = DefaultScopes;
  if (o.scopes !== undefined) {
    const s = o.scopes;
    const list = typeof s === 'string' ? s.split(/\s+/).filter(Boolean) : Array.isArray(s) && s.every((x) => typeof x === 'string' && x !== '' && !/\s/.test(x)) ? (s as string[]) : undefined;
    if (!list) throw new UsageError('auth.oidc.scopes: expected a list of scope names (or one string with spaces between them)');
    if (!list.includes('openid')) throw new UsageError('auth.oidc.scopes: must include openid (OpenID Connect Core 1.0 section 3.1.2.1)');
    scopes = list;
  }
  let autoOnboard = true;
  if (o.autoOnboard !== undefined) {
    if (typeof o.autoOnboard !== 'boolean') throw new UsageError('auth.oidc.autoOnboard: expected true or false');
    autoOnboard = o.autoOnboard;
  }
  const recheck = o.recheck === undefined ? 3600 : parseDuration(o.recheck, 'auth.oidc.recheck');
  if (recheck <= 0) throw new UsageError('auth.oidc.recheck: expected more than 0');
  const timeout = o.timeout === undefined ? 10 : parseDuration(o.timeout, 'auth.oidc.timeout');
  if (timeout <= 0) throw new UsageError('auth.oidc.timeout: expected more than 0');
  const usernameClaim = str('usernameClaim', false);
  return {
    issuer,
    name: str('name', false) ?? issuerUrl.host,
    clientId: str('clientId', true)!,
    clientSecret: str('clientSecret', true)!,
    scopes,
    defaultScopes: o.scopes === undefined,
    ...(usernameClaim ? { usernameClaim } : {}),
    groupsClaim: str('groupsClaim', false) ?? 'groups',
    redirectUrl: redirectUrl.href,
    autoOnboard,
    recheck,
    timeout,
  };
}
