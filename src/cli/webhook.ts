import type { Command } from 'commander';
import { out } from './context.js';
import { UsageError } from '../errors.js';
import { renderTable } from '../ui/table.js';
import type { RegistryConfig } from '../registry/server/config.js';
import type { Metadata } from '../registry/server/metadata/metadata.js';
import { webhookAdmin } from '../registry/server/webhooks/hooks.js';

type RootOpts = { root?: string; config?: string };

/** kiln registry webhook add|list|rm|enable|disable|deliveries, offline on the registry's database (the serving registry picks changes up). */
export function registerWebhookCommands(
  registry: Command,
  parts: { withRoot: (c: Command) => Command; offline: <T>(o: RootOpts, fn: (m: Metadata, c: RegistryConfig) => Promise<T>) => Promise<T>; actor: () => string },
): void {
  const { withRoot, offline, actor } = parts;
  const ops = (m: Metadata, c: RegistryConfig) => webhookAdmin(m, actor(), c.webhooks);
  const hookId = (id: string) => {
    if (!/^\d+$/.test(id)) throw new UsageError(`webhook id "${id}": a number from kiln registry webhook list`);
    return Number(id);
  };
  const time = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toISOString());

  const webhook = registry.command('webhook').description('Webhooks: events of a namespace POSTed as signed JSON to a URL, with retries');
  withRoot(webhook.command('add'))
    .description('Send the events of NAMESPACE to URL (http or https), signed with the secret (X-Kiln-Signature: sha256=<HMAC of the body>); prints the id')
    .argument('<namespace>')
    .argument('<url>')
    .option('--secret <secret>', 'the key deliveries are signed with')
    .option('--secret-stdin', 'read the secret from standard input')
    .option('--events <list>', 'comma-separated: push, pull, delete, promote, quota-exceeded, retention, replication, base-updated (default: all)')
    .option('--disabled', 'add it turned off')
    .action(async (ns: string, url: string, o: RootOpts & { secret?: string; secretStdin?: boolean; events?: string; disabled?: boolean }) => {
      if ((o.secret === undefined) === !o.secretStdin) throw new UsageError('give the secret with --secret S or on standard input with --secret-stdin');
      let secret = o.secret ?? '';
      if (o.secretStdin) {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        secret = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
        if (!secret) throw new UsageError('--secret-stdin: empty secret on standard input');
      }
      const hook = await offline(o, (m, c) => ops(m, c).add(ns, { url, secret, events: o.events?.split(','), enabled: !o.disabled }));
      out(String(hook.id));
    });
  withRoot(webhook.command('list'))
    .alias('ls')
    .description('List webhooks (never their secrets)')
    .argument('[namespace]')
    .option('--format <format>', 'table or json', 'table')
    .action(async (ns: string | undefined, o: RootOpts & { format: string }) => {
      const hooks = await offline(o, (m, c) => ops(m, c).list(ns));
      if (o.format === 'json') return out(JSON.stringify(hooks, null, 2));
      process.stdout.write(renderTable(['ID', 'NAMESPACE', 'URL', 'EVENTS', 'ENABLED', 'BY'], hooks.map((h) => [String(h.id), h.namespace, h.url, h.events.join(','), h.enabled ? 'yes' : 'no', h.createdBy])));
    });
  withRoot(webhook.command('rm'))
    .description('Remove a webhook and its delivery log')
    .argument('<id>')
    .action(async (id: string, o: RootOpts) => void (await offline(o, (m, c) => ops(m, c).remove(hookId(id)))));
  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    withRoot(webhook.command(name))
      .description(enabled ? 'Turn a webhook on again (deliveries queued meanwhile go out)' : 'Turn a webhook off: no new deliveries are queued, queued ones wait')
      .argument('<id>')
      .action(async (id: string, o: RootOpts) => void (await offline(o, (m, c) => ops(m, c).setEnabled(hookId(id), enabled))));
  }
  withRoot(webhook.command('deliveries'))
    .description("A webhook's delivery log, newest first: status, attempts, the receiver's last HTTP status and error")
    .argument('<id>')
    .option('--limit <n>', 'at most this many', '20')
    .option('--format <format>', 'table or json', 'table')
    .action(async (id: string, o: RootOpts & { limit: string; format: string }) => {
      if (!/^\d+$/.test(o.limit)) throw new UsageError(`--limit: "${o.limit}" is not a whole number`);
      const list = await offline(o, (m, c) => ops(m, c).deliveries(hookId(id), Number(o.limit)));
      if (o.format === 'json') return out(JSON.stringify(list, null, 2));
      process.stdout.write(
        renderTable(
          ['ID', 'EVENT', 'STATUS', 'ATTEMPTS', 'HTTP', 'LAST ERROR', 'QUEUED', 'LAST ATTEMPT', 'NEXT ATTEMPT'],
          list.map((d) => [
            String(d.id), d.event, d.status, String(d.attempts), d.lastStatus === undefined ? '' : String(d.lastStatus), d.lastError ?? '',
            time(d.createdAt), time(d.lastAttemptAt), d.status === 'pending' ? time(d.nextAttempt) : '',
          ]),
        ),
      );
    });
}
