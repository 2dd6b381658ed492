import type { Command } from 'commander';
import { renderTable } from '../ui/table.js';
import { admin, parseRole } from '../registry/server/admin.js';
import { identityProviders } from '../registry/server/registry.js';
import { groupKey, type Metadata } from '../registry/server/metadata/metadata.js';
import type { RegistryConfig } from '../registry/server/config.js';

// kiln registry role grant-group|revoke-group, and role list with where each role comes from:
// the user's own role or the role of a group their identity provider (LDAP) puts them in.

type RootOpts = { root?: string; config?: string };
export interface OfflineCommands {
  withRoot: (c: Command) => Command;
  offline: <T>(o: RootOpts, fn: (m: Metadata, c: RegistryConfig) => Promise<T>) => Promise<T>;
  actor: () => string;
}

export function registerGroupCommands(role: Command, { withRoot, offline, actor }: OfflineCommands): void {
  withRoot(role.command('grant-group'))
    .description("Give the members of GROUP (an identity provider's group, e.g. an LDAP group's cn) the ROLE in NAMESPACE")
    .argument('<group>')
    .argument('<namespace>')
    .argument('<role>')
    .action(async (g: string, ns: string, r: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).grantGroup(g, ns, parseRole(r))));
  withRoot(role.command('revoke-group'))
    .description("Remove GROUP's role in NAMESPACE")
    .argument('<group>')
    .argument('<namespace>')
    .action(async (g: string, ns: string, o: RootOpts) => offline(o, (m) => admin(m, actor()).revokeGroup(g, ns)));
}

/** The rows of `role list`: users' own roles and group bindings; with --user, the bindings of the groups the user's provider names. */
export async function listRoles(m: Metadata, c: RegistryConfig, actor: string, o: { user?: string; namespace?: string }): Promise<string> {
  const a = admin(m, actor);
  const own = (o.namespace ? await a.members(o.namespace) : await a.roles(o.user)).filter((x) => !o.user || x.user === o.user);
  let bindings = await a.groupBindings(o.namespace);
  let who = '-';
  if (o.user) {
    who = o.user;
    const groups = new Set((await userGroups(m, c, o.user)).map(groupKey));
    bindings = bindings.filter((b) => groups.has(groupKey(b.group)));
  }
  const rows = [
    ...own.map((x) => [x.namespace, x.user, x.role, 'user']),
    ...bindings.map((b) => [b.namespace, who, b.role, `group ${b.group}`]),
  ].sort((x, y) => (x[0]! < y[0]! ? -1 : x[0]! > y[0]! ? 1 : 0));
  return renderTable(['NAMESPACE', 'USER', 'ROLE', 'FROM'], rows);
}

/** The groups the user's identity provider names now (none for local users); a warning when it cannot be asked. */
async function userGroups(m: Metadata, c: RegistryConfig, name: string): Promise<string[]> {
  const u = await m.getUser(name);
  if (u && !u.provider) return [];
  // What the OpenID Provider said at the user's last sign-in or refresh (it cannot be asked offline).
  if (u?.provider === 'oidc') return (await m.getOidcAccount(name))?.groups ?? [];
  for (const p of identityProviders(c)) {
    if (u && u.provider !== p.name) continue;
    try {
      const id = await p.lookup(name);
      if (id) return id.groups;
    } catch (e) {
      process.stderr.write(`warning: ${(e as Error).message}; the roles of ${name}'s groups are not shown\n`);
    } finally {
      await p.close();
    }
  }
  return [];
}
