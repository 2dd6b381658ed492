import type { ReplicationItem, ReplicationRule, ReplicationRun } from './metadata.js';

// Rows of replication rules, runs and items as both backends store them (sqlite-replication.ts,
// postgres-replication.ts): the column names and the conversions, written once.

type Row = Record<string, any>;

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

export function toReplicationRule(r: Row): ReplicationRule {
  return {
    id: Number(r.id),
    name: r.name,
    direction: r.direction,
    remote: r.remote,
    namespace: r.namespace,
    remoteNamespace: opt(r.remote_namespace),
    repos: r.repos,
    tags: r.tags,
    label: opt(r.label),
    trigger: r.trigger_kind,
    interval: opt(r.interval_seconds) === undefined ? undefined : Number(r.interval_seconds),
    username: opt(r.username),
    secret: opt(r.secret),
    insecure: r.insecure === 1 || r.insecure === true,
    enabled: r.enabled === 1 || r.enabled === true,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
  };
}

export function ruleValues(r: Omit<ReplicationRule, 'id'>, bool: (b: boolean) => unknown): unknown[] {
  return [
    r.name, r.direction, r.remote, r.namespace, r.remoteNamespace ?? null, r.repos, r.tags, r.label ?? null, r.trigger, r.interval ?? null,
    r.username ?? null, r.secret ?? null, bool(r.insecure), bool(r.enabled), r.createdBy, r.createdAt,
  ];
}
export const ruleColumns =
  'name, direction, remote, namespace, remote_namespace, repos, tags, label, trigger_kind, interval_seconds, username, secret, insecure, enabled, created_by, created_at';

export function toReplicationRun(r: Row): ReplicationRun {
  const n = (v: unknown) => (v === null || v === undefined ? undefined : Number(v));
  return {
    id: Number(r.id),
    rule: r.rule,
    trigger: r.trigger_kind,
    status: r.status,
    requestedBy: r.requested_by,
    requestedAt: Number(r.requested_at),
    startedAt: n(r.started_at),
    finishedAt: n(r.finished_at),
    error: opt(r.error),
    attempts: Number(r.attempts),
    retryAt: n(r.retry_at),
    planned: r.planned === 1 || r.planned === true,
    scope: r.scope ? (JSON.parse(r.scope) as ReplicationRun['scope']) : undefined,
  };
}

export function toReplicationItem(r: Row): ReplicationItem {
  return {
    run: Number(r.run),
    seq: Number(r.seq),
    source: r.source,
    target: r.target,
    reference: r.reference,
    status: r.status,
    digest: opt(r.digest),
    attempts: Number(r.attempts),
    error: opt(r.error),
    blobsCopied: Number(r.blobs_copied),
    blobsSkipped: Number(r.blobs_skipped),
    updatedAt: Number(r.updated_at),
  };
}

export const itemColumns = 'run, seq, source, target, reference, status, digest, attempts, error, blobs_copied, blobs_skipped, updated_at';
export function itemValues(run: number, i: Omit<ReplicationItem, 'run'>): unknown[] {
  return [run, i.seq, i.source, i.target, i.reference, i.status, i.digest ?? null, i.attempts, i.error ?? null, i.blobsCopied, i.blobsSkipped, i.updatedAt];
}

/** The condition on a run (aliased x) that it may be taken now ($now: the time). */
export function runnable(now: string, t: (b: boolean) => string): string {
  return `(x.status = 'queued' OR (x.status = 'interrupted' AND x.retry_at <= ${now}) OR (x.status = 'running' AND x.lease_until < ${now}))
    AND EXISTS (SELECT 1 FROM replication_rules r WHERE r.name = x.rule AND r.enabled = ${t(true)})
    AND NOT EXISTS (SELECT 1 FROM replication_runs o WHERE o.rule = x.rule AND o.id <> x.id AND o.status = 'running' AND o.lease_until >= ${now})`;
}
