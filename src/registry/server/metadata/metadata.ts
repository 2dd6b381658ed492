// What the registry knows besides blob bytes: repositories, tags, manifests and what they refer
// to, users, namespaces (projects), roles, robot accounts, upload sessions and the audit log.
// SQLite (sqlite.ts) serves one machine; PostgreSQL (postgres.ts) serves several replicas.

import type { AuditEvent } from '../governance-rows.js';

export type { AuditEvent };

export type Role = 'admin' | 'maintainer' | 'developer' | 'guest' | 'limited-guest';
export const Roles: readonly Role[] = ['admin', 'maintainer', 'developer', 'guest', 'limited-guest'];

export interface ManifestRecord {
  repository: string;
  digest: string;
  mediaType: string;
  /** The exact bytes the client pushed (distribution-spec: "MUST store the manifest in the exact byte representation"). */
  body: Buffer;
  artifactType?: string;
  subject?: string;
  annotations?: Record<string, string>;
  createdAt: number;
}

/** What a manifest points at: blobs (config, layers) and child manifests (index entries). */
export interface ManifestRefs {
  blobs: { digest: string; size: number }[];
  manifests: string[];
  /**
   * The image it was built on (image-spec annotations.md: org.opencontainers.image.base.digest and
   * .base.name), kept for searches by base; the base need not be in this registry.
   */
  base?: { digest: string; name?: string };
}

/** A package an SBOM lists, as the search index keeps it. */
export interface IndexedPackage {
  name: string;
  version: string;
  /** Package URL type (deb, apk, pypi, npm…), or "unknown". */
  type: string;
  purl?: string;
  /** Source package name, when the SBOM says (Debian). */
  source?: string;
}

/** A package as indexed, with the keys it is found by (lower case; PEP 503 for pypi; the caller derives them). */
export interface PackageRow {
  package: IndexedPackage;
  nameKey: string;
  sourceKey?: string;
}

/** An image a search found: a manifest of a repository and the tags that reach it (directly or through an index). */
export interface SearchHit {
  repository: string;
  digest: string;
  tags: string[];
}

export interface PackageHit extends SearchHit {
  package: IndexedPackage;
  /** Digest of the SBOM manifest that lists the package. */
  sbom: string;
}

export interface BaseHit extends SearchHit {
  base: { digest: string; name?: string };
}

export interface UserRecord {
  name: string;
  /** Empty for users an identity provider vouches for (they have no local password). */
  passwordHash: string;
  admin: boolean;
  createdAt: number;
  /**
   * The identity provider that checks the user's password ("ldap"), for a record made at the
   * user's first sign-in through it; undefined for local users, whose password is checked here.
   */
  provider?: string;
}

export interface NamespaceRecord {
  name: string;
  /** Anonymous pull allowed. */
  public: boolean;
  createdAt: number;
  /** Storage the namespace may use, in bytes; none when unset. */
  quotaBytes?: number;
}

/**
 * A tag immutability rule of a namespace (Harbor's): tags matching `tags` of repositories matching
 * `repos` (doublestar globs, the repository path below the namespace), or of those not matching
 * when the `exclude` flags say so, are never moved or deleted once pushed.
 */
export interface ImmutableRule {
  id: number;
  namespace: string;
  repos: string;
  tags: string;
  excludeRepos: boolean;
  excludeTags: boolean;
  createdBy: string;
  createdAt: number;
}

/** When a signature policy applies: to manifest pulls, to promotions (kiln promote, tag moves), or both. */
export type PolicyEnforcement = 'pull' | 'promote';
export const PolicyEnforcements: readonly PolicyEnforcement[] = ['pull', 'promote'];

/**
 * A namespace's signature policy (issue 19): manifests of its repositories must carry a signature
 * that verifies with one of `keys` (PEM public keys) or chains to one of `certificates` (PEM CAs).
 */
export interface SignaturePolicy {
  namespace: string;
  keys: string[];
  certificates: string[];
  on: PolicyEnforcement[];
  createdBy: string;
  createdAt: number;
}

export interface Membership {
  namespace: string;
  user: string;
  role: Role;
}

