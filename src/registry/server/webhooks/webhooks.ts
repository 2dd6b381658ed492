import type { Metadata } from '../metadata/metadata.js';
import type { RegistryConfig } from '../config.js';
import type { EventBus, EventInput, RegistryEvent } from '../events.js';
import type { Logger } from '../log.js';
import { registryHost, webhookQueue } from './queue.js';
import { startDeliveries } from './delivery.js';

// Webhooks in a serving registry: every event the registry publishes is queued for the hooks that
// want it (queue.ts), and due deliveries are sent (delivery.ts), also those queued by offline
// commands and by other replicas.

export interface Webhooks {
  /** Hooks changed in this process: read them again. */
  invalidate(): void;
  /** The URL the registry listens on, for resource_url when http.publicUrl is unset. */
  listening(url: string): void;
  close(): Promise<void>;
}

export function startWebhooks(opts: { config: RegistryConfig; metadata: Metadata; events: EventBus; log: Logger }): Webhooks {
  const { config, metadata, events, log } = opts;
  let url: string | undefined;
  const queue = webhookQueue(metadata, () => registryHost(config, url));
  const sender = startDeliveries({ metadata, config: config.webhooks, log });
  const queuing = new Set<Promise<unknown>>();
  const stop = events.subscribe((e) => {
    const p = queue.enqueue(e).then((n) => {
      if (n) sender.nudge();
    });
    queuing.add(p);
    void p.finally(() => queuing.delete(p)).catch(() => {});
    return p;
  });
  // Another process (kiln registry webhook add, retention run, another replica) changed the database.
  metadata.onExternalChange(() => {
    queue.invalidate();
    sender.nudge();
  });
  return {
    invalidate: () => queue.invalidate(),
    listening(u) {
      url = u;
    },
    async close() {
      stop();
      await Promise.allSettled([...queuing]);
      await sender.close();
    },
  };
}

/** Queue an event from an offline command (no serving process of our own): the serving registry sends it. */
export async function enqueueOffline(config: RegistryConfig, metadata: Metadata, actor: string, input: EventInput): Promise<number> {
  const event = { ...input, actor, at: Date.now() } as RegistryEvent;
  return webhookQueue(metadata, () => registryHost(config)).enqueue(event);
}
