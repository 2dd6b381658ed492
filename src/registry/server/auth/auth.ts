import type { Ctx } from '../http.js';
import { baseUrl } from '../http.js';
import { RegistryError, denied } from '../errors.js';
import { namespaceOf } from '../names.js';
import type { Metadata } from '../metadata/metadata.js';
import type { RegistryConfig } from '../config.js';
import { Actions, allowedActions, grant, isSystemAdmin, parseScope, type Action, type Principal } from './access.js';
import { robotSecretMatches } from './passwords.js';
import { loginLimiter } from './ratelimit.js';
import { isRefusal, localUsers, ProviderUnavailable, type IdentityProvider } from './identity.js';
import { boundGroups, effectiveRole, effectiveRoles, groupRoleIn } from './groups.js';
import type { AuditLog } from '../audit.js';
import type { Logger } from '../log.js';
import { TokenInvalid, type AccessEntry, type TokenAuthority, type TokenClaims } from './tokens.js';

// Authentication and authorization of requests. With auth on, every /v2/ request carries a Bearer
// token from our token endpoint (Docker registry token authentication: 401 + WWW-Authenticate
// challenge, the client fetches a token for the scope, retries). A token is verified once and then
// remembered until it expires, so the hot path never touches the database.

export interface Auth {
  readonly enabled: boolean;
  /**
   * Throw the 401 challenge unless the request may take all `actions` on the repository; records the user in ctx.
   * `wanted`: access the request can use but does without (a mount's source repository), named in the
   * challenge beside the required scope so that a client asks for it in the same token.
   */
  require(ctx: Ctx, repository: string, actions: Action[], opts?: { denyWhenAuthenticated?: boolean; wanted?: WantedAccess[] }): Promise<void>;
  /** Same check without throwing. */
  may(ctx: Ctx, repository: string, action: Action): Promise<boolean>;
  /** /v2/ and /v2/_catalog: any valid credentials (when auth is on). */
  requireAuthenticated(ctx: Ctx, scope?: string): Promise<void>;
  /** Which repositories the request's principal may pull (all when auth is off): for listings such as the catalog and search. */
  pullable(ctx: Ctx): Promise<(repository: string) => boolean>;
  /** The same for a principal the caller authenticated itself (a web UI session). */
  pullableBy(p: Principal): Promise<(repository: string) => boolean>;
  /** Who sent the request (Basic or Bearer), for the management API and the catalog; anonymous when no credentials. */
  principal(ctx: Ctx): Promise<Principal>;
  /** The repository actions a principal's roles allow (all when auth is off), for callers that authenticated it themselves. */
  actionsFor(p: Principal, repository: string): Promise<Action[]>;
  /** Check a user name and password (or robot name and secret), rate-limited; throws 401 or 429. */
  login(ctx: Ctx, name: string, password: string): Promise<Principal>;
  /** The access a principal gets for requested scopes (token endpoint). */
  grantScopes(p: Principal, scopes: string[]): Promise<AccessEntry[]>;
  /**
   * The principal a refresh token names, as it is now: the account must still exist, and a user
   * of an identity provider must still be known to it, with the groups it says now; undefined when not.
   */
  renew(name: string): Promise<Principal | undefined>;
  /** The groups to carry in the principal's access tokens (those with a role somewhere). */
  tokenGroups(p: Principal): Promise<string[]>;
  readonly tokens: TokenAuthority;
}

/** Access on another repository that a request uses when it has it, e.g. pull on a mount's `from`. */
export interface WantedAccess {
  repository: string;
  actions: Action[];
}

export function parseBasic(header: string | undefined): { name: string; password: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const raw = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = raw.indexOf(':');
  if (colon < 0) return undefined;
  return { name: raw.slice(0, colon), password: raw.slice(colon + 1) };
}

/**
 * `providers`: identity providers after the local users, in order (LDAP). Local users come first,
 * so a local name is never taken by a directory's user and a local administrator signs in while
 * a directory is down.
 */