/** A role the members of an identity provider's group have in a namespace (issue 21). */
export interface GroupBinding {
  namespace: string;
  /** As the administrator wrote it; groups match it case-insensitively (LDAP's cn compares so). */
  group: string;
  role: Role;
}

/** How a group name is compared: LDAP's cn and most directories' group names ignore case. */
export const groupKey = (group: string): string => group.normalize('NFC').toLowerCase();

export interface RobotRecord {
  /** robot$<namespace>+<name> */
  name: string;
  namespace: string;
  secretHash: string;
  actions: string[];
  /** Unix seconds; undefined: never. */
  expiresAt?: number;
  createdBy: string;
  createdAt: number;
}

export interface AuditFilter {
  namespace?: string;
  actor?: string;
  action?: string;
  since?: number;
  until?: number;
  before?: number;
  limit: number;
}

export interface GcCandidates {
  /** Parents before children and subjects before referrers, so each can be removed in turn. */
  manifests: { repository: string; digest: string }[];
  links: { repository: string; digest: string }[];
  blobs: { digest: string; size: number }[];
}

/** A blob the registry holds: its size and the storage key of its bytes. */
export interface BlobRow {
  size: number;
  /**
   * Where the bytes are. Each upload of a digest gets its own key, so garbage collection deleting
   * an old copy can never delete the bytes of a new upload of the same digest (harbor #20131).
   */
  key: string;
}

/** An upload session that any replica can continue (issue 18): the bytes are in the object store. */
export interface UploadRecord {
  id: string;
  repository: string;
  algorithm: 'sha256' | 'sha512';
  /** Bytes received so far. */
  offset: number;
  /** The storage key the finished blob will have. */
  key: string;
  /** The object store's multipart upload, once one was started. */
  multipartId?: string;
  /** Parts stored so far, in order. */
  parts: { partNumber: number; etag: string; size: number }[];
  /** Chunks shorter than the store's minimum part size, each a temporary object, waiting to be sent as one part. */
  pending: { key: string; size: number }[];
  startedAt: number;
  touchedAt: number;
}

// The metadata, split by concern. Each part is asynchronous and each method is one atomic change:
// PostgreSQL runs it as one transaction, SQLite as one write transaction. Rules that span several
// changes (garbage collection, upload sessions) are written once, above these interfaces, and rely
// only on the conditional changes below.

/** Blobs and the repositories they are linked into. */
export interface BlobRows {
  /** The blob when the registry holds it (not while garbage collection is deleting it). */
  blob(digest: string): Promise<BlobRow | undefined>;
  /** The blob when it is linked into the repository. */
  linkedBlob(repository: string, digest: string): Promise<BlobRow | undefined>;
  /**
   * Record an uploaded blob stored under `key` and link it into the repository. When the registry
   * already holds the digest, its existing key is kept and returned (the caller deletes its copy);
   * when garbage collection is deleting the digest, or its bytes were reported missing, the row
   * takes the new key and is live again.
   */
  recordBlob(digest: string, size: number, repository: string, key: string, now: number): Promise<{ key: string }>;
  /** Link a blob the registry already holds into another repository (cross-repository mount); false when unknown. */
  linkBlob(repository: string, digest: string, now: number): Promise<boolean>;
  /** Restart the grace period of a linked blob (a client just checked it exists and may reference it soon). */
  touchBlob(repository: string, digest: string, now: number): Promise<void>;
  unlinkBlob(repository: string, digest: string): Promise<boolean>;
  /** A repository of the namespace that links the blob, if any. */
  blobRepositoryInNamespace(namespace: string, digest: string): Promise<string | undefined>;
  listBlobDigests(): Promise<string[]>;
  /** Every repository link of a blob, for copying the registry elsewhere (kiln registry migrate). */
  listLinks(): Promise<{ repository: string; digest: string }[]>;
}

export interface PutManifestOptions {
  /**
   * Store the manifest even when the repository lacks blobs or child manifests it references: a
   * pull-through cache stores what upstream sent before the client asks for the rest (proxy.ts).
   */
  allowMissing?: boolean;
}

