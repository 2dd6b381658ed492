import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { Transform, pipeline } from 'node:stream';
import type { RegistryConfig } from './config.js';
import type { AuditEvent, ImmutableRule, ManifestListing, Metadata } from './metadata/metadata.js';
import { StorageNotFound, type BlobDriver } from './storage/driver.js';
import { newObjectKey } from './blobs.js';

// kiln registry migrate (issue 18): copy a registry (typically SQLite and a filesystem) into
// another (typically PostgreSQL and S3), through the Metadata and BlobDriver interfaces only.
// Every step first asks whether the target already has the row, so a run after an interruption
// continues where the last one stopped. Identities come first: putManifest and recordBlob create
// namespaces as private, and a namespace found present would then keep the wrong flag.

export interface Backends {
  metadata: Metadata;
  driver: BlobDriver;
}

export interface MigrationReport {
  blobs: number;
  bytes: number;
  manifests: number;
  tags: number;
  users: number;
  namespaces: number;
  roles: number;
  robots: number;
  /** Rules: tag immutability, retention, signature policies, webhooks, replication. */
  rules: number;
  audit: number;
  /** Rows the target already had (from an earlier, interrupted run). */
  skipped: number;
  /** Blobs no repository links in the source: garbage there, left out. */
  unlinked: number;
}

export async function migrateRegistry(source: Backends, target: Backends, log: (line: string) => void): Promise<MigrationReport> {
  const report: MigrationReport = { blobs: 0, bytes: 0, manifests: 0, tags: 0, users: 0, namespaces: 0, roles: 0, robots: 0, rules: 0, audit: 0, skipped: 0, unlinked: 0 };
  await copyIdentities(source.metadata, target.metadata, report, log);
  await copyBlobs(source, target, report, log);
  await copyManifests(source.metadata, target.metadata, report, log);
  await copyAudit(source.metadata, target.metadata, report, log);
  log('search index: not copied; the target registry indexes the SBOMs it holds when it starts');
  return report;
}

export function summary(r: MigrationReport): string {
  return (
    `Migrated ${r.blobs} blobs (${r.bytes} bytes), ${r.manifests} manifests, ${r.tags} tags, ${r.users} users, ${r.namespaces} namespaces, ` +
    `${r.roles} roles, ${r.robots} robots, ${r.rules} rules, ${r.audit} audit rows; ${r.skipped} skipped as already present` +
    (r.unlinked ? `; ${r.unlinked} blobs no repository links left out` : '')
  );
}

/** Whether two configurations name the same metadata database (copying a registry onto itself). */
export function sameDatabase(a: RegistryConfig, b: RegistryConfig): boolean {
  if (a.database.driver !== b.database.driver) return false;
  if (a.database.driver === 'sqlite') return resolve(a.database.sqlite.path) === resolve(b.database.sqlite.path);
  return postgresIdentity(a.database.postgres!.url) === postgresIdentity(b.database.postgres!.url);
}

/** host:port/database of a libpq URL, with libpq's defaults filled in. */
function postgresIdentity(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? (u.hostname || 'localhost');
    const db = decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username) || 'postgres';
    return `${host.toLowerCase()}:${u.port || '5432'}/${db}`;
  } catch {
    return url;
  }
}

/** Logs "what: done/total" at most once a second, and always the last. */
function progress(log: (line: string) => void, what: string, total: number, extra: () => string = () => '') {
  let last = 0;
  return (done: number) => {
    if (done < total && Date.now() - last < 1000) return;
    last = Date.now();
    log(`${what}: ${done}/${total}${extra()}`);
  };
}

