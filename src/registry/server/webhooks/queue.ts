import type { Metadata, WebhookRecord } from '../metadata/metadata.js';
import type { RegistryEvent } from '../events.js';
import type { RegistryConfig } from '../config.js';
import { payloadsOf } from './payload.js';

// An event becomes one delivery row per hook that wants it, with its payload fixed then, in one
// insert: the request that caused the event never waits for a receiver, and the queue is in the
// database, so it survives a restart and any replica can send it. Offline commands (retention
// run) queue the same way, and the serving registry delivers.

export interface WebhookQueue {
  /** Queue the event's deliveries; returns how many. */
  enqueue(e: RegistryEvent): Promise<number>;
  /** Hooks changed: read them again. */
  invalidate(): void;
}

/** host[:port] in resource_url: http.publicUrl's, else the address the registry listens on. */
export function registryHost(config: RegistryConfig, listening?: string): string {
  const url = config.http.publicUrl ?? listening;
  if (url) return new URL(url).host;
  return config.http.addr.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
}

export function webhookQueue(metadata: Metadata, host: () => string): WebhookQueue {
  // Hooks by namespace, read once: a pull queues nothing most of the time and should cost no query.
  let cache = new Map<string, Promise<WebhookRecord[]>>();
  const hooksOf = (ns: string) => {
    let hooks = cache.get(ns);
    if (!hooks) {
      hooks = metadata.webhooks(ns);
      hooks.catch(() => cache.delete(ns));
      if (cache.size > 10_000) cache.clear();
      cache.set(ns, hooks);
    }
    return hooks;
  };
  return {
    async enqueue(e) {
      const rows: { hook: number; event: string; payload: string; createdAt: number }[] = [];
      for (const { namespace, payload } of payloadsOf(e, host())) {
        const hooks = (await hooksOf(namespace)).filter((h) => h.enabled && h.events.includes(e.type));
        if (hooks.length === 0) continue;
        const body = JSON.stringify(payload);
        for (const h of hooks) rows.push({ hook: h.id, event: e.type, payload: body, createdAt: Date.now() });
      }
      await metadata.enqueueDeliveries(rows);
      return rows.length;
    },
    invalidate() {
      cache = new Map();
    },
  };
}
