import type { Readable } from 'node:stream';
import { findCredential, type Credential } from './credentials.js';
import { NetworkError, readBody, sendWithRetry, DefaultRetry, discard, type HttpResponse, type RetryPolicy } from './http.js';
import { basicHeader, errorSummary, fetchToken, parseChallenge, type Challenge, type Token } from './auth.js';
import { RegistryDenied, RegistryUnauthorized, RegistryUnreachable } from './errors.js';
import type { Endpoint } from './config.js';

// One registry endpoint as the client sees it: its URL, its authentication challenge (learnt from
// a first GET /v2/, as docker does) and the tokens obtained so far, cached per set of scopes until
// they expire. Every request names the scopes it needs ("repository:team/app:pull,push").

export interface SessionOptions {
  env?: NodeJS.ProcessEnv;
  retry?: RetryPolicy;
  /** Use these credentials instead of looking them up (kiln login checks new ones this way). */
  credential?: Credential | null;
  onRetry?: (why: string) => void;
}

export interface RequestOptions {
  scopes: string[];
  headers?: Record<string, string>;
  body?: () => Readable | Buffer;
  /** Retry connection failures and 5xx (default). Off for requests whose repetition has effects. */
  retry?: boolean;
}

/**
 * Tokens of this process, by registry URL, identity and scope set, so that pulls of several images
 * from one repository (a build's FROM lines) ask the token endpoint once.
 */
const tokens = new Map<string, Token | Promise<Token>>();
const challenges = new Map<string, Promise<Challenge | null>>();

export class RegistrySession {
  private challenge: Challenge | null | undefined;
  private pinged: Promise<void> | undefined;
  private cred: Promise<Credential | undefined> | undefined;
  readonly retry: RetryPolicy;

  constructor(
    readonly endpoint: Endpoint,
    private readonly opts: SessionOptions = {},
  ) {
    this.retry = opts.retry ?? DefaultRetry;
  }

  private credential(): Promise<Credential | undefined> {
    if (this.opts.credential !== undefined) return Promise.resolve(this.opts.credential ?? undefined);
    this.cred ??= findCredential(this.endpoint.host === 'registry-1.docker.io' ? 'docker.io' : this.endpoint.host, this.opts.env);
    return this.cred;
  }

  url(path: string): URL {
    return new URL(path, this.endpoint.url);
  }

  /** GET /v2/ once per registry and process: does it answer, and which authentication does it want? */
  ping(): Promise<void> {
    this.pinged ??= (async () => {
      let known = challenges.get(this.endpoint.url);
      if (!known) {
        known = (async () => {
          const res = await this.raw({ method: 'GET', url: this.url('/v2/') });
          discard(res);
          return res.status === 401 ? (parseChallenge(res.headers['www-authenticate'] as string | undefined) ?? null) : null;
        })();
        challenges.set(this.endpoint.url, known);
        known.catch(() => challenges.delete(this.endpoint.url));
      }
      this.challenge = await known;
    })();
    this.pinged.catch(() => (this.pinged = undefined));
    return this.pinged;
  }

  /** Check credentials as `docker login` does: a token with no scope, or /v2/ with Basic. */
  async checkLogin(): Promise<void> {
    await this.ping();
    if (!this.challenge) return;
    const cred = await this.credential();
    if (this.challenge.scheme === 'bearer') {
      await fetchToken(this.challenge, [], cred, this.endpoint.host, this.retry);
      return;
    }
    if (!cred) throw new RegistryUnauthorized(`${this.endpoint.host}: unauthorized: authentication required`);
    const res = await this.raw({ method: 'GET', url: this.url('/v2/'), headers: { authorization: basicHeader(cred) } });
    discard(res);
    if (res.status === 401) throw new RegistryUnauthorized(`${this.endpoint.host}: unauthorized: incorrect username or password`);
  }

  /**
   * A request with authentication: the token for `scopes` (fetched or cached) or Basic credentials.
   * A 401 despite them drops the cached token and tries once more with a fresh one; a second 401
   * or a 403 is an error.
   */
  async request(method: string, path: string | URL, opts: RequestOptions): Promise<HttpResponse> {
    await this.ping();
    const url = typeof path === 'string' ? this.url(path) : path;
    for (let attempt = 0; ; attempt++) {
      const headers = { ...opts.headers };
      const auth = await this.authorization(opts.scopes, attempt > 0);
      if (auth) headers.authorization = auth;
      const req = { method, url, headers, body: opts.body };
      const res = opts.retry === false ? await this.raw(req, { ...this.retry, attempts: 1 }) : await this.raw(req);
      if (res.status === 401) {
        const fresh = parseChallenge(res.headers['www-authenticate'] as string | undefined);
        if (fresh) this.challenge = fresh;
        if (attempt === 0 && this.challenge) {
          discard(res);
          continue;
        }
        const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
        const cred = await this.credential();
        throw new RegistryUnauthorized(`${this.endpoint.host}: unauthorized${errorSummary(text) || ': authentication required'}${cred ? '' : ` (kiln login ${this.endpoint.registry})`}`);
      }
      if (res.status === 403) {
        const text = (await readBody(res, 64 << 10).catch(() => Buffer.alloc(0))).toString();
        throw new RegistryDenied(`${this.endpoint.host}: denied: requested access to the resource is denied${errorSummary(text)}`);
      }
      return res;
    }
  }

  /** The headers request() would authenticate a request for `scopes` with, for a client of its own. */
  async authHeaders(scopes: string[]): Promise<Record<string, string>> {
    await this.ping();
    const auth = await this.authorization(scopes, false);
    return auth ? { authorization: auth } : {};
  }

  private async authorization(scopes: string[], refresh: boolean): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    const cred = await this.credential();
    if (ch.scheme === 'basic') return cred ? basicHeader(cred) : undefined;
    // By registry and identity too: a process talking to several registries (the registry server's
    // pull-through caches) must not send one registry's token to another.
    const key = [this.endpoint.url, cred?.username ?? '', ...[...scopes].sort()].join(' ');
    const cached = tokens.get(key);
    if (cached && !refresh) {
      const t = await cached;
      if (t.expires > Date.now()) return `Bearer ${t.value}`;
    }
    const pending = fetchToken(ch, scopes, cred, this.endpoint.host, this.retry);
    tokens.set(key, pending);
    try {
      const t = await pending;
      tokens.set(key, t);
      return `Bearer ${t.value}`;
    } catch (e) {
      tokens.delete(key);
      throw e;
    }
  }

  private async raw(req: Parameters<typeof sendWithRetry>[0], policy = this.retry): Promise<HttpResponse> {
    try {
      return await sendWithRetry(req, policy, this.opts.onRetry);
    } catch (e) {
      if (e instanceof NetworkError) {
        const hint = /EPROTO|wrong version number|ssl/i.test(e.message) ? ` (if it speaks plain HTTP, set insecure: true for it under registries in kiln's config file)` : '';
        throw new RegistryUnreachable(`cannot reach registry ${this.endpoint.host}: ${e.message}${hint}`);
      }
      throw e;
    }
  }
}

export function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}

export function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
}
