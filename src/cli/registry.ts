import type { Command } from 'commander';
import { join } from 'node:path';
import { out, type GlobalOptions } from './context.js';
import { defaultRoot } from '../store/root.js';
import { KilnError, UsageError } from '../errors.js';
import { renderTable } from '../ui/table.js';
import { humanSize } from '../ui/format.js';
import { loadConfig, parseDuration, parseSize, type RegistryConfig } from '../registry/server/config.js';
import { binarySize } from '../ui/format.js';
import { describeRetention } from '../registry/server/retention.js';
import { serve } from '../registry/server/server.js';
import { openBackends, openMetadata } from '../registry/server/registry.js';
import { admin, parseRole } from '../registry/server/admin.js';
import { collectGarbage, gcSummary } from '../registry/server/gc.js';
import { migrateRegistry, sameDatabase, summary, type Backends } from '../registry/server/migrate.js';
import type { Metadata } from '../registry/server/metadata/metadata.js';
import { enqueueOffline } from '../registry/server/webhooks/webhooks.js';
import { registerWebhookCommands } from './webhook.js';
import { describeProxy, proxyChange, withProxyOptions, type ProxyFlags } from './registry-proxy.js';
import { registerReplicationCommands } from './registry-replication.js';
import { listRoles, registerGroupCommands } from './registry-groups.js';
import { registerOidcCommands } from './registry-oidc.js';
import { registerPolicyCommands } from './registry-policy.js';

