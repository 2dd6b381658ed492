import { UsageError } from '../../../errors.js';
import type { DeliveryRecord, Metadata, WebhookRecord } from '../metadata/metadata.js';
import { eventTypes, type RegistryEventType } from '../events.js';
import { isNamespace } from '../names.js';
import { addressPolicy, checkDestination, parseWebhookUrl, type AddressRules } from './policy.js';

// Managing the webhooks of namespaces: the operations behind `kiln registry webhook …` (offline,
// on the database) and /kiln/v1/namespaces/NS/webhooks. Secrets go in and never come out; every
// change is in the audit log.

export type WebhookView = Omit<WebhookRecord, 'secret'>;
export type DeliveryView = Omit<DeliveryRecord, 'payload'>;

export interface WebhookAdmin {
  add(namespace: string, h: { url: string; secret: string; events?: string[]; enabled?: boolean }): Promise<WebhookView>;
  list(namespace?: string): Promise<WebhookView[]>;
  get(id: number): Promise<WebhookView | undefined>;
  setEnabled(id: number, enabled: boolean): Promise<WebhookView>;
  remove(id: number): Promise<WebhookView>;
  /** The hook's newest deliveries first. */
  deliveries(id: number, limit: number): Promise<DeliveryView[]>;
}

const view = ({ secret: _, ...h }: WebhookRecord): WebhookView => h;

/** "push,delete" or a list: known event types, each once; none given means all. */
export function parseEventTypes(v: string | string[] | undefined, field: string): RegistryEventType[] {
  if (v === undefined) return [...eventTypes];
  const list = (Array.isArray(v) ? v : v.split(',')).map((s) => String(s).trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError(`${field}: name at least one event type (${eventTypes.join(', ')})`);
  for (const t of list) if (!(eventTypes as readonly string[]).includes(t)) throw new UsageError(`${field}: "${t}" is not an event type (${eventTypes.join(', ')})`);
  return eventTypes.filter((t) => list.includes(t));
}

/** The URL as the audit log keeps it: no query (it may hold a receiver's token). */
const shown = (url: string) => {
  const u = new URL(url);
  return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
};

export function webhookAdmin(metadata: Metadata, actor: string, rules: AddressRules): WebhookAdmin {
  const audit = (action: string, namespace: string, detail: string) => metadata.recordAudit([{ time: Date.now(), actor, action, namespace, detail }]);
  const must = async (id: number) => {
    const h = Number.isSafeInteger(id) ? await metadata.getWebhook(id) : undefined;
    if (!h) throw new UsageError(`no webhook ${id}`);
    return h;
  };
  const policy = addressPolicy(rules);

  return {
    async add(ns, h) {
      if (!isNamespace(ns)) throw new UsageError(`namespace "${ns}": lower-case letters, digits and . _ - separators (the first component of repository names)`);
      const url = parseWebhookUrl(h.url);
      if (!h.secret) throw new UsageError('secret: required (deliveries are signed with it)');
      if (h.secret.length > 1024 || /[\r\n]/.test(h.secret)) throw new UsageError('secret: at most 1024 characters on one line');
      const events = parseEventTypes(h.events, 'events');
      await checkDestination(url, policy);
      const record = { namespace: ns, url: url.href, secret: h.secret, events, enabled: h.enabled !== false, createdBy: actor, createdAt: Date.now() };
      const id = await metadata.addWebhook(record);
      await audit('webhook-add', ns, `webhook ${id}: ${shown(record.url)} (${events.join(', ')})${record.enabled ? '' : ', disabled'}`);
      return view({ id, ...record });
    },
    async list(ns) {
      return (await metadata.webhooks(ns)).map(view);
    },
    async get(id) {
      const h = await metadata.getWebhook(id);
      return h && view(h);
    },
    async setEnabled(id, enabled) {
      const h = await must(id);
      await metadata.setWebhookEnabled(id, enabled);
      await audit('webhook-set', h.namespace, `webhook ${id}: ${enabled ? 'enabled' : 'disabled'}`);
      return view({ ...h, enabled });
    },
    async remove(id) {
      const h = await must(id);
      if (!(await metadata.removeWebhook(id))) throw new UsageError(`no webhook ${id}`);
      await audit('webhook-rm', h.namespace, `webhook ${id}: ${shown(h.url)}`);
      return view(h);
    },
    async deliveries(id, limit) {
      await must(id);
      return (await metadata.deliveries(id, Math.min(1000, Math.max(1, limit)))).map(({ payload: _, ...d }) => d);
    },
  };
}