/** Manifests, tags and referrers. */
export interface ManifestRows {
  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  resolveTag(repository: string, tag: string): Promise<string | undefined>;
  /** The tags of `repository` naming the manifest `digest`, sorted. */
  tagsOf(repository: string, digest: string): Promise<string[]>;
  /**
   * Store a manifest and point tags at it, in one transaction, restarting the grace period of
   * every blob link and child manifest it references. Returns the references the repository does
   * not have (then nothing is stored): MANIFEST_BLOB_UNKNOWN.
   */
  putManifest(m: ManifestRecord, refs: ManifestRefs, tags: string[], opts?: PutManifestOptions): Promise<{ missing: string[]; moved: { tag: string; from: string }[] }>;
  /** Delete a manifest and every tag pointing at it; undefined when unknown. */
  deleteManifest(repository: string, digest: string): Promise<{ tags: string[] } | undefined>;
  /** Delete one tag; returns the digest it pointed at. */
  deleteTag(repository: string, tag: string): Promise<string | undefined>;
  /** Tags in ASCII order after `last`, at most n; undefined when the repository is unknown. */
  listTags(repository: string, last: string | undefined, n: number | undefined): Promise<string[] | undefined>;
  referrers(repository: string, subject: string): Promise<ManifestRecord[]>;
  repositoryExists(repository: string): Promise<boolean>;
  listRepositories(last: string | undefined, n: number | undefined): Promise<string[]>;
  storageBytes(): Promise<number>;
  /** Every manifest (without its body) with the references putManifest was given, for copying the registry elsewhere. */
  listManifests(): Promise<ManifestListing[]>;
}

/** A manifest as listManifests gives it. */
export interface ManifestListing {
  repository: string;
  digest: string;
  subject?: string;
  refs: ManifestRefs;
}

/** The search index: packages of SBOMs pushed as referrers, and base images (ManifestRefs.base). Rows go with their manifest. */
export interface SearchRows {
  /** Record what the SBOM manifest `sbom` of the repository lists for its subject; replaces earlier rows of that SBOM. */
  indexPackages(repository: string, sbom: string, subject: string, packages: PackageRow[]): Promise<void>;
  /**
   * Images whose SBOM lists a package whose name key or source key is one of `keys`, in every
   * repository; only subjects the repository holds.
   */
  findPackages(keys: string[]): Promise<PackageHit[]>;
  /** Manifests, in every repository, whose base is one of `digests`. */
  findBuiltOn(digests: string[]): Promise<BaseHit[]>;
  /**
   * Manifests, in every repository, whose base is a manifest `repository` holds (baseInRepository)
   * or whose base name mentions it (the caller parses the name): the images a new push of a base may update.
   */
  findBuiltOnRepository(repository: string): Promise<(BaseHit & { baseInRepository: boolean })[]>;
  /** Manifests of these artifact types with a subject whose packages were never indexed (pushed before the index existed). */
  unindexedReferrers(artifactTypes: string[]): Promise<{ repository: string; digest: string; subject: string }[]>;
}

