import { randomUUID } from 'node:crypto';
import type { RegistryConfig } from '../config.js';
import type { Metadata, ReplicationItem, ReplicationRule, ReplicationRun } from '../metadata/metadata.js';
import type { BlobService } from '../blobs.js';
import type { ManifestStore } from '../manifest-store.js';
import type { Uploads } from '../uploads.js';
import type { Actor, RegistryService } from '../service.js';
import type { EventBus, RegistryEvent } from '../events.js';
import type { Logger } from '../log.js';
import { RegistryError } from '../errors.js';
import { isBackendUnavailable } from '../unavailable.js';
import { NetworkError } from '../../client/http.js';
import { RegistryDenied, RegistryRequestFailed, RegistryUnauthorized, RegistryUnreachable, TransferTruncated } from '../../client/errors.js';
import { localSide, remoteSide, type Side } from './sides.js';
import { copyArtifact, imageLabels, ItemGone, type CopyContext } from './copy.js';
import { coversRepository, coversTag, remotePrefix, targetRepository } from './rules.js';

// The replication worker of a serving registry: it takes runs from the database (requested by
// the CLI, the API, a schedule or a push event), lists their items once, copies item after item
// and records each item's outcome as it goes, so a run whose process died or whose target went
// down continues where it stopped: a lease ends, or an interrupted run is due again, and the next
// taker skips every item already done. One run per rule at a time; runs hold a lease renewed while
// they work, so replicas on PostgreSQL never run the same one twice.

export interface Replication {
  /** Look for work now (a run was just requested in this process). */
  kick(): void;
  close(): Promise<void>;
}

const LeaseMs = 30_000;
const TickMs = 1_000;
/** Resumes of a run interrupted by an unreachable target before it counts as failed. */
const MaxRunAttempts = 10;

type Failure = 'transient' | 'auth' | 'permanent';

/** Whether trying again may help: the target or source was unreachable or answered 5xx/429. */
export function classify(e: unknown): Failure {
  if (e instanceof RegistryUnauthorized || e instanceof RegistryDenied) return 'auth';
  if (e instanceof RegistryUnreachable || e instanceof NetworkError || e instanceof TransferTruncated) return 'transient';
  if (e instanceof RegistryRequestFailed) return e.status === undefined || e.status >= 500 || e.status === 429 ? 'transient' : 'permanent';
  if (e instanceof RegistryError) return e.reason === 'unavailable' ? 'transient' : 'permanent';
  if (isBackendUnavailable(e)) return 'transient';
  if (e instanceof ItemGone) return 'permanent';
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' ? 'transient' : 'permanent';
}

/** An error as the run history shows it: what failed, and for refused credentials the remote and the status. */
function describeError(rule: ReplicationRule, e: unknown, kind: Failure): string {
  const msg = (e as Error)?.message ?? String(e);
  if (e instanceof RegistryUnauthorized) return `remote ${rule.remote} refused the credentials${rule.username ? ` of ${rule.username}` : ''} (HTTP 401): ${msg}`;
  if (e instanceof RegistryDenied) return `remote ${rule.remote} denied access (HTTP 403): ${msg}`;
  return kind === 'transient' ? `${msg} (will be retried)` : msg;
}