/** kiln registry serve|gc|migrate|user|role|robot|namespace|immutable|retention|webhook|policy|audit: the registry server and its offline administration. */
export function registerRegistryCommands(program: Command, globals: () => GlobalOptions): void {
  const registry = program.command('registry').description('Run and administer an OCI distribution registry');

  type RootOpts = { root?: string; config?: string };
  const withRoot = (c: Command) => c.option('--root <dir>', 'registry root (default: <kiln root>/registry)').option('--config <file>', 'registry configuration file (YAML)');
  const config = (o: RootOpts, extra: { addr?: string; auth?: boolean } = {}): Promise<RegistryConfig> => {
    // `kiln --root K registry …` means the registry inside kiln root K; `kiln registry … --root R`
    // means the registry root R itself. Commander hands both to the global option, so look where it was.
    const flag = o.root ?? registryRootFlag(process.argv);
    const kilnRoot = flag === undefined ? globals().root : globalRootFlag(process.argv);
    return loadConfig({ file: o.config, root: flag, defaultRoot: join(kilnRoot ?? defaultRoot(), 'registry'), ...extra });
  };

  /** Offline commands open the database directly; who ran them is recorded in the audit log as "cli:<login>". */
  const offline = async <T>(o: RootOpts, fn: (m: Metadata, c: RegistryConfig) => Promise<T>): Promise<T> => {
    const c = await config(o);
    const metadata = await openMetadata(c);
    try {
      return await fn(metadata, c);
    } finally {
      await metadata.close();
    }
  };
  const actor = () => `cli:${process.env.SUDO_USER || process.env.USER || 'root'}`;

  withRoot(registry.command('serve'))
    .description('Serve the registry (OCI distribution spec v1.1) until interrupted')
    .option('--addr <host:port>', 'listen address (default 127.0.0.1:5000)')
    .option('--auth', 'require token authentication')
    .action(async (o: RootOpts & { addr?: string; auth?: boolean }) => {
      const c = await config(o, { addr: o.addr, auth: o.auth });
      const running = await serve(c);
      process.stderr.write(`kiln registry listening on ${running.url} (root ${c.root}${c.auth.enabled ? ', token auth' : ''})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void running.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });

  withRoot(registry.command('gc'))
    .description('Remove manifests and blobs no tag or referrer reaches (safe while the registry serves)')
    .option('--dry-run', 'only report what would be removed')
    .option('--grace <duration>', 'keep unreferenced content younger than this (default: gc.gracePeriod, 1h)')
    .action(async (o: RootOpts & { dryRun?: boolean; grace?: string }) => {
      const c = await config(o);
      const { metadata, driver } = await openBackends(c);
      try {
        const grace = o.grace !== undefined ? parseDuration(o.grace, '--grace') : c.gc.gracePeriod;
        const r = await collectGarbage({ metadata, driver, graceSeconds: grace, dryRun: o.dryRun });
        for (const m of r.manifests) out(`${o.dryRun ? 'would delete' : 'deleted'} manifest ${m.repository}@${m.digest}`);
        for (const b of r.blobs) out(`${o.dryRun ? 'would delete' : 'deleted'} blob ${b}`);
        out(`${o.dryRun ? 'Would remove' : 'Removed'} ${r.manifests.length} manifests, ${r.links} repository links, ${r.blobs.length} blobs (${humanSize(r.bytes)}), ${r.orphans} orphaned files`);
        if (!o.dryRun) await metadata.recordAudit([{ time: Date.now(), actor: actor(), action: 'gc', detail: gcSummary(r) }]);
      } finally {
        await metadata.close();
      }
    });

  withRoot(registry.command('migrate'))
    .description('Copy the registry (blobs, manifests, tags, users, namespaces, roles, robots, audit log) into the one FILE configures, e.g. PostgreSQL and S3; run it again to resume')
    .requiredOption('--to-config <file>', 'configuration (YAML) of the target registry')
    .action(async (o: RootOpts & { toConfig: string }) => {
      const from = await config(o);
      const to = await loadConfig({ file: o.toConfig, defaultRoot: from.root });
      if (sameDatabase(from, to)) throw new UsageError(`--to-config ${o.toConfig}: the target is the source's database; name another one`);
      // Failures name the side they happened on, the messages of the backends say what was unreachable.
      const opened = (side: string, c: RegistryConfig) => openBackends(c).catch((e: Error) => Promise.reject(new KilnError(`${side}: ${e.message}`)));
      const close = async (b: Backends) => {
        await b.metadata.close();
        b.driver.destroy?.();
      };
      const source = await opened('source', from);
      try {
        const target = await opened('target', to);
        try {
          const r = await migrateRegistry(source, target, (line) => process.stderr.write(line + '\n')).catch((e: Error) => Promise.reject(new KilnError(`migration stopped: ${e.message}`)));
          out(summary(r));
        } finally {
          await close(target);
        }
      } finally {
        await close(source);
      }
    });

  const readPassword = async (o: { passwordStdin?: boolean }): Promise<string> => {
    if (!o.passwordStdin) throw new UsageError('give the password on standard input with --password-stdin');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const p = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (!p) throw new UsageError('empty password on standard input');
    return p;
  };

  const user = registry.command('user').description('Manage registry users (offline, against the registry root)');
  withRoot(user.command('add'))
    .description('Add a user')
    .argument('<name>')
    .option('--password-stdin', 'read the password from standard input')
    .option('--admin', 'make the user a system administrator')
    .action(async (name: string, o: RootOpts & { passwordStdin?: boolean; admin?: boolean }) => {
      const password = await readPassword(o);
      await offline(o, (m) => admin(m, actor()).addUser(name, password, !!o.admin));
    });
  withRoot(user.command('del'))
    .alias('rm')
    .description('Delete a user and their roles')
    .argument('<name>')
    .action(async (name: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).deleteUser(name)));
  withRoot(user.command('passwd'))
    .description("Change a user's password")
    .argument('<name>')
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, o: RootOpts & { passwordStdin?: boolean }) => {
      const password = await readPassword(o);
      await offline(o, (m) => admin(m, actor()).setPassword(name, password));
    });
  withRoot(user.command('list'))
    .alias('ls')
    .description('List users')
    .action(async (o: RootOpts) => {
      const users = await offline(o, (m) => admin(m, actor()).listUsers());
      process.stdout.write(renderTable(['NAME', 'ADMIN', 'SIGNS IN THROUGH', 'CREATED'], users.map((u) => [u.name, u.admin ? 'yes' : 'no', u.provider ?? 'local', new Date(u.createdAt).toISOString()])));
    });

  const role = registry.command('role').description('Manage roles of users and groups in namespaces (admin, maintainer, developer, guest, limited-guest)');
  withRoot(role.command('grant'))
    .description('Give USER the ROLE in NAMESPACE (the first path component of repository names)')
    .argument('<user>')
    .argument('<namespace>')
    .argument('<role>')
    .action(async (u: string, ns: string, r: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).grant(u, ns, parseRole(r))));
  withRoot(role.command('revoke'))
    .description("Remove USER's role in NAMESPACE")
    .argument('<user>')
    .argument('<namespace>')
    .action(async (u: string, ns: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).revoke(u, ns)));
  withRoot(role.command('list'))
    .alias('ls')
    .description('List roles: users\' own and those of groups (FROM: user or group G)')
    .option('--user <name>', 'only this user (with its identity provider\'s groups)')
    .option('--namespace <ns>', 'only this namespace')
    .action(async (o: RootOpts & { user?: string; namespace?: string }) => void process.stdout.write(await offline(o, (m, c) => listRoles(m, c, actor(), o))));
  registerGroupCommands(role, { withRoot, offline, actor });
  registerOidcCommands(registry, { withRoot, offline, actor });

  const robot = registry.command('robot').description('Manage robot accounts: credentials for CI with fixed actions on one namespace and an expiry');
  withRoot(robot.command('add'))
    .description('Create robot$NAMESPACE+NAME and print its secret (shown once)')
    .argument('<namespace>')
    .argument('<name>')
    .option('--actions <list>', 'comma-separated: pull, push, delete, promote', 'pull')
    .option('--expires <duration>', 'lifetime such as 30d or 12h (default: never)')
    .action(async (ns: string, name: string, o: RootOpts & { actions: string; expires?: string }) => {
      const r = await offline(o, (m) =>
        admin(m, actor()).addRobot(ns, name, o.actions.split(',').map((s) => s.trim()).filter(Boolean), o.expires ? parseDuration(o.expires, '--expires') : undefined),
      );
      out(`name: ${r.name}`);
      out(`secret: ${r.secret}`);
      if (r.expiresAt) out(`expires: ${new Date(r.expiresAt * 1000).toISOString()}`);
    });
  withRoot(robot.command('del'))
    .alias('rm')
    .description('Delete a robot account')
    .argument('<name>', 'robot$namespace+name')
    .action(async (name: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).deleteRobot(name)));
  withRoot(robot.command('list'))
    .alias('ls')
    .description('List robot accounts')
    .argument('[namespace]')
    .action(async (ns: string | undefined, o: RootOpts) => {
      const list = await offline(o, (m) => admin(m, actor()).robots(ns));
      process.stdout.write(
        renderTable(
          ['NAME', 'NAMESPACE', 'ACTIONS', 'EXPIRES'],
          list.map((r) => [r.name, r.namespace, r.actions.join(','), r.expiresAt ? new Date(r.expiresAt * 1000).toISOString() : 'never']),
        ),
      );
    });

  const namespace = registry.command('namespace').description('Manage namespaces (projects): anonymous pull, storage quota, pull-through cache');
  withProxyOptions(withRoot(namespace.command('set')))
    .description('Turn anonymous pull on (--public) or off (--private), set the storage quota, or make a namespace a pull-through cache (--proxy)')
    .argument('<namespace>')
    .option('--public', 'anyone may pull')
    .option('--private', 'only members may pull')
    .option('--quota <size>', 'storage the namespace may use (each blob counted once): 500MiB, 10GiB…, or none')
    .action(async (ns: string, o: RootOpts & ProxyFlags & { public?: boolean; private?: boolean; quota?: string }) => {
      if (o.public && o.private) throw new UsageError('give one of --public or --private');
      if (!o.public && !o.private && o.quota === undefined && o.proxy === undefined) throw new UsageError('give --public, --private or --quota, or --proxy URL');
      const quotaBytes = o.quota === undefined ? undefined : o.quota === 'none' ? null : parseSize(o.quota, '--quota');
      const proxy = await proxyChange(o);
      await offline(o, (m) => admin(m, actor()).setNamespace(ns, { public: o.public ? true : o.private ? false : undefined, quotaBytes, proxy }));
    });
  withRoot(namespace.command('list'))
    .alias('ls')
    .description('List namespaces with their quota and the storage they use')
    .action(async (o: RootOpts) => {
      const list = await offline(o, (m) => admin(m, actor()).namespaces());
      process.stdout.write(
        renderTable(
          ['NAMESPACE', 'ANONYMOUS PULL', 'QUOTA', 'USED', 'PROXY'],
          list.map((n) => [n.name, n.public ? 'yes' : 'no', n.quotaBytes === undefined ? 'none' : binarySize(n.quotaBytes), binarySize(n.usedBytes), describeProxy(n.proxy)]),
        ),
      );
    });

  const immutable = registry.command('immutable').description('Tag immutability rules: matching tags are never moved or deleted once pushed');
  withRoot(immutable.command('add'))
    .description('Protect the tags matching --tags of the repositories matching --repos (doublestar globs; the repository path below the namespace)')
    .argument('<namespace>')
    .requiredOption('--repos <pattern>', 'repositories: ** for all, app/*, {web,api}…')
    .requiredOption('--tags <pattern>', 'tags: v*, release-*, *…')
    .option('--exclude-repos', 'the rule applies to the repositories NOT matching --repos')
    .option('--exclude-tags', 'the rule applies to the tags NOT matching --tags')
    .action(async (ns: string, o: RootOpts & { repos: string; tags: string; excludeRepos?: boolean; excludeTags?: boolean }) => {
      const rule = await offline(o, (m) => admin(m, actor()).addImmutable(ns, o));
      out(String(rule.id));
    });
  withRoot(immutable.command('list'))
    .alias('ls')
    .description('List immutability rules')
    .argument('[namespace]')
    .action(async (ns: string | undefined, o: RootOpts) => {
      const rules = await offline(o, (m) => admin(m, actor()).immutable(ns));
      process.stdout.write(
        renderTable(
          ['ID', 'NAMESPACE', 'REPOSITORIES', 'TAGS', 'BY'],
          rules.map((r) => [String(r.id), r.namespace, `${r.excludeRepos ? 'not ' : ''}${r.repos}`, `${r.excludeTags ? 'not ' : ''}${r.tags}`, r.createdBy]),
        ),
      );
    });
  withRoot(immutable.command('rm'))
    .description('Remove an immutability rule (by its id from `immutable list`)')
    .argument('<id>')
    .action(async (id: string, o: RootOpts) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`rule id "${id}": a number from kiln registry immutable list`);
      await offline(o, (m) => admin(m, actor()).removeImmutable(Number(id)));
    });

  const retention = registry.command('retention').description('Tag retention rules: which tags of a namespace to keep; the rest goes (then garbage collection frees its blobs)');
  withRoot(retention.command('add'))
    .description('Add a rule for the tags matching --tags of the repositories matching --repos; give exactly one --keep-… or --remove-… option')
    .argument('<namespace>')
    .requiredOption('--repos <pattern>', 'repositories: ** for all, app/*…')
    .option('--tags <pattern>', 'tags the rule covers', '**')
    .option('--keep-latest-pushed <n>', 'keep the N most recently pushed')
    .option('--keep-latest-pulled <n>', 'keep the N most recently pulled')
    .option('--keep-pushed-within <days>', 'keep those pushed within the last DAYS days')
    .option('--keep-pulled-within <days>', 'keep those pulled within the last DAYS days')
    .option('--keep-always', 'always keep the matching tags')
    .option('--remove-always', 'never keep the matching tags (unless another rule always keeps them)')
    .option('--remove-untagged-older-than <days>', 'remove manifests no tag names, older than DAYS days')
    .action(async (ns: string, o: RootOpts & Record<string, string | boolean | undefined> & { repos: string; tags: string }) => {
      const kinds: [string, string][] = [
        ['keepLatestPushed', 'latest-pushed'], ['keepLatestPulled', 'latest-pulled'], ['keepPushedWithin', 'pushed-within'], ['keepPulledWithin', 'pulled-within'],
        ['keepAlways', 'always'], ['removeAlways', 'never'], ['removeUntaggedOlderThan', 'untagged-older-than'],
      ];
      const given = kinds.filter(([flag]) => o[flag] !== undefined);
      if (given.length !== 1) throw new UsageError('give exactly one of --keep-latest-pushed, --keep-latest-pulled, --keep-pushed-within, --keep-pulled-within, --keep-always, --remove-always, --remove-untagged-older-than');
      const [flag, kind] = given[0]!;
      const raw = o[flag];
      const value = typeof raw === 'string' ? Number(raw) : undefined;
      if (typeof raw === 'string' && !/^\d+$/.test(raw)) throw new UsageError(`--${flag.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: "${raw}" is not a whole number`);
      const rule = await offline(o, (m) => admin(m, actor()).addRetention(ns, { repos: o.repos, tags: o.tags, kind, value }));
      out(String(rule.id));
    });
  withRoot(retention.command('list'))
    .alias('ls')
    .description('List retention rules')
    .argument('[namespace]')
    .action(async (ns: string | undefined, o: RootOpts) => {
      const rules = await offline(o, (m) => admin(m, actor()).retention(ns));
      process.stdout.write(renderTable(['ID', 'NAMESPACE', 'RULE'], rules.map((r) => [String(r.id), r.namespace, describeRetention(r)])));
    });
  withRoot(retention.command('rm'))
    .description('Remove a retention rule (by its id from `retention list`)')
    .argument('<id>')
    .action(async (id: string, o: RootOpts) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`rule id "${id}": a number from kiln registry retention list`);
      await offline(o, (m) => admin(m, actor()).removeRetention(Number(id)));
    });
  withRoot(retention.command('run'))
    .description('Apply the namespace\'s rules now (--dry-run: list what would go); run kiln registry gc afterwards to free the space')
    .argument('<namespace>')
    .option('--dry-run', 'list what the rules remove, remove nothing')
    .option('--force', 'also when the rules would remove every tag of a repository')
    .option('--format <format>', 'table or json', 'table')
    .action(async (ns: string, o: RootOpts & { dryRun?: boolean; force?: boolean; format: string }) => {
      const plan = await offline(o, async (m, c) => {
        const p = await admin(m, actor()).runRetention(ns, { dryRun: o.dryRun, force: o.force });
        // The serving registry delivers it to the namespace's webhooks.
        if (!o.dryRun) await enqueueOffline(c, m, actor(), { type: 'retention', namespace: ns, dryRun: false, tags: p.tags, untagged: p.untagged });
        return p;
      });
      if (o.format === 'json') return out(JSON.stringify(plan, null, 2));
      const rows = [
        ...plan.tags.map((t) => [`${t.repository}:${t.tag}`, t.digest, t.why]),
        ...plan.untagged.map((u) => [`${u.repository}@${u.digest.slice(0, 19)}`, u.digest, u.why]),
        ...plan.immutable.map((i) => [`${i.repository}:${i.tag}`, '', 'stays: immutable']),
      ];
      process.stdout.write(renderTable(['REMOVED' + (o.dryRun ? ' (DRY RUN)' : ''), 'DIGEST', 'WHY'], rows));
      process.stderr.write(`${o.dryRun ? 'would remove' : 'removed'} ${plan.tags.length} tags and ${plan.untagged.length} untagged manifests; ${plan.kept} tags kept\n`);
    });

  registerWebhookCommands(registry, { withRoot, offline, actor });
  registerReplicationCommands(registry, { withRoot, offline, actor, readPassword });
  registerPolicyCommands(registry, withRoot, offline, actor);

  withRoot(registry.command('audit'))
    .description('Show the audit log, newest first')
    .option('--namespace <ns>', 'only events in this namespace')
    .option('--user <name>', 'only events by this user')
    .option('--action <action>', 'only this action (push, pull, delete-manifest, delete-tag, role-grant, …)')
    .option('--limit <n>', 'at most this many events', '100')
    .option('--format <format>', '"json" for one JSON object per line, or "table"')
    .action(async (o: RootOpts & { namespace?: string; user?: string; action?: string; limit: string; format?: string }) => {
      const events = await offline(o, (m) => m.listAudit({ namespace: o.namespace, actor: o.user, action: o.action, limit: Math.max(1, Number(o.limit) || 100) }));
      if (o.format === 'json') {
        for (const e of events) out(JSON.stringify(e));
        return;
      }
      process.stdout.write(
        renderTable(
          ['TIME', 'USER', 'ACTION', 'REPOSITORY', 'REFERENCE', 'DIGEST', 'COUNT', 'DETAIL'],
          events.map((e) => [new Date(e.time).toISOString(), e.actor, e.action, e.repository ?? e.namespace ?? '', e.reference ?? '', e.digest ?? '', String(e.count ?? 1), e.detail ?? '']),
        ),
      );
    });
}

function rootFlags(argv: string[]): { before?: string; after?: string } {
  const at = argv.indexOf('registry');
  const out: { before?: string; after?: string } = {};
  argv.forEach((a, i) => {
    let v: string | undefined;
    if (a === '--root') v = argv[i + 1];
    else if (a.startsWith('--root=')) v = a.slice(7);
    if (v === undefined) return;
    if (at >= 0 && i > at) out.after = v;
    else out.before = v;
  });
  return out;
}

function registryRootFlag(argv: string[]): string | undefined {
  return rootFlags(argv).after;
}

function globalRootFlag(argv: string[]): string | undefined {
  return rootFlags(argv).before;
}
