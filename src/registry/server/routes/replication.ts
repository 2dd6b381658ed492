import type { Registry } from '../registry.js';
import { query, readBody, sendJson, type Ctx } from '../http.js';
import { badRequest, denied, RegistryError } from '../errors.js';
import { isSystemAdmin, type Principal } from '../auth/access.js';
import { parseDuration } from '../config.js';
import { replicationAdmin } from '../replication/admin.js';
import type { ReplicationRuleInput } from '../replication/rules.js';

// /kiln/v1/replication (system administrators): rules, runs and each run's items.
//   GET    /kiln/v1/replication                 the rules (never their secrets)
//   POST   /kiln/v1/replication                 add a rule: {"name","direction","remote","namespace",…,"password"}
//   GET    /kiln/v1/replication/NAME            one rule
//   PATCH  /kiln/v1/replication/NAME            {"enabled": true|false}
//   DELETE /kiln/v1/replication/NAME            remove it with its history
//   POST   /kiln/v1/replication/NAME/runs       run it (or resume its interrupted run): 202
//   GET    /kiln/v1/replication/NAME/runs       its runs, newest first (?limit=)
//   GET    /kiln/v1/replication/NAME/runs/ID    one run with its items

async function jsonObject(ctx: Ctx): Promise<Record<string, unknown>> {
  const raw = await readBody(ctx, 64 * 1024, () => badRequest('body too large'));
  try {
    const v: unknown = JSON.parse(raw.toString('utf8') || '{}');
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw badRequest('expected a JSON object');
}

function ruleInput(body: Record<string, unknown>): ReplicationRuleInput {
  const str = (k: string) => {
    const v = body[k];
    if (v !== undefined && typeof v !== 'string') throw badRequest(`${k}: expected a string`);
    return v as string | undefined;
  };
  const flag = (k: string) => {
    const v = body[k];
    if (v !== undefined && typeof v !== 'boolean') throw badRequest(`${k}: expected true or false`);
    return v as boolean | undefined;
  };
  return {
    name: str('name') ?? '',
    direction: str('direction'),
    remote: str('remote'),
    namespace: str('namespace'),
    remoteNamespace: str('remoteNamespace'),
    repos: str('repos'),
    tags: str('tags'),
    label: str('label'),
    trigger: str('trigger'),
    interval: body.interval === undefined ? undefined : parseDuration(body.interval, 'interval'),
    username: str('username'),
    password: str('password'),
    insecure: flag('insecure'),
    enabled: flag('enabled'),
  };
}

export async function replicationApi(reg: Registry, ctx: Ctx, p: Principal, parts: string[]): Promise<void> {
  if (!isSystemAdmin(p)) throw denied('replication rules are for system administrators');
  const ops = replicationAdmin(reg.metadata, p.name);
  const m = ctx.method;
  const [name, sub, id] = parts;
  if (name === undefined && m === 'GET') return sendJson(ctx, 200, { rules: await ops.list() });
  if (name === undefined && m === 'POST') return sendJson(ctx, 201, await ops.add(ruleInput(await jsonObject(ctx))));
  if (name !== undefined && sub === undefined) {
    if (m === 'GET') return sendJson(ctx, 200, await ops.get(name));
    if (m === 'DELETE') {
      await ops.remove(name);
      return sendJson(ctx, 200, {});
    }
    if (m === 'PATCH') {
      const body = await jsonObject(ctx);
      if (typeof body.enabled !== 'boolean') throw badRequest('enabled: expected true or false');
      await ops.setEnabled(name, body.enabled);
      return sendJson(ctx, 200, await ops.get(name));
    }
  }
  if (name !== undefined && sub === 'runs') {
    if (id === undefined && m === 'POST') {
      const r = await ops.requestRun(name);
      reg.replication.kick();
      return sendJson(ctx, 202, r);
    }
    if (id === undefined && m === 'GET') {
      const limit = Math.min(1000, Math.max(1, Number(query(ctx).get('limit') ?? 20) || 20));
      return sendJson(ctx, 200, { runs: await ops.runs(name, limit) });
    }
    if (id !== undefined && m === 'GET') {
      if (!/^\d+$/.test(id)) throw badRequest(`run "${id.slice(0, 30)}": a run number`);
      return sendJson(ctx, 200, await ops.run(name, Number(id)));
    }
  }
  throw new RegistryError('not-found', `no such replication endpoint: ${m} /kiln/v1/replication/${parts.join('/')}`);
}