/** A pause that a shutdown cuts short. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export function startReplication(parts: {
  config: RegistryConfig;
  metadata: Metadata;
  manifests: ManifestStore;
  blobs: BlobService;
  uploads: Uploads;
  service: RegistryService;
  events: EventBus;
  log: Logger;
}): Replication {
  const { config, metadata, events, log } = parts;
  const owner = randomUUID();
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> | undefined;
  let again = false;
  let lastFailureLog = 0;
  // On SQLite one process serves: a lease still held at start is a process that died.
  const ready = metadata.kind === 'sqlite' ? metadata.expireReplicationLeases().catch(() => {}) : Promise.resolve();

  const backoffMs = (attempt: number) => Math.min(config.replication.backoff * 1000 * 2 ** attempt, 60_000);

  const actorOf = (rule: ReplicationRule): Actor => ({
    name: `replication:${rule.name}`,
    // A system actor: pushes and moves tags, never deletes; immutability and quotas still apply.
    may: async (_repository, action) => action !== 'delete',
  });

  /** The run's items: every matching tag of the source now, or the tags of the push event that asked for it. */
  const plan = async (rule: ReplicationRule, run: ReplicationRun, from: Side): Promise<Omit<ReplicationItem, 'run'>[]> => {
    const wanted: { repository: string; tags: string[] }[] = [];
    if (run.scope) {
      for (const s of run.scope) if (coversRepository(rule, s.repository)) wanted.push({ repository: s.repository, tags: s.tags.filter((t) => coversTag(rule, t)) });
    } else {
      const base = rule.direction === 'push' ? rule.namespace : remotePrefix(rule);
      for (const repository of (await from.repositories(base)).filter((r) => coversRepository(rule, r)).sort()) {
        wanted.push({ repository, tags: (await from.tags(repository)).filter((t) => coversTag(rule, t)).sort() });
      }
    }
    const now = Date.now();
    let seq = 0;
    return wanted.flatMap(({ repository, tags }) =>
      tags.map((tag) => ({ seq: seq++, source: repository, target: targetRepository(rule, repository), reference: tag, status: 'pending' as const, attempts: 0, blobsCopied: 0, blobsSkipped: 0, updatedAt: now })),
    );
  };

  const labelFilter = (rule: ReplicationRule, from: Side, source: string) => {
    if (!rule.label) return undefined;
    const eq = rule.label.indexOf('=');
    const [key, value] = [rule.label.slice(0, eq), rule.label.slice(eq + 1)];
    return async (m: { bytes: Buffer; digest: string; mediaType: string }) =>
      (await imageLabels(from, source, m)).some((l) => l[key] === value) ? undefined : `no label ${rule.label}`;
  };

  /** Copy one item, retrying what may pass later; the item row says how it went after every try. */
  const runItem = async (rule: ReplicationRule, cx: CopyContext, item: ReplicationItem): Promise<Failure | undefined> => {
    for (let attempt = 0; ; attempt++) {
      stop.signal.throwIfAborted();
      item.attempts++;
      try {
        const r = await copyArtifact(cx, item.source, item.target, item.reference, labelFilter(rule, cx.from, item.source));
        Object.assign(item, { status: r.skipped ? 'skipped' : 'done', digest: r.digest, error: r.skipped, blobsCopied: item.blobsCopied + r.blobsCopied, blobsSkipped: item.blobsSkipped + r.blobsSkipped, updatedAt: Date.now() });
        await metadata.updateReplicationItem(item);
        return undefined;
      } catch (e) {
        if (stop.signal.aborted) throw e;
        const kind = classify(e);
        item.error = describeError(rule, e, kind);
        item.updatedAt = Date.now();
        const last = kind !== 'transient' || attempt + 1 >= config.replication.attempts;
        if (last && kind !== 'transient') item.status = 'failed';
        await metadata.updateReplicationItem(item);
        if (last) return kind;
        log.log('warn', 'replication item failed, retrying', { rule: rule.name, item: `${item.source}:${item.reference}`, error: item.error });
        await pause(backoffMs(attempt), stop.signal);
      }
    }
  };

  const finish = async (rule: ReplicationRule | undefined, run: ReplicationRun, status: ReplicationRun['status'], error?: string) => {
    const done = status === 'succeeded' || status === 'failed';
    const retryAt = status === 'interrupted' ? Date.now() + Math.min(backoffMs(run.attempts + 1), 300_000) : undefined;
    await metadata.releaseReplicationRun(run.id, owner, { status, error, finishedAt: done ? Date.now() : undefined, retryAt });
    const items = await metadata.replicationItems(run.id);
    const count = (s: ReplicationItem['status']) => items.filter((i) => i.status === s).length;
    const summary = `run ${run.id} ${status}: ${count('done')} copied, ${count('skipped')} skipped, ${count('failed')} failed${count('pending') ? `, ${count('pending')} pending` : ''}`;
    await metadata.recordAudit([{ time: Date.now(), actor: `replication:${run.rule}`, action: 'replication-run', namespace: rule?.namespace, detail: error ? `${summary}; ${error}` : summary }]);
    log.log(status === 'succeeded' ? 'info' : 'warn', 'replication', { rule: run.rule, run: run.id, status, error });
    if (done && rule) {
      events.publish(`replication:${rule.name}`, { type: 'replication', namespace: rule.namespace, rule: rule.name, run: run.id, status, copied: count('done'), failed: count('failed'), ...(error ? { error } : {}) });
    }
  };

  const execute = async (run: ReplicationRun): Promise<void> => {
    const rule = await metadata.replicationRule(run.rule);
    if (!rule) return finish(undefined, run, 'failed', `rule ${run.rule} was removed`);
    const local = localSide({ ...parts, actor: actorOf(rule) });
    const remote = remoteSide(rule, { attempts: 2, baseDelayMs: Math.max(10, config.replication.backoff * 250), maxDelayMs: 2_000 });
    const [from, to] = rule.direction === 'push' ? [local, remote] : [remote, local];
    const renew = setInterval(() => void metadata.renewReplicationRun(run.id, owner, Date.now() + LeaseMs).catch(() => {}), LeaseMs / 3);
    try {
      if (!run.planned) await metadata.planReplicationRun(run.id, owner, await plan(rule, run, from));
      const cx: CopyContext = { from, to, placed: new Map(), signal: stop.signal };
      let failed: string | undefined;
      for (const item of await metadata.replicationItems(run.id)) {
        if (item.status !== 'pending') continue;
        const outcome = await runItem(rule, cx, item);
        if (outcome === 'transient') {
          if (run.attempts >= MaxRunAttempts) return await finish(rule, run, 'failed', `gave up after ${run.attempts} attempts: ${item.error}`);
          return await finish(rule, run, 'interrupted', item.error);
        }
        // Refused credentials fail every item alike: the run stops at the first.
        if (outcome === 'auth') return await finish(rule, run, 'failed', item.error);
        if (outcome === 'permanent') failed = item.error;
      }
      await finish(rule, run, failed ? 'failed' : 'succeeded', failed);
    } catch (e) {
      if (stop.signal.aborted) {
        // Shutting down: the run goes back to the queue, done items stay done.
        await metadata.releaseReplicationRun(run.id, owner, { status: 'queued' }).catch(() => {});
        return;
      }
      const kind = classify(e);
      const error = `listing what to copy failed: ${describeError(rule, e, kind)}`;
      await finish(rule, run, kind === 'transient' && run.attempts < MaxRunAttempts ? 'interrupted' : 'failed', error);
    } finally {
      clearInterval(renew);
    }
  };

  const schedule = async () => {
    const now = Date.now();
    for (const rule of await metadata.replicationRules()) {
      if (!rule.enabled || rule.trigger !== 'schedule' || !rule.interval) continue;
      const last = (await metadata.replicationRuns(rule.name, 1))[0];
      if (last && (!['succeeded', 'failed'].includes(last.status) || last.requestedAt + rule.interval * 1000 > now)) continue;
      await metadata.createReplicationRun({ rule: rule.name, trigger: 'schedule', requestedBy: 'replication-schedule', requestedAt: now });
    }
  };

  const work = async () => {
    await ready;
    await schedule();
    for (;;) {
      if (stop.signal.aborted) return;
      const run = await metadata.claimReplicationRun(owner, Date.now() + LeaseMs, Date.now());
      if (!run) return;
      await execute(run);
    }
  };

  const tick = () => {
    if (stop.signal.aborted) return;
    if (busy) {
      again = true;
      return;
    }
    busy = work()
      .catch((e: unknown) => {
        // The worker asks every second: while the database is down, one line a minute is enough.
        if (Date.now() - lastFailureLog < 60_000) return;
        lastFailureLog = Date.now();
        log.log('error', 'replication worker failed', { error: String((e as Error)?.message ?? e) });
      })
      .finally(() => {
        busy = undefined;
        if (again) {
          again = false;
          tick();
        }
      });
  };

  const onEvent = async (e: RegistryEvent) => {
    // A copy that replication itself pushed does not start another (no ping-pong between rules).
    if (e.type !== 'push' || e.tags.length === 0 || e.actor.startsWith('replication:')) return;
    let asked = false;
    for (const rule of await metadata.replicationRules()) {
      if (!rule.enabled || rule.trigger !== 'event' || rule.direction !== 'push' || !coversRepository(rule, e.repository)) continue;
      const tags = e.tags.filter((t) => coversTag(rule, t));
      if (tags.length === 0) continue;
      await metadata.createReplicationRun({ rule: rule.name, trigger: 'event', requestedBy: e.actor, requestedAt: Date.now(), scope: [{ repository: e.repository, tags }] });
      asked = true;
    }
    if (asked) tick();
  };
  const unsubscribe = events.subscribe(onEvent);

  const loop = () => {
    timer = setTimeout(() => {
      tick();
      loop();
    }, TickMs);
    timer.unref();
  };
  loop();
  tick();

  return {
    kick: tick,
    async close() {
      unsubscribe();
      clearTimeout(timer);
      stop.abort();
      await busy;
    },
  };
}
