import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../errors.js';
import type { S3Options } from './storage/s3.js';
import { checkFilter, type LdapOptions } from './auth/ldap.js';
import { parseOidcOptions, type OidcOptions } from './auth/oidc-options.js';

// Everything `kiln registry serve` can be told, with defaults. The YAML file mirrors this shape;
// command-line flags (--addr, --root, --auth) win over the file. docs/registry.md documents each key.

export interface RegistryConfig {
  /** Holds the blobs, uploads, the SQLite database and the token signing key unless told otherwise. */
  root: string;
  http: {
    /** HOST:PORT; port 0 picks a free port. */
    addr: string;
    /** Serve HTTPS when both are set. */
    tls?: { certificate: string; key: string };
    /** Seconds a connection may stay idle (also during a request body) before it is closed. */
    idleTimeout: number;
    /** Bytes of request headers accepted; larger requests get 431. */
    maxHeaderSize: number;
    /** Externally visible base URL (https://registry.example.com) used in Location and the token realm; default: from the Host header. */
    publicUrl?: string;
  };
  storage: {
    driver: 'filesystem' | 's3';
    filesystem: { rootdirectory: string };
    /** Set when driver is s3. */
    s3?: S3Options;
    /** Blob deletion through the API (DELETE /v2/<name>/blobs/<digest>). */
    deleteEnabled: boolean;
  };
  database: {
    driver: 'sqlite' | 'postgres';
    sqlite: { path: string };
    /** Set when driver is postgres: the metadata of several replicas in one PostgreSQL database. */
    postgres?: {
      /** postgres://user:password@host:port/database (libpq URL; sslmode= and the like are honoured). */
      url: string;
      /** Connections per replica. */
      poolSize?: number;
      /** PEM CA bundle for the server's certificate (turns TLS on). */
      ca?: string;
    };
  };
  uploads: {
    /** Where upload sessions keep their temporary files (must be on the storage filesystem for a rename). */
    directory: string;
    /** Seconds an upload session may stay without activity before it is cancelled. */
    sessionTimeout: number;
  };
  auth: {
    /** Token authentication (Docker registry token spec); off: anyone may do anything, like Distribution's default. */
    enabled: boolean;
    /** Value of service= in challenges and aud in tokens. */
    service: string;
    /** iss of the tokens this registry issues and accepts. */
    issuer: string;
    /** Token endpoint URL announced in WWW-Authenticate; default: <public URL>/token. */
    realm?: string;
    /** PEM private key (EC P-256) that signs tokens; created on first start when missing. */
    tokenKey: string;
    /** Seconds an access token is valid. */
    tokenExpiration: number;
    /** Seconds a refresh token (OAuth2 access_type=offline) is valid. */
    refreshTokenExpiration: number;
    /** Also accept HTTP Basic credentials directly on /v2/ (for curl and simple clients). */
    basic: boolean;
    /** Failed logins allowed per user and per client address within `window` seconds before 429. */
    rateLimit: { failures: number; window: number };
    /** Sign-in of directory users beside the local ones (auth/ldap.ts). */
    ldap?: LdapOptions;
    /** Sign-in through an OpenID Provider, and CLI secrets for its users (auth/oidc.ts). */
    oidc?: OidcOptions;
  };
  limits: {
    /** Largest manifest accepted, in bytes (413 above). */
    manifestSize: number;
    /** Blobs up to this size are kept in memory once read. */
    cachedBlobSize: number;
    /** Bytes of memory for cached small blobs. */
    blobCacheBytes: number;
    /** Bytes of memory for cached manifests. */
    manifestCacheBytes: number;
    /** Largest SBOM document (a referrer's layer) read for the search index; larger ones are stored but not indexed. */
    sbomSize: number;
    /** Stored bytes of layers the web UI's layer file tree reads at most (a layer and those below it). */
    layerTreeSize: number;
    /** Tar entries the layer file tree reads at most over those layers. */
    layerTreeEntries: number;
  };
  gc: {
    /** Seconds between online garbage collections; 0 turns the schedule off. */
    interval: number;
    /** Seconds unreferenced blobs and untagged manifests are kept before GC may remove them. */
    gracePeriod: number;
  };
  retention: {
    /** Seconds between evaluations of every namespace's retention rules; 0 (the default) leaves them to `retention run`. */
    interval: number;
  };
  webhooks: {
    /** Seconds a receiver has to answer one delivery. */
    timeout: number;
    /** Attempts per delivery before it is marked failed. */
    attempts: number;
    /** Seconds before the second attempt; each later one waits twice as long (at most an hour). */
    backoff: number;
    /** Deliveries this process sends at once. */
    concurrency: number;
    /** Seconds between looks for due deliveries (deliveries queued by this process go at once). */
    pollInterval: number;
    /** Seconds delivered and failed deliveries stay in the log. */
    history: number;
    /** Receivers on loopback (127.0.0.0/8, ::1), for a receiver on the registry's own machine. */
    allowLoopback: boolean;
    /** Receivers on private networks (RFC 1918, 100.64.0.0/10, fc00::/7). */
    allowPrivateNetworks: boolean;
    /** Addresses or CIDR ranges allowed whatever the rules above say (link-local and metadata addresses open only here). */
    allow: string[];
  };
  replication: {
    /** Tries of one replication item (an image or index) before it fails, the first included. */
    attempts: number;
    /** Seconds before the first retry of an item; doubled for each next one (at most 60). */
    backoff: number;
  };
  audit: {
    /** Record manifest pulls in the audit log (coalesced per actor, repository and digest each second). */
    pulls: boolean;
  };
  log: {
    level: 'debug' | 'info' | 'warn' | 'error';
    /** One JSON line per request. */
    requests: boolean;
  };
}