export function createAuth(
  config: RegistryConfig,
  metadata: Metadata,
  tokens: TokenAuthority,
  opts: { providers?: IdentityProvider[]; audit?: AuditLog; log?: Logger } = {},
): Auth {
  const limiter = loginLimiter(metadata, config.auth.rateLimit.failures, config.auth.rateLimit.window);
  const providers = [localUsers(metadata), ...(opts.providers ?? [])];
  const tls = !!config.http.tls;

  // Several scopes go in one scope parameter, separated by spaces (RFC 6750 section 3), as
  // Distribution writes them (registry/auth/token/accesscontroller.go, scopeParam).
  const challenge = (ctx: Ctx, scopes: string | string[] | undefined, error?: string): RegistryError => {
    const list = scopes === undefined ? [] : typeof scopes === 'string' ? [scopes] : scopes;
    const realm = config.auth.realm ?? `${baseUrl(ctx, config.http.publicUrl, tls)}/token`;
    let h = `Bearer realm="${realm}",service="${config.auth.service}"`;
    if (list.length) h += `,scope="${list.join(' ')}"`;
    if (error) h += `,error="${error}"`;
    const detail = list.map((s) => {
      const [Type, Name, Action] = s.split(':');
      return { Type, Name, Action };
    });
    return new RegistryError('unauthorized', 'authentication required', detail.length ? detail : undefined, { 'WWW-Authenticate': h });
  };

  const bearer = (ctx: Ctx): string | undefined => {
    const h = ctx.req.headers.authorization;
    return h && h.length > 7 && (h.charCodeAt(0) === 66 || h.charCodeAt(0) === 98) && /^bearer /i.test(h) ? h.slice(7).trim() : undefined;
  };

  const verifyBearer = async (token: string): Promise<TokenClaims | undefined> => {
    try {
      const c = await tokens.verify(token);
      return c.refresh ? undefined : c;
    } catch (e) {
      if (e instanceof TokenInvalid) return undefined;
      throw e;
    }
  };

  const tokenAllows = (c: TokenClaims, repository: string, actions: Action[]): boolean => {
    for (const a of c.access) {
      if (a.type === 'repository' && a.name === repository && actions.every((x) => a.actions.includes(x) || a.actions.includes('*'))) return true;
    }
    return false;
  };

  /**
   * Ask the providers in turn; the first that knows the name decides. Failures are always audited;
   * a success only when `auditSuccess` (a token or web sign-in): Basic credentials on every /v2/
   * request would otherwise add a row per request.
   */
  const signIn = async (address: string, name: string, password: string, auditSuccess: boolean): Promise<Principal | undefined> => {
    const record = (action: string, actor: string, detail: string) => opts.audit?.record({ actor: actor.slice(0, 256), action, detail, address });
    for (const provider of providers) {
      let v;
      try {
        v = await provider.authenticate(name, password);
      } catch (e) {
        if (!(e instanceof ProviderUnavailable)) throw e;
        // Never a fallback to accepting: the sign-in fails, and says why, until the provider answers.
        opts.log?.log('error', 'sign-in refused: the identity provider cannot be reached', { provider: provider.name, user: name.slice(0, 256), error: e.message });
        record('sign-in-failed', name, `${provider.name} unavailable: ${e.message}`);
        throw new RegistryError('unavailable', `cannot check the password now: ${e.message}`, undefined, { 'Retry-After': '5' });
      }
      if (v === undefined) continue;
      if (isRefusal(v)) {
        record('sign-in-failed', name, `${provider.name}: ${v.refused}`);
        return undefined;
      }
      let u = await metadata.getUser(v.user);
      if (v.provider === 'local') {
        if (u && auditSuccess) record('sign-in', u.name, 'local');
      } else {
        // The provider may spell the name otherwise ("ALICE" found as alice): a local user's name
        // stays theirs, and so does another provider's user's.
        if (u && u.provider !== v.provider) {
          record('sign-in-failed', name, `${provider.name}: ${v.user} is ${u.provider ? `a user of ${u.provider}` : 'a local user'}`);
          return undefined;
        }
        // A record at the first sign-in, so that roles, audit entries and tokens name a user that exists.
        const first = !u;
        if (!u) {
          u = { name: v.user, passwordHash: '', admin: false, createdAt: Date.now(), provider: v.provider };
          await metadata.putUser(u);
        }
        if (auditSuccess || first) record('sign-in', v.user, `${provider.name}${v.groups.length ? `, groups ${v.groups.join(', ')}` : ''}`);
      }
      if (!u) return undefined;
      return { kind: 'user', name: u.name, user: u, groups: v.groups };
    }
    record('sign-in-failed', name, 'no such user');
    return undefined;
  };

  const login = async (ctx: Ctx, name: string, password: string, auditSuccess = true): Promise<Principal> => {
    const addr = ctx.req.socket.remoteAddress ?? '-';
    const keys = [`user:${name}`, `addr:${addr}`];
    const wait = await limiter.retryAfter(keys);
    if (wait > 0) throw new RegistryError('too-many-requests', 'too many failed logins; try again later', undefined, { 'Retry-After': String(wait) });
    let p: Principal | undefined;
    if (name.startsWith('robot$')) {
      const r = await metadata.getRobot(name);
      if (r && robotSecretMatches(r.secretHash, password) && (r.expiresAt === undefined || r.expiresAt * 1000 > Date.now())) p = { kind: 'robot', name, robot: r };
    } else {
      p = await signIn(addr, name, password, auditSuccess);
    }
    if (!p) {
      await limiter.failed(keys);
      throw new RegistryError('unauthorized', 'invalid username or password', undefined, { 'WWW-Authenticate': `Basic realm="${config.auth.service}"` });
    }
    await limiter.succeeded(keys);
    return p;
  };

  const actionsFor = async (p: Principal, repository: string): Promise<Action[]> => {
    const ns = namespaceOf(repository);
    const [role, nsRec] = await Promise.all([effectiveRole(metadata, p, ns), metadata.getNamespace(ns)]);
    return allowedActions(p, ns, role, !!nsRec?.public);
  };

  const basicAllows = async (ctx: Ctx, repository: string, actions: Action[]): Promise<boolean | undefined> => {
    if (!config.auth.basic) return undefined;
    const creds = parseBasic(ctx.req.headers.authorization);
    if (!creds) return undefined;
    const p = await login(ctx, creds.name, creds.password, false);
    ctx.user = p.name;
    const allowed = await actionsFor(p, repository);
    return actions.every((a) => allowed.includes(a));
  };

  /** Who a verified token was issued to (anonymous when the account is gone). */
  const claimsPrincipal = async (c: TokenClaims): Promise<Principal> => {
    if (c.sub.startsWith('robot$')) {
      const r = await metadata.getRobot(c.sub);
      if (r) return { kind: 'robot', name: r.name, robot: r };
    } else if (c.sub && c.sub !== 'anonymous') {
      const u = await metadata.getUser(c.sub);
      if (u) return { kind: 'user', name: u.name, user: u, groups: c.groups ?? [] };
    }
    return { kind: 'anonymous', name: 'anonymous' };
  };

  const principal = async (ctx: Ctx): Promise<Principal> => {
    const t = bearer(ctx);
    if (t) {
      const c = await verifyBearer(t);
      if (!c) throw challenge(ctx, undefined, 'invalid_token');
      return claimsPrincipal(c);
    }
    const creds = parseBasic(ctx.req.headers.authorization);
    if (creds) return login(ctx, creds.name, creds.password, false);
    return { kind: 'anonymous', name: 'anonymous' };
  };

  return {
    enabled: config.auth.enabled,
    tokens,

    async require(ctx, repository, actions, opts) {
      if (!config.auth.enabled) return;
      // distribution registry/handlers/app.go (authorized): a mount also asks pull on `from`.
      const wanted = (opts?.wanted ?? []).filter((w) => w.repository !== repository).map((w) => `repository:${w.repository}:${w.actions.join(',')}`);
      const t = bearer(ctx);
      if (t) {
        const c = await verifyBearer(t);
        if (c) {
          ctx.user = c.sub || 'anonymous';
          if (tokenAllows(c, repository, actions)) return;
          // A token for other actions (a client that pushed, then deletes) is challenged, so the
          // client asks for one with this scope; DENIED only when the role could never grant it.
          if (opts?.denyWhenAuthenticated) {
            const allowed = await actionsFor(await claimsPrincipal(c), repository);
            if (!actions.every((a) => allowed.includes(a))) throw denied(`${actions.join(', ')} on ${repository} is not allowed for ${ctx.user}`);
          }
          throw challenge(ctx, [`repository:${repository}:${actions.filter((a) => a !== 'promote').join(',') || 'pull'}`, ...wanted], 'insufficient_scope');
        }
        throw challenge(ctx, [`repository:${repository}:${actions.join(',')}`, ...wanted], 'invalid_token');
      }
      const b = await basicAllows(ctx, repository, actions);
      if (b === true) return;
      if (b === false) throw denied(`${actions.join(', ')} on ${repository} is not allowed for ${ctx.user}`);
      throw challenge(ctx, [`repository:${repository}:${actions.filter((a) => a !== 'promote').join(',') || 'pull'}`, ...wanted]);
    },

    async may(ctx, repository, action) {
      if (!config.auth.enabled) return true;
      const t = bearer(ctx);
      if (t) {
        const c = await verifyBearer(t);
        return !!c && tokenAllows(c, repository, [action]);
      }
      if (config.auth.basic && parseBasic(ctx.req.headers.authorization)) return (await basicAllows(ctx, repository, [action])) === true;
      return false;
    },

    async requireAuthenticated(ctx, scope) {
      if (!config.auth.enabled) return;
      const t = bearer(ctx);
      if (t) {
        const c = await verifyBearer(t);
        if (!c) throw challenge(ctx, scope, 'invalid_token');
        ctx.user = c.sub || 'anonymous';
        return;
      }
      if (config.auth.basic) {
        const creds = parseBasic(ctx.req.headers.authorization);
        if (creds) {
          ctx.user = (await login(ctx, creds.name, creds.password, false)).name;
          return;
        }
      }
      throw challenge(ctx, scope);
    },

    async pullable(ctx) {
      if (!config.auth.enabled) return () => true;
      return this.pullableBy(await principal(ctx));
    },

    async pullableBy(p) {
      if (!config.auth.enabled || isSystemAdmin(p)) return () => true;
      const roles = await effectiveRoles(metadata, p);
      const publicNs = new Set((await metadata.listNamespaces()).filter((x) => x.public).map((x) => x.name));
      return (repo) => {
        const ns = namespaceOf(repo);
        return allowedActions(p, ns, roles.get(ns), publicNs.has(ns)).includes('pull');
      };
    },

    principal,
    async actionsFor(p, repository) {
      return config.auth.enabled ? actionsFor(p, repository) : [...Actions];
    },
    login,

    async grantScopes(p, scopes) {
      const out: AccessEntry[] = [];
      for (const s of scopes) {
        const sc = parseScope(s);
        if (!sc) continue;
        if (sc.type === 'repository') {
          const allowed = await actionsFor(p, sc.name);
          const granted = grant(sc.actions, allowed);
          out.push({ type: 'repository', name: sc.name, actions: granted });
          // A token that has access through a group binding says so in the audit log (issue 21).
          const via = granted.length ? await groupRoleIn(metadata, p, namespaceOf(sc.name)) : undefined;
          if (via) opts.audit?.record({ actor: p.name, action: 'group-role', namespace: namespaceOf(sc.name), repository: sc.name, detail: `${via.role} through group ${via.group}${via.own ? ` (own role ${via.own})` : ''}: ${granted.join(',')}` });
        } else if (sc.type === 'registry' && sc.name === 'catalog') {
          // Everyone may ask; the catalog lists only what the caller may pull.
          out.push({ type: 'registry', name: 'catalog', actions: sc.actions.includes('*') ? ['*'] : [] });
        }
      }
      return out;
    },

    async renew(name) {
      if (name.startsWith('robot$')) {
        const r = await metadata.getRobot(name);
        return r && (r.expiresAt === undefined || r.expiresAt * 1000 > Date.now()) ? { kind: 'robot', name: r.name, robot: r } : undefined;
      }
      const u = await metadata.getUser(name);
      if (!u) return undefined;
      if (!u.provider) return { kind: 'user', name: u.name, user: u };
      const provider = providers.find((x) => x.name === u.provider);
      if (!provider) return undefined;
      try {
        const id = await provider.lookup(u.name);
        return id && id.user === u.name ? { kind: 'user', name: u.name, user: u, groups: id.groups } : undefined;
      } catch (e) {
        if (!(e instanceof ProviderUnavailable)) throw e;
        opts.log?.log('error', 'token refresh refused: the identity provider cannot be reached', { provider: provider.name, user: name, error: e.message });
        throw new RegistryError('unavailable', `cannot renew the token now: ${e.message}`, undefined, { 'Retry-After': '5' });
      }
    },

    async tokenGroups(p) {
      return p.kind === 'user' && p.groups?.length ? boundGroups(metadata, p.groups) : [];
    },
  };
}
