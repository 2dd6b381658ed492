import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { markGarbage, type GcSnapshot } from './garbage.js';
import { postgresBrowseRows } from './browse-postgres.js';
import { postgresOidcRows } from './oidc-postgres.js';
import { manifestListing, type ListingRows } from './listing.js';
import { postgresReplicationRows, postgresReplicationSchema } from './replication-postgres.js';
import { groupKey } from './metadata.js';
import type {
  GroupBinding,
  AuditEvent,
  BaseHit,
  DeliveryRecord,
  WebhookRecord,
  ManifestRecord,
  Membership,
  ProxyRecord,
  Metadata,
  ImmutableRule,
  PolicyEnforcement,
  SignaturePolicy,
  NamespaceRecord,
  RetentionRule,
  TagRecord,
  PackageHit,
  RobotRecord,
  Role,
  UploadRecord,
  UserRecord,
} from './metadata.js';

// The registry's metadata in PostgreSQL, shared by several replicas (issue 18). Every method is one
// statement or one READ COMMITTED transaction; nothing holds a lock across methods. Races between
// a change that adds a reference and garbage collection removing what it references are decided
// by the referenced row: the change first UPDATEs it (restarting its last_used clock), and every
// removal is one conditional statement on that row that re-checks the clock after the row lock
// (PostgreSQL re-evaluates the WHERE of an UPDATE/DELETE against the row version it waited for).

// Identifiers compare and sort bytewise, like SQLite's and the distribution spec's "lexical"
// tag order, whatever the database's default collation.
const K = 'TEXT COLLATE "C"';

/** Schema changes in order; schema_version counts those applied. Each runs once, under the migration lock. */
const migrations: string[] = [
  // 1: the schema of SQLite's migrations 0-2 at once, plus blob keys and states, last-use clocks,
  // upload sessions and state shared by replicas.
  `
CREATE TABLE repositories (name ${K} PRIMARY KEY, created_at BIGINT NOT NULL);
CREATE TABLE blobs (
  digest ${K} PRIMARY KEY, size BIGINT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'live',
  created_at BIGINT NOT NULL, last_used BIGINT NOT NULL);
CREATE INDEX blobs_key ON blobs (key);
CREATE INDEX blobs_deleting ON blobs (digest) WHERE state = 'deleting';
CREATE TABLE repo_blobs (repo ${K}, digest ${K}, last_used BIGINT NOT NULL, PRIMARY KEY (repo, digest));
CREATE INDEX repo_blobs_digest ON repo_blobs (digest);
CREATE TABLE manifests (
  repo ${K}, digest ${K}, media_type TEXT NOT NULL, artifact_type TEXT, subject ${K}, annotations TEXT,
  body BYTEA NOT NULL, created_at BIGINT NOT NULL, last_used BIGINT NOT NULL, PRIMARY KEY (repo, digest));
CREATE INDEX manifests_subject ON manifests (repo, subject) WHERE subject IS NOT NULL;
CREATE TABLE manifest_refs (
  repo ${K}, digest ${K}, child ${K}, kind TEXT NOT NULL, size BIGINT, PRIMARY KEY (repo, digest, kind, child));
CREATE INDEX manifest_refs_child ON manifest_refs (child, kind, repo);
CREATE TABLE tags (repo ${K}, tag ${K}, digest ${K} NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (repo, tag));
CREATE INDEX tags_digest ON tags (repo, digest);
CREATE TABLE users (name ${K} PRIMARY KEY, password_hash TEXT NOT NULL, admin BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL);
CREATE TABLE namespaces (name ${K} PRIMARY KEY, public BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL);
CREATE TABLE members (namespace ${K}, member ${K}, role TEXT NOT NULL, PRIMARY KEY (namespace, member));
CREATE INDEX members_member ON members (member);
CREATE TABLE robots (
  name ${K} PRIMARY KEY, namespace ${K} NOT NULL, secret_hash TEXT NOT NULL, actions JSONB NOT NULL,
  expires_at BIGINT, created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE audit (
  id BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, repository TEXT,
  namespace TEXT, reference TEXT, digest TEXT, detail TEXT, address TEXT, count INT NOT NULL DEFAULT 1);
CREATE INDEX audit_namespace ON audit (namespace, id);
CREATE TABLE image_bases (repo ${K}, digest ${K}, base ${K} NOT NULL, base_name TEXT, PRIMARY KEY (repo, digest));
CREATE INDEX image_bases_base ON image_bases (base);
CREATE TABLE sboms (repo ${K}, digest ${K}, subject ${K} NOT NULL, packages INT NOT NULL, PRIMARY KEY (repo, digest));
CREATE TABLE sbom_packages (
  repo ${K} NOT NULL, sbom ${K} NOT NULL, subject ${K} NOT NULL, name ${K} NOT NULL, version ${K} NOT NULL, type TEXT NOT NULL,
  purl TEXT, source TEXT, name_key TEXT NOT NULL, source_key TEXT);
CREATE INDEX sbom_packages_sbom ON sbom_packages (repo, sbom);
CREATE INDEX sbom_packages_name ON sbom_packages (name_key);
CREATE INDEX sbom_packages_source ON sbom_packages (source_key) WHERE source_key IS NOT NULL;
CREATE TABLE uploads (
  id TEXT PRIMARY KEY, repo TEXT NOT NULL, algorithm TEXT NOT NULL, upload_offset BIGINT NOT NULL, key TEXT NOT NULL,
  multipart_id TEXT, parts JSONB NOT NULL, pending JSONB NOT NULL, started_at BIGINT NOT NULL, touched_at BIGINT NOT NULL,
  claim_token TEXT, claim_until BIGINT);
CREATE INDEX uploads_key ON uploads (key);
CREATE TABLE shared_values (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE login_failures (key TEXT PRIMARY KEY, start BIGINT NOT NULL, failures INT NOT NULL);
`,
  // 2: rules of namespaces (issue 23): tag immutability, storage quotas.
  `
CREATE TABLE immutable_rules (
  id BIGSERIAL PRIMARY KEY, namespace ${K} NOT NULL, repos TEXT NOT NULL, tags TEXT NOT NULL,
  exclude_repos BOOLEAN NOT NULL, exclude_tags BOOLEAN NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX immutable_rules_ns ON immutable_rules (namespace);
ALTER TABLE namespaces ADD COLUMN quota_bytes BIGINT;
CREATE TABLE retention_rules (
  id BIGSERIAL PRIMARY KEY, namespace ${K} NOT NULL, repos TEXT NOT NULL, tags TEXT NOT NULL,
  kind TEXT NOT NULL, value BIGINT NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
ALTER TABLE manifests ADD COLUMN pulled_at BIGINT;
`,
  // 3: webhooks and their durable delivery queue (issue 23).
  `
CREATE TABLE webhooks (
  id BIGSERIAL PRIMARY KEY, namespace ${K} NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, events JSONB NOT NULL,
  enabled BOOLEAN NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX webhooks_ns ON webhooks (namespace);
CREATE TABLE webhook_deliveries (
  id BIGSERIAL PRIMARY KEY, hook BIGINT NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
  attempts INT NOT NULL DEFAULT 0, next_attempt BIGINT NOT NULL, last_status INT, last_error TEXT,
  created_at BIGINT NOT NULL, last_attempt_at BIGINT, claim_token TEXT, claimed_until BIGINT);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (hook, id);
`,
  // 4: pull-through cache namespaces (issue 23).
  `
CREATE TABLE proxies (
  namespace ${K} PRIMARY KEY, url TEXT NOT NULL, username TEXT, password TEXT, ttl_seconds DOUBLE PRECISION NOT NULL,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
`,
  // 5: replication rules, their runs and the items of each run (issue 23).
  postgresReplicationSchema,
  // 6: identity providers (issue 21), as SQLite's migration 7.
  `
ALTER TABLE users ADD COLUMN provider TEXT;
CREATE TABLE group_roles (namespace ${K} NOT NULL, group_key ${K} NOT NULL, group_name TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (namespace, group_key));
CREATE INDEX group_roles_key ON group_roles (group_key);
`,
  // 7: signature policies of namespaces (issue 19); keys and certificates as JSON arrays of PEM texts.
  `
CREATE TABLE signature_policies (
  namespace ${K} PRIMARY KEY, keys TEXT NOT NULL, certificates TEXT NOT NULL, enforce TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
`,
  // 8: the web UI (issue 20): sessions (the SHA-256 of the cookie's id), pages of tags by push time,
  // who pushed a manifest (the audit log by repository and digest).
  `
CREATE TABLE ui_sessions (id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
CREATE INDEX tags_pushed ON tags (repo, updated_at, tag);
CREATE INDEX audit_repository_digest ON audit (repository, digest, id);
`,
  // 9: OpenID Connect (issue 21), as SQLite's migration 10.
  `
CREATE TABLE oidc_logins (
  state_hash TEXT PRIMARY KEY, browser_hash TEXT NOT NULL, nonce TEXT NOT NULL, verifier TEXT NOT NULL, next TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
CREATE TABLE oidc_accounts (
  user_name ${K} PRIMARY KEY, subject TEXT NOT NULL, groups TEXT NOT NULL, refresh_token TEXT, checked_at BIGINT NOT NULL,
  secret_hash TEXT, secret_created_at BIGINT);
`,
];