async function copyIdentities(from: Metadata, to: Metadata, r: MigrationReport, log: (line: string) => void): Promise<void> {
  for (const u of await from.listUsers()) {
    if (await to.getUser(u.name)) r.skipped++;
    else {
      // The password hash as it is: users keep their passwords.
      await to.putUser(u);
      r.users++;
    }
  }
  const namespaces = await from.listNamespaces();
  for (const ns of namespaces) {
    const there = await to.getNamespace(ns.name);
    if (there?.public === ns.public && there.quotaBytes === ns.quotaBytes) r.skipped++;
    else {
      await to.putNamespace(ns);
      if (ns.quotaBytes !== undefined) await to.setQuota(ns.name, ns.quotaBytes, ns.createdAt);
      r.namespaces++;
    }
    const proxy = await from.getProxy(ns.name);
    if (proxy && !(await to.getProxy(ns.name))) await to.setProxy(ns.name, proxy, ns.createdAt);
    // Immutability rules, by their content (ids are the target's own).
    const rulesThere = await to.immutableRules(ns.name);
    const same = (a: ImmutableRule, b: ImmutableRule) => a.repos === b.repos && a.tags === b.tags && a.excludeRepos === b.excludeRepos && a.excludeTags === b.excludeTags;
    for (const rule of await from.immutableRules(ns.name)) {
      if (rulesThere.some((x) => same(x, rule))) r.skipped++;
      else {
        const { id: _, ...copy } = rule;
        await to.addImmutableRule(copy);
        r.rules++;
      }
    }
    // Retention rules and webhooks, by their content too. A webhook keeps its secret (receivers
    // check signatures with it); its queued deliveries stay behind, as in-flight uploads do.
    const retentionThere = await to.retentionRules(ns.name);
    for (const rule of await from.retentionRules(ns.name)) {
      if (retentionThere.some((x) => x.repos === rule.repos && x.tags === rule.tags && x.kind === rule.kind && x.value === rule.value)) r.skipped++;
      else {
        const { id: _, ...copy } = rule;
        await to.addRetentionRule(copy);
        r.rules++;
      }
    }
    const hooksThere = await to.webhooks(ns.name);
    for (const hook of await from.webhooks(ns.name)) {
      if (hooksThere.some((x) => x.url === hook.url && x.secret === hook.secret && x.events.join() === hook.events.join())) r.skipped++;
      else {
        const { id: _, ...copy } = hook;
        await to.addWebhook(copy);
        r.rules++;
      }
    }
    // The signature policy (one per namespace), when the target has not this one already.
    const policy = (await from.signaturePolicies(ns.name))[0];
    if (policy) {
      const policyThere = (await to.signaturePolicies(ns.name))[0];
      if (policyThere && JSON.stringify([policyThere.keys, policyThere.certificates, policyThere.on]) === JSON.stringify([policy.keys, policy.certificates, policy.on])) r.skipped++;
      else {
        await to.setSignaturePolicy(policy);
        r.rules++;
      }
    }
    for (const m of await from.listMembers(ns.name)) {
      if ((await to.getRole(m.namespace, m.user)) === m.role) r.skipped++;
      else {
        await to.setRole(m.namespace, m.user, m.role);
        r.roles++;
      }
    }
    const bindingsThere = await to.groupBindings(ns.name);
    for (const b of await from.groupBindings(ns.name)) {
      if (bindingsThere.some((x) => x.group === b.group && x.role === b.role)) r.skipped++;
      else {
        await to.setGroupRole(b.namespace, b.group, b.role);
        r.roles++;
      }
    }
  }
  // Replication rules by name (unique); their run history stays with the source.
  for (const rule of await from.replicationRules()) {
    if (await to.replicationRule(rule.name)) r.skipped++;
    else {
      const { id: _, ...copy } = rule;
      await to.addReplicationRule(copy);
      r.rules++;
    }
  }
  for (const robot of await from.listRobots()) {
    if (await to.getRobot(robot.name)) r.skipped++;
    else {
      await to.putRobot(robot);
      r.robots++;
    }
  }
  log(`identities: ${r.users} users, ${r.namespaces} namespaces, ${r.roles} roles, ${r.robots} robots, ${r.rules} rules copied`);
}

async function copyBlobs(source: Backends, target: Backends, r: MigrationReport, log: (line: string) => void): Promise<void> {
  const repos = new Map<string, string[]>();
  for (const l of await source.metadata.listLinks()) repos.set(l.digest, [...(repos.get(l.digest) ?? []), l.repository]);
  const digests = await source.metadata.listBlobDigests();
  const tick = progress(log, 'blobs', digests.length, () => ` (${r.bytes} bytes copied)`);
  for (const [i, digest] of digests.entries()) {
    const linkedInto = repos.get(digest) ?? [];
    if (linkedInto.length === 0) r.unlinked++;
    else await copyBlob(source, target, digest, linkedInto, r);
    tick(i + 1);
  }
  if (digests.length === 0) log('blobs: none');
}

/** One blob: its bytes under a new key of the target, then its row, linked into every repository that links it. */
async function copyBlob(source: Backends, target: Backends, digest: string, repositories: string[], r: MigrationReport): Promise<void> {
  const row = await source.metadata.blob(digest);
  if (!row) return; // collected since the listing
  const now = Date.now();
  if (await target.metadata.blob(digest)) {
    r.skipped++;
    // An interrupted run may have recorded the blob but not linked it everywhere yet.
    for (const repo of repositories) if (!(await target.metadata.linkedBlob(repo, digest))) await target.metadata.linkBlob(repo, digest, now);
    return;
  }
  // A fresh key even when an earlier run wrote the bytes without recording them: that copy has no
  // row, and the target's garbage collection removes such objects.
  const key = newObjectKey();
  try {
    await copyVerified(source.driver, row.key, target.driver, key, digest, row.size);
  } catch (e) {
    await target.driver.delete(key).catch(() => {});
    throw new Error(`blob ${digest}: ${(e as Error).message}`, { cause: e });
  }
  const [first, ...rest] = repositories as [string, ...string[]];
  const kept = await target.metadata.recordBlob(digest, row.size, first, key, now);
  // Someone pushed the digest to the target meanwhile: its copy stays, ours goes.
  if (kept.key !== key) await target.driver.delete(key);
  for (const repo of rest) await target.metadata.linkBlob(repo, digest, now);
  r.blobs++;
  r.bytes += row.size;
}

/**
 * Stream the object from one driver to the other, hashing on the way. A digest or size mismatch
 * fails the stream before its end, so the target driver never completes the object.
 */
