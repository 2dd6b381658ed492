import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { RegistryConfig } from './config.js';
import type { Metadata } from './metadata/metadata.js';
import { openSqliteMetadata } from './metadata/sqlite.js';
import { openPostgresMetadata } from './metadata/postgres.js';
import type { BlobDriver } from './storage/driver.js';
import { filesystemDriver } from './storage/filesystem.js';
import { blobService, type BlobService } from './blobs.js';
import { openUploads, type Uploads } from './uploads.js';
import { sharedUploads } from './shared-uploads.js';
import { openS3Driver } from './storage/s3.js';
import { manifestStore, type ManifestStore } from './manifest-store.js';
import { createAuth, type Auth } from './auth/auth.js';
import { loadSigningKey, tokenAuthority } from './auth/tokens.js';
import { ldapProvider } from './auth/ldap.js';
import type { IdentityProvider } from './auth/identity.js';
import { oidcSignIn, type OidcSignIn } from './auth/oidc.js';
import { cliSecrets, cliSecretUsers, type CliSecrets } from './auth/cli-secrets.js';
import { auditLog, type AuditLog } from './audit.js';
import { metrics, type Metrics } from './metrics.js';
import { logger, type Logger } from './log.js';
import { collectGarbage, gcSummary, recoverTrash, type GcReport } from './gc.js';
import { searchIndex, type SearchIndex } from './search.js';
import { registryService, type RegistryService } from './service.js';
import { eventBus, type EventBus } from './events.js';
import { admin } from './admin.js';
import { startWebhooks, type Webhooks } from './webhooks/webhooks.js';
import { watchBaseUpdates } from './base-updates.js';
import { pullThrough, type PullThrough } from './proxy.js';
import { startReplication, type Replication } from './replication/worker.js';
import { signatureRules, type SignatureRules } from './trust.js';

/** The parts of a running registry, each behind its own interface, chosen by configuration. */
export interface Registry {
  readonly config: RegistryConfig;
  readonly metadata: Metadata;
  readonly driver: BlobDriver;
  readonly blobs: BlobService;
  readonly uploads: Uploads;
  readonly manifests: ManifestStore;
  readonly search: SearchIndex;
  /** The rules of push, promote and delete, for every front end (/v2/, /kiln/v1/, the web UI). */
  readonly service: RegistryService;
  /** Namespaces' signature policies: which manifests may be pulled and promoted, and each one's signatures. */
  readonly signatures: SignatureRules;
  /** What the service changed, for webhooks and push-triggered replication in this process. */
  readonly events: EventBus;
  /** Deliveries of events to the namespaces' webhooks. */
  readonly webhooks: Webhooks;
  /** Pull-through cache namespaces: what a pull that misses fetches from upstream. */
  readonly proxy: PullThrough;
  /** The replication worker: runs requested runs, schedules and push-triggered rules. */
  readonly replication: Replication;
  readonly auth: Auth;
  /** Sign-in through the OpenID Provider of auth.oidc, when configured. */
  readonly oidc?: OidcSignIn;
  /** Its users' CLI secrets. */
  readonly cliSecrets: CliSecrets;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Collect garbage; a run (not a dry run) goes into the audit log as `gc` by `actor` (default "gc-schedule"), which is its last report. */
  gc(opts?: { dryRun?: boolean; actor?: string }): Promise<GcReport>;
  close(): Promise<void>;
}

// The one place where configuration chooses the backends: SQLite and a filesystem for one
// machine, PostgreSQL and an S3-compatible store for several replicas.

/** The metadata alone, for offline commands (users, roles) against a registry. */
export async function openMetadata(config: RegistryConfig): Promise<Metadata> {
  if (config.database.driver === 'postgres') return openPostgresMetadata(config.database.postgres!);
  return openSqliteMetadata(config.database.sqlite.path);
}

/** Where blob bytes live. */
export async function openDriver(config: RegistryConfig): Promise<BlobDriver> {
  if (config.storage.driver === 's3') return openS3Driver(config.storage.s3!);
  return filesystemDriver(config.storage.filesystem.rootdirectory);
}

/** Storage and metadata, for offline commands (gc, migrate). */
export async function openBackends(config: RegistryConfig): Promise<{ metadata: Metadata; driver: BlobDriver }> {
  const metadata = await openMetadata(config);
  try {
    return { metadata, driver: await openDriver(config) };
  } catch (e) {
    await metadata.close();
    throw e;
  }
}

