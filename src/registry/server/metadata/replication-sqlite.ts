import type Database from 'better-sqlite3';
import type { ReplicationRows } from './metadata.js';
import { itemColumns, itemValues, ruleColumns, ruleValues, runnable, toReplicationItem, toReplicationRule, toReplicationRun } from './replication-rows.js';

// Replication rules, runs and items in SQLite (the tables of migration 6 in sqlite.ts). Every
// change is one write transaction of the caller's `write`.

/** Migration 6 of sqlite.ts. */
export const sqliteReplicationSchema = `
CREATE TABLE replication_rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, direction TEXT NOT NULL, remote TEXT NOT NULL,
  namespace TEXT NOT NULL, remote_namespace TEXT, repos TEXT NOT NULL, tags TEXT NOT NULL, label TEXT,
  trigger_kind TEXT NOT NULL, interval_seconds INTEGER, username TEXT, secret TEXT, insecure INTEGER NOT NULL,
  enabled INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE replication_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, trigger_kind TEXT NOT NULL, status TEXT NOT NULL,
  requested_by TEXT NOT NULL, requested_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, retry_at INTEGER, planned INTEGER NOT NULL DEFAULT 0, scope TEXT,
  lease_owner TEXT, lease_until INTEGER);
CREATE INDEX replication_runs_rule ON replication_runs (rule, id);
CREATE INDEX replication_runs_status ON replication_runs (status, id);
CREATE TABLE replication_items (
  run INTEGER NOT NULL, seq INTEGER NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, reference TEXT NOT NULL,
  status TEXT NOT NULL, digest TEXT, attempts INTEGER NOT NULL, error TEXT, blobs_copied INTEGER NOT NULL,
  blobs_skipped INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (run, seq));
`;

type Row = Record<string, unknown>;

export function sqliteReplicationRows(db: Database.Database, write: <T>(fn: () => T) => Promise<T>): ReplicationRows {
  const b = (v: boolean) => (v ? 1 : 0);
  const get = (sql: string, ...a: unknown[]) => db.prepare(sql).get(...a) as Row | undefined;
  const all = (sql: string, ...a: unknown[]) => db.prepare(sql).all(...a) as Row[];
  const run = (sql: string, ...a: unknown[]) => db.prepare(sql).run(...a);
  return {
    async replicationRules() {
      return all('SELECT * FROM replication_rules ORDER BY name').map(toReplicationRule);
    },
    async replicationRule(name) {
      const r = get('SELECT * FROM replication_rules WHERE name = ?', name);
      return r ? toReplicationRule(r) : undefined;
    },
    addReplicationRule(rule) {
      return write(() => {
        if (get('SELECT 1 FROM replication_rules WHERE name = ?', rule.name)) return undefined;
        return Number(run(`INSERT INTO replication_rules (${ruleColumns}) VALUES (${ruleColumns.split(',').map(() => '?').join(', ')})`, ...ruleValues(rule, b)).lastInsertRowid);
      });
    },
    setReplicationEnabled(name, enabled) {
      return write(() => run('UPDATE replication_rules SET enabled = ? WHERE name = ?', b(enabled), name).changes > 0);
    },
    removeReplicationRule(name) {
      return write(() => {
        const r = get('SELECT * FROM replication_rules WHERE name = ?', name);
        if (!r) return undefined;
        run('DELETE FROM replication_items WHERE run IN (SELECT id FROM replication_runs WHERE rule = ?)', name);
        run('DELETE FROM replication_runs WHERE rule = ?', name);
        run('DELETE FROM replication_rules WHERE name = ?', name);
        return toReplicationRule(r);
      });
    },
    createReplicationRun(r) {
      return write(() =>
        Number(
          run(
            "INSERT INTO replication_runs (rule, trigger_kind, status, requested_by, requested_at, scope) VALUES (?, ?, 'queued', ?, ?, ?)",
            r.rule,
            r.trigger,
            r.requestedBy,
            r.requestedAt,
            r.scope ? JSON.stringify(r.scope) : null,
          ).lastInsertRowid,
        ),
      );
    },
    async replicationRuns(rule, limit) {
      return all('SELECT * FROM replication_runs WHERE rule = ? ORDER BY id DESC LIMIT ?', rule, limit).map(toReplicationRun);
    },
    async replicationRun(id) {
      const r = get('SELECT * FROM replication_runs WHERE id = ?', id);
      return r ? toReplicationRun(r) : undefined;
    },
    async replicationItems(id) {
      return all('SELECT * FROM replication_items WHERE run = ? ORDER BY seq', id).map(toReplicationItem);
    },
    requeueReplicationRun(id) {
      return write(() => run("UPDATE replication_runs SET status = 'queued', retry_at = NULL WHERE id = ? AND status = 'interrupted'", id).changes > 0);
    },
    async claimReplicationRun(owner, until, now) {
      // A read first: the worker asks every second, and a write transaction each time would contend with pushes.
      if (!get(`SELECT 1 FROM replication_runs x WHERE ${runnable('?', (v) => (v ? '1' : '0'))} LIMIT 1`, now, now, now)) return undefined;
      return write(() => {
        const x = get(`SELECT x.id FROM replication_runs x WHERE ${runnable('?', (v) => (v ? '1' : '0'))} ORDER BY x.id LIMIT 1`, now, now, now);
        if (!x) return undefined;
        run(
          "UPDATE replication_runs SET status = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?), retry_at = NULL WHERE id = ?",
          owner,
          until,
          now,
          x.id,
        );
        return toReplicationRun(get('SELECT * FROM replication_runs WHERE id = ?', x.id)!);
      });
    },
    renewReplicationRun(id, owner, until) {
      return write(() => run("UPDATE replication_runs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'", until, id, owner).changes > 0);
    },
    planReplicationRun(id, owner, items) {
      return write(() => {
        if (!get("SELECT 1 FROM replication_runs WHERE id = ? AND lease_owner = ? AND status = 'running'", id, owner)) return;
        run('DELETE FROM replication_items WHERE run = ?', id);
        const st = db.prepare(`INSERT INTO replication_items (${itemColumns}) VALUES (${itemColumns.split(',').map(() => '?').join(', ')})`);
        for (const i of items) st.run(...itemValues(id, i));
        run('UPDATE replication_runs SET planned = 1 WHERE id = ?', id);
      });
    },
    updateReplicationItem(i) {
      return write(
        () =>
          void run(
            'UPDATE replication_items SET status = ?, digest = ?, attempts = ?, error = ?, blobs_copied = ?, blobs_skipped = ?, updated_at = ? WHERE run = ? AND seq = ?',
            i.status,
            i.digest ?? null,
            i.attempts,
            i.error ?? null,
            i.blobsCopied,
            i.blobsSkipped,
            i.updatedAt,
            i.run,
            i.seq,
          ),
      );
    },
    releaseReplicationRun(id, owner, u) {
      return write(
        () =>
          void run(
            'UPDATE replication_runs SET status = ?, error = ?, finished_at = ?, retry_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?',
            u.status,
            u.error ?? null,
            u.finishedAt ?? null,
            u.retryAt ?? null,
            id,
            owner,
          ),
      );
    },
    expireReplicationLeases() {
      return write(() => void run("UPDATE replication_runs SET lease_until = 0 WHERE status = 'running'"));
    },
  };
}
