// What happened in the registry, for whoever listens in this process: webhooks (which turn an
// event into durable deliveries), push-triggered replication. The registry service publishes
// after a change has been committed and audited, so a listener never sees a change that did not
// happen; a listener that throws or is slow never fails or delays the request that caused it.

/** Fields every event has. */
interface EventBase {
  /** Milliseconds since the epoch. */
  at: number;
  /** Who caused it ("anonymous", a user, a robot, or the schedule that ran it). */
  actor: string;
}

export type RegistryEvent =
  | (EventBase & { type: 'push'; repository: string; digest: string; mediaType: string; size: number; tags: string[]; subject?: string })
  | (EventBase & { type: 'pull'; repository: string; digest: string; mediaType: string; reference: string })
  | (EventBase & { type: 'delete'; repository: string; digest: string; tags: string[]; /** A tag was deleted, the manifest kept. */ tagOnly: boolean })
  | (EventBase & { type: 'promote'; repository: string; tag: string; digest: string; source: string })
  | (EventBase & { type: 'quota-exceeded'; namespace: string; repository: string; digest: string; size: number; used: number; quota: number })
  | (EventBase & { type: 'retention'; namespace: string; dryRun: boolean; tags: { repository: string; tag: string; digest: string }[]; untagged: { repository: string; digest: string }[] })
  | (EventBase & { type: 'replication'; /** The rule's local namespace. */ namespace: string; rule: string; run: number; status: 'succeeded' | 'failed'; copied: number; failed: number; error?: string })
  | (EventBase & {
      type: 'base-updated';
      /** The base repository and the digest just pushed to it. */
      repository: string;
      digest: string;
      tags: string[];
      /** Images whose lineage names an older digest of this base. */
      affected: { repository: string; digest: string; tags: string[]; base: string }[];
    });

export type RegistryEventType = RegistryEvent['type'];
export const eventTypes: readonly RegistryEventType[] = ['push', 'pull', 'delete', 'promote', 'quota-exceeded', 'retention', 'replication', 'base-updated'];

/** Spread an event's own fields (without at/actor) as the argument of publish. */
export type EventInput = DistributiveOmit<RegistryEvent, 'at' | 'actor'>;
/** Omit applied to each member of a union, so the event's type still picks its fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface EventBus {
  /** Hand `event` to every listener, later in this turn of the event loop; never throws. */
  publish(actor: string, event: EventInput): void;
  /** Listen; the returned function stops it. */
  subscribe(listener: (event: RegistryEvent) => void | Promise<void>): () => void;
}

export function eventBus(onListenerError: (error: unknown, event: RegistryEvent) => void = () => {}): EventBus {
  const listeners = new Set<(event: RegistryEvent) => void | Promise<void>>();
  return {
    publish(actor, input) {
      if (listeners.size === 0) return;
      const event = { ...input, actor, at: Date.now() } as RegistryEvent;
      // queueMicrotask: the request that published has finished its own work before listeners run.
      for (const l of listeners) {
        queueMicrotask(() => {
          try {
            const r = l(event);
            if (r) r.catch((e: unknown) => onListenerError(e, event));
          } catch (e) {
            onListenerError(e, event);
          }
        });
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