/** The identity providers the configuration names, besides the local users. */
export function identityProviders(config: RegistryConfig): IdentityProvider[] {
  return config.auth.ldap ? [ldapProvider(config.auth.ldap)] : [];
}

export async function openRegistry(config: RegistryConfig, opts: { log?: Logger } = {}): Promise<Registry> {
  const log = opts.log ?? logger(config.log.level);
  const { metadata, driver } = await openBackends(config);
  await recoverTrash(metadata, driver);
  // Sessions in the database with their bytes in the object store, when the store has multipart
  // uploads (any replica continues them); otherwise files in this machine's upload directory.
  const multipart = driver.multipart;
  const uploads = multipart
    ? sharedUploads({ rows: metadata, driver, multipart, timeoutSeconds: config.uploads.sessionTimeout })
    : await openUploads(config.uploads.directory, config.uploads.sessionTimeout);
  const blobs = blobService({
    driver,
    metadata,
    cachedBlobSize: config.limits.cachedBlobSize,
    blobCacheBytes: config.limits.blobCacheBytes,
    graceSeconds: config.gc.gracePeriod,
    onMissing: (digest, key) => log.log('error', 'blob missing from storage: answered BLOB_UNKNOWN; garbage collection will repair its row', { digest, key }),
  });
  const manifests = manifestStore(metadata, config.limits.manifestCacheBytes);
  const search = searchIndex({ metadata, driver, log, sbomSize: config.limits.sbomSize });
  // SBOMs pushed before the search index existed (or while indexing failed) are read now, in the background.
  const indexing = search
    .indexMissing()
    .then((n) => n && log.log('info', 'indexed SBOMs stored earlier', { count: n }))
    .catch((e: unknown) => log.log('error', 'indexing stored SBOMs failed', { error: String(e) }));
  const tokens = await tokenAuthority({ key: await signingKey(config, metadata), issuer: config.auth.issuer, audience: config.auth.service });
  const events = eventBus((e, event) => log.log('error', 'event listener failed', { event: event.type, error: String((e as Error)?.message ?? e) }));
  watchBaseUpdates(events, metadata, log);
  const webhooks = startWebhooks({ config, metadata, events, log });
  const audit = auditLog(metadata, { pulls: config.audit.pulls, onError: (e) => log.log('error', 'audit write failed', { error: String(e) }) });
  // The OpenID Provider's users sign in with CLI secrets, asked before a directory (their names are known here).
  const oidc = config.auth.oidc ? oidcSignIn(config.auth.oidc, { metadata, audit, log }) : undefined;
  const providers = [...(oidc ? [cliSecretUsers(metadata, oidc)] : []), ...identityProviders(config)];
  const auth = createAuth(config, metadata, tokens, { providers, audit, log });
  // The service refuses pushes into proxy namespaces; the proxy stores what it fetches through the service's quota rule.
  let proxy: PullThrough | undefined;
  const signatures = signatureRules({ metadata, blobs });
  const service = registryService({ config, metadata, manifests, blobs, search, audit, events, signatures, proxyOf: (repository) => proxy!.upstreamOf(repository) });
  proxy = pullThrough({ metadata, manifests, blobs, uploads, search, service, audit, log });
  const invalidate = () => {
    blobs.invalidate();
    manifests.invalidate();
    proxy!.invalidate();
    signatures.invalidate();
  };
  // Another process (kiln registry gc, user changes) wrote to the database: forget what we cached.
  metadata.onExternalChange(invalidate);

  const collect = async (o: { dryRun?: boolean; actor?: string }): Promise<GcReport> => {
    const r = await collectGarbage({ metadata, driver, graceSeconds: config.gc.gracePeriod, dryRun: o.dryRun });
    if (!o.dryRun && (r.manifests.length || r.blobs.length || r.links || r.lost)) invalidate();
    // The same record `kiln registry gc` writes, so the last report is the last run's wherever it
    // ran; a scheduled run that removed nothing is not worth a line every interval.
    const removed = r.manifests.length || r.blobs.length || r.links || r.lost || r.orphans;
    if (!o.dryRun && (o.actor || removed)) audit.record({ actor: o.actor ?? 'gc-schedule', action: 'gc', detail: gcSummary(r) });
    log.log('info', 'garbage collection', { dryRun: r.dryRun, manifests: r.manifests.length, links: r.links, blobs: r.blobs.length, bytes: r.bytes, orphans: r.orphans, lost: r.lost });
    return r;
  };
  // One collection at a time. A request joins a run of its own kind; a real run asked for while a
  // dry run goes on (or the reverse) waits for it and then runs, so it never gets the other's report.
  let gcRunning: { dryRun: boolean; report: Promise<GcReport> } | undefined;
  const gc = async (o: { dryRun?: boolean; actor?: string } = {}): Promise<GcReport> => {
    const dryRun = !!o.dryRun;
    while (gcRunning && gcRunning.dryRun !== dryRun) await gcRunning.report.catch(() => {});
    if (gcRunning) return gcRunning.report;
    const run = { dryRun, report: collect(o) };
    gcRunning = run;
    run.report.then(
      () => void (gcRunning === run && (gcRunning = undefined)),
      () => void (gcRunning === run && (gcRunning = undefined)),
    );
    return run.report;
  };
  // Retention on a schedule: every namespace with rules, never forced (a refusal is logged).
  let retentionTimer: NodeJS.Timeout | undefined;
  if (config.retention.interval > 0) {
    retentionTimer = setInterval(() => {
      void (async () => {
        const namespaces = new Set((await metadata.retentionRules()).map((r) => r.namespace));
        for (const ns of namespaces) {
          const plan = await admin(metadata, 'retention-schedule').runRetention(ns, {}).catch((e: unknown) => {
            log.log('error', 'retention failed', { namespace: ns, error: String((e as Error).message ?? e) });
            return undefined;
          });
          if (!plan) continue;
          log.log('info', 'retention', { namespace: ns, tags: plan.tags.length, untagged: plan.untagged.length, kept: plan.kept });
          events.publish('retention-schedule', { type: 'retention', namespace: ns, dryRun: false, tags: plan.tags, untagged: plan.untagged });
        }
        invalidate();
      })().catch((e: unknown) => log.log('error', 'retention failed', { error: String(e) }));
    }, config.retention.interval * 1000);
    retentionTimer.unref();
  }
  let gcTimer: NodeJS.Timeout | undefined;
  if (config.gc.interval > 0) {
    gcTimer = setInterval(() => void gc().catch((e) => log.log('error', 'garbage collection failed', { error: String(e) })), config.gc.interval * 1000);
    gcTimer.unref();
  }

  const replication = startReplication({ config, metadata, manifests, blobs, uploads, service, events, log });

  return {
    config,
    metadata,
    driver,
    blobs,
    uploads,
    manifests,
    search,
    service,
    signatures,
    events,
    webhooks,
    proxy,
    replication,
    auth,
    oidc,
    cliSecrets: cliSecrets(metadata, audit),
    audit,
    metrics: metrics(),
    log,
    gc,
    async close() {
      if (gcTimer) clearInterval(gcTimer);
      if (retentionTimer) clearInterval(retentionTimer);
      await replication.close();
      await indexing;
      await webhooks.close();
      await gcRunning?.report.catch(() => {});
      await audit.close();
      await Promise.all(providers.map((p) => p.close()));
      await uploads.close();
      log.flush();
      await metadata.close();
      driver.destroy?.();
    },
  };
}

/**
 * The key tokens are signed with. Replicas share it through the database, so a token one replica
 * issued is good at all of them; a replica holding another key in auth.tokenKey refuses to start
 * (its tokens would fail at the others). One machine keeps it in its file.
 */
async function signingKey(config: RegistryConfig, metadata: Metadata): Promise<KeyObject> {
  if (metadata.kind !== 'postgres') return loadSigningKey(config.auth.tokenKey);
  let local: string | undefined;
  try {
    local = createPrivateKey(await readFile(config.auth.tokenKey, 'utf8')).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`auth.tokenKey ${config.auth.tokenKey}: ${(e as Error).message}`);
  }
  const generate = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const shared = await metadata.sharedValue('token-signing-key', () => local ?? generate());
  if (local !== undefined && local !== shared) {
    throw new Error(`auth.tokenKey ${config.auth.tokenKey}: not the token signing key the other replicas share (kept in the database); remove the file to use the shared key`);
  }
  return createPrivateKey(shared);
}