async function copyVerified(from: BlobDriver, fromKey: string, to: BlobDriver, toKey: string, digest: string, size: number): Promise<void> {
  const algorithm = digest.slice(0, digest.indexOf(':'));
  const hash = createHash(algorithm);
  let read = 0;
  const verify = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      read += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      const got = `${algorithm}:${hash.digest('hex')}`;
      if (got === digest && read === size) done();
      else done(new Error(`the source's bytes (${fromKey}) do not match: ${read} bytes with digest ${got}, expected ${size} bytes`));
    },
  });
  let src;
  try {
    src = await from.get(fromKey);
  } catch (e) {
    if (e instanceof StorageNotFound) throw new Error(`the source storage has no object ${fromKey}`);
    throw e;
  }
  // Errors of either stream reach `verify`, which the target driver reads.
  pipeline(src, verify, () => {});
  await to.put(toKey, verify);
}

async function copyManifests(from: Metadata, to: Metadata, r: MigrationReport, log: (line: string) => void): Promise<void> {
  const tags = await tagsByManifest(from);
  const ordered = dependencyOrder(await from.listManifests());
  const tick = progress(log, 'manifests', ordered.length);
  for (const [i, m] of ordered.entries()) {
    await copyManifest(from, to, m, tags.get(m.repository + '\0' + m.digest) ?? [], r);
    tick(i + 1);
  }
  if (ordered.length === 0) log('manifests: none');
}

async function copyManifest(from: Metadata, to: Metadata, m: ManifestListing, tags: string[], r: MigrationReport): Promise<void> {
  const present = await to.getManifest(m.repository, m.digest);
  const missingTags: string[] = [];
  for (const tag of tags) if ((await to.resolveTag(m.repository, tag)) !== m.digest) missingTags.push(tag);
  if (present && missingTags.length === 0) {
    r.skipped++;
    return;
  }
  const record = await from.getManifest(m.repository, m.digest);
  if (!record) return; // deleted since the listing
  // A pull-through cache holds manifests whose blobs no client asked for yet (proxy.ts): so may the copy.
  const proxied = (await from.getProxy(m.repository.split('/')[0]!)) !== undefined;
  const put = await to.putManifest(record, m.refs, missingTags, { allowMissing: proxied });
  if (put.missing.length) throw new Error(`manifest ${m.repository}@${m.digest}: the target lacks what it references: ${put.missing.join(', ')}`);
  if (present) r.skipped++;
  else r.manifests++;
  r.tags += missingTags.length;
}

/** repository \0 digest -> the tags pointing at it. */
async function tagsByManifest(from: Metadata): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const repo of await from.listRepositories(undefined, undefined)) {
    for (const tag of (await from.listTags(repo, undefined, undefined)) ?? []) {
      const digest = await from.resolveTag(repo, tag);
      if (!digest) continue;
      const k = repo + '\0' + digest;
      out.set(k, [...(out.get(k) ?? []), tag]);
    }
  }
  return out;
}

/**
 * Children (index entries) before the indexes that list them, as putManifest requires, and
 * subjects before their referrers (not required, but a referrer then never points at nothing).
 */
export function dependencyOrder(listing: ManifestListing[]): ManifestListing[] {
  const byKey = new Map(listing.map((m) => [m.repository + '\0' + m.digest, m]));
  const done = new Set<string>();
  const out: ManifestListing[] = [];
  const visit = (k: string, path: Set<string>) => {
    const m = byKey.get(k);
    if (!m || done.has(k) || path.has(k)) return;
    path.add(k);
    for (const d of [...m.refs.manifests, ...(m.subject ? [m.subject] : [])]) visit(m.repository + '\0' + d, path);
    path.delete(k);
    done.add(k);
    out.push(m);
  };
  for (const k of byKey.keys()) visit(k, new Set());
  return out;
}

/**
 * The audit log, oldest first. Rows have no key of their own, so a row counts as present when the
 * target has one with the same content (as many times as the source has it).
 */
async function copyAudit(from: Metadata, to: Metadata, r: MigrationReport, log: (line: string) => void): Promise<void> {
  const all = { limit: Number.MAX_SAFE_INTEGER };
  const present = new Map<string, number>();
  for (const e of await to.listAudit(all)) present.set(auditKey(e), (present.get(auditKey(e)) ?? 0) + 1);
  const events = (await from.listAudit(all)).reverse();
  const batch: AuditEvent[] = [];
  const flush = async () => {
    if (batch.length) await to.recordAudit(batch.splice(0));
  };
  for (const e of events) {
    const k = auditKey(e);
    const n = present.get(k) ?? 0;
    if (n > 0) {
      present.set(k, n - 1);
      r.skipped++;
      continue;
    }
    const { id: _id, ...row } = e;
    batch.push(row);
    r.audit++;
    if (batch.length >= 500) await flush();
  }
  await flush();
  log(`audit: ${r.audit} rows copied`);
}

const auditKey = (e: AuditEvent): string =>
  JSON.stringify([e.time, e.actor, e.action, e.repository ?? null, e.namespace ?? null, e.reference ?? null, e.digest ?? null, e.detail ?? null, e.address ?? null, e.count ?? 1]);
