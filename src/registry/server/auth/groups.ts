import { groupKey, Roles, type Metadata, type Role } from '../metadata/metadata.js';
import type { Principal } from './access.js';

// A user's role in a namespace is the highest of their own (kiln registry role grant) and those
// of the groups their identity provider put them in at sign-in (role grant-group), as in Harbor,
// where a project member may be a user or an LDAP/OIDC group.

/** The higher of two roles (Roles lists them highest first). */
export function higherRole(a: Role | undefined, b: Role | undefined): Role | undefined {
  if (!a) return b;
  if (!b) return a;
  return Roles.indexOf(a) <= Roles.indexOf(b) ? a : b;
}

const groupsOf = (p: Principal): readonly string[] => (p.kind === 'user' ? p.groups ?? [] : []);

/** The principal's effective role in the namespace. */
export async function effectiveRole(metadata: Metadata, p: Principal, namespace: string): Promise<Role | undefined> {
  if (p.kind !== 'user') return undefined;
  const groups = groupsOf(p);
  const [own, bound] = await Promise.all([metadata.getRole(namespace, p.name), groups.length ? metadata.bindingsOfGroups(groups) : []]);
  let role = own;
  for (const b of bound) if (b.namespace === namespace) role = higherRole(role, b.role);
  return role;
}

/**
 * The group binding that makes the principal's role in the namespace higher than their own, if one
 * does: what the audit log names when a token grants access through a group.
 */
export async function groupRoleIn(metadata: Metadata, p: Principal, namespace: string): Promise<{ group: string; role: Role; own?: Role } | undefined> {
  const groups = groupsOf(p);
  if (p.kind !== 'user' || groups.length === 0) return undefined;
  const [own, bound] = await Promise.all([metadata.getRole(namespace, p.name), metadata.bindingsOfGroups(groups)]);
  let best: { group: string; role: Role } | undefined;
  for (const b of bound) if (b.namespace === namespace && higherRole(best?.role, b.role) === b.role && b.role !== best?.role) best = { group: b.group, role: b.role };
  if (!best || higherRole(own, best.role) !== best.role || own === best.role) return undefined;
  return { ...best, ...(own ? { own } : {}) };
}

/** The principal's effective role in every namespace where it has one. */
export async function effectiveRoles(metadata: Metadata, p: Principal): Promise<Map<string, Role>> {
  const out = new Map<string, Role>();
  if (p.kind !== 'user') return out;
  const groups = groupsOf(p);
  const [own, bound] = await Promise.all([metadata.rolesOf(p.name), groups.length ? metadata.bindingsOfGroups(groups) : []]);
  for (const m of [...own, ...bound]) out.set(m.namespace, higherRole(out.get(m.namespace), m.role)!);
  return out;
}

/**
 * The groups worth carrying in a token: those bound to a role somewhere. A directory user may be
 * in hundreds of groups, and a token is sent in a header on every request.
 */
export async function boundGroups(metadata: Metadata, groups: readonly string[]): Promise<string[]> {
  if (groups.length === 0) return [];
  const keys = new Set((await metadata.bindingsOfGroups(groups)).map((b) => groupKey(b.group)));
  return groups.filter((g) => keys.has(groupKey(g)));
}
