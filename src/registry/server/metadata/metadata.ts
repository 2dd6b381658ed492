// What the registry knows besides blob bytes: repositories, tags, manifests and what they refer
// to, users, namespaces (projects), roles, robot accounts and the audit log. SQLite implements
// it now (sqlite.ts); PostgreSQL fits behind the same methods.

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
  passwordHash: string;
  admin: boolean;
  createdAt: number;
}

export interface NamespaceRecord {
  name: string;
  /** Anonymous pull allowed. */
  public: boolean;
  createdAt: number;
}

export interface Membership {
  namespace: string;
  user: string;
  role: Role;
}

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

export interface AuditEvent {
  id?: number;
  /** Unix milliseconds. */
  time: number;
  actor: string;
  action: string;
  repository?: string;
  /** Set for events about a namespace itself (role changes, robots); else derived from the repository. */
  namespace?: string;
  reference?: string;
  digest?: string;
  detail?: string;
  address?: string;
  /** Identical pulls within one flush are stored once with a count. */
  count?: number;
}

export interface GcCandidates {
  manifests: { repository: string; digest: string }[];
  links: { repository: string; digest: string }[];
  blobs: { digest: string; size: number }[];
}

/** Writes made inside Metadata.exclusive(): the caller holds the write lock and may await storage between them. */
export interface ExclusiveWrites {
  recordBlob(digest: string, size: number, repository: string, now: number): void;
  /** Mark and list what no tag or referrer reaches and that is older than the grace period. */
  findGarbage(now: number, graceMs: number): GcCandidates;
  removeManifest(repository: string, digest: string): void;
  removeLink(repository: string, digest: string): void;
  /** Remove the blob row when nothing links or refers to it any more; true when removed. */
  removeBlobIfUnused(digest: string, now: number, graceMs: number): boolean;
  blobExists(digest: string): boolean;
}

export interface Metadata {
  /** Run fn holding the write lock (in this process and, for SQLite, across processes). */
  exclusive<T>(fn: (w: ExclusiveWrites) => Promise<T>): Promise<T>;

  // Blobs
  blobSize(digest: string): Promise<number | undefined>;
  /** Size of the blob when it is linked into the repository. */
  linkedBlobSize(repository: string, digest: string): Promise<number | undefined>;
  /** Link a blob the registry already has into another repository (cross-repository mount); false when unknown. */
  linkBlob(repository: string, digest: string, now: number): Promise<boolean>;
  /** Restart the grace period of a linked blob (a client just checked it exists and may reference it soon). */
  touchBlob(repository: string, digest: string, now: number): Promise<void>;
  unlinkBlob(repository: string, digest: string): Promise<boolean>;
  /** A repository of the namespace that links the blob, if any. */
  blobRepositoryInNamespace(namespace: string, digest: string): Promise<string | undefined>;
  listBlobDigests(): Promise<string[]>;

  // Manifests and tags
  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  resolveTag(repository: string, tag: string): Promise<string | undefined>;
  /**
   * Store a manifest and point tags at it, in one transaction. Returns the references the
   * repository does not have (then nothing is stored): MANIFEST_BLOB_UNKNOWN.
   */
  putManifest(m: ManifestRecord, refs: ManifestRefs, tags: string[]): Promise<{ missing: string[]; moved: { tag: string; from: string }[] }>;
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

  // Search index: packages of SBOMs pushed as referrers, and base images (ManifestRefs.base).
  // Rows go with their manifest (deleteManifest, GC's removeManifest).
  /** Record what the SBOM manifest `sbom` of the repository lists for its subject; replaces earlier rows of that SBOM. */
  indexPackages(repository: string, sbom: string, subject: string, packages: PackageRow[]): Promise<void>;
  /**
   * Images whose SBOM lists a package whose name key or source key is one of `keys`, in every
   * repository; only subjects the repository holds.
   */
  findPackages(keys: string[]): Promise<PackageHit[]>;
  /** Manifests, in every repository, whose base is one of `digests`. */
  findBuiltOn(digests: string[]): Promise<BaseHit[]>;
  /** Manifests of these artifact types with a subject whose packages were never indexed (pushed before the index existed). */
  unindexedReferrers(artifactTypes: string[]): Promise<{ repository: string; digest: string; subject: string }[]>;

  // Users, namespaces, roles, robots
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
  getRobot(name: string): Promise<RobotRecord | undefined>;
  listRobots(namespace?: string): Promise<RobotRecord[]>;
  putRobot(r: RobotRecord): Promise<void>;
  deleteRobot(name: string): Promise<boolean>;

  // Audit
  recordAudit(events: AuditEvent[]): Promise<void>;
  listAudit(filter: { namespace?: string; actor?: string; action?: string; limit: number }): Promise<AuditEvent[]>;

  /** Call back when another process changed the data (caches must then be dropped). */
  onExternalChange(cb: () => void): void;
  close(): Promise<void>;
}
