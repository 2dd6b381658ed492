import type { AuditEvent, Metadata } from './metadata/metadata.js';

/**
 * The audit log: who pushed, pulled, deleted or changed roles, when, what digest. Events are written
 * in batches; identical pulls (same actor, repository, digest and address) within a batch are one
 * row with a count, so a busy registry records pulls without a write per request.
 */
export interface AuditLog {
  record(e: Omit<AuditEvent, 'time'> & { time?: number }): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function auditLog(metadata: Metadata, opts: { pulls: boolean; onError: (e: unknown) => void }): AuditLog {
  let pending: AuditEvent[] = [];
  const pulls = new Map<string, AuditEvent>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const flush = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    pulls.clear();
    if (batch.length === 0) return flushing;
    flushing = flushing.then(() => metadata.recordAudit(batch)).catch(opts.onError);
    return flushing;
  };
  const schedule = (ms: number) => {
    if (timer) return;
    timer = setTimeout(() => void flush(), ms);
    timer.unref();
  };

  return {
    record(e) {
      const ev: AuditEvent = { ...e, time: e.time ?? Date.now() };
      if (ev.action === 'pull') {
        if (!opts.pulls) return;
        const k = `${ev.actor}\0${ev.repository}\0${ev.digest}\0${ev.address}`;
        const same = pulls.get(k);
        if (same) {
          same.count = (same.count ?? 1) + 1;
          return;
        }
        ev.count = 1;
        pulls.set(k, ev);
        pending.push(ev);
        schedule(1000);
        return;
      }
      pending.push(ev);
      schedule(20);
    },
    flush,
    async close() {
      await flush();
    },
  };
}
