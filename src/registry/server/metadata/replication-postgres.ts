import type { ReplicationRows } from './metadata.js';
import { itemColumns, itemValues, ruleColumns, ruleValues, runnable, toReplicationItem, toReplicationRule, toReplicationRun } from './replication-rows.js';

// Replication rules, runs and items in PostgreSQL (migration 5 of postgres.ts). A run is taken
// with FOR UPDATE SKIP LOCKED, so two replicas never take the same one.

/** Migration 5 of postgres.ts. */
export const postgresReplicationSchema = `
CREATE TABLE replication_rules (
  id BIGSERIAL PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE, direction TEXT NOT NULL, remote TEXT NOT NULL,
  namespace TEXT COLLATE "C" NOT NULL, remote_namespace TEXT, repos TEXT NOT NULL, tags TEXT NOT NULL, label TEXT,
  trigger_kind TEXT NOT NULL, interval_seconds BIGINT, username TEXT, secret TEXT, insecure BOOLEAN NOT NULL,
  enabled BOOLEAN NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE replication_runs (
  id BIGSERIAL PRIMARY KEY, rule TEXT COLLATE "C" NOT NULL, trigger_kind TEXT NOT NULL, status TEXT NOT NULL,
  requested_by TEXT NOT NULL, requested_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT, error TEXT,
  attempts INT NOT NULL DEFAULT 0, retry_at BIGINT, planned BOOLEAN NOT NULL DEFAULT false, scope TEXT,
  lease_owner TEXT, lease_until BIGINT);
CREATE INDEX replication_runs_rule ON replication_runs (rule, id);
CREATE INDEX replication_runs_status ON replication_runs (status, id);
CREATE TABLE replication_items (
  run BIGINT NOT NULL, seq INT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, reference TEXT NOT NULL,
  status TEXT NOT NULL, digest TEXT, attempts INT NOT NULL, error TEXT, blobs_copied INT NOT NULL,
  blobs_skipped INT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (run, seq));
`;

type Row = Record<string, any>;
interface Tx {
  q(sql: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number | null }>;
}

const marks = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');

export function postgresReplicationRows(read: (sql: string, params?: unknown[]) => Promise<Row[]>, tx: <T>(fn: (t: Tx) => Promise<T>) => Promise<T>): ReplicationRows {
  const b = (v: boolean) => v;
  return {
    async replicationRules() {
      return (await read('SELECT * FROM replication_rules ORDER BY name')).map(toReplicationRule);
    },
    async replicationRule(name) {
      const r = (await read('SELECT * FROM replication_rules WHERE name = $1', [name]))[0];
      return r ? toReplicationRule(r) : undefined;
    },
    addReplicationRule(rule) {
      return tx(async (t) => {
        const values = ruleValues(rule, b);
        const r = await t.q(`INSERT INTO replication_rules (${ruleColumns}) VALUES (${marks(values.length)}) ON CONFLICT (name) DO NOTHING RETURNING id`, values);
        return r.rows[0] ? Number(r.rows[0].id) : undefined;
      });
    },
    async setReplicationEnabled(name, enabled) {
      return tx(async (t) => ((await t.q('UPDATE replication_rules SET enabled = $1 WHERE name = $2', [enabled, name])).rowCount ?? 0) > 0);
    },
    removeReplicationRule(name) {
      return tx(async (t) => {
        const r = await t.q('DELETE FROM replication_rules WHERE name = $1 RETURNING *', [name]);
        if (!r.rows[0]) return undefined;
        await t.q('DELETE FROM replication_items WHERE run IN (SELECT id FROM replication_runs WHERE rule = $1)', [name]);
        await t.q('DELETE FROM replication_runs WHERE rule = $1', [name]);
        return toReplicationRule(r.rows[0]);
      });
    },
    createReplicationRun(r) {
      return tx(async (t) => {
        const row = await t.q(
          "INSERT INTO replication_runs (rule, trigger_kind, status, requested_by, requested_at, scope) VALUES ($1, $2, 'queued', $3, $4, $5) RETURNING id",
          [r.rule, r.trigger, r.requestedBy, r.requestedAt, r.scope ? JSON.stringify(r.scope) : null],
        );
        return Number(row.rows[0]!.id);
      });
    },
    async replicationRuns(rule, limit) {
      return (await read('SELECT * FROM replication_runs WHERE rule = $1 ORDER BY id DESC LIMIT $2', [rule, limit])).map(toReplicationRun);
    },
    async replicationRun(id) {
      const r = (await read('SELECT * FROM replication_runs WHERE id = $1', [id]))[0];
      return r ? toReplicationRun(r) : undefined;
    },
    async replicationItems(id) {
      return (await read('SELECT * FROM replication_items WHERE run = $1 ORDER BY seq', [id])).map(toReplicationItem);
    },
    requeueReplicationRun(id) {
      return tx(async (t) => ((await t.q("UPDATE replication_runs SET status = 'queued', retry_at = NULL WHERE id = $1 AND status = 'interrupted'", [id])).rowCount ?? 0) > 0);
    },
    claimReplicationRun(owner, until, now) {
      return tx(async (t) => {
        const x = (await t.q(`SELECT x.id FROM replication_runs x WHERE ${runnable('$1', (v) => (v ? 'true' : 'false'))} ORDER BY x.id LIMIT 1 FOR UPDATE SKIP LOCKED`, [now])).rows[0];
        if (!x) return undefined;
        const r = await t.q(
          "UPDATE replication_runs SET status = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3), retry_at = NULL WHERE id = $4 RETURNING *",
          [owner, until, now, x.id],
        );
        return toReplicationRun(r.rows[0]!);
      });
    },
    renewReplicationRun(id, owner, until) {
      return tx(async (t) => ((await t.q("UPDATE replication_runs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'", [until, id, owner])).rowCount ?? 0) > 0);
    },
    planReplicationRun(id, owner, items) {
      return tx(async (t) => {
        if (!(await t.q("SELECT 1 FROM replication_runs WHERE id = $1 AND lease_owner = $2 AND status = 'running' FOR UPDATE", [id, owner])).rows[0]) return;
        await t.q('DELETE FROM replication_items WHERE run = $1', [id]);
        for (const i of items) {
          const values = itemValues(id, i);
          await t.q(`INSERT INTO replication_items (${itemColumns}) VALUES (${marks(values.length)})`, values);
        }
        await t.q('UPDATE replication_runs SET planned = true WHERE id = $1', [id]);
      });
    },
    updateReplicationItem(i) {
      return tx(async (t) => {
        await t.q('UPDATE replication_items SET status = $1, digest = $2, attempts = $3, error = $4, blobs_copied = $5, blobs_skipped = $6, updated_at = $7 WHERE run = $8 AND seq = $9', [
          i.status,
          i.digest ?? null,
          i.attempts,
          i.error ?? null,
          i.blobsCopied,
          i.blobsSkipped,
          i.updatedAt,
          i.run,
          i.seq,
        ]);
      });
    },
    releaseReplicationRun(id, owner, u) {
      return tx(async (t) => {
        await t.q('UPDATE replication_runs SET status = $1, error = $2, finished_at = $3, retry_at = $4, lease_owner = NULL, lease_until = NULL WHERE id = $5 AND lease_owner = $6', [
          u.status,
          u.error ?? null,
          u.finishedAt ?? null,
          u.retryAt ?? null,
          id,
          owner,
        ]);
      });
    },
    async expireReplicationLeases() {
      // Replicas share the runs: a lease ends by its own clock only.
    },
  };
}