/** Durations: a number of seconds, or "500ms", "30s", "5m", "2h", "7d". */
export function parseDuration(v: unknown, what: string): number {
  if (typeof v === 'number' && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
    if (m) {
      const n = Number(m[1]);
      const unit = m[2] ?? 's';
      return n * ({ ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[unit]!;
    }
  }
  throw new UsageError(`${what}: "${String(v)}" is not a duration (seconds, or 30s, 5m, 2h, 7d)`);
}

/** Sizes: a number of bytes, or "512KiB", "4MiB", "1GiB", "2TiB" (also KB/MB/GB/TB, powers of 1024). */
export function parseSize(v: unknown, what: string): number {
  if (typeof v === 'number' && v >= 0) return Math.floor(v);
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(v.trim());
    if (m) {
      const unit = (m[2] ?? '').toLowerCase()[0];
      const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
      return Math.floor(Number(m[1]) * mult);
    }
  }
  throw new UsageError(`${what}: "${String(v)}" is not a size (bytes, or 512KiB, 4MiB, 1GiB)`);
}

export function defaultConfig(root: string): RegistryConfig {
  return {
    root,
    http: { addr: '127.0.0.1:5000', idleTimeout: 120, maxHeaderSize: 16384 },
    storage: { driver: 'filesystem', filesystem: { rootdirectory: join(root, 'blobs') }, deleteEnabled: true },
    database: { driver: 'sqlite', sqlite: { path: join(root, 'registry.db') } },
    uploads: { directory: join(root, 'blobs', '_uploads'), sessionTimeout: 3600 },
    auth: {
      enabled: false,
      service: 'kiln-registry',
      issuer: 'kiln-registry',
      tokenKey: join(root, 'token-key.pem'),
      tokenExpiration: 300,
      refreshTokenExpiration: 30 * 86400,
      basic: false,
      rateLimit: { failures: 10, window: 60 },
    },
    limits: { manifestSize: 4 * 1024 * 1024, cachedBlobSize: 1024 * 1024, blobCacheBytes: 256 * 1024 * 1024, manifestCacheBytes: 64 * 1024 * 1024, sbomSize: 32 * 1024 * 1024, layerTreeSize: 1024 ** 3, layerTreeEntries: 200_000 },
    gc: { interval: 86400, gracePeriod: 3600 },
    retention: { interval: 0 },
    replication: { attempts: 4, backoff: 1 },
    audit: { pulls: true },
    webhooks: { timeout: 10, attempts: 5, backoff: 10, concurrency: 4, pollInterval: 1, history: 7 * 86400, allowLoopback: true, allowPrivateNetworks: false, allow: [] },
    log: { level: 'info', requests: true },
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The configuration: defaults, then the YAML file, then flags. Relative paths in the file are
 * resolved against the file's directory; unknown keys are refused so typos do not pass silently.
 */
export async function loadConfig(opts: { file?: string; root?: string; defaultRoot: string; addr?: string; auth?: boolean }): Promise<RegistryConfig> {
  let doc: Obj = {};
  let base = process.cwd();
  if (opts.file) {
    const text = await readFile(opts.file, 'utf8');
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined && !isObj(parsed)) throw new UsageError(`${opts.file}: expected a YAML mapping`);
    doc = (parsed as Obj) ?? {};
    base = dirname(resolve(opts.file));
  }
  const root = opts.root ? resolve(opts.root) : typeof doc.root === 'string' ? resolve(base, doc.root) : resolve(opts.defaultRoot);
  const c = defaultConfig(root);
  applyFile(c, doc, base);
  if (opts.addr) c.http.addr = opts.addr;
  if (opts.auth) c.auth.enabled = true;
  return c;
}

function applyFile(c: RegistryConfig, doc: Obj, base: string): void {
  const path = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v === '') throw new UsageError(`${what}: expected a path`);
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const bool = (v: unknown, what: string): boolean => {
    if (typeof v !== 'boolean') throw new UsageError(`${what}: expected true or false`);
    return v;
  };
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v === '') throw new UsageError(`${what}: expected a string`);
    return v;
  };
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new UsageError(`${what}: expected a non-negative integer`);
    return v;
  };
  const section = (v: unknown, what: string, keys: string[]): Obj => {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) throw new UsageError(`${what}: expected a mapping`);
    for (const k of Object.keys(v)) if (!keys.includes(k)) throw new UsageError(`${what}.${k}: unknown setting (known: ${keys.join(', ')})`);
    return v;
  };
  const top = section(doc, 'config', ['root', 'http', 'storage', 'database', 'uploads', 'auth', 'limits', 'gc', 'retention', 'replication', 'audit', 'webhooks', 'log']);

  const http = section(top.http, 'http', ['addr', 'tls', 'idleTimeout', 'maxHeaderSize', 'publicUrl']);
  if (http.addr !== undefined) c.http.addr = str(http.addr, 'http.addr');
  if (http.tls !== undefined) {
    const tls = section(http.tls, 'http.tls', ['certificate', 'key']);
    c.http.tls = { certificate: path(tls.certificate, 'http.tls.certificate'), key: path(tls.key, 'http.tls.key') };
  }
  if (http.idleTimeout !== undefined) c.http.idleTimeout = parseDuration(http.idleTimeout, 'http.idleTimeout');
  if (http.maxHeaderSize !== undefined) c.http.maxHeaderSize = parseSize(http.maxHeaderSize, 'http.maxHeaderSize');
  if (http.publicUrl !== undefined) c.http.publicUrl = str(http.publicUrl, 'http.publicUrl').replace(/\/+$/, '');

  const storage = section(top.storage, 'storage', ['driver', 'filesystem', 's3', 'deleteEnabled']);
  if (storage.driver !== undefined && storage.driver !== 'filesystem' && storage.driver !== 's3') throw new UsageError(`storage.driver: "${String(storage.driver)}" is not available (filesystem, s3)`);
  if (storage.driver !== undefined) c.storage.driver = storage.driver;
  if (storage.s3 !== undefined || c.storage.driver === 's3') {
    // settings for a driver that is not chosen would be ignored silently: a forgotten `driver: s3`
    if (c.storage.driver !== 's3') throw new UsageError('storage.s3: set, but storage.driver is filesystem (add driver: s3)');
    const s3 = section(storage.s3, 'storage.s3', ['endpoint', 'region', 'bucket', 'prefix', 'accessKey', 'secretKey', 'forcePathStyle', 'ca', 'redirect']);
    if (s3.bucket === undefined) throw new UsageError('storage.s3.bucket: required when storage.driver is s3');
    const opt = <T>(v: unknown, parse: (v: unknown, what: string) => T, what: string): T | undefined => (v === undefined ? undefined : parse(v, what));
    c.storage.s3 = {
      endpoint: opt(s3.endpoint, str, 'storage.s3.endpoint')?.replace(/\/+$/, ''),
      region: opt(s3.region, str, 'storage.s3.region') ?? 'us-east-1',
      bucket: str(s3.bucket, 'storage.s3.bucket'),
      prefix: opt(s3.prefix, str, 'storage.s3.prefix'),
      accessKey: opt(s3.accessKey, str, 'storage.s3.accessKey'),
      secretKey: opt(s3.secretKey, str, 'storage.s3.secretKey'),
      forcePathStyle: opt(s3.forcePathStyle, bool, 'storage.s3.forcePathStyle') ?? false,
      ca: opt(s3.ca, path, 'storage.s3.ca'),
      redirect: opt(s3.redirect, bool, 'storage.s3.redirect') ?? false,
    };
    if (c.storage.s3.endpoint !== undefined && !/^https?:\/\/[^/]/.test(c.storage.s3.endpoint)) throw new UsageError('storage.s3.endpoint: expected an http:// or https:// URL');
  }
  if (storage.filesystem !== undefined) {
    const fs = section(storage.filesystem, 'storage.filesystem', ['rootdirectory']);
    if (fs.rootdirectory !== undefined) {
      c.storage.filesystem.rootdirectory = path(fs.rootdirectory, 'storage.filesystem.rootdirectory');
      c.uploads.directory = join(c.storage.filesystem.rootdirectory, '_uploads');
    }
  }
  if (storage.deleteEnabled !== undefined) c.storage.deleteEnabled = bool(storage.deleteEnabled, 'storage.deleteEnabled');

  const database = section(top.database, 'database', ['driver', 'sqlite', 'postgres']);
  if (database.driver !== undefined && database.driver !== 'sqlite' && database.driver !== 'postgres') {
    throw new UsageError(`database.driver: "${String(database.driver)}" is not available (sqlite, postgres)`);
  }
  if (database.driver !== undefined) c.database.driver = database.driver;
  if (database.postgres !== undefined || c.database.driver === 'postgres') {
    // settings for a driver that is not chosen would be ignored silently: a forgotten `driver: postgres`
    if (c.database.driver !== 'postgres') throw new UsageError('database.postgres: set, but database.driver is sqlite (add driver: postgres)');
    const p = section(database.postgres, 'database.postgres', ['url', 'poolSize', 'ca']);
    if (p.url === undefined) throw new UsageError('database.postgres.url: required when database.driver is postgres');
    const url = str(p.url, 'database.postgres.url');
    if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError('database.postgres.url: expected a postgres:// URL');
    c.database.postgres = { url };
    if (p.poolSize !== undefined) {
      const n = int(p.poolSize, 'database.postgres.poolSize');
      if (n < 1) throw new UsageError('database.postgres.poolSize: expected at least 1');
      c.database.postgres.poolSize = n;
    }
    if (p.ca !== undefined) c.database.postgres.ca = path(p.ca, 'database.postgres.ca');
  }
  if (database.sqlite !== undefined) {
    const s = section(database.sqlite, 'database.sqlite', ['path']);
    if (s.path !== undefined) c.database.sqlite.path = path(s.path, 'database.sqlite.path');
  }

  const uploads = section(top.uploads, 'uploads', ['directory', 'sessionTimeout']);
  if (uploads.directory !== undefined) c.uploads.directory = path(uploads.directory, 'uploads.directory');
  if (uploads.sessionTimeout !== undefined) c.uploads.sessionTimeout = parseDuration(uploads.sessionTimeout, 'uploads.sessionTimeout');

  const auth = section(top.auth, 'auth', ['enabled', 'service', 'issuer', 'realm', 'tokenKey', 'tokenExpiration', 'refreshTokenExpiration', 'basic', 'rateLimit', 'ldap', 'oidc']);
  if (auth.enabled !== undefined) c.auth.enabled = bool(auth.enabled, 'auth.enabled');
  if (auth.service !== undefined) c.auth.service = str(auth.service, 'auth.service');
  if (auth.issuer !== undefined) c.auth.issuer = str(auth.issuer, 'auth.issuer');
  if (auth.realm !== undefined) c.auth.realm = str(auth.realm, 'auth.realm');
  if (auth.tokenKey !== undefined) c.auth.tokenKey = path(auth.tokenKey, 'auth.tokenKey');
  if (auth.tokenExpiration !== undefined) c.auth.tokenExpiration = parseDuration(auth.tokenExpiration, 'auth.tokenExpiration');
  if (auth.refreshTokenExpiration !== undefined) c.auth.refreshTokenExpiration = parseDuration(auth.refreshTokenExpiration, 'auth.refreshTokenExpiration');
  if (auth.basic !== undefined) c.auth.basic = bool(auth.basic, 'auth.basic');
  if (auth.rateLimit !== undefined) {
    const rl = section(auth.rateLimit, 'auth.rateLimit', ['failures', 'window']);
    if (rl.failures !== undefined) c.auth.rateLimit.failures = int(rl.failures, 'auth.rateLimit.failures');
    if (rl.window !== undefined) c.auth.rateLimit.window = parseDuration(rl.window, 'auth.rateLimit.window');
  }
  if (auth.ldap !== undefined) {
    const keys = ['url', 'startTLS', 'ca', 'bindDN', 'bindPassword', 'userBase', 'userFilter', 'usernameAttribute', 'groupBase', 'groupFilter', 'groupNameAttribute', 'timeout', 'poolSize'];
    const l = section(auth.ldap, 'auth.ldap', keys);
    const need = (k: string) => {
      if (l[k] === undefined) throw new UsageError(`auth.ldap.${k}: required`);
      return str(l[k], `auth.ldap.${k}`);
    };
    const url = need('url');
    if (!/^ldaps?:\/\/[^/]+\/?$/.test(url)) throw new UsageError(`auth.ldap.url: "${url}" is not ldap://HOST[:PORT] or ldaps://HOST[:PORT]`);
    const startTLS = l.startTLS === undefined ? false : bool(l.startTLS, 'auth.ldap.startTLS');
    if (startTLS && url.startsWith('ldaps:')) throw new UsageError('auth.ldap.startTLS: for ldap:// URLs (ldaps:// is TLS from the start)');
    const userFilter = need('userFilter');
    checkFilter(userFilter, 'auth.ldap.userFilter', ['username']);
    if ((l.groupBase === undefined) !== (l.groupFilter === undefined)) throw new UsageError(`auth.ldap.${l.groupBase === undefined ? 'groupBase' : 'groupFilter'}: required with auth.ldap.${l.groupBase === undefined ? 'groupFilter' : 'groupBase'}`);
    const groupFilter = l.groupFilter === undefined ? undefined : str(l.groupFilter, 'auth.ldap.groupFilter');
    if (groupFilter !== undefined) checkFilter(groupFilter, 'auth.ldap.groupFilter', ['dn', 'username']);
    const poolSize = l.poolSize === undefined ? 2 : int(l.poolSize, 'auth.ldap.poolSize');
    if (poolSize < 1) throw new UsageError('auth.ldap.poolSize: expected at least 1');
    const timeout = l.timeout === undefined ? 5 : parseDuration(l.timeout, 'auth.ldap.timeout');
    if (timeout <= 0) throw new UsageError('auth.ldap.timeout: expected more than 0');
    c.auth.ldap = {
      url: url.replace(/\/$/, ''),
      startTLS,
      ca: l.ca === undefined ? undefined : path(l.ca, 'auth.ldap.ca'),
      bindDN: need('bindDN'),
      bindPassword: need('bindPassword'),
      userBase: need('userBase'),
      userFilter,
      usernameAttribute: l.usernameAttribute === undefined ? 'uid' : str(l.usernameAttribute, 'auth.ldap.usernameAttribute'),
      groupBase: l.groupBase === undefined ? undefined : str(l.groupBase, 'auth.ldap.groupBase'),
      groupFilter,
      groupNameAttribute: l.groupNameAttribute === undefined ? 'cn' : str(l.groupNameAttribute, 'auth.ldap.groupNameAttribute'),
      timeout,
      poolSize,
    };
  }

  if (auth.oidc !== undefined) c.auth.oidc = parseOidcOptions(auth.oidc, c.http.publicUrl);

  const limits = section(top.limits, 'limits', ['manifestSize', 'cachedBlobSize', 'blobCacheBytes', 'manifestCacheBytes', 'sbomSize', 'layerTreeSize', 'layerTreeEntries']);
  if (limits.manifestSize !== undefined) c.limits.manifestSize = parseSize(limits.manifestSize, 'limits.manifestSize');
  if (limits.cachedBlobSize !== undefined) c.limits.cachedBlobSize = parseSize(limits.cachedBlobSize, 'limits.cachedBlobSize');
  if (limits.blobCacheBytes !== undefined) c.limits.blobCacheBytes = parseSize(limits.blobCacheBytes, 'limits.blobCacheBytes');
  if (limits.manifestCacheBytes !== undefined) c.limits.manifestCacheBytes = parseSize(limits.manifestCacheBytes, 'limits.manifestCacheBytes');
  if (limits.sbomSize !== undefined) c.limits.sbomSize = parseSize(limits.sbomSize, 'limits.sbomSize');
  if (limits.layerTreeSize !== undefined) c.limits.layerTreeSize = parseSize(limits.layerTreeSize, 'limits.layerTreeSize');
  if (limits.layerTreeEntries !== undefined) c.limits.layerTreeEntries = int(limits.layerTreeEntries, 'limits.layerTreeEntries');

  const retention = section(top.retention, 'retention', ['interval']);
  if (retention.interval !== undefined) c.retention.interval = parseDuration(retention.interval, 'retention.interval');
  const replication = section(top.replication, 'replication', ['attempts', 'backoff']);
  if (replication.attempts !== undefined) {
    if (!Number.isSafeInteger(replication.attempts) || (replication.attempts as number) < 1) throw new UsageError('replication.attempts: expected a whole number of at least 1');
    c.replication.attempts = replication.attempts as number;
  }
  if (replication.backoff !== undefined) c.replication.backoff = parseDuration(replication.backoff, 'replication.backoff');
  const gc = section(top.gc, 'gc', ['interval', 'gracePeriod']);
  if (gc.interval !== undefined) c.gc.interval = parseDuration(gc.interval, 'gc.interval');
  if (gc.gracePeriod !== undefined) c.gc.gracePeriod = parseDuration(gc.gracePeriod, 'gc.gracePeriod');

  const audit = section(top.audit, 'audit', ['pulls']);
  if (audit.pulls !== undefined) c.audit.pulls = bool(audit.pulls, 'audit.pulls');

  const hooks = section(top.webhooks, 'webhooks', ['timeout', 'attempts', 'backoff', 'concurrency', 'pollInterval', 'history', 'allowLoopback', 'allowPrivateNetworks', 'allow']);
  if (hooks.timeout !== undefined) c.webhooks.timeout = parseDuration(hooks.timeout, 'webhooks.timeout');
  if (hooks.attempts !== undefined) c.webhooks.attempts = Math.max(1, int(hooks.attempts, 'webhooks.attempts'));
  if (hooks.backoff !== undefined) c.webhooks.backoff = parseDuration(hooks.backoff, 'webhooks.backoff');
  if (hooks.concurrency !== undefined) c.webhooks.concurrency = Math.max(1, int(hooks.concurrency, 'webhooks.concurrency'));
  if (hooks.pollInterval !== undefined) c.webhooks.pollInterval = parseDuration(hooks.pollInterval, 'webhooks.pollInterval');
  if (hooks.history !== undefined) c.webhooks.history = parseDuration(hooks.history, 'webhooks.history');
  if (hooks.allowLoopback !== undefined) c.webhooks.allowLoopback = bool(hooks.allowLoopback, 'webhooks.allowLoopback');
  if (hooks.allowPrivateNetworks !== undefined) c.webhooks.allowPrivateNetworks = bool(hooks.allowPrivateNetworks, 'webhooks.allowPrivateNetworks');
  if (hooks.allow !== undefined) {
    if (!Array.isArray(hooks.allow)) throw new UsageError('webhooks.allow: expected a list of addresses or CIDR ranges');
    c.webhooks.allow = hooks.allow.map((v, i) => str(v, `webhooks.allow[${i}]`));
  }

  const log = section(top.log, 'log', ['level', 'requests']);
  if (log.level !== undefined) {
    if (!['debug', 'info', 'warn', 'error'].includes(log.level as string)) throw new UsageError('log.level: expected debug, info, warn or error');
    c.log.level = log.level as RegistryConfig['log']['level'];
  }
  if (log.requests !== undefined) c.log.requests = bool(log.requests, 'log.requests');
}

/** Split HOST:PORT ([::1]:5000 too). */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new UsageError(`address "${addr}": expected HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`address "${addr}": port out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