/** Any constant both migrating replicas agree on: "kiln" in ASCII. */
const migrationLock = 0x6b696c6e;

const channel = 'kiln_changes';

/** Rows as pg returns them; the to*() functions below give them their types. */
type Row = Record<string, any>;

/** BIGINT columns hold ms times and sizes, well inside 2^53: read them as numbers, not strings. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** host:port/database of the URL, for messages (never the password). */
function describe(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? (u.hostname || 'localhost');
    return `${host}:${u.port || 5432}/${decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username) || 'postgres'}`;
  } catch {
    return 'the configured server (database.postgres.url is not a URL)';
  }
}

/**
 * With a CA file the TLS settings are ours: pg lets the URL's sslmode= replace the ssl option
 * (sslmode=verify-full becomes `ssl: {}`, dropping the CA), so the URL's TLS parameters go.
 */
function withoutTlsParameters(url: string): string {
  try {
    const u = new URL(url);
    for (const p of ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey']) u.searchParams.delete(p);
    return u.toString();
  } catch {
    return url;
  }
}

const namespaceOf = (repo: string): string => (repo.includes('/') ? repo.slice(0, repo.indexOf('/')) : repo);
const sortedUnique = (xs: string[]): string[] => [...new Set(xs)].sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function toManifest(r: Row): ManifestRecord {
  return {
    repository: r.repo,
    digest: r.digest,
    mediaType: r.media_type,
    body: r.body,
    artifactType: r.artifact_type ?? undefined,
    subject: r.subject ?? undefined,
    annotations: r.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : undefined,
    createdAt: r.created_at,
  };
}

const toUpload = (r: Row): UploadRecord => ({
  id: r.id,
  repository: r.repo,
  algorithm: r.algorithm,
  offset: r.upload_offset,
  key: r.key,
  multipartId: r.multipart_id ?? undefined,
  parts: r.parts,
  pending: r.pending,
  startedAt: r.started_at,
  touchedAt: r.touched_at,
});

const toUser = (r: Row): UserRecord => ({ name: r.name, passwordHash: r.password_hash, admin: r.admin, createdAt: r.created_at, ...(r.provider ? { provider: r.provider } : {}) });
const toNamespace = (r: Row): NamespaceRecord => ({
  name: r.name,
  public: r.public,
  createdAt: r.created_at,
  ...(r.quota_bytes !== null && r.quota_bytes !== undefined ? { quotaBytes: r.quota_bytes } : {}),
});
const toProxy = (r: Row): ProxyRecord => ({
  namespace: r.namespace,
  url: r.url,
  ...(r.username !== null ? { username: r.username } : {}),
  ...(r.password !== null ? { password: r.password } : {}),
  ttlSeconds: r.ttl_seconds,
  createdBy: r.created_by,
  createdAt: r.created_at,
});
const toRetention = (r: Row): RetentionRule => ({
  id: r.id,
  namespace: r.namespace,
  repos: r.repos,
  tags: r.tags,
  kind: r.kind,
  value: r.value,
  createdBy: r.created_by,
  createdAt: r.created_at,
});
const toPolicy = (r: Row): SignaturePolicy => ({
  namespace: r.namespace as string,
  keys: JSON.parse(r.keys as string) as string[],
  certificates: JSON.parse(r.certificates as string) as string[],
  on: (r.enforce as string).split(',') as PolicyEnforcement[],
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

const toRule = (r: Row): ImmutableRule => ({
  id: r.id,
  namespace: r.namespace,
  repos: r.repos,
  tags: r.tags,
  excludeRepos: r.exclude_repos,
  excludeTags: r.exclude_tags,
  createdBy: r.created_by,
  createdAt: r.created_at,
});
const toRobot = (r: Row): RobotRecord => ({
  name: r.name,
  namespace: r.namespace,
  secretHash: r.secret_hash,
  actions: r.actions,
  expiresAt: r.expires_at ?? undefined,
  createdBy: r.created_by,
  createdAt: r.created_at,
});
const toWebhook = (r: Row): WebhookRecord => ({
  id: r.id,
  namespace: r.namespace,
  url: r.url,
  secret: r.secret,
  events: r.events,
  enabled: r.enabled,
  createdBy: r.created_by,
  createdAt: r.created_at,
});
const toDelivery = (r: Row): DeliveryRecord => ({
  id: r.id,
  hook: r.hook,
  event: r.event,
  payload: r.payload,
  status: r.status,
  attempts: r.attempts,
  nextAttempt: r.next_attempt,
  ...(r.last_status !== null ? { lastStatus: r.last_status } : {}),
  ...(r.last_error !== null ? { lastError: r.last_error } : {}),
  createdAt: r.created_at,
  ...(r.last_attempt_at !== null ? { lastAttemptAt: r.last_attempt_at } : {}),
});
const toAudit = (r: Row): AuditEvent => ({
  id: r.id,
  time: r.time,
  actor: r.actor,
  action: r.action,
  repository: r.repository ?? undefined,
  namespace: r.namespace ?? undefined,
  reference: r.reference ?? undefined,
  digest: r.digest ?? undefined,
  detail: r.detail ?? undefined,
  address: r.address ?? undefined,
  count: r.count,
});

/** One transaction's queries, and what it tells the helper about how to end. */
interface Tx {
  q(sql: string, params?: unknown[]): Promise<pg.QueryResult<Row>>;
  /** The transaction changes what other replicas cache: notify them at commit. */
  changed(): void;
  /** Roll back instead of committing (the method found it must store nothing). */
  discard(): void;
}

/** Serialization failures and deadlocks: the transaction did nothing, running it again is safe. */
const retryable = (e: unknown) => {
  const code = (e as { code?: string }).code;
  return code === '40001' || code === '40P01';
};

/** Bring the schema up to date under a transaction-scoped advisory lock, so that replicas starting together migrate once. */
async function migrate(client: pg.ClientBase, where: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLock]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row), version INT NOT NULL)');
    const found = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows[0]?.version ?? 0;
    if (found > migrations.length) {
      throw new Error(`PostgreSQL ${where}: the database has schema version ${found}, newer than the ${migrations.length} this kiln knows: upgrade kiln`);
    }
    for (let v = found; v < migrations.length; v++) await client.query(migrations[v]!);
    if (found < migrations.length) {
      await client.query('INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = excluded.version', [migrations.length]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/**
 * LISTEN on a connection of its own. When that connection drops it connects again (backing off up
 * to 5 s) and then calls back, since notifications sent meanwhile are lost. Errors never escape.
 */
function startListener(config: pg.ClientConfig, replicaId: string, fire: () => void): { ready: Promise<void>; stop(): Promise<void> } {
  let client: pg.Client | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let delay = 250;

  const connect = async (): Promise<void> => {
    const c = new pg.Client(config);
    c.on('error', () => {}); // 'end' follows; reconnecting is done there
    c.on('notification', (n) => {
      if (n.channel === channel && n.payload !== replicaId) fire();
    });
    c.on('end', () => {
      if (client !== c) return;
      client = undefined;
      schedule();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
    } catch (e) {
      await c.end().catch(() => {});
      throw e;
    }
    if (closed) return void (await c.end().catch(() => {}));
    client = c;
    delay = 250;
  };
  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => {
      connect().then(fire, () => {
        delay = Math.min(delay * 2, 5000);
        schedule();
      });
    }, delay);
    timer.unref();
  };

  return {
    ready: connect(),
    async stop() {
      closed = true;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}

export async function openPostgresMetadata(opts: { url: string; poolSize?: number; ca?: string; replicaId?: string }): Promise<Metadata> {
  const where = describe(opts.url);
  const replicaId = opts.replicaId ?? randomUUID();
  const config: pg.ClientConfig = {
    connectionString: opts.ca ? withoutTlsParameters(opts.url) : opts.url,
    connectionTimeoutMillis: 5000,
    types,
    application_name: `kiln-registry ${replicaId}`.slice(0, 63),
    ...(opts.ca ? { ssl: { ca: readFileSync(opts.ca, 'utf8') } } : {}),
  };
  // A burst of clients waits for a connection rather than failing: 15 s in the pool's queue (a
  // server that is down still fails at once, with ECONNREFUSED, and answers 503).
  const pool = new pg.Pool({ ...config, connectionTimeoutMillis: 15_000, max: opts.poolSize ?? 20 });
  // An idle connection the server ended reports here; the pool drops it and opens another when needed.
  pool.on('error', () => {});

  const unreachable = (e: unknown) => new Error(`PostgreSQL ${where}: ${(e as Error).message || String(e)}`);
  let first: pg.PoolClient;
  try {
    first = await pool.connect();
  } catch (e) {
    await pool.end().catch(() => {});
    throw unreachable(e);
  }
  try {
    await migrate(first, where);
  } catch (e) {
    first.release(true);
    await pool.end().catch(() => {});
    throw e;
  }
  first.release();

  const listeners: (() => void)[] = [];
  const fire = () => {
    for (const cb of listeners) {
      try {
        cb();
      } catch {
        /* a cache's callback failing must not stop the others, nor the listener */
      }
    }
  };
  const listener = startListener(config, replicaId, fire);
  try {
    await listener.ready;
  } catch (e) {
    await listener.stop();
    await pool.end().catch(() => {});
    throw unreachable(e);
  }

  const read = async (sql: string, params: unknown[] = []): Promise<Row[]> => (await pool.query<Row>(sql, params)).rows;

  /**
   * A client of the pool for several statements; done() gives it back. pg-pool takes its 'error'
   * listener off a client while it is checked out, so a server that ends the connection between
   * two statements (a restart, an admin shutdown) would emit an 'error' nobody handles, and that
   * ends the process. Here the error is kept instead: the next statement fails anyway, and the
   * client, broken, is discarded rather than pooled.
   */
  const checkout = async (): Promise<{ client: pg.PoolClient; done: (broken?: Error) => void }> => {
    const client = await pool.connect();
    let lost: Error | undefined;
    const onError = (e: Error) => void (lost ??= e);
    client.on('error', onError);
    return {
      client,
      done: (broken) => {
        client.off('error', onError);
        client.release(broken ?? lost);
      },
    };
  };

  /** Run fn in one READ COMMITTED transaction, again (a few times) when PostgreSQL aborted it for a serialization failure or deadlock. */
  const tx = async <T>(fn: (t: Tx) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      const { client, done } = await checkout();
      let changed = false;
      let discard = false;
      let broken: Error | undefined;
      try {
        await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
        const result = await fn({
          q: (sql, params) => client.query<Row>(sql, params),
          changed: () => void (changed = true),
          discard: () => void (discard = true),
        });
        if (discard) await client.query('ROLLBACK');
        else {
          if (changed) await client.query('SELECT pg_notify($1, $2)', [channel, replicaId]);
          await client.query('COMMIT');
        }
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch((err: Error) => void (broken = err));
        if (retryable(e) && attempt < 5) {
          await sleep(attempt * 10 * Math.random());
          continue;
        }
        throw e;
      } finally {
        done(broken);
      }
    }
  };

  const ensureRepository = async (t: Tx, repo: string, now: number) => {
    await t.q('INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [repo, now]);
    await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, false, $2) ON CONFLICT DO NOTHING', [namespaceOf(repo), now]);
  };
  const link = (t: Tx, repo: string, digest: string, now: number) =>
    t.q('INSERT INTO repo_blobs (repo, digest, last_used) VALUES ($1, $2, $3) ON CONFLICT (repo, digest) DO UPDATE SET last_used = excluded.last_used', [repo, digest, now]);

  /**
   * Restart the clocks of the rows the new manifest references, locking them in digest order (so
   * that concurrent pushes cannot deadlock, GitLab container-registry #732); returns the digests
   * found. A row that garbage collection deleted meanwhile is not returned: the caller reports it missing.
   */
  const useReferenced = async (t: Tx, table: 'repo_blobs' | 'manifests', repo: string, digests: string[], now: number): Promise<Set<string>> => {
    if (digests.length === 0) return new Set();
    const r = await t.q(
      `UPDATE ${table} SET last_used = $3 WHERE (repo, digest) IN (SELECT repo, digest FROM ${table} WHERE repo = $1 AND digest = ANY($2) ORDER BY digest FOR UPDATE) RETURNING digest`,
      [repo, sortedUnique(digests), now],
    );
    return new Set(r.rows.map((x) => x.digest as string));
  };

  /** Point the tag at digest; returns where it pointed before (undefined when new). */
  const setTag = async (t: Tx, repo: string, tag: string, digest: string, now: number): Promise<string | undefined> => {
    for (;;) {
      // FOR UPDATE waits for a concurrent mover and then reads the digest it committed.
      const old = (await t.q('SELECT digest FROM tags WHERE repo = $1 AND tag = $2 FOR UPDATE', [repo, tag])).rows[0]?.digest as string | undefined;
      if (old !== undefined) {
        await t.q('UPDATE tags SET digest = $3, updated_at = $4 WHERE repo = $1 AND tag = $2', [repo, tag, digest, now]);
        return old;
      }
      const inserted = await t.q('INSERT INTO tags (repo, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [repo, tag, digest, now]);
      if (inserted.rowCount) return undefined;
      // Another push created the tag meanwhile: read what it set, and move it from there.
    }
  };

  /** Delete a manifest's rows; the caller holds the manifest row's lock. */
  const removeManifestRows = async (t: Tx, repo: string, digest: string) => {
    await t.q('DELETE FROM image_bases WHERE repo = $1 AND digest = $2', [repo, digest]);
    await t.q('DELETE FROM sboms WHERE repo = $1 AND digest = $2', [repo, digest]);
    await t.q('DELETE FROM sbom_packages WHERE repo = $1 AND sbom = $2', [repo, digest]);
    await t.q('DELETE FROM tags WHERE repo = $1 AND digest = $2', [repo, digest]);
    await t.q('DELETE FROM manifest_refs WHERE repo = $1 AND digest = $2', [repo, digest]);
    await t.q('DELETE FROM manifests WHERE repo = $1 AND digest = $2', [repo, digest]);
  };

  const tagsReaching = async (repo: string, digest: string) =>
    (
      await read(
        "SELECT tag FROM tags WHERE repo = $1 AND (digest = $2 OR digest IN (SELECT digest FROM manifest_refs WHERE repo = $1 AND child = $2 AND kind = 'manifest')) ORDER BY tag",
        [repo, digest],
      )
    ).map((r) => r.tag as string);

  let closed = false;
  const metadata: Metadata = {
    kind: 'postgres',
    ...postgresReplicationRows(read, tx),
    ...postgresBrowseRows(pool),
    ...postgresOidcRows(pool),

    // Blobs
    async blob(digest) {
      const r = (await read("SELECT size, key FROM blobs WHERE digest = $1 AND state = 'live'", [digest]))[0];
      return r ? { size: r.size, key: r.key } : undefined;
    },
    async linkedBlob(repo, digest) {
      const r = (await read("SELECT b.size, b.key FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = $1 AND l.digest = $2 AND b.state = 'live'", [repo, digest]))[0];
      return r ? { size: r.size, key: r.key } : undefined;
    },
    recordBlob(digest, size, repo, key, now) {
      return tx(async (t) => {
        // A live row keeps its key (the caller deletes its own copy); a row being deleted takes the new key (harbor #20131).
        const r = await t.q(
          `INSERT INTO blobs (digest, size, key, state, created_at, last_used) VALUES ($1, $2, $3, 'live', $4, $4)
           ON CONFLICT (digest) DO UPDATE SET last_used = excluded.last_used,
             key = CASE WHEN blobs.state <> 'live' THEN excluded.key ELSE blobs.key END, state = 'live'
           RETURNING key`,
          [digest, size, key, now],
        );
        await ensureRepository(t, repo, now);
        await link(t, repo, digest, now);
        t.changed();
        return { key: r.rows[0]!.key as string };
      });
    },
    linkBlob(repo, digest, now) {
      return tx(async (t) => {
        const used = await t.q("UPDATE blobs SET last_used = $2 WHERE digest = $1 AND state = 'live'", [digest, now]);
        if (!used.rowCount) return false;
        await ensureRepository(t, repo, now);
        await link(t, repo, digest, now);
        t.changed();
        return true;
      });
    },
    async touchBlob(repo, digest, now) {
      await pool.query('UPDATE repo_blobs SET last_used = $3 WHERE repo = $1 AND digest = $2 AND last_used < $3', [repo, digest, now]);
    },
    unlinkBlob(repo, digest) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2', [repo, digest]);
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },
    async blobRepositoryInNamespace(ns, digest) {
      const like = ns.replace(/[\\%_]/g, (c) => '\\' + c) + '/%';
      return (await read("SELECT repo FROM repo_blobs WHERE digest = $1 AND (repo = $2 OR repo LIKE $3 ESCAPE '\\') ORDER BY repo LIMIT 1", [digest, ns, like]))[0]?.repo;
    },
    async listBlobDigests() {
      return (await read("SELECT digest FROM blobs WHERE state = 'live' ORDER BY digest")).map((r) => r.digest as string);
    },
    async listLinks() {
      return (await read('SELECT repo, digest FROM repo_blobs ORDER BY repo, digest')).map((r) => ({ repository: r.repo as string, digest: r.digest as string }));
    },

    // Manifests and tags
    async getManifest(repo, digest) {
      const r = (await read('SELECT * FROM manifests WHERE repo = $1 AND digest = $2', [repo, digest]))[0];
      return r ? toManifest(r) : undefined;
    },
    async tagsOf(repo, digest) {
      return (await read('SELECT tag FROM tags WHERE repo = $1 AND digest = $2 ORDER BY tag', [repo, digest])).map((r) => r.tag as string);
    },
    async resolveTag(repo, tag) {
      return (await read('SELECT digest FROM tags WHERE repo = $1 AND tag = $2', [repo, tag]))[0]?.digest;
    },
    putManifest(m, refs, tags, opts) {
      return tx(async (t) => {
        const repo = m.repository;
        const now = m.createdAt;
        // Lock order: blob links, child manifests, the manifest, tags (each sorted); deleteManifest takes the same order.
        const links = await useReferenced(t, 'repo_blobs', repo, refs.blobs.map((b) => b.digest), now);
        const children = await useReferenced(t, 'manifests', repo, refs.manifests, now);
        const missing = opts?.allowMissing ? [] : [...refs.blobs.map((b) => b.digest).filter((d) => !links.has(d)), ...refs.manifests.filter((d) => !children.has(d))];
        if (missing.length) {
          t.discard();
          return { missing, moved: [] };
        }
        await ensureRepository(t, repo, now);
        await t.q(
          `INSERT INTO manifests (repo, digest, media_type, artifact_type, subject, annotations, body, created_at, last_used)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
           ON CONFLICT (repo, digest) DO UPDATE SET created_at = excluded.created_at, last_used = excluded.last_used`,
          [repo, m.digest, m.mediaType, m.artifactType ?? null, m.subject ?? null, m.annotations ? JSON.stringify(m.annotations) : null, m.body, now],
        );
        const childRows = [...refs.blobs.map((b) => ({ child: b.digest, kind: 'blob', size: b.size })), ...refs.manifests.map((d) => ({ child: d, kind: 'manifest', size: null }))];
        if (childRows.length) {
          await t.q(
            `INSERT INTO manifest_refs (repo, digest, child, kind, size)
             SELECT $1::text, $2::text, c, k, s FROM unnest($3::text[], $4::text[], $5::bigint[]) AS u(c, k, s) ON CONFLICT DO NOTHING`,
            [repo, m.digest, childRows.map((r) => r.child), childRows.map((r) => r.kind), childRows.map((r) => r.size)],
          );
        }
        if (refs.base) {
          await t.q(
            'INSERT INTO image_bases (repo, digest, base, base_name) VALUES ($1, $2, $3, $4) ON CONFLICT (repo, digest) DO UPDATE SET base = excluded.base, base_name = excluded.base_name',
            [repo, m.digest, refs.base.digest, refs.base.name ?? null],
          );
        }
        const moved: { tag: string; from: string }[] = [];
        for (const tag of sortedUnique(tags)) {
          const from = await setTag(t, repo, tag, m.digest, now);
          if (from !== undefined && from !== m.digest) moved.push({ tag, from });
        }
        t.changed();
        return { missing, moved };
      });
    },
    deleteManifest(repo, digest) {
      return tx(async (t) => {
        const found = await t.q('SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2 FOR UPDATE', [repo, digest]);
        if (!found.rowCount) return undefined;
        // Lock the tags in name order, as putManifest does, before deleting them.
        const tags = (await t.q('SELECT tag FROM tags WHERE repo = $1 AND digest = $2 ORDER BY tag FOR UPDATE', [repo, digest])).rows.map((r) => r.tag as string);
        await removeManifestRows(t, repo, digest);
        t.changed();
        return { tags };
      });
    },
    deleteTag(repo, tag) {
      return tx(async (t) => {
        const d = (await t.q('DELETE FROM tags WHERE repo = $1 AND tag = $2 RETURNING digest', [repo, tag])).rows[0]?.digest as string | undefined;
        if (d) t.changed();
        return d;
      });
    },
    async listTags(repo, last, n) {
      const rows = (await read('SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3', [repo, last ?? '', n ?? null])).map((r) => r.tag as string);
      if (rows.length === 0 && !(await metadata.repositoryExists(repo))) return undefined;
      return rows;
    },
    async referrers(repo, subject) {
      return (await read('SELECT * FROM manifests WHERE repo = $1 AND subject = $2 ORDER BY created_at, digest', [repo, subject])).map(toManifest);
    },
    async repositoryExists(repo) {
      const rows = await read(
        `SELECT 1 FROM repositories r WHERE r.name = $1 AND (EXISTS (SELECT 1 FROM manifests WHERE repo = r.name)
           OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo = r.name) OR EXISTS (SELECT 1 FROM tags WHERE repo = r.name))`,
        [repo],
      );
      return rows.length > 0;
    },
    async listRepositories(last, n) {
      const rows = await read(
        `SELECT name FROM repositories r WHERE name > $1 AND (EXISTS (SELECT 1 FROM manifests WHERE repo = r.name)
           OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo = r.name)) ORDER BY name LIMIT $2`,
        [last ?? '', n ?? null],
      );
      return rows.map((r) => r.name as string);
    },
    async storageBytes() {
      const r = await read(
        "SELECT ((SELECT COALESCE(SUM(size), 0) FROM blobs WHERE state = 'live') + (SELECT COALESCE(SUM(octet_length(body)), 0) FROM manifests))::bigint AS n",
      );
      return r[0]?.n ?? 0;
    },
    async listManifests() {
      return manifestListing({
        manifests: (await read('SELECT repo, digest, subject FROM manifests ORDER BY repo, digest')) as ListingRows['manifests'],
        refs: (await read('SELECT repo, digest, child, kind, size FROM manifest_refs')) as ListingRows['refs'],
        bases: (await read('SELECT repo, digest, base, base_name FROM image_bases')) as ListingRows['bases'],
      });
    },

    // Search index
    indexPackages(repo, sbom, subject, packages) {
      return tx(async (t) => {
        // The SBOM may have been deleted (or collected) while its document was being read; the
        // share lock makes a concurrent delete wait, and then remove these rows with the manifest.
        if (!(await t.q('SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2 FOR SHARE', [repo, sbom])).rowCount) return;
        await t.q('DELETE FROM sbom_packages WHERE repo = $1 AND sbom = $2', [repo, sbom]);
        if (packages.length) {
          const col = <T>(f: (p: (typeof packages)[number]) => T) => packages.map(f);
          await t.q(
            `INSERT INTO sbom_packages (repo, sbom, subject, name, version, type, purl, source, name_key, source_key)
             SELECT $1::text, $2::text, $3::text, * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`,
            [
              repo,
              sbom,
              subject,
              col((r) => r.package.name),
              col((r) => r.package.version),
              col((r) => r.package.type),
              col((r) => r.package.purl ?? null),
              col((r) => r.package.source ?? null),
              col((r) => r.nameKey),
              col((r) => r.sourceKey ?? null),
            ],
          );
        }
        await t.q(
          'INSERT INTO sboms (repo, digest, subject, packages) VALUES ($1, $2, $3, $4) ON CONFLICT (repo, digest) DO UPDATE SET subject = excluded.subject, packages = excluded.packages',
          [repo, sbom, subject, packages.length],
        );
      });
    },
    async findPackages(keys) {
      if (keys.length === 0) return [];
      const rows = await read(
        `SELECT p.* FROM sbom_packages p WHERE (p.name_key = ANY($1) OR p.source_key = ANY($1))
           AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo = p.repo AND m.digest = p.subject)
         ORDER BY p.repo, p.subject, p.name, p.version`,
        [keys],
      );
      const hits: PackageHit[] = [];
      for (const r of rows) {
        hits.push({
          repository: r.repo,
          digest: r.subject,
          tags: await tagsReaching(r.repo, r.subject),
          sbom: r.sbom,
          package: { name: r.name, version: r.version, type: r.type, ...(r.purl ? { purl: r.purl } : {}), ...(r.source ? { source: r.source } : {}) },
        });
      }
      return hits;
    },
    async findBuiltOnRepository(repo) {
      const like = '%' + repo.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      const rows = await read(
        `SELECT b.*, EXISTS (SELECT 1 FROM manifests m WHERE m.repo = $1 AND m.digest = b.base) AS in_repo FROM image_bases b
         WHERE b.base IN (SELECT digest FROM manifests WHERE repo = $1) OR b.base_name LIKE $2 ESCAPE '\\' ORDER BY b.repo, b.digest`,
        [repo, like],
      );
      const hits: (BaseHit & { baseInRepository: boolean })[] = [];
      for (const r of rows) {
        hits.push({
          repository: r.repo,
          digest: r.digest,
          tags: await tagsReaching(r.repo, r.digest),
          base: { digest: r.base, ...(r.base_name ? { name: r.base_name } : {}) },
          baseInRepository: r.in_repo === true,
        });
      }
      return hits;
    },
    async findBuiltOn(digests) {
      if (digests.length === 0) return [];
      const hits: BaseHit[] = [];
      for (const r of await read('SELECT * FROM image_bases WHERE base = ANY($1) ORDER BY repo, digest', [digests])) {
        hits.push({
          repository: r.repo,
          digest: r.digest,
          tags: await tagsReaching(r.repo, r.digest),
          base: { digest: r.base, ...(r.base_name ? { name: r.base_name } : {}) },
        });
      }
      return hits;
    },
    async unindexedReferrers(artifactTypes) {
      if (artifactTypes.length === 0) return [];
      const rows = await read(
        `SELECT m.repo, m.digest, m.subject FROM manifests m WHERE m.subject IS NOT NULL AND m.artifact_type = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM sboms x WHERE x.repo = m.repo AND x.digest = m.digest) ORDER BY m.repo, m.digest`,
        [artifactTypes],
      );
      return rows.map((r) => ({ repository: r.repo, digest: r.digest, subject: r.subject }));
    },

    // Users, namespaces, roles, robots
    async getUser(name) {
      const r = (await read('SELECT * FROM users WHERE name = $1', [name]))[0];
      return r ? toUser(r) : undefined;
    },
    async listUsers() {
      return (await read('SELECT * FROM users ORDER BY name')).map(toUser);
    },
    putUser(u) {
      return tx(async (t) => {
        await t.q(
          'INSERT INTO users (name, password_hash, admin, created_at, provider) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin, provider = excluded.provider',
          [u.name, u.passwordHash, u.admin, u.createdAt, u.provider ?? null],
        );
        t.changed();
      });
    },
    deleteUser(name) {
      return tx(async (t) => {
        await t.q('DELETE FROM members WHERE member = $1', [name]);
        const r = await t.q('DELETE FROM users WHERE name = $1', [name]);
        t.changed();
        return !!r.rowCount;
      });
    },
    async getNamespace(name) {
      const r = (await read('SELECT * FROM namespaces WHERE name = $1', [name]))[0];
      return r ? toNamespace(r) : undefined;
    },
    async listNamespaces() {
      return (await read('SELECT * FROM namespaces ORDER BY name')).map(toNamespace);
    },
    putNamespace(ns) {
      return tx(async (t) => {
        await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET public = excluded.public', [ns.name, ns.public, ns.createdAt]);
        t.changed();
      });
    },
    async immutableRules(ns) {
      const rows = ns === undefined ? await read('SELECT * FROM immutable_rules ORDER BY id') : await read('SELECT * FROM immutable_rules WHERE namespace = $1 ORDER BY id', [ns]);
      return rows.map(toRule);
    },
    addImmutableRule(r) {
      return tx(async (t) => {
        const row = await t.q(
          'INSERT INTO immutable_rules (namespace, repos, tags, exclude_repos, exclude_tags, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
          [r.namespace, r.repos, r.tags, r.excludeRepos, r.excludeTags, r.createdBy, r.createdAt],
        );
        t.changed();
        return row.rows[0]!.id as number;
      });
    },
    removeImmutableRule(id) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM immutable_rules WHERE id = $1 RETURNING *', [id]);
        if (r.rowCount) t.changed();
        return r.rows[0] ? toRule(r.rows[0]) : undefined;
      });
    },
    async signaturePolicies(ns) {
      const rows = ns === undefined ? await read('SELECT * FROM signature_policies ORDER BY namespace') : await read('SELECT * FROM signature_policies WHERE namespace = $1', [ns]);
      return rows.map(toPolicy);
    },
    setSignaturePolicy(p) {
      return tx(async (t) => {
        await t.q(
          `INSERT INTO signature_policies (namespace, keys, certificates, enforce, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (namespace) DO UPDATE SET keys = excluded.keys, certificates = excluded.certificates, enforce = excluded.enforce, created_by = excluded.created_by, created_at = excluded.created_at`,
          [p.namespace, JSON.stringify(p.keys), JSON.stringify(p.certificates), p.on.join(','), p.createdBy, p.createdAt],
        );
        t.changed();
      });
    },
    removeSignaturePolicy(ns) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM signature_policies WHERE namespace = $1 RETURNING *', [ns]);
        if (r.rowCount) t.changed();
        return r.rows[0] ? toPolicy(r.rows[0]) : undefined;
      });
    },
    async indexesListing(repo, digest) {
      return (await read("SELECT digest FROM manifest_refs WHERE repo = $1 AND child = $2 AND kind = 'manifest' ORDER BY digest", [repo, digest])).map((r) => r.digest as string);
    },
    async retentionRules(ns) {
      const rows = ns === undefined ? await read('SELECT * FROM retention_rules ORDER BY id') : await read('SELECT * FROM retention_rules WHERE namespace = $1 ORDER BY id', [ns]);
      return rows.map(toRetention);
    },
    addRetentionRule(r) {
      return tx(async (t) => {
        const row = await t.q(
          'INSERT INTO retention_rules (namespace, repos, tags, kind, value, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
          [r.namespace, r.repos, r.tags, r.kind, r.value, r.createdBy, r.createdAt],
        );
        return row.rows[0]!.id as number;
      });
    },
    removeRetentionRule(id) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM retention_rules WHERE id = $1 RETURNING *', [id]);
        return r.rows[0] ? toRetention(r.rows[0]) : undefined;
      });
    },
    async tagRecords(repo) {
      const rows = await read('SELECT t.tag, t.digest, t.updated_at, m.pulled_at FROM tags t LEFT JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = $1 ORDER BY t.tag', [repo]);
      return rows.map((r): TagRecord => ({ tag: r.tag, digest: r.digest, pushedAt: r.updated_at, ...(r.pulled_at !== null && r.pulled_at !== undefined ? { pulledAt: r.pulled_at } : {}) }));
    },
    async untaggedManifests(repo, before) {
      const rows = await read(
        `SELECT m.digest FROM manifests m WHERE m.repo = $1 AND m.created_at < $2 AND m.subject IS NULL
           AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = m.repo AND r.child = m.digest AND r.kind = 'manifest' AND r.digest <> m.digest)
         ORDER BY m.digest`,
        [repo, before],
      );
      return rows.map((r) => r.digest as string);
    },
    async markPulled(repo, digest, now) {
      await pool.query('UPDATE manifests SET pulled_at = $1 WHERE repo = $2 AND digest = $3 AND (pulled_at IS NULL OR pulled_at < $4)', [now, repo, digest, now - 60_000]);
    },
    async getProxy(ns) {
      const r = (await read('SELECT * FROM proxies WHERE namespace = $1', [ns]))[0];
      return r ? toProxy(r) : undefined;
    },
    async listProxies() {
      return (await read('SELECT * FROM proxies ORDER BY namespace')).map(toProxy);
    },
    setProxy(ns, p, now) {
      return tx(async (t) => {
        if (!p) await t.q('DELETE FROM proxies WHERE namespace = $1', [ns]);
        else {
          await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, false, $2) ON CONFLICT DO NOTHING', [ns, now]);
          await t.q(
            `INSERT INTO proxies (namespace, url, username, password, ttl_seconds, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (namespace) DO UPDATE SET url = excluded.url, username = excluded.username, password = excluded.password,
               ttl_seconds = excluded.ttl_seconds, created_by = excluded.created_by, created_at = excluded.created_at`,
            [ns, p.url, p.username ?? null, p.password ?? null, p.ttlSeconds, p.createdBy, p.createdAt],
          );
        }
        t.changed();
      });
    },
    setQuota(ns, quota, now) {
      return tx(async (t) => {
        await t.q('INSERT INTO namespaces (name, public, created_at, quota_bytes) VALUES ($1, false, $2, $3) ON CONFLICT (name) DO UPDATE SET quota_bytes = excluded.quota_bytes', [ns, now, quota ?? null]);
        t.changed();
      });
    },
    async namespaceUsage(ns) {
      const like = ns.replace(/[\\%_]/g, (c) => '\\' + c) + '/%';
      const r = await read(
        "SELECT COALESCE(SUM(b.size), 0)::bigint AS n FROM blobs b WHERE b.digest IN (SELECT digest FROM repo_blobs WHERE repo = $1 OR repo LIKE $2 ESCAPE '\\')",
        [ns, like],
      );
      return Number(r[0]!.n);
    },
    async getRole(ns, user) {
      return (await read('SELECT role FROM members WHERE namespace = $1 AND member = $2', [ns, user]))[0]?.role as Role | undefined;
    },
    async rolesOf(user) {
      return (await read('SELECT namespace, member AS "user", role FROM members WHERE member = $1 ORDER BY namespace', [user])) as Membership[];
    },
    async listMembers(ns) {
      return (await read('SELECT namespace, member AS "user", role FROM members WHERE namespace = $1 ORDER BY member', [ns])) as Membership[];
    },
    setRole(ns, user, role) {
      return tx(async (t) => {
        await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, false, $2) ON CONFLICT DO NOTHING', [ns, Date.now()]);
        await t.q('INSERT INTO members (namespace, member, role) VALUES ($1, $2, $3) ON CONFLICT (namespace, member) DO UPDATE SET role = excluded.role', [ns, user, role]);
        t.changed();
      });
    },
    revokeRole(ns, user) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM members WHERE namespace = $1 AND member = $2', [ns, user]);
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },
    async groupBindings(ns) {
      const cols = 'SELECT namespace, group_name AS "group", role FROM group_roles';
      return (ns === undefined ? await read(`${cols} ORDER BY namespace, group_key`) : await read(`${cols} WHERE namespace = $1 ORDER BY group_key`, [ns])) as GroupBinding[];
    },
    async bindingsOfGroups(groups) {
      const keys = [...new Set(groups.map(groupKey))];
      if (keys.length === 0) return [];
      return (await read('SELECT namespace, group_name AS "group", role FROM group_roles WHERE group_key = ANY($1) ORDER BY namespace, group_key', [keys])) as GroupBinding[];
    },
    setGroupRole(ns, group, role) {
      return tx(async (t) => {
        await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, false, $2) ON CONFLICT DO NOTHING', [ns, Date.now()]);
        await t.q(
          'INSERT INTO group_roles (namespace, group_key, group_name, role) VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, group_key) DO UPDATE SET group_name = excluded.group_name, role = excluded.role',
          [ns, groupKey(group), group, role],
        );
        t.changed();
      });
    },
    revokeGroupRole(ns, group) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM group_roles WHERE namespace = $1 AND group_key = $2', [ns, groupKey(group)]);
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },
    async getRobot(name) {
      const r = (await read('SELECT * FROM robots WHERE name = $1', [name]))[0];
      return r ? toRobot(r) : undefined;
    },
    async listRobots(ns) {
      const rows = ns ? await read('SELECT * FROM robots WHERE namespace = $1 ORDER BY name', [ns]) : await read('SELECT * FROM robots ORDER BY name');
      return rows.map(toRobot);
    },
    putRobot(r) {
      return tx(async (t) => {
        await t.q('INSERT INTO namespaces (name, public, created_at) VALUES ($1, false, $2) ON CONFLICT DO NOTHING', [r.namespace, Date.now()]);
        await t.q(
          `INSERT INTO robots (name, namespace, secret_hash, actions, expires_at, created_by, created_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
           ON CONFLICT (name) DO UPDATE SET secret_hash = excluded.secret_hash, actions = excluded.actions, expires_at = excluded.expires_at`,
          [r.name, r.namespace, r.secretHash, JSON.stringify(r.actions), r.expiresAt ?? null, r.createdBy, r.createdAt],
        );
        t.changed();
      });
    },
    deleteRobot(name) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM robots WHERE name = $1', [name]);
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },

    // Audit
    async recordAudit(events) {
      if (events.length === 0) return;
      const col = <T>(f: (e: AuditEvent) => T) => events.map(f);
      await pool.query(
        `INSERT INTO audit (time, actor, action, repository, namespace, reference, digest, detail, address, count)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[])`,
        [
          col((e) => e.time),
          col((e) => e.actor),
          col((e) => e.action),
          col((e) => e.repository ?? null),
          col((e) => e.namespace ?? (e.repository ? namespaceOf(e.repository) : null)),
          col((e) => e.reference ?? null),
          col((e) => e.digest ?? null),
          col((e) => e.detail ?? null),
          col((e) => e.address ?? null),
          col((e) => e.count ?? 1),
        ],
      );
    },
    async listAudit(f) {
      const where: string[] = [];
      const args: unknown[] = [];
      for (const [column, value] of [['namespace', f.namespace], ['actor', f.actor], ['action', f.action]] as const) {
        if (!value) continue;
        args.push(value);
        where.push(`${column} = $${args.length}`);
      }
      for (const [cond, value] of [['time >=', f.since], ['time <=', f.until], ['id <', f.before]] as const) {
        if (value === undefined) continue;
        args.push(value);
        where.push(`${cond} $${args.length}`);
      }
      args.push(f.limit);
      return (await read(`SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT $${args.length}`, args)).map(toAudit);
    },

    // Garbage collection
    async findGarbage(cutoff) {
      // One snapshot for all five reads, so the mark sees a consistent state; it changes nothing.
      const { client, done } = await checkout();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const all = async <T>(sql: string) => (await client.query(sql)).rows as T[];
        const rows: GcSnapshot = {
          manifests: await all('SELECT repo, digest, last_used, subject FROM manifests'),
          tags: await all('SELECT repo, digest FROM tags'),
          refs: await all('SELECT repo, digest, child, kind FROM manifest_refs'),
          links: await all('SELECT repo, digest, last_used FROM repo_blobs'),
          blobs: await all("SELECT digest, size, last_used FROM blobs WHERE state = 'live'"),
        };
        await client.query('COMMIT');
        return markGarbage(rows, cutoff);
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        done();
      }
    },
    removeManifestIfUnused(repo, digest, cutoff) {
      return tx(async (t) => {
        // One conditional statement: a push that references the manifest or re-tags it restarts
        // its clock first, and this DELETE re-checks the clock once it has the row.
        const removed = await t.q(
          `DELETE FROM manifests m WHERE m.repo = $1 AND m.digest = $2 AND m.created_at < $3 AND m.last_used < $3
             AND NOT EXISTS (SELECT 1 FROM tags WHERE repo = $1 AND digest = $2)
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests p ON p.repo = r.repo AND p.digest = r.digest
                             WHERE r.repo = $1 AND r.child = $2 AND r.kind = 'manifest' AND r.digest <> $2)
             AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo = $1 AND s.digest = m.subject))
           RETURNING 1`,
          [repo, digest, cutoff],
        );
        if (!removed.rowCount) return false;
        await removeManifestRows(t, repo, digest);
        t.changed();
        return true;
      });
    },
    removeLinkIfUnused(repo, digest, cutoff) {
      return tx(async (t) => {
        const r = await t.q(
          "DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2 AND last_used < $3 AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE repo = $1 AND child = $2 AND kind = 'blob')",
          [repo, digest, cutoff],
        );
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },
    claimBlob(digest, cutoff) {
      return tx(async (t) => {
        const r = await t.q(
          `UPDATE blobs SET state = 'deleting' WHERE digest = $1 AND state = 'live' AND last_used < $2
             AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1)
             AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE child = $1 AND kind = 'blob')
           RETURNING key`,
          [digest, cutoff],
        );
        if (r.rowCount) t.changed();
        return r.rows[0]?.key as string | undefined;
      });
    },
    async deletingBlobs() {
      return (await read("SELECT digest, key FROM blobs WHERE state = 'deleting' ORDER BY digest")) as { digest: string; key: string }[];
    },
    async forgetBlob(digest, key) {
      await pool.query("DELETE FROM blobs WHERE digest = $1 AND state IN ('deleting', 'missing') AND key = $2", [digest, key]);
    },
    reportMissing(digest, key) {
      return tx(async (t) => {
        const r = await t.q("UPDATE blobs SET state = 'missing' WHERE digest = $1 AND key = $2 AND state = 'live'", [digest, key]);
        // Other replicas drop the blob from their caches too.
        if (r.rowCount) t.changed();
      });
    },
    async missingBlobs() {
      return (await read("SELECT digest, key FROM blobs WHERE state = 'missing' ORDER BY digest")) as { digest: string; key: string }[];
    },
    restoreBlob(digest, key) {
      return tx(async (t) => {
        const r = await t.q("UPDATE blobs SET state = 'live' WHERE digest = $1 AND key = $2 AND state = 'missing'", [digest, key]);
        if (r.rowCount) t.changed();
      });
    },
    async keyInUse(key) {
      return (await read('SELECT 1 FROM blobs WHERE key = $1 UNION ALL SELECT 1 FROM uploads WHERE key = $1 LIMIT 1', [key])).length > 0;
    },

    // Upload sessions
    async createUpload(u) {
      await pool.query(
        `INSERT INTO uploads (id, repo, algorithm, upload_offset, key, multipart_id, parts, pending, started_at, touched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10)`,
        [u.id, u.repository, u.algorithm, u.offset, u.key, u.multipartId ?? null, JSON.stringify(u.parts), JSON.stringify(u.pending), u.startedAt, u.touchedAt],
      );
    },
    async getUpload(id) {
      const r = (await read('SELECT * FROM uploads WHERE id = $1', [id]))[0];
      return r ? toUpload(r) : undefined;
    },
    async claimUpload(id, offset, token, until) {
      const now = Date.now();
      const claimed = await read(
        'UPDATE uploads SET claim_token = $3, claim_until = $4 WHERE id = $1 AND upload_offset = $2 AND (claim_until IS NULL OR claim_until < $5) RETURNING *',
        [id, offset, token, until, now],
      );
      if (claimed[0]) return toUpload(claimed[0]);
      // Why not: a later read may see a release that came after the UPDATE; either answer was true at some point.
      const r = (await read('SELECT upload_offset FROM uploads WHERE id = $1', [id]))[0];
      if (!r) return undefined;
      return r.upload_offset !== offset ? 'offset' : 'busy';
    },
    async releaseUpload(id, token, u) {
      const r = u
        ? await pool.query(
            `UPDATE uploads SET claim_token = NULL, claim_until = NULL, upload_offset = $3, multipart_id = $4, parts = $5::jsonb, pending = $6::jsonb, touched_at = $7
             WHERE id = $1 AND claim_token = $2`,
            [id, token, u.offset, u.multipartId ?? null, JSON.stringify(u.parts), JSON.stringify(u.pending), u.touchedAt],
          )
        : await pool.query('UPDATE uploads SET claim_token = NULL, claim_until = NULL WHERE id = $1 AND claim_token = $2', [id, token]);
      return !!r.rowCount;
    },
    async deleteUpload(id) {
      await pool.query('DELETE FROM uploads WHERE id = $1', [id]);
    },
    async staleUploads(before) {
      return (await read('SELECT * FROM uploads WHERE touched_at < $1 AND (claim_until IS NULL OR claim_until < $2) ORDER BY id', [before, Date.now()])).map(toUpload);
    },

    // Shared state
    async sharedValue(name, create) {
      const existing = (await read('SELECT value FROM shared_values WHERE name = $1', [name]))[0];
      if (existing) return existing.value as string;
      // The first replica's insert wins; the others read its value.
      await pool.query('INSERT INTO shared_values (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING', [name, create()]);
      return (await read('SELECT value FROM shared_values WHERE name = $1', [name]))[0]!.value as string;
    },
    async loginFailures(keys, windowMs, now, count) {
      if (!count) {
        const rows = new Map((await read('SELECT key, start, failures FROM login_failures WHERE key = ANY($1)', [keys])).map((r) => [r.key as string, r]));
        return keys.map((k) => {
          const r = rows.get(k);
          return r && now - r.start < windowMs ? { failures: r.failures as number, start: r.start as number } : { failures: 0, start: now };
        });
      }
      return tx(async (t) => {
        // One atomic increment per key, in key order; a window that has ended starts again with this failure.
        const result = new Map<string, { failures: number; start: number }>();
        for (const k of sortedUnique(keys)) {
          const r = await t.q(
            `INSERT INTO login_failures (key, start, failures) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
               start = CASE WHEN $2 - login_failures.start >= $3 THEN $2 ELSE login_failures.start END,
               failures = CASE WHEN $2 - login_failures.start >= $3 THEN 1 ELSE login_failures.failures + 1 END
             RETURNING start, failures`,
            [k, now, windowMs],
          );
          result.set(k, { failures: r.rows[0]!.failures, start: r.rows[0]!.start });
        }
        return keys.map((k) => result.get(k)!);
      });
    },
    async clearFailures(keys) {
      if (keys.length) await pool.query('DELETE FROM login_failures WHERE key = ANY($1)', [keys]);
    },

    // Webhooks
    async webhooks(ns) {
      const rows = ns === undefined ? await read('SELECT * FROM webhooks ORDER BY id') : await read('SELECT * FROM webhooks WHERE namespace = $1 ORDER BY id', [ns]);
      return rows.map(toWebhook);
    },
    async getWebhook(id) {
      const r = (await read('SELECT * FROM webhooks WHERE id = $1', [id]))[0];
      return r ? toWebhook(r) : undefined;
    },
    addWebhook(h) {
      return tx(async (t) => {
        const r = await t.q('INSERT INTO webhooks (namespace, url, secret, events, enabled, created_by, created_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) RETURNING id', [
          h.namespace, h.url, h.secret, JSON.stringify(h.events), h.enabled, h.createdBy, h.createdAt,
        ]);
        // Other replicas drop the hooks they cached.
        t.changed();
        return r.rows[0]!.id as number;
      });
    },
    setWebhookEnabled(id, enabled) {
      return tx(async (t) => {
        const r = await t.q('UPDATE webhooks SET enabled = $2 WHERE id = $1', [id, enabled]);
        if (r.rowCount) t.changed();
        return !!r.rowCount;
      });
    },
    removeWebhook(id) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM webhooks WHERE id = $1 RETURNING *', [id]);
        if (!r.rows[0]) return undefined;
        await t.q('DELETE FROM webhook_deliveries WHERE hook = $1', [id]);
        t.changed();
        return toWebhook(r.rows[0]);
      });
    },
    async enqueueDeliveries(ds) {
      if (ds.length === 0) return;
      await pool.query(
        `INSERT INTO webhook_deliveries (hook, event, payload, status, next_attempt, created_at)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $5::bigint[])`,
        [ds.map((d) => d.hook), ds.map((d) => d.event), ds.map((d) => d.payload), ds.map(() => 'pending'), ds.map((d) => d.createdAt)],
      );
    },
    async claimDeliveries(token, now, until, limit) {
      // SKIP LOCKED: replicas claiming at once take different rows instead of waiting on each other;
      // the outer WHERE is evaluated again on the locked row, so a row is claimed once.
      const rows = await read(
        `UPDATE webhook_deliveries SET claim_token = $1, claimed_until = $2 WHERE id IN (
           SELECT d.id FROM webhook_deliveries d JOIN webhooks h ON h.id = d.hook
           WHERE d.status = 'pending' AND h.enabled AND d.next_attempt <= $3 AND (d.claimed_until IS NULL OR d.claimed_until < $3)
           ORDER BY d.next_attempt, d.id LIMIT $4 FOR UPDATE OF d SKIP LOCKED)
         AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < $3) RETURNING *`,
        [token, until, now, limit],
      );
      return rows.map(toDelivery).sort((a, b) => a.nextAttempt - b.nextAttempt || a.id - b.id);
    },
    async finishDelivery(id, token, r) {
      const res = await pool.query(
        `UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt = $5, last_status = $6, last_error = $7, last_attempt_at = $8,
           claim_token = NULL, claimed_until = NULL WHERE id = $1 AND claim_token = $2`,
        [id, token, r.status, r.attempts, r.nextAttempt, r.lastStatus ?? null, r.lastError ?? null, r.at],
      );
      return !!res.rowCount;
    },
    async releaseDeliveries(token, ids) {
      if (ids.length) await pool.query('UPDATE webhook_deliveries SET claim_token = NULL, claimed_until = NULL WHERE id = ANY($1::bigint[]) AND claim_token = $2', [ids, token]);
    },
    async deliveries(hook, limit) {
      return (await read('SELECT * FROM webhook_deliveries WHERE hook = $1 ORDER BY id DESC LIMIT $2', [hook, limit])).map(toDelivery);
    },
    async pruneDeliveries(before) {
      return (await pool.query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND last_attempt_at < $1", [before])).rowCount ?? 0;
    },

    onExternalChange(cb) {
      listeners.push(cb);
    },
    async close() {
      if (closed) return;
      closed = true;
      await listener.stop();
      await pool.end();
    },
  };
  return metadata;
}
