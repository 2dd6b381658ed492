import type { Command } from 'commander';
import { out } from './context.js';
import { KilnError, UsageError } from '../errors.js';
import { renderTable } from '../ui/table.js';
import { parseDuration, type RegistryConfig } from '../registry/server/config.js';
import type { Metadata, ReplicationItem } from '../registry/server/metadata/metadata.js';
import { replicationAdmin, type ShownRun } from '../registry/server/replication/admin.js';
import { describeReplicationRule } from '../registry/server/replication/rules.js';

// kiln registry replication add|list|rm|enable|disable|run|runs: replication rules, offline on
// the registry's database. A run is taken by the serving registry's worker (`run --wait` follows it).

type RootOpts = { root?: string; config?: string };

export interface RegistryCliParts {
  withRoot: (c: Command) => Command;
  offline: <T>(o: RootOpts, fn: (m: Metadata, c: RegistryConfig) => Promise<T>) => Promise<T>;
  actor: () => string;
  readPassword: (o: { passwordStdin?: boolean }) => Promise<string>;
}

const time = (t?: number) => (t === undefined ? '-' : new Date(t).toISOString());
const itemName = (i: ReplicationItem) => `${i.source}${i.reference.includes(':') ? '@' : ':'}${i.reference}`;

export function registerReplicationCommands(registry: Command, { withRoot, offline, actor, readPassword }: RegistryCliParts): void {
  const replication = registry.command('replication').description('Replication rules: copy images between this registry and another, by hand, on a schedule or on push');
  const ops = (o: RootOpts) => <T>(fn: (a: ReturnType<typeof replicationAdmin>) => Promise<T>) => offline(o, (m) => fn(replicationAdmin(m, actor())));

  withRoot(replication.command('add'))
    .description('Add a rule copying NAMESPACE to the remote (push) or the remote namespace into NAMESPACE (pull)')
    .argument('<name>')
    .requiredOption('--direction <push|pull>', 'push: kiln to the remote; pull: the remote to kiln')
    .requiredOption('--remote <url>', 'the other registry: https://registry.example.com, http://127.0.0.1:5000')
    .requiredOption('--namespace <ns>', 'the local namespace')
    .option('--remote-namespace <prefix>', "the namespace's name on the remote (default: the same)")
    .option('--repos <pattern>', 'repositories below the namespace (doublestar): app/*, {web,api}', '**')
    .option('--tags <pattern>', 'tags: v*, release-*', '**')
    .option('--label <key=value>', 'only images whose config has this label')
    .option('--trigger <kind>', 'manual, schedule (every --interval) or event (each push; push rules only)', 'manual')
    .option('--interval <duration>', 'time between scheduled runs: 30m, 6h')
    .option('--username <user>', 'user or robot account on the remote')
    .option('--password-stdin', 'read the password or robot secret from standard input')
    .option('--insecure', 'allow plain HTTP to a remote other than loopback')
    .option('--disabled', 'add the rule switched off')
    .action(async (name: string, o: RootOpts & Record<string, string | boolean | undefined>) => {
      if (o.passwordStdin && o.username === undefined) throw new UsageError('--password-stdin: give --username too');
      const password = o.username !== undefined ? await readPassword(o as { passwordStdin?: boolean }) : undefined;
      const rule = await ops(o)((a) =>
        a.add({
          name,
          direction: o.direction as string,
          remote: o.remote as string,
          namespace: o.namespace as string,
          remoteNamespace: o.remoteNamespace as string | undefined,
          repos: o.repos as string,
          tags: o.tags as string,
          label: o.label as string | undefined,
          trigger: o.trigger as string,
          interval: o.interval === undefined ? undefined : parseDuration(o.interval, '--interval'),
          username: o.username as string | undefined,
          password,
          insecure: o.insecure === true,
          enabled: o.disabled !== true,
        }),
      );
      out(`${rule.name}: ${describeReplicationRule({ ...rule, secret: undefined })}`);
    });

  withRoot(replication.command('list'))
    .alias('ls')
    .description('List replication rules (secrets are never shown)')
    .option('--format <format>', 'table or json', 'table')
    .action(async (o: RootOpts & { format: string }) => {
      const rules = await ops(o)((a) => a.list());
      if (o.format === 'json') return out(JSON.stringify(rules, null, 2));
      process.stdout.write(
        renderTable(
          ['NAME', 'DIRECTION', 'REMOTE', 'NAMESPACE', 'REMOTE NAMESPACE', 'FILTER', 'TRIGGER', 'USER', 'ENABLED'],
          rules.map((r) => [
            r.name,
            r.direction,
            r.remote,
            r.namespace,
            r.remoteNamespace ?? r.namespace,
            `${r.repos}:${r.tags}${r.label ? ` ${r.label}` : ''}`,
            r.trigger === 'schedule' ? `every ${r.interval}s` : r.trigger,
            r.username ?? '-',
            r.enabled ? 'yes' : 'no',
          ]),
        ),
      );
    });

  withRoot(replication.command('rm'))
    .description('Remove a rule and its run history')
    .argument('<name>')
    .action(async (name: string, o: RootOpts) => ops(o)((a) => a.remove(name)));
  for (const [cmd, on] of [['enable', true], ['disable', false]] as const) {
    withRoot(replication.command(cmd))
      .description(`${on ? 'Switch a rule on' : 'Switch a rule off (no runs, schedules or push triggers)'}`)
      .argument('<name>')
      .action(async (name: string, o: RootOpts) => ops(o)((a) => a.setEnabled(name, on)));
  }

  withRoot(replication.command('run'))
    .description('Run a rule now (or resume its interrupted run); the serving registry does the copying')
    .argument('<name>')
    .option('--wait', 'follow the run until it ends; exit 1 when it failed')
    .option('--timeout <duration>', 'with --wait: give up waiting after this long', '10m')
    .action(async (name: string, o: RootOpts & { wait?: boolean; timeout: string }) => {
      const timeout = parseDuration(o.timeout, '--timeout') * 1000;
      const { run, resumed } = await ops(o)((a) => a.requestRun(name));
      out(`run ${run.id}${resumed ? ` (${run.status === 'queued' ? 'resumed' : run.status})` : ' queued'}`);
      if (!o.wait) return;
      const start = Date.now();
      const reported = new Map<number, string>();
      for (;;) {
        const r = await ops(o)((a) => a.run(name, run.id));
        for (const i of r.items) {
          const line = `${itemName(i)}: ${i.status}${i.error ? ` (${i.error})` : ''}`;
          if (i.status !== 'pending' && reported.get(i.seq) !== line) process.stderr.write(line + '\n');
          reported.set(i.seq, line);
        }
        if (r.status === 'interrupted' && reported.get(-1) !== r.error) process.stderr.write(`run ${r.id} interrupted: ${r.error ?? ''}; it goes on by itself\n`);
        reported.set(-1, r.status === 'interrupted' ? r.error ?? '' : '');
        if (r.status === 'succeeded') return out(summary(r));
        if (r.status === 'failed') throw new KilnError(`replication ${name} run ${r.id} failed: ${r.error ?? 'see kiln registry replication runs'} (${summary(r)})`);
        if (r.status === 'queued' && r.attempts === 0 && Date.now() - start > 15_000) {
          throw new KilnError(`run ${r.id} of ${name} is queued and no serving registry took it within 15s: start kiln registry serve on this root (it runs queued runs)`);
        }
        if (Date.now() - start > timeout) throw new KilnError(`run ${r.id} of ${name} is still ${r.status} after ${o.timeout} (${summary(r)})`);
        await new Promise((res) => setTimeout(res, 250));
      }
    });

  withRoot(replication.command('runs'))
    .description("A rule's run history, newest first, and the items of the newest run (or of --run)")
    .argument('<name>')
    .option('--run <id>', 'the items of this run')
    .option('--limit <n>', 'at most this many runs', '20')
    .option('--format <format>', 'table or json', 'table')
    .action(async (name: string, o: RootOpts & { run?: string; limit: string; format: string }) => {
      if (o.run !== undefined && !/^\d+$/.test(o.run)) throw new UsageError(`--run "${o.run}": a run number from kiln registry replication runs`);
      const { runs, detail } = await ops(o)(async (a) => {
        const runs = await a.runs(name, Math.max(1, Number(o.limit) || 20));
        const id = o.run !== undefined ? Number(o.run) : runs[0]?.id;
        return { runs, detail: id === undefined ? undefined : await a.run(name, id) };
      });
      if (o.format === 'json') return out(JSON.stringify({ runs, items: detail?.items ?? [] }, null, 2));
      process.stdout.write(
        renderTable(
          ['RUN', 'TRIGGER', 'STATUS', 'STARTED', 'FINISHED', 'COPIED', 'SKIPPED', 'FAILED', 'PENDING', 'ERROR'],
          runs.map((r) => [String(r.id), r.trigger, r.status, time(r.startedAt), time(r.finishedAt), String(r.copied), String(r.skipped), String(r.failed), String(r.pending), r.error ?? '']),
        ),
      );
      if (!detail || detail.items.length === 0) return;
      out(`\nitems of run ${detail.id}:`);
      process.stdout.write(
        renderTable(
          ['ITEM', 'TO', 'STATUS', 'DIGEST', 'ATTEMPTS', 'BLOBS COPIED', 'BLOBS SKIPPED', 'LAST ERROR'],
          detail.items.map((i) => [itemName(i), i.target, i.status, i.digest ?? '', String(i.attempts), String(i.blobsCopied), String(i.blobsSkipped), i.error ?? '']),
        ),
      );
    });
}

function summary(r: ShownRun): string {
  return `${r.copied} copied, ${r.skipped} skipped, ${r.failed} failed${r.pending ? `, ${r.pending} pending` : ''}`;
}
