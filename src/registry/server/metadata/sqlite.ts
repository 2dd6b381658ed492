import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  AuditEvent,
  ManifestRecord,
  ManifestRefs,
  Membership,
  ProxyRecord,
  GroupBinding,
  ImmutableRule,
  Metadata,
  PolicyEnforcement,
  SignaturePolicy,
  NamespaceRecord,
  PackageHit,
  RetentionKind,
  RetentionRule,
  TagRecord,
  BaseHit,
  DeliveryRecord,
  DeliveryStatus,
  WebhookRecord,
  RobotRecord,
  Role,
  UploadRecord,
  UserRecord,
} from './metadata.js';
import { groupKey } from './metadata.js';
import { markGarbage } from './garbage.js';
import { manifestListing, type ListingRows } from './listing.js';
import { sqliteReplicationRows, sqliteReplicationSchema } from './replication-sqlite.js';
import { sqliteBrowseRows } from './browse-sqlite.js';
import { sqliteOidcRows } from './oidc-sqlite.js';

const schema = `
CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS repo_blobs (
  repo TEXT NOT NULL, digest TEXT NOT NULL, last_used INTEGER NOT NULL, PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS repo_blobs_digest ON repo_blobs (digest);
CREATE TABLE IF NOT EXISTS manifests (
  repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, artifact_type TEXT, subject TEXT,
  annotations TEXT, body BLOB NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (repo, subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS manifest_refs (
  repo TEXT NOT NULL, digest TEXT NOT NULL, child TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER,
  PRIMARY KEY (repo, digest, kind, child));
CREATE INDEX IF NOT EXISTS manifest_refs_child ON manifest_refs (child);
CREATE TABLE IF NOT EXISTS tags (
  repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (repo, tag));
CREATE INDEX IF NOT EXISTS tags_digest ON tags (repo, digest);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY, public INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (namespace TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (namespace, user));
CREATE INDEX IF NOT EXISTS members_user ON members (user);
CREATE TABLE IF NOT EXISTS robots (
  name TEXT PRIMARY KEY, namespace TEXT NOT NULL, secret_hash TEXT NOT NULL, actions TEXT NOT NULL,
  expires_at INTEGER, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  repository TEXT, namespace TEXT, reference TEXT, digest TEXT, detail TEXT, address TEXT, count INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS audit_namespace ON audit (namespace, id);
`;

/**
 * Schema changes after the first schema, in order; PRAGMA user_version counts those applied. Each runs
 * once, in a write transaction, and fills its tables from what is already stored where it can.
 */
const migrations: string[] = [
  // 1: the search index. Base images from manifest annotations (image-spec annotations.md); packages
  // of SBOM referrers (sboms: one row per indexed SBOM, also when it lists nothing).
  `
CREATE TABLE image_bases (repo TEXT NOT NULL, digest TEXT NOT NULL, base TEXT NOT NULL, base_name TEXT, PRIMARY KEY (repo, digest));
CREATE INDEX image_bases_base ON image_bases (base);
CREATE TABLE sboms (repo TEXT NOT NULL, digest TEXT NOT NULL, subject TEXT NOT NULL, packages INTEGER NOT NULL, PRIMARY KEY (repo, digest));
CREATE TABLE sbom_packages (
  repo TEXT NOT NULL, sbom TEXT NOT NULL, subject TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, type TEXT NOT NULL,
  purl TEXT, source TEXT, name_key TEXT NOT NULL, source_key TEXT);
CREATE INDEX sbom_packages_sbom ON sbom_packages (repo, sbom);
CREATE INDEX sbom_packages_name ON sbom_packages (name_key);
CREATE INDEX sbom_packages_source ON sbom_packages (source_key) WHERE source_key IS NOT NULL;
INSERT INTO image_bases (repo, digest, base, base_name)
  SELECT repo, digest, json_extract(annotations, '$."org.opencontainers.image.base.digest"'), json_extract(annotations, '$."org.opencontainers.image.base.name"')
  FROM manifests WHERE annotations IS NOT NULL AND json_valid(annotations)
    AND json_type(annotations, '$."org.opencontainers.image.base.digest"') = 'text';
`,
  // 2: garbage collection without a lock, and state for several processes (issue 18). Blobs get the
  // storage key of their bytes (until now always the digest's fan-out path), a state ('deleting'
  // while GC removes the bytes) and a clock of last use; manifests a clock of last use.
  `
ALTER TABLE blobs ADD COLUMN key TEXT NOT NULL DEFAULT '';
ALTER TABLE blobs ADD COLUMN state TEXT NOT NULL DEFAULT 'live';
ALTER TABLE blobs ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET last_used = created_at,
  key = substr(digest, 1, instr(digest, ':') - 1) || '/' || substr(digest, instr(digest, ':') + 1, 2) || '/' || substr(digest, instr(digest, ':') + 1);
CREATE INDEX blobs_key ON blobs (key);
ALTER TABLE manifests ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET last_used = created_at;
CREATE TABLE uploads (
  id TEXT PRIMARY KEY, repo TEXT NOT NULL, algorithm TEXT NOT NULL, offset INTEGER NOT NULL, key TEXT NOT NULL,
  multipart_id TEXT, parts TEXT NOT NULL, pending TEXT NOT NULL, started_at INTEGER NOT NULL, touched_at INTEGER NOT NULL,
  claim_token TEXT, claim_until INTEGER);
CREATE TABLE shared_values (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE login_failures (key TEXT PRIMARY KEY, start INTEGER NOT NULL, failures INTEGER NOT NULL);
`,
  // 3: rules of namespaces (issue 23): tag immutability, storage quotas.
  `
CREATE TABLE immutable_rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, repos TEXT NOT NULL, tags TEXT NOT NULL,
  exclude_repos INTEGER NOT NULL, exclude_tags INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX immutable_rules_ns ON immutable_rules (namespace);
ALTER TABLE namespaces ADD COLUMN quota_bytes INTEGER;
CREATE TABLE retention_rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, repos TEXT NOT NULL, tags TEXT NOT NULL,
  kind TEXT NOT NULL, value INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
ALTER TABLE manifests ADD COLUMN pulled_at INTEGER;
`,
  // 4: webhooks and their durable delivery queue (issue 23).
  `
CREATE TABLE webhooks (
  id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL,
  enabled INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX webhooks_ns ON webhooks (namespace);
CREATE TABLE webhook_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, hook INTEGER NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
  created_at INTEGER NOT NULL, last_attempt_at INTEGER, claim_token TEXT, claimed_until INTEGER);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (hook, id);
`,
  // 5: pull-through cache namespaces (issue 23).
  `
CREATE TABLE proxies (
  namespace TEXT PRIMARY KEY, url TEXT NOT NULL, username TEXT, password TEXT, ttl_seconds REAL NOT NULL,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
`,
  // 6: replication rules, their runs and the items of each run (issue 23).
  sqliteReplicationSchema,
  // 7: identity providers (issue 21): which provider vouches for a user, roles of groups. A
  // binding's key is its group name in lower case, so that group names match case-insensitively.
  `
ALTER TABLE users ADD COLUMN provider TEXT;
CREATE TABLE group_roles (namespace TEXT NOT NULL, group_key TEXT NOT NULL, group_name TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (namespace, group_key));
CREATE INDEX group_roles_key ON group_roles (group_key);
`,
  // 8: signature policies of namespaces (issue 19); keys and certificates as JSON arrays of PEM texts.
  `
CREATE TABLE signature_policies (
  namespace TEXT PRIMARY KEY, keys TEXT NOT NULL, certificates TEXT NOT NULL, enforce TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
`,
  // 9: the web UI (issue 20): sessions (the SHA-256 of the cookie's id), pages of tags by push time,
  // who pushed a manifest (the audit log by repository and digest).
  `
CREATE TABLE ui_sessions (id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
CREATE INDEX tags_pushed ON tags (repo, updated_at, tag);
CREATE INDEX audit_repository_digest ON audit (repository, digest, id);
`,
  // 10: OpenID Connect (issue 21): sign-ins in progress (the state's SHA-256, single use), and what
  // the provider said of each user with the hash of their CLI secret.
  `
CREATE TABLE oidc_logins (
  state_hash TEXT PRIMARY KEY, browser_hash TEXT NOT NULL, nonce TEXT NOT NULL, verifier TEXT NOT NULL, next TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
CREATE TABLE oidc_accounts (
  user_name TEXT PRIMARY KEY, subject TEXT NOT NULL, groups TEXT NOT NULL, refresh_token TEXT, checked_at INTEGER NOT NULL,
  secret_hash TEXT, secret_created_at INTEGER);
`,
];

