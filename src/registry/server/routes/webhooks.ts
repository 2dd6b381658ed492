import type { Registry } from '../registry.js';
import type { Principal } from '../auth/access.js';
import { query, sendJson, type Ctx } from '../http.js';
import { badRequest, RegistryError } from '../errors.js';
import { webhookAdmin } from '../webhooks/hooks.js';
import { jsonBody, requireNs } from './admin.js';

// /kiln/v1/namespaces/NS/webhooks: GET (maintainers and admins of the namespace) lists the hooks,
// never their secrets; POST {"url","secret","events":[…],"enabled"} adds one (namespace admins);
// PUT /ID {"enabled"} and DELETE /ID change or remove it; GET /ID/deliveries?limit=N is its log.

export async function webhookRoutes(reg: Registry, ctx: Ctx, p: Principal, ns: string, rest: string[]): Promise<void> {
  const ops = webhookAdmin(reg.metadata, p.name, reg.config.webhooks);
  const m = ctx.method;
  const [id, sub] = rest;
  if (id === undefined && m === 'GET') {
    await requireNs(reg, p, ns, 'webhooks:read');
    return sendJson(ctx, 200, { webhooks: await ops.list(ns) });
  }
  if (id === undefined && m === 'POST') {
    await requireNs(reg, p, ns, 'webhooks:write');
    const body = await jsonBody(ctx);
    if (typeof body.url !== 'string') throw badRequest('url: expected a string');
    if (typeof body.secret !== 'string') throw badRequest('secret: expected a string');
    if (body.events !== undefined && !(Array.isArray(body.events) && body.events.every((x) => typeof x === 'string'))) throw badRequest('events: expected a list of event types');
    if (body.enabled !== undefined && typeof body.enabled !== 'boolean') throw badRequest('enabled: expected true or false');
    const hook = await ops.add(ns, { url: body.url, secret: body.secret, events: body.events as string[] | undefined, enabled: body.enabled as boolean | undefined });
    reg.webhooks.invalidate();
    return sendJson(ctx, 201, hook);
  }
  if (id !== undefined) {
    const hook = /^\d+$/.test(id) ? await ops.get(Number(id)) : undefined;
    if (!hook || hook.namespace !== ns) {
      await requireNs(reg, p, ns, 'webhooks:read');
      throw new RegistryError('not-found', `no webhook ${id.slice(0, 30)} in ${ns}`);
    }
    if (sub === 'deliveries' && rest.length === 2 && m === 'GET') {
      await requireNs(reg, p, ns, 'webhooks:read');
      return sendJson(ctx, 200, { deliveries: await ops.deliveries(hook.id, Number(query(ctx).get('limit') ?? 50) || 50) });
    }
    if (sub === undefined && m === 'GET') {
      await requireNs(reg, p, ns, 'webhooks:read');
      return sendJson(ctx, 200, hook);
    }
    if (sub === undefined && m === 'PUT') {
      await requireNs(reg, p, ns, 'webhooks:write');
      const body = await jsonBody(ctx);
      if (typeof body.enabled !== 'boolean') throw badRequest('enabled: expected true or false');
      const changed = await ops.setEnabled(hook.id, body.enabled);
      reg.webhooks.invalidate();
      return sendJson(ctx, 200, changed);
    }
    if (sub === undefined && m === 'DELETE') {
      await requireNs(reg, p, ns, 'webhooks:write');
      await ops.remove(hook.id);
      reg.webhooks.invalidate();
      return sendJson(ctx, 200, {});
    }
  }
  throw new RegistryError('not-found', `no such management endpoint: ${m} /kiln/v1/namespaces/${ns}/webhooks/${rest.join('/')}`);
}
