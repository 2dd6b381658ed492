import { createHmac, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DeliveryRecord, Metadata, WebhookRecord } from '../metadata/metadata.js';
import type { RegistryConfig } from '../config.js';
import type { Logger } from '../log.js';
import { addressPolicy, guardedLookup, literalAddress, type AddressPolicy } from './policy.js';

// Sending queued deliveries: a POST of the stored body, signed (X-Kiln-Signature: sha256=<hex>,
// HMAC-SHA256 of the exact body with the hook's secret, as GitHub's X-Hub-Signature-256), at most
// `concurrency` at once, each within `timeout`. A 2xx answer delivers; anything else (a redirect
// too: they are not followed) is retried after backoff·2^(n-1), and after `attempts` the delivery
// is failed with the last error. A delivery is claimed in the database before it is sent, so
// replicas never send the same attempt; one whose sender died is taken again when its claim ends.
// Delivery is at least once: receivers deduplicate by X-Kiln-Delivery.

export interface WebhookSender {
  /** Look for due deliveries now (one was just queued). */
  nudge(): void;
  /** Stop: attempts in flight are abandoned and their claims given back, uncounted. */
  close(): Promise<void>;
}

/** Sign a body as receivers check it. */
export function signature(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

type Outcome = { ok: true; status: number } | { ok: false; status?: number; error: string };

/** One attempt: POST the body to the hook's URL. */
function post(hook: WebhookRecord, d: DeliveryRecord, policy: AddressPolicy, timeoutMs: number, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(hook.url);
    } catch {
      return resolve({ ok: false, error: `not a URL: ${hook.url}` });
    }
    const ip = literalAddress(url);
    const refused = ip ? policy.refusal(ip) : undefined;
    if (refused) return resolve({ ok: false, error: `refused: ${refused}` });
    const body = Buffer.from(d.payload, 'utf8');
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const req = send(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': body.length,
        'user-agent': 'kiln-registry-webhook',
        'x-kiln-event': d.event,
        'x-kiln-delivery': String(d.id),
        'x-kiln-signature': signature(hook.secret, body),
      },
      lookup: guardedLookup(policy) as never,
      agent: false,
      signal,
    });
    const timer = setTimeout(() => {
      done({ ok: false, error: `no answer within ${timeoutMs / 1000}s` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => done({ ok: false, error: signal.aborted ? 'registry stopping' : e.message }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 300) chunks.push(c);
        size += c.length;
      });
      res.on('error', (e) => done({ ok: false, status: res.statusCode, error: e.message }));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return done({ ok: true, status });
        const text = Buffer.concat(chunks).toString('utf8').slice(0, 300).replace(/\s+/g, ' ').trim();
        const why = status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`;
        done({ ok: false, status, error: text ? `${why}: ${text}` : why });
      });
    });
    req.end(body);
  });
}

export function startDeliveries(opts: { metadata: Metadata; config: RegistryConfig['webhooks']; log: Logger }): WebhookSender {
  const { metadata, config, log } = opts;
  const policy = addressPolicy(config);
  const timeoutMs = config.timeout * 1000;
  // A claim outlives the attempt it covers, so it is never taken from a sender still waiting.
  const claimMs = timeoutMs + 30_000;
  const inFlight = new Map<number, { token: string; abort: AbortController; done?: Promise<void> }>();
  let closed = false;
  let looking: Promise<void> | undefined;
  let again = false;

  const attempt = async (d: DeliveryRecord, token: string, abort: AbortController) => {
    const hook = await metadata.getWebhook(d.hook);
    if (!hook) return; // removed meanwhile: its deliveries went with it
    const o = await post(hook, d, policy, timeoutMs, abort.signal);
    if (abort.signal.aborted) return;
    const now = Date.now();
    const attempts = d.attempts + 1;
    const last = attempts >= config.attempts;
    const delay = Math.min(3_600_000, config.backoff * 1000 * 2 ** (attempts - 1));
    await metadata.finishDelivery(d.id, token, {
      status: o.ok ? 'delivered' : last ? 'failed' : 'pending',
      attempts,
      nextAttempt: o.ok || last ? now : now + delay,
      lastStatus: o.status,
      lastError: o.ok ? undefined : o.error,
      at: now,
    });
    if (!o.ok) log.log(last ? 'warn' : 'info', last ? 'webhook delivery failed' : 'webhook delivery will be retried', { hook: hook.id, delivery: d.id, attempts, error: o.error });
  };

  const look = async () => {
    while (!closed && inFlight.size < config.concurrency) {
      const token = randomUUID();
      const now = Date.now();
      const batch = await metadata.claimDeliveries(token, now, now + claimMs, config.concurrency - inFlight.size);
      if (batch.length === 0) return;
      for (const d of batch) {
        const entry: { token: string; abort: AbortController; done?: Promise<void> } = { token, abort: new AbortController() };
        inFlight.set(d.id, entry);
        entry.done = attempt(d, token, entry.abort)
          .catch((e: unknown) => log.log('error', 'webhook delivery attempt failed', { delivery: d.id, error: String((e as Error)?.message ?? e) }))
          .finally(() => {
            inFlight.delete(d.id);
            nudge();
          });
      }
    }
  };
  const nudge = () => {
    if (closed) return;
    if (looking) {
      again = true;
      return;
    }
    looking = look()
      .catch((e: unknown) => log.log('error', 'webhook queue unavailable', { error: String((e as Error)?.message ?? e) }))
      .finally(() => {
        looking = undefined;
        if (again) {
          again = false;
          nudge();
        }
      });
  };

  const poll = setInterval(nudge, Math.max(10, config.pollInterval * 1000));
  poll.unref();
  let lastPrune = 0;
  const prune = setInterval(() => {
    if (Date.now() - lastPrune < 60_000) return;
    lastPrune = Date.now();
    metadata.pruneDeliveries(Date.now() - config.history * 1000).catch(() => {});
  }, 60_000);
  prune.unref();
  nudge();

  return {
    nudge,
    async close() {
      closed = true;
      clearInterval(poll);
      clearInterval(prune);
      await looking;
      const held = [...inFlight];
      for (const [, f] of held) f.abort.abort();
      await Promise.all(held.map(([, f]) => f.done));
      const byToken = new Map<string, number[]>();
      for (const [id, f] of held) byToken.set(f.token, [...(byToken.get(f.token) ?? []), id]);
      for (const [token, ids] of byToken) await metadata.releaseDeliveries(token, ids).catch(() => {});
    },
  };
}