/** Bring the schema up to date; safe when several processes open the database at once. */
function migrate(db: Database.Database, path: string): void {
  db.exec(schema);
  const version = () => db.pragma('user_version', { simple: true }) as number;
  if (version() > migrations.length) {
    throw new Error(`${path}: the database has schema version ${version()}, newer than the ${migrations.length} this kiln knows: upgrade kiln`);
  }
  if (version() >= migrations.length) return;
  db.transaction(() => {
    for (let v = version(); v < migrations.length; v++) {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}

type Row = Record<string, unknown>;

function toManifest(r: Row): ManifestRecord {
  return {
    repository: r.repo as string,
    digest: r.digest as string,
    mediaType: r.media_type as string,
    body: r.body as Buffer,
    artifactType: (r.artifact_type as string | null) ?? undefined,
    subject: (r.subject as string | null) ?? undefined,
    annotations: r.annotations ? (JSON.parse(r.annotations as string) as Record<string, string>) : undefined,
    createdAt: r.created_at as number,
  };
}

const toUpload = (r: Row): UploadRecord => ({
  id: r.id as string,
  repository: r.repo as string,
  algorithm: r.algorithm as UploadRecord['algorithm'],
  offset: r.offset as number,
  key: r.key as string,
  multipartId: (r.multipart_id as string | null) ?? undefined,
  parts: JSON.parse(r.parts as string) as UploadRecord['parts'],
  pending: JSON.parse(r.pending as string) as UploadRecord['pending'],
  startedAt: r.started_at as number,
  touchedAt: r.touched_at as number,
});

const toUser = (r: Row): UserRecord => ({
  name: r.name as string,
  passwordHash: r.password_hash as string,
  admin: r.admin === 1,
  createdAt: r.created_at as number,
  ...(r.provider ? { provider: r.provider as string } : {}),
});
const toRobot = (r: Row): RobotRecord => ({
  name: r.name as string,
  namespace: r.namespace as string,
  secretHash: r.secret_hash as string,
  actions: JSON.parse(r.actions as string) as string[],
  expiresAt: (r.expires_at as number | null) ?? undefined,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});
const toAudit = (r: Row): AuditEvent => ({
  id: r.id as number,
  time: r.time as number,
  actor: r.actor as string,
  action: r.action as string,
  repository: (r.repository as string | null) ?? undefined,
  namespace: (r.namespace as string | null) ?? undefined,
  reference: (r.reference as string | null) ?? undefined,
  digest: (r.digest as string | null) ?? undefined,
  detail: (r.detail as string | null) ?? undefined,
  address: (r.address as string | null) ?? undefined,
  count: r.count as number,
});

const namespaceOf = (repo: string): string => (repo.includes('/') ? repo.slice(0, repo.indexOf('/')) : repo);

/**
 * SQLite in WAL mode: readers never wait for the writer, and a write commits durably (synchronous=FULL)
 * before the client is told it succeeded. better-sqlite3 is synchronous, so every statement is atomic
 * within the event loop; the async lock only guards sections that await storage between statements.
 */

const toNamespace = (r: Row): NamespaceRecord => ({
  name: r.name as string,
  public: r.public === 1,
  createdAt: r.created_at as number,
  ...(r.quota_bytes !== null && r.quota_bytes !== undefined ? { quotaBytes: r.quota_bytes as number } : {}),
});

const toProxy = (r: Row): ProxyRecord => ({
  namespace: r.namespace as string,
  url: r.url as string,
  ...(r.username !== null ? { username: r.username as string } : {}),
  ...(r.password !== null ? { password: r.password as string } : {}),
  ttlSeconds: r.ttl_seconds as number,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

const toRetention = (r: Row): RetentionRule => ({
  id: r.id as number,
  namespace: r.namespace as string,
  repos: r.repos as string,
  tags: r.tags as string,
  kind: r.kind as RetentionKind,
  value: r.value as number,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

const toWebhook = (r: Row): WebhookRecord => ({
  id: r.id as number,
  namespace: r.namespace as string,
  url: r.url as string,
  secret: r.secret as string,
  events: JSON.parse(r.events as string) as string[],
  enabled: r.enabled === 1,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

const toDelivery = (r: Row): DeliveryRecord => ({
  id: r.id as number,
  hook: r.hook as number,
  event: r.event as string,
  payload: r.payload as string,
  status: r.status as DeliveryStatus,
  attempts: r.attempts as number,
  nextAttempt: r.next_attempt as number,
  ...(r.last_status !== null ? { lastStatus: r.last_status as number } : {}),
  ...(r.last_error !== null ? { lastError: r.last_error as string } : {}),
  createdAt: r.created_at as number,
  ...(r.last_attempt_at !== null ? { lastAttemptAt: r.last_attempt_at as number } : {}),
});

const toRule = (r: Row): ImmutableRule => ({
  id: r.id as number,
  namespace: r.namespace as string,
  repos: r.repos as string,
  tags: r.tags as string,
  excludeRepos: r.exclude_repos === 1,
  excludeTags: r.exclude_tags === 1,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

const toPolicy = (r: Row): SignaturePolicy => ({
  namespace: r.namespace as string,
  keys: JSON.parse(r.keys as string) as string[],
  certificates: JSON.parse(r.certificates as string) as string[],
  on: (r.enforce as string).split(',') as PolicyEnforcement[],
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
});

export function openSqliteMetadata(path: string): Metadata {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = OFF');
  migrate(db, path);

  const q = <T = Row>(sql: string) => {
    const st = db.prepare(sql);
    return {
      get: (...a: unknown[]) => st.get(...a) as T | undefined,
      all: (...a: unknown[]) => st.all(...a) as T[],
      run: (...a: unknown[]) => st.run(...a),
    };
  };

  const s = {
    blob: q<{ size: number; key: string }>("SELECT size, key FROM blobs WHERE digest = ? AND state = 'live'"),
    linkedBlob: q<{ size: number; key: string }>("SELECT b.size, b.key FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = ? AND l.digest = ? AND b.state = 'live'"),
    blobState: q<{ key: string; state: string }>('SELECT key, state FROM blobs WHERE digest = ?'),
    insertBlob: q("INSERT INTO blobs (digest, size, created_at, key, state, last_used) VALUES (?, ?, ?, ?, 'live', ?)"),
    retakeBlob: q("UPDATE blobs SET key = ?, state = 'live', last_used = ? WHERE digest = ?"),
    useBlob: q("UPDATE blobs SET last_used = ? WHERE digest = ? AND state = 'live'"),
    link: q('INSERT INTO repo_blobs (repo, digest, last_used) VALUES (?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET last_used = excluded.last_used'),
    touch: q('UPDATE repo_blobs SET last_used = ? WHERE repo = ? AND digest = ? AND last_used < ?'),
    unlink: q('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),
    blobInNs: q<{ repo: string }>("SELECT repo FROM repo_blobs WHERE digest = ? AND (repo = ? OR repo LIKE ? ESCAPE '\\') LIMIT 1"),
    allBlobs: q<{ digest: string }>("SELECT digest FROM blobs WHERE state = 'live'"),
    allLinks: q<{ repo: string; digest: string }>('SELECT repo, digest FROM repo_blobs ORDER BY repo, digest'),
    allManifests: q<ListingRows['manifests'][number]>('SELECT repo, digest, subject FROM manifests ORDER BY repo, digest'),
    allRefs: q<ListingRows['refs'][number]>('SELECT repo, digest, child, kind, size FROM manifest_refs'),
    allBases: q<ListingRows['bases'][number]>('SELECT repo, digest, base, base_name FROM image_bases'),
    addRepo: q('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
    getManifest: q('SELECT * FROM manifests WHERE repo = ? AND digest = ?'),
    hasManifest: q('SELECT 1 FROM manifests WHERE repo = ? AND digest = ?'),
    insertManifest: q(
      'INSERT INTO manifests (repo, digest, media_type, artifact_type, subject, annotations, body, created_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET created_at = excluded.created_at, last_used = excluded.last_used',
    ),
    useManifest: q('UPDATE manifests SET last_used = ? WHERE repo = ? AND digest = ?'),
    insertRef: q('INSERT OR IGNORE INTO manifest_refs (repo, digest, child, kind, size) VALUES (?, ?, ?, ?, ?)'),
    deleteManifest: q('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
    deleteRefs: q('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
    tagsOf: q<{ tag: string }>('SELECT tag FROM tags WHERE repo = ? AND digest = ?'),
    deleteTagsOf: q('DELETE FROM tags WHERE repo = ? AND digest = ?'),
    resolveTag: q<{ digest: string }>('SELECT digest FROM tags WHERE repo = ? AND tag = ?'),
    setTag: q('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at'),
    deleteTag: q('DELETE FROM tags WHERE repo = ? AND tag = ?'),
    listTags: q<{ tag: string }>('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?'),
    referrers: q('SELECT * FROM manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest'),
    repoExists: q(
      'SELECT 1 FROM repositories r WHERE r.name = ? AND (EXISTS (SELECT 1 FROM manifests WHERE repo = r.name) OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo = r.name) OR EXISTS (SELECT 1 FROM tags WHERE repo = r.name))',
    ),
    listRepos: q<{ name: string }>(
      'SELECT name FROM repositories r WHERE name > ? AND (EXISTS (SELECT 1 FROM manifests WHERE repo = r.name) OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo = r.name)) ORDER BY name LIMIT ?',
    ),
    storage: q<{ n: number }>("SELECT (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE state = 'live') + (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM manifests) AS n"),
    getUser: q('SELECT * FROM users WHERE name = ?'),
    listUsers: q('SELECT * FROM users ORDER BY name'),
    putUser: q(
      'INSERT INTO users (name, password_hash, admin, created_at, provider) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin, provider = excluded.provider',
    ),
    deleteUser: q('DELETE FROM users WHERE name = ?'),
    deleteUserRoles: q('DELETE FROM members WHERE user = ?'),
    getNs: q('SELECT * FROM namespaces WHERE name = ?'),
    listNs: q('SELECT * FROM namespaces ORDER BY name'),
    putNs: q('INSERT INTO namespaces (name, public, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET public = excluded.public'),
    setQuota: q('INSERT INTO namespaces (name, public, created_at, quota_bytes) VALUES (?, 0, ?, ?) ON CONFLICT (name) DO UPDATE SET quota_bytes = excluded.quota_bytes'),
    getProxy: q('SELECT * FROM proxies WHERE namespace = ?'),
    listProxies: q('SELECT * FROM proxies ORDER BY namespace'),
    putProxy: q(
      `INSERT INTO proxies (namespace, url, username, password, ttl_seconds, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (namespace) DO UPDATE SET url = excluded.url, username = excluded.username, password = excluded.password,
         ttl_seconds = excluded.ttl_seconds, created_by = excluded.created_by, created_at = excluded.created_at`,
    ),
    delProxy: q('DELETE FROM proxies WHERE namespace = ?'),
    nsUsage: q(`SELECT COALESCE(SUM(b.size), 0) AS n FROM blobs b WHERE b.digest IN
      (SELECT digest FROM repo_blobs WHERE repo = ? OR substr(repo, 1, ?) = ?)`),
    listRules: q('SELECT * FROM immutable_rules ORDER BY id'),
    listRulesNs: q('SELECT * FROM immutable_rules WHERE namespace = ? ORDER BY id'),
    getRule: q('SELECT * FROM immutable_rules WHERE id = ?'),
    addRule: q('INSERT INTO immutable_rules (namespace, repos, tags, exclude_repos, exclude_tags, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    delRule: q('DELETE FROM immutable_rules WHERE id = ?'),
    listPolicies: q('SELECT * FROM signature_policies ORDER BY namespace'),
    getPolicy: q('SELECT * FROM signature_policies WHERE namespace = ?'),
    putPolicy: q(
      'INSERT INTO signature_policies (namespace, keys, certificates, enforce, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace) DO UPDATE SET keys = excluded.keys, certificates = excluded.certificates, enforce = excluded.enforce, created_by = excluded.created_by, created_at = excluded.created_at',
    ),
    delPolicy: q('DELETE FROM signature_policies WHERE namespace = ?'),
    indexesListing: q("SELECT digest FROM manifest_refs WHERE repo = ? AND child = ? AND kind = 'manifest' ORDER BY digest"),
    listRetention: q('SELECT * FROM retention_rules ORDER BY id'),
    listRetentionNs: q('SELECT * FROM retention_rules WHERE namespace = ? ORDER BY id'),
    getRetention: q('SELECT * FROM retention_rules WHERE id = ?'),
    addRetention: q('INSERT INTO retention_rules (namespace, repos, tags, kind, value, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    delRetention: q('DELETE FROM retention_rules WHERE id = ?'),
    tagRecords: q('SELECT t.tag, t.digest, t.updated_at, m.pulled_at FROM tags t LEFT JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? ORDER BY t.tag'),
    untagged: q(`SELECT m.digest FROM manifests m WHERE m.repo = ? AND m.created_at < ? AND m.subject IS NULL
      AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = m.repo AND r.child = m.digest AND r.kind = 'manifest' AND r.digest <> m.digest)
      ORDER BY m.digest`),
    markPulled: q('UPDATE manifests SET pulled_at = ? WHERE repo = ? AND digest = ? AND (pulled_at IS NULL OR pulled_at < ?)'),
    ensureNs: q('INSERT OR IGNORE INTO namespaces (name, public, created_at) VALUES (?, 0, ?)'),
    getRole: q<{ role: Role }>('SELECT role FROM members WHERE namespace = ? AND user = ?'),
    rolesOf: q<Membership>('SELECT namespace, user, role FROM members WHERE user = ? ORDER BY namespace'),
    members: q<Membership>('SELECT namespace, user, role FROM members WHERE namespace = ? ORDER BY user'),
    setRole: q('INSERT INTO members (namespace, user, role) VALUES (?, ?, ?) ON CONFLICT (namespace, user) DO UPDATE SET role = excluded.role'),
    revokeRole: q('DELETE FROM members WHERE namespace = ? AND user = ?'),
    groupBindings: q<GroupBinding>('SELECT namespace, group_name AS "group", role FROM group_roles ORDER BY namespace, group_key'),
    groupBindingsNs: q<GroupBinding>('SELECT namespace, group_name AS "group", role FROM group_roles WHERE namespace = ? ORDER BY group_key'),
    setGroupRole: q('INSERT INTO group_roles (namespace, group_key, group_name, role) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, group_key) DO UPDATE SET group_name = excluded.group_name, role = excluded.role'),
    revokeGroupRole: q('DELETE FROM group_roles WHERE namespace = ? AND group_key = ?'),
    getRobot: q('SELECT * FROM robots WHERE name = ?'),
    listRobots: q('SELECT * FROM robots ORDER BY name'),
    listRobotsNs: q('SELECT * FROM robots WHERE namespace = ? ORDER BY name'),
    putRobot: q(
      'INSERT INTO robots (name, namespace, secret_hash, actions, expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET secret_hash = excluded.secret_hash, actions = excluded.actions, expires_at = excluded.expires_at',
    ),
    deleteRobot: q('DELETE FROM robots WHERE name = ?'),
    insertAudit: q('INSERT INTO audit (time, actor, action, repository, namespace, reference, digest, detail, address, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    // GC
    gcManifests: q<{ repo: string; digest: string; last_used: number; subject: string | null }>('SELECT repo, digest, last_used, subject FROM manifests'),
    gcTags: q<{ repo: string; digest: string }>('SELECT repo, digest FROM tags'),
    gcRefs: q<{ repo: string; digest: string; child: string; kind: string }>('SELECT repo, digest, child, kind FROM manifest_refs'),
    gcLinks: q<{ repo: string; digest: string; last_used: number }>('SELECT repo, digest, last_used FROM repo_blobs'),
    gcBlobs: q<{ digest: string; size: number; last_used: number }>("SELECT digest, size, last_used FROM blobs WHERE state = 'live'"),
    manifestClock: q<{ last_used: number; subject: string | null }>('SELECT last_used, subject FROM manifests WHERE repo = ? AND digest = ?'),
    manifestTagged: q('SELECT 1 FROM tags WHERE repo = ? AND digest = ? LIMIT 1'),
    manifestListed: q(
      "SELECT 1 FROM manifest_refs r JOIN manifests p ON p.repo = r.repo AND p.digest = r.digest WHERE r.repo = ? AND r.child = ? AND r.kind = 'manifest' LIMIT 1",
    ),
    removeLinkIfUnused: q(
      "DELETE FROM repo_blobs WHERE repo = ? AND digest = ? AND last_used < ? AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE repo = ? AND child = ? AND kind = 'blob')",
    ),
    claimBlob: q<{ key: string }>(
      "UPDATE blobs SET state = 'deleting' WHERE digest = ? AND state = 'live' AND last_used < ? AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = ?) AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE child = ? AND kind = 'blob') RETURNING key",
    ),
    deletingBlobs: q<{ digest: string; key: string }>("SELECT digest, key FROM blobs WHERE state = 'deleting'"),
    forgetBlob: q("DELETE FROM blobs WHERE digest = ? AND state IN ('deleting', 'missing') AND key = ?"),
    reportMissing: q("UPDATE blobs SET state = 'missing' WHERE digest = ? AND key = ? AND state = 'live'"),
    missingBlobs: q<{ digest: string; key: string }>("SELECT digest, key FROM blobs WHERE state = 'missing'"),
    restoreBlob: q("UPDATE blobs SET state = 'live' WHERE digest = ? AND key = ? AND state = 'missing'"),
    keyInUse: q('SELECT 1 FROM blobs WHERE key = ? UNION ALL SELECT 1 FROM uploads WHERE key = ? LIMIT 1'),
    // Upload sessions
    createUpload: q(
      'INSERT INTO uploads (id, repo, algorithm, offset, key, multipart_id, parts, pending, started_at, touched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    getUpload: q('SELECT * FROM uploads WHERE id = ?'),
    claimUpload: q('UPDATE uploads SET claim_token = ?, claim_until = ? WHERE id = ? AND offset = ? AND (claim_until IS NULL OR claim_until < ?) RETURNING *'),
    releaseUpload: q('UPDATE uploads SET claim_token = NULL, claim_until = NULL WHERE id = ? AND claim_token = ?'),
    updateUpload: q(
      'UPDATE uploads SET claim_token = NULL, claim_until = NULL, offset = ?, multipart_id = ?, parts = ?, pending = ?, touched_at = ? WHERE id = ? AND claim_token = ?',
    ),
    deleteUpload: q('DELETE FROM uploads WHERE id = ?'),
    staleUploads: q('SELECT * FROM uploads WHERE touched_at < ? AND (claim_until IS NULL OR claim_until < ?)'),
    // Shared state
    insertShared: q('INSERT OR IGNORE INTO shared_values (name, value) VALUES (?, ?)'),
    getShared: q<{ value: string }>('SELECT value FROM shared_values WHERE name = ?'),
    getFailures: q<{ start: number; failures: number }>('SELECT start, failures FROM login_failures WHERE key = ?'),
    setFailures: q('INSERT INTO login_failures (key, start, failures) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET start = excluded.start, failures = excluded.failures'),
    clearFailures: q('DELETE FROM login_failures WHERE key = ?'),
    // Webhooks
    listHooks: q('SELECT * FROM webhooks ORDER BY id'),
    listHooksNs: q('SELECT * FROM webhooks WHERE namespace = ? ORDER BY id'),
    getHook: q('SELECT * FROM webhooks WHERE id = ?'),
    addHook: q('INSERT INTO webhooks (namespace, url, secret, events, enabled, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    enableHook: q('UPDATE webhooks SET enabled = ? WHERE id = ?'),
    delHook: q('DELETE FROM webhooks WHERE id = ?'),
    delHookDeliveries: q('DELETE FROM webhook_deliveries WHERE hook = ?'),
    enqueue: q("INSERT INTO webhook_deliveries (hook, event, payload, status, next_attempt, created_at) VALUES (?, ?, ?, 'pending', ?, ?)"),
    claimDeliveries: q(`UPDATE webhook_deliveries SET claim_token = ?, claimed_until = ? WHERE id IN (
      SELECT d.id FROM webhook_deliveries d JOIN webhooks h ON h.id = d.hook
      WHERE d.status = 'pending' AND h.enabled = 1 AND d.next_attempt <= ? AND (d.claimed_until IS NULL OR d.claimed_until < ?)
      ORDER BY d.next_attempt, d.id LIMIT ?) RETURNING *`),
    finishDelivery: q(`UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt = ?, last_status = ?, last_error = ?, last_attempt_at = ?,
      claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?`),
    releaseDelivery: q('UPDATE webhook_deliveries SET claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?'),
    deliveries: q('SELECT * FROM webhook_deliveries WHERE hook = ? ORDER BY id DESC LIMIT ?'),
    pruneDeliveries: q("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND last_attempt_at < ?"),
    builtOnRepo: q(`SELECT b.*, EXISTS (SELECT 1 FROM manifests m WHERE m.repo = ? AND m.digest = b.base) AS in_repo FROM image_bases b
      WHERE b.base IN (SELECT digest FROM manifests WHERE repo = ?) OR b.base_name LIKE ? ESCAPE '\\' ORDER BY b.repo, b.digest`),
    // Search index
    setBase: q('INSERT INTO image_bases (repo, digest, base, base_name) VALUES (?, ?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET base = excluded.base, base_name = excluded.base_name'),
    deleteBase: q('DELETE FROM image_bases WHERE repo = ? AND digest = ?'),
    setSbom: q('INSERT INTO sboms (repo, digest, subject, packages) VALUES (?, ?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET subject = excluded.subject, packages = excluded.packages'),
    deleteSbom: q('DELETE FROM sboms WHERE repo = ? AND digest = ?'),
    deleteSbomPackages: q('DELETE FROM sbom_packages WHERE repo = ? AND sbom = ?'),
    insertPackage: q('INSERT INTO sbom_packages (repo, sbom, subject, name, version, type, purl, source, name_key, source_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    // Tags on the manifest itself or on an index of the same repository that lists it.
    tagsReaching: q<{ tag: string }>(
      "SELECT tag FROM tags WHERE repo = ? AND (digest = ? OR digest IN (SELECT digest FROM manifest_refs WHERE repo = ? AND child = ? AND kind = 'manifest')) ORDER BY tag",
    ),
  };

  // One writer at a time in this process; BEGIN IMMEDIATE takes SQLite's lock against other processes.
  let chain: Promise<unknown> = Promise.resolve();
  const serialize = <T>(fn: () => Promise<T> | T): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => {});
    return run;
  };
  const write = <T>(fn: () => T): Promise<T> => serialize(() => db.transaction(fn).immediate());

  const putManifestSync = (m: ManifestRecord, refs: ManifestRefs, tags: string[], allowMissing = false) => {
    const missing: string[] = [];
    if (!allowMissing) {
      for (const b of refs.blobs) if (!s.linkedBlob.get(m.repository, b.digest)) missing.push(b.digest);
      for (const d of refs.manifests) if (!s.hasManifest.get(m.repository, d)) missing.push(d);
    }
    if (missing.length) return { missing, moved: [] };
    const now = m.createdAt;
    // What the manifest lists starts its grace period again (GcRows in metadata.ts).
    for (const d of refs.manifests) s.useManifest.run(now, m.repository, d);
    s.addRepo.run(m.repository, now);
    s.ensureNs.run(namespaceOf(m.repository), now);
    s.insertManifest.run(
      m.repository,
      m.digest,
      m.mediaType,
      m.artifactType ?? null,
      m.subject ?? null,
      m.annotations ? JSON.stringify(m.annotations) : null,
      m.body,
      now,
      now,
    );
    for (const b of refs.blobs) {
      s.insertRef.run(m.repository, m.digest, b.digest, 'blob', b.size);
      s.touch.run(now, m.repository, b.digest, now);
    }
    for (const d of refs.manifests) s.insertRef.run(m.repository, m.digest, d, 'manifest', null);
    if (refs.base) s.setBase.run(m.repository, m.digest, refs.base.digest, refs.base.name ?? null);
    const moved: { tag: string; from: string }[] = [];
    for (const tag of tags) {
      const old = s.resolveTag.get(m.repository, tag);
      if (old && old.digest !== m.digest) moved.push({ tag, from: old.digest });
      s.setTag.run(m.repository, tag, m.digest, now);
    }
    return { missing, moved };
  };

  const tagsReaching = (repo: string, digest: string) => s.tagsReaching.all(repo, digest, repo, digest).map((t) => t.tag);

  const removeManifestSync = (repo: string, digest: string) => {
    s.deleteBase.run(repo, digest);
    s.deleteSbom.run(repo, digest);
    s.deleteSbomPackages.run(repo, digest);
    s.deleteTagsOf.run(repo, digest);
    s.deleteRefs.run(repo, digest);
    s.deleteManifest.run(repo, digest);
  };

  const gcSnapshot = () => ({
    manifests: s.gcManifests.all(),
    tags: s.gcTags.all(),
    refs: s.gcRefs.all(),
    links: s.gcLinks.all(),
    blobs: s.gcBlobs.all(),
  });

  const changeListeners: (() => void)[] = [];
  let dataVersion = db.pragma('data_version', { simple: true }) as number;
  const poll = setInterval(() => {
    try {
      const v = db.pragma('data_version', { simple: true }) as number;
      if (v !== dataVersion) {
        dataVersion = v;
        for (const cb of changeListeners) cb();
      }
    } catch {
      /* closed */
    }
  }, 250);
  poll.unref();

  const metadata: Metadata = {
    ...sqliteBrowseRows(db, write),
    ...sqliteOidcRows(db, write),
    kind: 'sqlite',
    ...sqliteReplicationRows(db, write),

    async blob(digest) {
      return s.blob.get(digest);
    },
    async linkedBlob(repo, digest) {
      return s.linkedBlob.get(repo, digest);
    },
    recordBlob(digest, size, repo, key, now) {
      return write(() => {
        const row = s.blobState.get(digest);
        let kept = key;
        if (!row) s.insertBlob.run(digest, size, now, key, now);
        else if (row.state === 'live') {
          kept = row.key;
          s.useBlob.run(now, digest);
        } else s.retakeBlob.run(key, now, digest);
        s.addRepo.run(repo, now);
        s.ensureNs.run(namespaceOf(repo), now);
        s.link.run(repo, digest, now);
        return { key: kept };
      });
    },
    linkBlob(repo, digest, now) {
      return write(() => {
        if (s.useBlob.run(now, digest).changes === 0) return false;
        s.addRepo.run(repo, now);
        s.ensureNs.run(namespaceOf(repo), now);
        s.link.run(repo, digest, now);
        return true;
      });
    },
    touchBlob(repo, digest, now) {
      return write(() => void s.touch.run(now, repo, digest, now));
    },
    unlinkBlob(repo, digest) {
      return write(() => s.unlink.run(repo, digest).changes > 0);
    },
    async blobRepositoryInNamespace(ns, digest) {
      const like = ns.replace(/[\\%_]/g, (c) => '\\' + c) + '/%';
      return s.blobInNs.get(digest, ns, like)?.repo;
    },
    async listBlobDigests() {
      return s.allBlobs.all().map((r) => r.digest);
    },
    async listLinks() {
      return s.allLinks.all().map((r) => ({ repository: r.repo, digest: r.digest }));
    },

    async getManifest(repo, digest) {
      const r = s.getManifest.get(repo, digest);
      return r ? toManifest(r) : undefined;
    },
    async tagsOf(repo, digest) {
      return s.tagsOf.all(repo, digest).map((r) => r.tag).sort();
    },
    async resolveTag(repo, tag) {
      return s.resolveTag.get(repo, tag)?.digest;
    },
    putManifest(m, refs, tags, opts) {
      return write(() => putManifestSync(m, refs, tags, opts?.allowMissing));
    },
    deleteManifest(repo, digest) {
      return write(() => {
        if (!s.hasManifest.get(repo, digest)) return undefined;
        const tags = s.tagsOf.all(repo, digest).map((t) => t.tag);
        removeManifestSync(repo, digest);
        return { tags };
      });
    },
    deleteTag(repo, tag) {
      return write(() => {
        const d = s.resolveTag.get(repo, tag)?.digest;
        if (d) s.deleteTag.run(repo, tag);
        return d;
      });
    },
    async listTags(repo, last, n) {
      const rows = s.listTags.all(repo, last ?? '', n ?? -1).map((r) => r.tag);
      if (rows.length === 0 && !s.repoExists.get(repo)) return undefined;
      return rows;
    },
    async referrers(repo, subject) {
      return s.referrers.all(repo, subject).map(toManifest);
    },
    async repositoryExists(repo) {
      return !!s.repoExists.get(repo);
    },
    async listRepositories(last, n) {
      return s.listRepos.all(last ?? '', n ?? -1).map((r) => r.name);
    },
    async storageBytes() {
      return s.storage.get()?.n ?? 0;
    },
    async listManifests() {
      // One read transaction, so that the three reads see the same state.
      return db.transaction(() => manifestListing({ manifests: s.allManifests.all(), refs: s.allRefs.all(), bases: s.allBases.all() }))();
    },

    indexPackages(repo, sbom, subject, packages) {
      return write(() => {
        // The SBOM may have been deleted (or collected) while its document was being read.
        if (!s.hasManifest.get(repo, sbom)) return;
        s.deleteSbomPackages.run(repo, sbom);
        for (const r of packages) {
          const p = r.package;
          s.insertPackage.run(repo, sbom, subject, p.name, p.version, p.type, p.purl ?? null, p.source ?? null, r.nameKey, r.sourceKey ?? null);
        }
        s.setSbom.run(repo, sbom, subject, packages.length);
      });
    },
    async findPackages(keys) {
      if (keys.length === 0) return [];
      const marks = keys.map(() => '?').join(', ');
      const rows = db
        .prepare(
          `SELECT p.* FROM sbom_packages p WHERE (p.name_key IN (${marks}) OR p.source_key IN (${marks}))
             AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo = p.repo AND m.digest = p.subject)
           ORDER BY p.repo, p.subject, p.name, p.version`,
        )
        .all(...keys, ...keys) as Row[];
      return rows.map(
        (r): PackageHit => ({
          repository: r.repo as string,
          digest: r.subject as string,
          tags: tagsReaching(r.repo as string, r.subject as string),
          sbom: r.sbom as string,
          package: {
            name: r.name as string,
            version: r.version as string,
            type: r.type as string,
            ...(r.purl ? { purl: r.purl as string } : {}),
            ...(r.source ? { source: r.source as string } : {}),
          },
        }),
      );
    },
    async findBuiltOn(digests) {
      if (digests.length === 0) return [];
      const out: BaseHit[] = [];
      // In slices, under SQLite's limit on bound parameters.
      for (let i = 0; i < digests.length; i += 500) {
        const slice = digests.slice(i, i + 500);
        const rows = db.prepare(`SELECT * FROM image_bases WHERE base IN (${slice.map(() => '?').join(', ')}) ORDER BY repo, digest`).all(...slice) as Row[];
        for (const r of rows) {
          out.push({
            repository: r.repo as string,
            digest: r.digest as string,
            tags: tagsReaching(r.repo as string, r.digest as string),
            base: { digest: r.base as string, ...(r.base_name ? { name: r.base_name as string } : {}) },
          });
        }
      }
      return out;
    },
    async findBuiltOnRepository(repo) {
      const like = '%' + repo.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      return s.builtOnRepo.all(repo, repo, like).map((r) => ({
        repository: r.repo as string,
        digest: r.digest as string,
        tags: tagsReaching(r.repo as string, r.digest as string),
        base: { digest: r.base as string, ...(r.base_name ? { name: r.base_name as string } : {}) },
        baseInRepository: r.in_repo === 1,
      }));
    },
    async unindexedReferrers(artifactTypes) {
      if (artifactTypes.length === 0) return [];
      const rows = db
        .prepare(
          `SELECT m.repo, m.digest, m.subject FROM manifests m WHERE m.subject IS NOT NULL AND m.artifact_type IN (${artifactTypes.map(() => '?').join(', ')})
             AND NOT EXISTS (SELECT 1 FROM sboms x WHERE x.repo = m.repo AND x.digest = m.digest)`,
        )
        .all(...artifactTypes) as { repo: string; digest: string; subject: string }[];
      return rows.map((r) => ({ repository: r.repo, digest: r.digest, subject: r.subject }));
    },

    async getUser(name) {
      const r = s.getUser.get(name);
      return r ? toUser(r) : undefined;
    },
    async listUsers() {
      return s.listUsers.all().map(toUser);
    },
    putUser(u) {
      return write(() => void s.putUser.run(u.name, u.passwordHash, u.admin ? 1 : 0, u.createdAt, u.provider ?? null));
    },
    deleteUser(name) {
      return write(() => {
        s.deleteUserRoles.run(name);
        return s.deleteUser.run(name).changes > 0;
      });
    },
    async getNamespace(name) {
      const r = s.getNs.get(name);
      return r ? toNamespace(r) : undefined;
    },
    async listNamespaces() {
      return s.listNs.all().map(toNamespace);
    },
    async immutableRules(ns) {
      return (ns === undefined ? s.listRules.all() : s.listRulesNs.all(ns)).map(toRule);
    },
    addImmutableRule(r) {
      return write(() => Number(s.addRule.run(r.namespace, r.repos, r.tags, r.excludeRepos ? 1 : 0, r.excludeTags ? 1 : 0, r.createdBy, r.createdAt).lastInsertRowid));
    },
    removeImmutableRule(id) {
      return write(() => {
        const r = s.getRule.get(id);
        if (!r) return undefined;
        s.delRule.run(id);
        return toRule(r);
      });
    },
    async signaturePolicies(ns) {
      return (ns === undefined ? s.listPolicies.all() : [s.getPolicy.get(ns)].filter((r): r is Row => !!r)).map(toPolicy);
    },
    setSignaturePolicy(p) {
      return write(() => void s.putPolicy.run(p.namespace, JSON.stringify(p.keys), JSON.stringify(p.certificates), p.on.join(','), p.createdBy, p.createdAt));
    },
    removeSignaturePolicy(ns) {
      return write(() => {
        const r = s.getPolicy.get(ns);
        if (!r) return undefined;
        s.delPolicy.run(ns);
        return toPolicy(r);
      });
    },
    async indexesListing(repo, digest) {
      return s.indexesListing.all(repo, digest).map((r) => r.digest as string);
    },
    async retentionRules(ns) {
      return (ns === undefined ? s.listRetention.all() : s.listRetentionNs.all(ns)).map(toRetention);
    },
    addRetentionRule(r) {
      return write(() => Number(s.addRetention.run(r.namespace, r.repos, r.tags, r.kind, r.value, r.createdBy, r.createdAt).lastInsertRowid));
    },
    removeRetentionRule(id) {
      return write(() => {
        const r = s.getRetention.get(id);
        if (!r) return undefined;
        s.delRetention.run(id);
        return toRetention(r);
      });
    },
    async tagRecords(repo) {
      return s.tagRecords.all(repo).map((r): TagRecord => ({
        tag: r.tag as string,
        digest: r.digest as string,
        pushedAt: r.updated_at as number,
        ...(r.pulled_at !== null && r.pulled_at !== undefined ? { pulledAt: r.pulled_at as number } : {}),
      }));
    },
    async untaggedManifests(repo, before) {
      return s.untagged.all(repo, before).map((r) => r.digest as string);
    },
    markPulled(repo, digest, now) {
      return write(() => void s.markPulled.run(now, repo, digest, now - 60_000));
    },
    async getProxy(ns) {
      const r = s.getProxy.get(ns);
      return r ? toProxy(r) : undefined;
    },
    async listProxies() {
      return s.listProxies.all().map(toProxy);
    },
    setProxy(ns, p, now) {
      return write(() => {
        if (!p) return void s.delProxy.run(ns);
        s.ensureNs.run(ns, now);
        s.putProxy.run(ns, p.url, p.username ?? null, p.password ?? null, p.ttlSeconds, p.createdBy, p.createdAt);
      });
    },
    setQuota(ns, quota, now) {
      return write(() => void s.setQuota.run(ns, now, quota ?? null));
    },
    async namespaceUsage(ns) {
      return (s.nsUsage.get(ns, ns.length + 1, ns + "/")?.n as number | undefined) ?? 0;
    },
    putNamespace(ns) {
      return write(() => void s.putNs.run(ns.name, ns.public ? 1 : 0, ns.createdAt));
    },
    async getRole(ns, user) {
      return s.getRole.get(ns, user)?.role;
    },
    async rolesOf(user) {
      return s.rolesOf.all(user);
    },
    async listMembers(ns) {
      return s.members.all(ns);
    },
    setRole(ns, user, role) {
      return write(() => {
        s.ensureNs.run(ns, Date.now());
        s.setRole.run(ns, user, role);
      });
    },
    revokeRole(ns, user) {
      return write(() => s.revokeRole.run(ns, user).changes > 0);
    },
    async groupBindings(ns) {
      return ns === undefined ? s.groupBindings.all() : s.groupBindingsNs.all(ns);
    },
    async bindingsOfGroups(groups) {
      const keys = [...new Set(groups.map(groupKey))];
      if (keys.length === 0) return [];
      return db
        .prepare(`SELECT namespace, group_name AS "group", role FROM group_roles WHERE group_key IN (${keys.map(() => '?').join(', ')}) ORDER BY namespace, group_key`)
        .all(...keys) as GroupBinding[];
    },
    setGroupRole(ns, group, role) {
      return write(() => {
        s.ensureNs.run(ns, Date.now());
        s.setGroupRole.run(ns, groupKey(group), group, role);
      });
    },
    revokeGroupRole(ns, group) {
      return write(() => s.revokeGroupRole.run(ns, groupKey(group)).changes > 0);
    },
    async getRobot(name) {
      const r = s.getRobot.get(name);
      return r ? toRobot(r) : undefined;
    },
    async listRobots(ns) {
      return (ns ? s.listRobotsNs.all(ns) : s.listRobots.all()).map(toRobot);
    },
    putRobot(r) {
      return write(() => {
        s.ensureNs.run(r.namespace, Date.now());
        s.putRobot.run(r.name, r.namespace, r.secretHash, JSON.stringify(r.actions), r.expiresAt ?? null, r.createdBy, r.createdAt);
      });
    },
    deleteRobot(name) {
      return write(() => s.deleteRobot.run(name).changes > 0);
    },

    recordAudit(events) {
      if (events.length === 0) return Promise.resolve();
      return write(() => {
        for (const e of events) {
          s.insertAudit.run(
            e.time,
            e.actor,
            e.action,
            e.repository ?? null,
            e.namespace ?? (e.repository ? namespaceOf(e.repository) : null),
            e.reference ?? null,
            e.digest ?? null,
            e.detail ?? null,
            e.address ?? null,
            e.count ?? 1,
          );
        }
      });
    },
    async listAudit(f) {
      const where: string[] = [];
      const args: unknown[] = [];
      if (f.namespace) {
        where.push('namespace = ?');
        args.push(f.namespace);
      }
      if (f.actor) {
        where.push('actor = ?');
        args.push(f.actor);
      }
      if (f.action) {
        where.push('action = ?');
        args.push(f.action);
      }
      for (const [cond, value] of [['time >= ?', f.since], ['time <= ?', f.until], ['id < ?', f.before]] as const) {
        if (value === undefined) continue;
        where.push(cond);
        args.push(value);
      }
      const sql = `SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
      return (db.prepare(sql).all(...args, f.limit) as Row[]).map(toAudit);
    },

    async findGarbage(cutoff) {
      return markGarbage(gcSnapshot(), cutoff);
    },
    removeManifestIfUnused(repo, digest, cutoff) {
      return write(() => {
        const m = s.manifestClock.get(repo, digest);
        if (!m || m.last_used >= cutoff) return false;
        if (s.manifestTagged.get(repo, digest) || s.manifestListed.get(repo, digest)) return false;
        if (m.subject && s.hasManifest.get(repo, m.subject)) return false;
        removeManifestSync(repo, digest);
        return true;
      });
    },
    removeLinkIfUnused(repo, digest, cutoff) {
      return write(() => s.removeLinkIfUnused.run(repo, digest, cutoff, repo, digest).changes > 0);
    },
    claimBlob(digest, cutoff) {
      return write(() => s.claimBlob.get(digest, cutoff, digest, digest)?.key);
    },
    async deletingBlobs() {
      return s.deletingBlobs.all();
    },
    forgetBlob(digest, key) {
      return write(() => void s.forgetBlob.run(digest, key));
    },
    reportMissing(digest, key) {
      return write(() => void s.reportMissing.run(digest, key));
    },
    async missingBlobs() {
      return s.missingBlobs.all();
    },
    restoreBlob(digest, key) {
      return write(() => void s.restoreBlob.run(digest, key));
    },
    async keyInUse(key) {
      return !!s.keyInUse.get(key, key);
    },

    createUpload(u) {
      return write(
        () =>
          void s.createUpload.run(u.id, u.repository, u.algorithm, u.offset, u.key, u.multipartId ?? null, JSON.stringify(u.parts), JSON.stringify(u.pending), u.startedAt, u.touchedAt),
      );
    },
    async getUpload(id) {
      const r = s.getUpload.get(id);
      return r ? toUpload(r) : undefined;
    },
    claimUpload(id, offset, token, until) {
      return write(() => {
        const claimed = s.claimUpload.get(token, until, id, offset, Date.now());
        if (claimed) return toUpload(claimed);
        const r = s.getUpload.get(id);
        if (!r) return undefined;
        return r.offset !== offset ? 'offset' : 'busy';
      });
    },
    releaseUpload(id, token, u) {
      return write(() => {
        if (!u) return s.releaseUpload.run(id, token).changes > 0;
        return s.updateUpload.run(u.offset, u.multipartId ?? null, JSON.stringify(u.parts), JSON.stringify(u.pending), u.touchedAt, id, token).changes > 0;
      });
    },
    deleteUpload(id) {
      return write(() => void s.deleteUpload.run(id));
    },
    async staleUploads(before) {
      return s.staleUploads.all(before, Date.now()).map(toUpload);
    },

    sharedValue(name, create) {
      return write(() => {
        const existing = s.getShared.get(name);
        if (existing) return existing.value;
        const value = create();
        s.insertShared.run(name, value);
        return value;
      });
    },
    loginFailures(keys, windowMs, now, count) {
      return write(() =>
        keys.map((k) => {
          const row = s.getFailures.get(k);
          const current = row && now - row.start < windowMs ? row : undefined;
          if (!count) return current ?? { failures: 0, start: now };
          const next = current ? { start: current.start, failures: current.failures + 1 } : { start: now, failures: 1 };
          s.setFailures.run(k, next.start, next.failures);
          return next;
        }),
      );
    },
    clearFailures(keys) {
      return write(() => {
        for (const k of keys) s.clearFailures.run(k);
      });
    },

    async webhooks(ns) {
      return (ns === undefined ? s.listHooks.all() : s.listHooksNs.all(ns)).map(toWebhook);
    },
    async getWebhook(id) {
      const r = s.getHook.get(id);
      return r ? toWebhook(r) : undefined;
    },
    addWebhook(h) {
      return write(() => Number(s.addHook.run(h.namespace, h.url, h.secret, JSON.stringify(h.events), h.enabled ? 1 : 0, h.createdBy, h.createdAt).lastInsertRowid));
    },
    setWebhookEnabled(id, enabled) {
      return write(() => s.enableHook.run(enabled ? 1 : 0, id).changes > 0);
    },
    removeWebhook(id) {
      return write(() => {
        const r = s.getHook.get(id);
        if (!r) return undefined;
        s.delHookDeliveries.run(id);
        s.delHook.run(id);
        return toWebhook(r);
      });
    },
    enqueueDeliveries(ds) {
      if (ds.length === 0) return Promise.resolve();
      return write(() => {
        for (const d of ds) s.enqueue.run(d.hook, d.event, d.payload, d.createdAt, d.createdAt);
      });
    },
    claimDeliveries(token, now, until, limit) {
      return write(() => s.claimDeliveries.all(token, until, now, now, limit).map(toDelivery).sort((a, b) => a.nextAttempt - b.nextAttempt || a.id - b.id));
    },
    finishDelivery(id, token, r) {
      return write(() => s.finishDelivery.run(r.status, r.attempts, r.nextAttempt, r.lastStatus ?? null, r.lastError ?? null, r.at, id, token).changes > 0);
    },
    releaseDeliveries(token, ids) {
      return write(() => {
        for (const id of ids) s.releaseDelivery.run(id, token);
      });
    },
    async deliveries(hook, limit) {
      return s.deliveries.all(hook, limit).map(toDelivery);
    },
    pruneDeliveries(before) {
      return write(() => s.pruneDeliveries.run(before).changes);
    },

    onExternalChange(cb) {
      changeListeners.push(cb);
    },
    async close() {
      clearInterval(poll);
      await chain;
      db.close();
    },
  };
  return metadata;
}
