import { UsageError } from '../../../errors.js';
import type { AuditEvent, Metadata, ReplicationItem, ReplicationRule, ReplicationRun } from '../metadata/metadata.js';
import { checkReplicationRule, describeReplicationRule, type ReplicationRuleInput } from './rules.js';

// Managing replication rules and asking for runs: the operations behind `kiln registry
// replication …` (offline, on the database; the serving registry's worker takes the runs) and
// /kiln/v1/replication. Every change is in the audit log; a rule's secret never leaves here.

/** A rule as shown: everything but the secret. */
export type ShownRule = Omit<ReplicationRule, 'secret'> & { hasSecret: boolean };

/** A run with its items counted by outcome. */
export type ShownRun = ReplicationRun & { copied: number; skipped: number; failed: number; pending: number };

export interface ReplicationAdmin {
  add(rule: ReplicationRuleInput): Promise<ShownRule>;
  list(): Promise<ShownRule[]>;
  get(name: string): Promise<ShownRule>;
  remove(name: string): Promise<void>;
  setEnabled(name: string, enabled: boolean): Promise<void>;
  /**
   * A run of the rule: its interrupted run goes on now, an unfinished one is reported as it is
   * (one run of a rule at a time), else a new one is queued.
   */
  requestRun(name: string): Promise<{ run: ShownRun; resumed: boolean }>;
  runs(name: string, limit?: number): Promise<ShownRun[]>;
  run(name: string, id: number): Promise<ShownRun & { items: ReplicationItem[] }>;
}

export function shownRule({ secret, ...r }: ReplicationRule): ShownRule {
  return { ...r, hasSecret: secret !== undefined };
}

export function replicationAdmin(metadata: Metadata, actor: string): ReplicationAdmin {
  const audit = (e: Omit<AuditEvent, 'time' | 'actor'>) => metadata.recordAudit([{ ...e, actor, time: Date.now() }]);
  const mustRule = async (name: string) => {
    const r = await metadata.replicationRule(name);
    if (!r) throw new UsageError(`no replication rule "${name.slice(0, 100)}" (kiln registry replication list)`);
    return r;
  };
  const shownRun = async (r: ReplicationRun, items?: ReplicationItem[]): Promise<ShownRun> => {
    const all = items ?? (await metadata.replicationItems(r.id));
    const count = (s: ReplicationItem['status']) => all.filter((i) => i.status === s).length;
    return { ...r, copied: count('done'), skipped: count('skipped'), failed: count('failed'), pending: count('pending') };
  };

  return {
    async add(input) {
      const rule = checkReplicationRule(input, actor, Date.now());
      const id = await metadata.addReplicationRule(rule);
      if (id === undefined) throw new UsageError(`name: a replication rule "${rule.name}" exists (kiln registry replication rm ${rule.name} first)`);
      const added = { id, ...rule };
      await audit({ action: 'replication-add', namespace: rule.namespace, detail: `${rule.name}: ${describeReplicationRule(added)}` });
      return shownRule(added);
    },
    async list() {
      return (await metadata.replicationRules()).map(shownRule);
    },
    async get(name) {
      return shownRule(await mustRule(name));
    },
    async remove(name) {
      const removed = await metadata.removeReplicationRule(name);
      if (!removed) throw new UsageError(`no replication rule "${name.slice(0, 100)}"`);
      await audit({ action: 'replication-rm', namespace: removed.namespace, detail: `${name}: ${describeReplicationRule(removed)}` });
    },
    async setEnabled(name, enabled) {
      const rule = await mustRule(name);
      await metadata.setReplicationEnabled(name, enabled);
      await audit({ action: enabled ? 'replication-enable' : 'replication-disable', namespace: rule.namespace, detail: name });
    },
    async requestRun(name) {
      const rule = await mustRule(name);
      if (!rule.enabled) throw new UsageError(`replication rule "${name}" is disabled (kiln registry replication enable ${name})`);
      // An event's run covers the pushed tags only: a run asked for by hand is a whole one.
      const last = (await metadata.replicationRuns(name, 1)).find((r) => !r.scope);
      if (last && (last.status === 'queued' || last.status === 'running')) return { run: await shownRun(last), resumed: true };
      if (last && last.status === 'interrupted') {
        await metadata.requeueReplicationRun(last.id);
        await audit({ action: 'replication-request', namespace: rule.namespace, detail: `${name}: resume run ${last.id}` });
        return { run: await shownRun((await metadata.replicationRun(last.id))!), resumed: true };
      }
      const id = await metadata.createReplicationRun({ rule: name, trigger: 'manual', requestedBy: actor, requestedAt: Date.now() });
      await audit({ action: 'replication-request', namespace: rule.namespace, detail: `${name}: run ${id}` });
      return { run: await shownRun((await metadata.replicationRun(id))!), resumed: false };
    },
    async runs(name, limit = 20) {
      await mustRule(name);
      return Promise.all((await metadata.replicationRuns(name, limit)).map((r) => shownRun(r)));
    },
    async run(name, id) {
      const r = await metadata.replicationRun(id);
      if (!r || r.rule !== name) throw new UsageError(`no run ${id} of replication rule "${name.slice(0, 100)}"`);
      const items = await metadata.replicationItems(id);
      return { ...(await shownRun(r, items)), items };
    },
  };
}
