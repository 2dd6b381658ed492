import { UsageError } from '../../errors.js';
import type { AuditEvent, GroupBinding, ImmutableRule, ProxyRecord, RetentionRule, Membership, Metadata, NamespaceRecord, Role, RobotRecord, UserRecord } from './metadata/metadata.js';
import { checkPattern, describeRule } from './governance.js';
import { binarySize } from '../../ui/format.js';
import { applyRetention, checkRetentionRule, describeRetention, planRetention, type RetentionPlan } from './retention.js';
import { Roles } from './metadata/metadata.js';
import { hashPassword, newRobotSecret } from './auth/passwords.js';
import { Actions } from './auth/access.js';
import { isNamespace } from './names.js';
import { checkProxyUrl, DefaultProxyTtlSeconds } from './proxy.js';

// Managing users, namespaces (visibility, quota, tag immutability), roles and robot accounts: the operations behind both
// `kiln registry user|role|robot|namespace` (offline, on the database) and the management API.
// Every change is written to the audit log with who made it.

const userNameRe = /^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$/;
const robotNameRe = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface Admin {
  addUser(name: string, password: string, admin: boolean): Promise<void>;
  setPassword(name: string, password: string): Promise<void>;
  setAdmin(name: string, admin: boolean): Promise<void>;
  deleteUser(name: string): Promise<void>;
  listUsers(): Promise<Omit<UserRecord, 'passwordHash'>[]>;
  grant(user: string, namespace: string, role: Role): Promise<void>;
  revoke(user: string, namespace: string): Promise<void>;
  members(namespace: string): Promise<Membership[]>;
  /** Give the members of an identity provider's GROUP the ROLE in NAMESPACE. */
  grantGroup(group: string, namespace: string, role: Role): Promise<void>;
  revokeGroup(group: string, namespace: string): Promise<void>;
  groupBindings(namespace?: string): Promise<GroupBinding[]>;
  roles(user?: string): Promise<Membership[]>;
  setNamespace(namespace: string, opts: { public?: boolean; quotaBytes?: number | null; proxy?: ProxySetting | null }): Promise<void>;
  /** Every namespace with the bytes it uses and, for a pull-through cache, its upstream (never its password). */
  namespaces(): Promise<(NamespaceRecord & { usedBytes: number; proxy?: ProxySummary })[]>;
  addImmutable(namespace: string, rule: { repos: string; tags: string; excludeRepos?: boolean; excludeTags?: boolean }): Promise<ImmutableRule>;
  removeImmutable(id: number): Promise<ImmutableRule>;
  immutable(namespace?: string): Promise<ImmutableRule[]>;
  addRetention(namespace: string, rule: { repos: string; tags?: string; kind: string; value?: number }): Promise<RetentionRule>;
  removeRetention(id: number): Promise<RetentionRule>;
  retention(namespace?: string): Promise<RetentionRule[]>;
  /** Evaluate the namespace's retention rules; without dryRun, remove what they say. */
  runRetention(namespace: string, opts: { dryRun?: boolean; force?: boolean }): Promise<RetentionPlan>;
  /** Returns the secret, shown once. */
  addRobot(namespace: string, name: string, actions: string[], expiresInSeconds: number | undefined): Promise<{ name: string; secret: string; expiresAt?: number }>;
  deleteRobot(name: string): Promise<void>;
  robots(namespace?: string): Promise<Omit<RobotRecord, 'secretHash'>[]>;
}

/** What `namespace set --proxy` gives: the upstream and how to sign in there. */
export interface ProxySetting {
  url: string;
  username?: string;
  password?: string;
  ttlSeconds?: number;
}

/** A proxy namespace's settings as shown: credentials only as whether they are set. */
export interface ProxySummary {
  url: string;
  ttlSeconds: number;
  credentials: boolean;
}

export function parseRole(s: string): Role {
  if (!(Roles as string[]).includes(s)) throw new UsageError(`unknown role "${s}": use one of ${Roles.join(', ')}`);
  return s as Role;
}