/** Users, namespaces, roles and robot accounts. */
export interface IdentityRows {
  getUser(name: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  putUser(u: UserRecord): Promise<void>;
  deleteUser(name: string): Promise<boolean>;
  getNamespace(name: string): Promise<NamespaceRecord | undefined>;
  listNamespaces(): Promise<NamespaceRecord[]>;
  putNamespace(ns: NamespaceRecord): Promise<void>;
  getRole(namespace: string, user: string): Promise<Role | undefined>;
  /** Namespaces where the user has a role. */
  rolesOf(user: string): Promise<Membership[]>;
  listMembers(namespace: string): Promise<Membership[]>;
  setRole(namespace: string, user: string, role: Role): Promise<void>;
  revokeRole(namespace: string, user: string): Promise<boolean>;
  /** Group bindings of a namespace, or of all namespaces. */
  groupBindings(namespace?: string): Promise<GroupBinding[]>;
  /** The bindings of any of these groups (case-insensitively), in every namespace. */
  bindingsOfGroups(groups: readonly string[]): Promise<GroupBinding[]>;
  setGroupRole(namespace: string, group: string, role: Role): Promise<void>;
  revokeGroupRole(namespace: string, group: string): Promise<boolean>;
  getRobot(name: string): Promise<RobotRecord | undefined>;
  listRobots(namespace?: string): Promise<RobotRecord[]>;
  putRobot(r: RobotRecord): Promise<void>;
  deleteRobot(name: string): Promise<boolean>;
}

export interface AuditRows {
  recordAudit(events: AuditEvent[]): Promise<void>;
  /** Newest first. since/until: Unix ms, inclusive; before: only events whose id is lower (the next page). */
  listAudit(filter: AuditFilter): Promise<AuditEvent[]>;
}

/**
 * What garbage collection needs. It never holds a lock across its work: it finds candidates from
 * a read, then removes each with a change that checks again, in the same statement, that nothing
 * references it and that its grace period has passed. Every change that adds a reference restarts
 * the grace period of what it references first, so the two serialise on that row.
 */
export interface GcRows {
  /** What no tag or referrer reaches and whose grace period ended before `cutoff` (a read; nothing is changed). */
  findGarbage(cutoff: number): Promise<GcCandidates>;
  /**
   * Remove the manifest (its tags, references and search rows with it) if it is still untagged,
   * unused since before cutoff, listed by no manifest of the repository and the referrer of no
   * manifest the repository holds.
   */
  removeManifestIfUnused(repository: string, digest: string, cutoff: number): Promise<boolean>;
  /** Remove the link if it is unused since before cutoff and no manifest of the repository references the blob. */
  removeLinkIfUnused(repository: string, digest: string, cutoff: number): Promise<boolean>;
  /**
   * Mark the blob as being deleted if it is unused since before cutoff and nothing links or
   * references it; returns its storage key then. From here on it is not served, linked or mounted.
   */
  claimBlob(digest: string, cutoff: number): Promise<string | undefined>;
  /** Blobs marked for deletion whose deletion has not finished (a collector may have died). */
  deletingBlobs(): Promise<{ digest: string; key: string }[]>;
  /** Drop the row of a blob marked for deletion or reported missing, if it still has that key (an upload may have taken it back). */
  forgetBlob(digest: string, key: string): Promise<void>;
  /**
   * A read found no object under the live blob's key: the blob is no longer served, linked or
   * mounted (a push uploads it again, taking the row back), and the next collection checks again.
   */
  reportMissing(digest: string, key: string): Promise<void>;
  missingBlobs(): Promise<{ digest: string; key: string }[]>;
  /** A blob reported missing whose object is there after all: live again. */
  restoreBlob(digest: string, key: string): Promise<void>;
  /** Whether a blob row (live or being deleted) or an upload session uses the storage key; for objects with no row. */
  keyInUse(key: string): Promise<boolean>;
}

/** Upload sessions shared by all replicas. Changes are compare-and-set, since any replica may take the next request. */
export interface UploadRows {
  createUpload(u: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Take the session for one request until `until` (ms): fails when another request holds it
   * ('busy') or its offset is no longer `offset` ('offset'); undefined when there is no such session.
   */
  claimUpload(id: string, offset: number, token: string, until: number): Promise<UploadRecord | 'busy' | 'offset' | undefined>;
  /** Give the session back, with what the request changed; false when the claim was lost (it expired and another took it). */
  releaseUpload(id: string, token: string, update?: Pick<UploadRecord, 'offset' | 'multipartId' | 'parts' | 'pending' | 'touchedAt'>): Promise<boolean>;
  deleteUpload(id: string): Promise<void>;
  /** Sessions untouched since before `before` and not held by a request. */
  staleUploads(before: number): Promise<UploadRecord[]>;
}

/** State every replica must agree on: the token signing key, the login rate limit. */
/** What a retention rule keeps (or, for `never` and `untagged-older-than`, removes). */
export type RetentionKind = 'latest-pushed' | 'latest-pulled' | 'pushed-within' | 'pulled-within' | 'always' | 'never' | 'untagged-older-than';
export const RetentionKinds: readonly RetentionKind[] = ['latest-pushed', 'latest-pulled', 'pushed-within', 'pulled-within', 'always', 'never', 'untagged-older-than'];

/** A retention rule of a namespace, for the tags matching `tags` of repositories matching `repos`. */
export interface RetentionRule {
  id: number;
  namespace: string;
  repos: string;
  tags: string;
  kind: RetentionKind;
  /** The count of latest-pushed and latest-pulled, or the days of the -within and untagged kinds. */
  value: number;
  createdBy: string;
  createdAt: number;
}

/** A tag with the times retention decides by. */
export interface TagRecord {
  tag: string;
  digest: string;
  /** When the tag was last pushed (or moved). */
  pushedAt: number;
  /** When its manifest was last pulled, if ever. */
  pulledAt?: number;
}

/** Rules of namespaces: tag immutability, retention and storage quotas (issue 23). */
export interface GovernanceRows {
  retentionRules(namespace?: string): Promise<RetentionRule[]>;
  addRetentionRule(rule: Omit<RetentionRule, 'id'>): Promise<number>;
  removeRetentionRule(id: number): Promise<RetentionRule | undefined>;
  /** Every tag of the repository with its push and pull times. */
  tagRecords(repository: string): Promise<TagRecord[]>;
  /** Manifests of the repository no tag names, no index of it lists and that are no referrer, created before `before`. */
  untaggedManifests(repository: string, before: number): Promise<string[]>;
  /** A pull of the manifest: its pull time, written at most once a minute. */
  markPulled(repository: string, digest: string, now: number): Promise<void>;
  immutableRules(namespace?: string): Promise<ImmutableRule[]>;
  /** Returns the new rule's id. */
  addImmutableRule(rule: Omit<ImmutableRule, 'id'>): Promise<number>;
  /** The rule removed, or undefined when there was none with that id. */
  removeImmutableRule(id: number): Promise<ImmutableRule | undefined>;
  /** Signature policies, one per namespace at most. */
  signaturePolicies(namespace?: string): Promise<SignaturePolicy[]>;
  /** Replaces the namespace's policy, if any. */
  setSignaturePolicy(policy: SignaturePolicy): Promise<void>;
  /** The policy removed, or undefined when the namespace had none. */
  removeSignaturePolicy(namespace: string): Promise<SignaturePolicy | undefined>;
  /** Digests of the image indexes of the repository that list the manifest `digest`. */
  indexesListing(repository: string, digest: string): Promise<string[]>;
  /** Set (or with undefined, clear) a namespace's quota; the namespace is made when missing. */
  setQuota(namespace: string, quotaBytes: number | undefined, now: number): Promise<void>;
  /** Bytes the namespace uses: every blob linked in one of its repositories, once, however many link it. */
  namespaceUsage(namespace: string): Promise<number>;
}

/** A webhook of a namespace: events of the kinds it names are delivered to its URL, signed with its secret. */
export interface WebhookRecord {
  id: number;
  namespace: string;
  url: string;
  /** The HMAC key deliveries are signed with: stored as given (signing needs it), never shown by list or the API. */
  secret: string;
  /** Event types (events.ts RegistryEventType). */
  events: string[];
  enabled: boolean;
  createdBy: string;
  createdAt: number;
}

/**
 * A namespace that is a pull-through cache of another registry (issue 23): pulls that miss are
 * fetched from `url` and stored; pushes are refused. The password is kept so the registry can
 * sign in upstream, and is never shown back (listings say only whether credentials are set).
 */
export interface ProxyRecord {
  namespace: string;
  /** The upstream's base URL, http(s)://host[:port], with an optional repository path prefix. */
  url: string;
  username?: string;
  password?: string;
  /** How long a tag fetched from upstream is served before upstream is asked again (HEAD). */
  ttlSeconds: number;
  createdBy: string;
  createdAt: number;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One event for one hook, its payload fixed when it was queued. */
export interface DeliveryRecord {
  id: number;
  hook: number;
  event: string;
  /** The exact JSON body sent (and signed). */
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  /** When the next attempt is due (ms). */
  nextAttempt: number;
  lastStatus?: number;
  lastError?: string;
  createdAt: number;
  /** When the last attempt ended. */
  lastAttemptAt?: number;
}

/**
 * Webhooks and their durable delivery queue (issue 23). Any replica may send a due delivery: it
 * claims it first with one conditional update, so two replicas never send the same attempt.
 */
export interface WebhookRows {
  webhooks(namespace?: string): Promise<WebhookRecord[]>;
  getWebhook(id: number): Promise<WebhookRecord | undefined>;
  addWebhook(h: Omit<WebhookRecord, 'id'>): Promise<number>;
  setWebhookEnabled(id: number, enabled: boolean): Promise<boolean>;
  /** Remove the hook and its deliveries. */
  removeWebhook(id: number): Promise<WebhookRecord | undefined>;
  /** Queue deliveries (pending, due at nextAttempt), in one statement. */
  enqueueDeliveries(ds: { hook: number; event: string; payload: string; createdAt: number }[]): Promise<void>;
  /** Take up to `limit` pending deliveries of enabled hooks due by `now` that no one holds, until `until`. */
  claimDeliveries(token: string, now: number, until: number, limit: number): Promise<DeliveryRecord[]>;
  /** Record an attempt and give the claim back; false when the claim was lost (it expired and another took it). */
  finishDelivery(id: number, token: string, r: { status: DeliveryStatus; attempts: number; nextAttempt: number; lastStatus?: number; lastError?: string; at: number }): Promise<boolean>;
  /** Give claims back without an attempt (the process is stopping). */
  releaseDeliveries(token: string, ids: number[]): Promise<void>;
  /** The newest deliveries of a hook first. */
  deliveries(hook: number, limit: number): Promise<DeliveryRecord[]>;
  /** Forget delivered and failed deliveries whose last attempt ended before `before`; returns how many. */
  pruneDeliveries(before: number): Promise<number>;
}

/** Pull-through cache namespaces. */
export interface ProxyRows {
  getProxy(namespace: string): Promise<ProxyRecord | undefined>;
  listProxies(): Promise<ProxyRecord[]>;
  /** Make the namespace a proxy (the namespace is made when missing), or with undefined stop it being one. */
  setProxy(namespace: string, proxy: ProxyRecord | undefined, now: number): Promise<void>;
}

/**
 * A replication rule (issue 23): copy the images of a local namespace to another registry (push) or
 * those of a remote namespace into a local one (pull), filtered by repository and tag patterns and
 * an image config label, run by hand, on a schedule or on push events.
 */
export interface ReplicationRule {
  id: number;
  name: string;
  direction: 'push' | 'pull';
  /** http(s)://host[:port] of the other registry. */
  remote: string;
  /** The local namespace. */
  namespace: string;
  /** What the namespace is called on the remote (a repository path prefix); the local name when unset. */
  remoteNamespace?: string;
  /** Repository pattern (doublestar) below the namespace, and tag pattern. */
  repos: string;
  tags: string;
  /** key=value the image config's labels must hold. */
  label?: string;
  trigger: 'manual' | 'schedule' | 'event';
  /** Seconds between scheduled runs. */
  interval?: number;
  username?: string;
  /** The password or robot secret for the remote; never shown back. */
  secret?: string;
  /** Plain HTTP to a host other than loopback allowed. */
  insecure: boolean;
  enabled: boolean;
  createdBy: string;
  createdAt: number;
}

export type ReplicationRunStatus = 'queued' | 'running' | 'interrupted' | 'succeeded' | 'failed';

/** One run of a rule; its items say what it copies and how far it got. */
export interface ReplicationRun {
  id: number;
  rule: string;
  trigger: 'manual' | 'schedule' | 'event';
  status: ReplicationRunStatus;
  requestedBy: string;
  requestedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Why the run failed or was interrupted. */
  error?: string;
  /** Times the run was started or resumed. */
  attempts: number;
  /** When an interrupted run is tried again. */
  retryAt?: number;
  /** Whether the items were listed (the first start lists them, resumes keep them). */
  planned: boolean;
  /** An event run's images: repositories with the tags pushed; every matching image otherwise. */
  scope?: { repository: string; tags: string[] }[];
}

/** One image or index (by tag, or by digest for a referrer) of a run. */
export interface ReplicationItem {
  run: number;
  seq: number;
  /** The repository read from, and the one written to. */
  source: string;
  target: string;
  reference: string;
  status: 'pending' | 'done' | 'skipped' | 'failed';
  digest?: string;
  attempts: number;
  /** Why it was skipped, or its last error. */
  error?: string;
  /** Blobs written to the target, and those it had already (or got by a mount). */
  blobsCopied: number;
  blobsSkipped: number;
  updatedAt: number;
}

/** Replication rules, their runs and each run's items; runs are taken by one process at a time with a lease. */
export interface ReplicationRows {
  replicationRules(): Promise<ReplicationRule[]>;
  replicationRule(name: string): Promise<ReplicationRule | undefined>;
  /** Returns the new rule's id; undefined when a rule of that name exists. */
  addReplicationRule(rule: Omit<ReplicationRule, 'id'>): Promise<number | undefined>;
  setReplicationEnabled(name: string, enabled: boolean): Promise<boolean>;
  /** Removes the rule with its runs and their items. */
  removeReplicationRule(name: string): Promise<ReplicationRule | undefined>;
  createReplicationRun(run: Pick<ReplicationRun, 'rule' | 'trigger' | 'requestedBy' | 'requestedAt' | 'scope'>): Promise<number>;
  /** The rule's runs, newest first. */
  replicationRuns(rule: string, limit: number): Promise<ReplicationRun[]>;
  replicationRun(id: number): Promise<ReplicationRun | undefined>;
  replicationItems(run: number): Promise<ReplicationItem[]>;
  /** An interrupted run is queued again now (a person asked for it); false when it is not interrupted. */
  requeueReplicationRun(id: number): Promise<boolean>;
  /**
   * Take the oldest run that can go: queued, interrupted and due, or running under a lease that
   * ended (its process died). It becomes running under `owner` until `until`.
   */
  claimReplicationRun(owner: string, until: number, now: number): Promise<ReplicationRun | undefined>;
  /** Extend the lease; false when it was lost. */
  renewReplicationRun(id: number, owner: string, until: number): Promise<boolean>;
  /** Record the run's items (replacing any an unfinished listing left) and mark it planned. */
  planReplicationRun(id: number, owner: string, items: Omit<ReplicationItem, 'run'>[]): Promise<void>;
  updateReplicationItem(item: ReplicationItem): Promise<void>;
  /** End the lease with the run's new status. */
  releaseReplicationRun(id: number, owner: string, update: Pick<ReplicationRun, 'status' | 'error' | 'finishedAt' | 'retryAt'>): Promise<void>;
  /** Every running run's lease ends now (a single-process registry starting: whoever held them is gone). */
  expireReplicationLeases(): Promise<void>;
}

export interface SharedRows {
  /** The value stored under name, storing `create()` first when there is none (the first replica wins). */
  sharedValue(name: string, create: () => string): Promise<string>;
  /**
   * Failed logins per key in the key's current window (which starts with its first failure and
   * lasts windowMs); with `count`, one more failure is recorded for each key first.
   */
  loginFailures(keys: string[], windowMs: number, now: number, count: boolean): Promise<{ failures: number; start: number }[]>;
  clearFailures(keys: string[]): Promise<void>;
}

/** A repository as the browsing API lists it. */
export interface RepositorySummary {
  name: string;
  tags: number;
  /** Bytes of the blobs linked into the repository, each once. */
  size: number;
  /** When a tag was last pushed or moved (Unix ms); none when the repository has no tag. */
  pushedAt?: number;
}

/** How a page of tags is ordered: by name (ASCII) or by push time (newest first when descending). */
export interface TagOrder {
  by: 'name' | 'pushed';
  descending: boolean;
}

/** A tag as the browsing API lists it: what one page needs, read in a fixed number of queries. */
export interface TagSummary {
  tag: string;
  digest: string;
  mediaType: string;
  pushedAt: number;
  /** When the manifest was first stored. */
  createdAt: number;
  /** The manifest, the blobs it lists and, for an index, the blobs its children list (bytes). */
  size: number;
  /** Who last pushed or promoted to this manifest in the repository, from the audit log. */
  pushedBy?: string;
  /** artifactType of each referrer of the manifest (SBOMs, signatures, attestations). */
  referrerTypes: string[];
  /** The body, for an index only (its platforms are read from it). */
  indexBody?: Buffer;
}

/** Reads for the web UI and the /kiln/v1/ browsing API (issue 20), each a bounded number of indexed queries. */
export interface BrowseRows {
  /** Every repository that holds a manifest, by name, whose name contains `filter` when given. */
  repositorySummaries(filter?: string): Promise<RepositorySummary[]>;
  /** At most `n` tags of the repository in `order`, after the tag `after` (and its push time when ordered by it). */
  tagPage(repository: string, order: TagOrder, after: { tag: string; pushedAt: number } | undefined, n: number): Promise<TagSummary[]>;
}

/** A signed-in browser: the cookie carries a random id, the database only its SHA-256. */
export interface SessionRecord {
  /** hex SHA-256 of the cookie's id. */
  idHash: string;
  user: string;
  /** The token the page sends in X-Kiln-CSRF with each state-changing request. */
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

/** Web UI sessions, in the metadata so every replica knows them. */
export interface SessionRows {
  putSession(s: SessionRecord): Promise<void>;
  /** The session when it exists and has not expired at `now`. */
  getSession(idHash: string, now: number): Promise<SessionRecord | undefined>;
  deleteSession(idHash: string): Promise<void>;
  /** Remove sessions that expired before `now`; returns how many. */
  purgeSessions(now: number): Promise<number>;
}

/**
 * A sign-in through the OpenID Provider in progress (issue 21), from the redirect to the provider
 * until its callback takes it, once: the state's SHA-256 is the key, the browser that started it
 * holds a random value whose SHA-256 is `browserHash`, and the nonce and PKCE verifier stay here.
 */
export interface OidcLoginRecord {
  stateHash: string;
  browserHash: string;
  nonce: string;
  verifier: string;
  /** The page to show after the sign-in (a path on the registry). */
  next: string;
  createdAt: number;
  expiresAt: number;
}

/** What the registry keeps of a user an OpenID Provider vouches for, beside the user record. */
export interface OidcAccountRecord {
  user: string;
  /** The provider's `sub`: the same user name with another subject is another person. */
  subject: string;
  /** The groups the provider said at the last sign-in or refresh. */
  groups: string[];
  /** The provider's refresh token, encrypted (auth/oidc.ts); none when it gave none. */
  refreshToken?: string;
  /** When the provider last vouched for the user (Unix ms). */
  checkedAt: number;
  /** hashRobotSecret of the user's CLI secret; none when there is none. */
  secretHash?: string;
  secretCreatedAt?: number;
}

/** OpenID Connect sign-ins and CLI secrets (issue 21). */
export interface OidcRows {
  /** Store a sign-in in progress; logins that expired before its createdAt go. */
  putOidcLogin(l: OidcLoginRecord): Promise<void>;
  /** Take (and remove) the sign-in with this state: undefined when unknown, already taken or expired at `now`. */
  takeOidcLogin(stateHash: string, now: number): Promise<OidcLoginRecord | undefined>;
  getOidcAccount(user: string): Promise<OidcAccountRecord | undefined>;
  /** Store what the provider said of the user; the CLI secret stays as it is (a new account has none). */
  putOidcAccount(a: Omit<OidcAccountRecord, 'secretHash' | 'secretCreatedAt'>): Promise<void>;
  /** Set (or with undefined remove) the user's CLI secret; false when the user has no OIDC account. */
  setCliSecret(user: string, hash: string | undefined, at: number): Promise<boolean>;
}

export interface Metadata extends BlobRows, ManifestRows, SearchRows, IdentityRows, AuditRows, GcRows, UploadRows, SharedRows, GovernanceRows, WebhookRows, ProxyRows, ReplicationRows, BrowseRows, SessionRows, OidcRows {
  readonly kind: 'sqlite' | 'postgres';
  /** Call back when another process changed the data (caches must then be dropped). */
  onExternalChange(cb: () => void): void;
  close(): Promise<void>;
}