export function admin(metadata: Metadata, actor: string): Admin {
  const audit = (e: Omit<AuditEvent, 'time' | 'actor'>) => metadata.recordAudit([{ ...e, actor, time: Date.now() }]);
  const checkPassword = (p: string) => {
    if (p.length < 8) throw new UsageError('password: at least 8 characters');
    if (p.length > 1024) throw new UsageError('password: at most 1024 characters');
  };
  const checkNamespace = (ns: string) => {
    if (!isNamespace(ns)) throw new UsageError(`namespace "${ns}": lower-case letters, digits and . _ - separators (the first component of repository names)`);
  };
  const checkGroup = (g: string) => {
    // Directory group names may hold spaces and most punctuation; not control characters.
    if (g.trim() === '' || g.length > 256 || /[\0-\x1f\x7f]/.test(g)) throw new UsageError(`group "${g}": 1 to 256 printable characters`);
  };
  const mustUser = async (name: string) => {
    const u = await metadata.getUser(name);
    if (!u) throw new UsageError(`no user "${name}"`);
    return u;
  };

  return {
    async addUser(name, password, isAdmin) {
      if (!userNameRe.test(name) || name.startsWith('robot$')) throw new UsageError(`user name "${name}": letters, digits and . _ @ - (at most 128)`);
      checkPassword(password);
      if (await metadata.getUser(name)) throw new UsageError(`user "${name}" exists`);
      await metadata.putUser({ name, passwordHash: await hashPassword(password), admin: isAdmin, createdAt: Date.now() });
      await audit({ action: 'user-add', detail: `${name}${isAdmin ? ' (system administrator)' : ''}` });
    },
    async setPassword(name, password) {
      const u = await mustUser(name);
      if (u.provider) throw new UsageError(`user "${name}" signs in through ${u.provider}: its password is the directory's`);
      checkPassword(password);
      await metadata.putUser({ ...u, passwordHash: await hashPassword(password) });
      await audit({ action: 'user-passwd', detail: name });
    },
    async setAdmin(name, isAdmin) {
      const u = await mustUser(name);
      await metadata.putUser({ ...u, admin: isAdmin });
      await audit({ action: 'user-admin', detail: `${name} ${isAdmin ? 'is' : 'is not'} a system administrator` });
    },
    async deleteUser(name) {
      if (!(await metadata.deleteUser(name))) throw new UsageError(`no user "${name}"`);
      await audit({ action: 'user-del', detail: name });
    },
    async listUsers() {
      return (await metadata.listUsers()).map(({ passwordHash: _, ...u }) => u);
    },
    async grant(user, ns, role) {
      checkNamespace(ns);
      if (!(await metadata.getUser(user))) throw new UsageError(`no user "${user}" (an LDAP user has one from their first sign-in on; or bind their group: role grant-group)`);
      parseRole(role);
      await metadata.setRole(ns, user, role);
      await audit({ action: 'role-grant', namespace: ns, detail: `${user} ${role}` });
    },
    async revoke(user, ns) {
      if (!(await metadata.revokeRole(ns, user))) throw new UsageError(`"${user}" has no role in "${ns}"`);
      await audit({ action: 'role-revoke', namespace: ns, detail: user });
    },
    members: (ns) => metadata.listMembers(ns),
    async grantGroup(group, ns, role) {
      checkNamespace(ns);
      checkGroup(group);
      parseRole(role);
      await metadata.setGroupRole(ns, group, role);
      await audit({ action: 'role-grant-group', namespace: ns, detail: `group ${group} ${role}` });
    },
    async revokeGroup(group, ns) {
      if (!(await metadata.revokeGroupRole(ns, group))) throw new UsageError(`group "${group}" has no role in "${ns}"`);
      await audit({ action: 'role-revoke-group', namespace: ns, detail: `group ${group}` });
    },
    groupBindings: (ns) => metadata.groupBindings(ns),
    async roles(user) {
      if (user) return metadata.rolesOf(user);
      const out: Membership[] = [];
      for (const ns of await metadata.listNamespaces()) out.push(...(await metadata.listMembers(ns.name)));
      return out;
    },
    async setNamespace(ns, opts) {
      checkNamespace(ns);
      // The proxy setting is checked before anything is written: a bad one leaves the namespace as it was.
      let proxy: ProxyRecord | null | undefined = opts.proxy === null ? null : undefined;
      if (opts.proxy) {
        const p = opts.proxy;
        const url = checkProxyUrl(p.url);
        if ((p.username === undefined) !== (p.password === undefined)) throw new UsageError('proxy credentials: give both the user name and the password, or neither');
        if (p.username !== undefined && (p.username === '' || /[:\0\n]/.test(p.username))) throw new UsageError('proxy user name: not empty, without ":" or line breaks');
        const ttlSeconds = p.ttlSeconds ?? DefaultProxyTtlSeconds;
        if (!Number.isFinite(ttlSeconds) || ttlSeconds < 0) throw new UsageError('proxy TTL: a duration such as 30s or 5m');
        proxy = { namespace: ns, url, username: p.username, password: p.password, ttlSeconds, createdBy: actor, createdAt: Date.now() };
      }
      if (opts.public !== undefined) {
        const cur = await metadata.getNamespace(ns);
        await metadata.putNamespace({ name: ns, public: opts.public, createdAt: cur?.createdAt ?? Date.now() });
        await audit({ action: 'namespace-set', namespace: ns, detail: opts.public ? 'anonymous pull on' : 'anonymous pull off' });
      }
      if (opts.quotaBytes !== undefined) {
        if (opts.quotaBytes !== null && (!Number.isSafeInteger(opts.quotaBytes) || opts.quotaBytes < 0)) throw new UsageError('quota: a size in bytes (or with a unit: 10GiB), or none');
        await metadata.setQuota(ns, opts.quotaBytes ?? undefined, Date.now());
        await audit({ action: 'quota-set', namespace: ns, detail: opts.quotaBytes === null ? 'no quota' : `quota ${binarySize(opts.quotaBytes)}` });
      }
      if (proxy === null) {
        await metadata.setProxy(ns, undefined, Date.now());
        await audit({ action: 'proxy-set', namespace: ns, detail: 'not a pull-through cache any more' });
      } else if (proxy) {
        await metadata.setProxy(ns, proxy, proxy.createdAt);
        // Never the password; the user name is no secret.
        await audit({ action: 'proxy-set', namespace: ns, detail: `pull-through cache of ${proxy.url}, tags re-checked after ${proxy.ttlSeconds}s${proxy.username !== undefined ? `, signed in as ${proxy.username}` : ''}` });
      }
    },
    async namespaces() {
      const all = await metadata.listNamespaces();
      const proxies = new Map((await metadata.listProxies()).map((p) => [p.namespace, p]));
      return Promise.all(
        all.map(async (n) => {
          const p = proxies.get(n.name);
          return { ...n, usedBytes: await metadata.namespaceUsage(n.name), ...(p ? { proxy: { url: p.url, ttlSeconds: p.ttlSeconds, credentials: p.username !== undefined } } : {}) };
        }),
      );
    },
    async addImmutable(ns, r) {
      checkNamespace(ns);
      const rule = {
        namespace: ns,
        repos: checkPattern(r.repos, 'repos'),
        tags: checkPattern(r.tags, 'tags'),
        excludeRepos: r.excludeRepos === true,
        excludeTags: r.excludeTags === true,
        createdBy: actor,
        createdAt: Date.now(),
      };
      const id = await metadata.addImmutableRule(rule);
      const added = { id, ...rule };
      await audit({ action: 'immutable-add', namespace: ns, detail: describeRule(added) });
      return added;
    },
    async removeImmutable(id) {
      const removed = await metadata.removeImmutableRule(id);
      if (!removed) throw new UsageError(`no immutability rule ${id}`);
      await audit({ action: 'immutable-rm', namespace: removed.namespace, detail: describeRule(removed) });
      return removed;
    },
    immutable: (ns) => metadata.immutableRules(ns),
    async addRetention(ns, r) {
      checkNamespace(ns);
      const rule = { namespace: ns, ...checkRetentionRule(r), createdBy: actor, createdAt: Date.now() };
      const id = await metadata.addRetentionRule(rule);
      await audit({ action: 'retention-add', namespace: ns, detail: `rule ${id}: ${describeRetention(rule)}` });
      return { id, ...rule };
    },
    async removeRetention(id) {
      const removed = await metadata.removeRetentionRule(id);
      if (!removed) throw new UsageError(`no retention rule ${id}`);
      await audit({ action: 'retention-rm', namespace: removed.namespace, detail: `rule ${id}: ${describeRetention(removed)}` });
      return removed;
    },
    retention: (ns) => metadata.retentionRules(ns),
    async runRetention(ns, opts) {
      checkNamespace(ns);
      const now = Date.now();
      const plan = await planRetention(metadata, ns, now, { force: opts.force });
      if (!opts.dryRun) await applyRetention(metadata, plan, actor, now);
      return plan;
    },
    async addRobot(ns, short, actions, expiresIn) {
      checkNamespace(ns);
      if (!robotNameRe.test(short)) throw new UsageError(`robot name "${short}": lower-case letters, digits and . _ -`);
      const bad = actions.filter((a) => !(Actions as readonly string[]).includes(a));
      if (bad.length || actions.length === 0) throw new UsageError(`robot actions: one or more of ${Actions.join(', ')}`);
      const name = `robot$${ns}+${short}`;
      if (await metadata.getRobot(name)) throw new UsageError(`robot "${name}" exists`);
      const { secret, hash } = newRobotSecret();
      const expiresAt = expiresIn === undefined ? undefined : Math.floor(Date.now() / 1000 + expiresIn);
      await metadata.putRobot({ name, namespace: ns, secretHash: hash, actions, expiresAt, createdBy: actor, createdAt: Date.now() });
      await audit({ action: 'robot-add', namespace: ns, detail: `${name} ${actions.join(',')}${expiresAt ? ` until ${new Date(expiresAt * 1000).toISOString()}` : ''}` });
      return { name, secret, expiresAt };
    },
    async deleteRobot(name) {
      const r = await metadata.getRobot(name);
      if (!r || !(await metadata.deleteRobot(name))) throw new UsageError(`no robot "${name}"`);
      await audit({ action: 'robot-del', namespace: r.namespace, detail: name });
    },
    async robots(ns) {
      return (await metadata.listRobots(ns)).map(({ secretHash: _, ...r }) => r);
    },
  };
}
