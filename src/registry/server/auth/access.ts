import type { Role, RobotRecord, UserRecord } from '../metadata/metadata.js';

// Who may do what. Repository actions follow the Docker token scopes (pull, push, delete) plus
// "promote": moving an existing tag to another manifest. Roles follow Harbor's project roles
// (goharbor.io "User Permissions By Role"): limited guests only pull; guests also see members and
// logs; developers push and create tags; maintainers also delete and promote; admins also manage
// members and robot accounts. System administrators may do everything everywhere.

export type Action = 'pull' | 'push' | 'delete' | 'promote';
export const Actions: readonly Action[] = ['pull', 'push', 'delete', 'promote'];

export const RoleActions: Record<Role, readonly Action[]> = {
  admin: ['pull', 'push', 'delete', 'promote'],
  maintainer: ['pull', 'push', 'delete', 'promote'],
  developer: ['pull', 'push'],
  guest: ['pull'],
  'limited-guest': ['pull'],
};

/** Namespace management permissions, beyond repository actions. */
// Webhooks as Harbor's: maintainers see them and their delivery log, admins change them.
export type NamespacePermission = 'members:read' | 'members:write' | 'robots:write' | 'audit:read' | 'webhooks:read' | 'webhooks:write';
export const NamespacePermissions: readonly NamespacePermission[] = ['members:read', 'members:write', 'robots:write', 'audit:read', 'webhooks:read', 'webhooks:write'];
const RolePermissions: Record<Role, readonly NamespacePermission[]> = {
  admin: ['members:read', 'members:write', 'robots:write', 'audit:read', 'webhooks:read', 'webhooks:write'],
  maintainer: ['members:read', 'audit:read', 'webhooks:read'],
  developer: ['members:read', 'audit:read'],
  guest: ['members:read', 'audit:read'],
  'limited-guest': [],
};

export function roleAllows(role: Role | undefined, p: NamespacePermission): boolean {
  return !!role && RolePermissions[role].includes(p);
}

/** Someone who authenticated (or did not). */
export type Principal =
  | { kind: 'anonymous'; name: 'anonymous' }
  /** groups: what the user's identity provider said at sign-in (none for local users). */
  | { kind: 'user'; name: string; user: UserRecord; groups?: readonly string[] }
  | { kind: 'robot'; name: string; robot: RobotRecord };

export function isSystemAdmin(p: Principal): boolean {
  return p.kind === 'user' && p.user.admin;
}

/** Actions `p` may take on repositories of a namespace, given its role there and whether anonymous pull is on. */
export function allowedActions(p: Principal, namespace: string, role: Role | undefined, publicNamespace: boolean): Action[] {
  const out = new Set<Action>();
  if (publicNamespace) out.add('pull');
  if (p.kind === 'user') {
    if (p.user.admin) return [...Actions];
    for (const a of role ? RoleActions[role] : []) out.add(a);
  } else if (p.kind === 'robot') {
    const r = p.robot;
    const live = r.expiresAt === undefined || r.expiresAt * 1000 > Date.now();
    if (live && r.namespace === namespace) for (const a of r.actions) if ((Actions as string[]).includes(a)) out.add(a as Action);
  }
  return Actions.filter((a) => out.has(a));
}

/**
 * Docker token spec: the granted actions are those requested and allowed. "*" asks for all;
 * "promote" comes with "push" for those allowed to move tags, since clients only ask for push.
 */
export function grant(requested: string[], allowed: Action[]): Action[] {
  const want = new Set<string>(requested.includes('*') ? allowed : requested);
  if (want.has('push')) want.add('promote');
  return allowed.filter((a) => want.has(a));
}

export interface Scope {
  type: string;
  name: string;
  actions: string[];
}

/** "repository:team/app:pull,push" → {type, name, actions}; the name may not contain ':' except a registry port. */
export function parseScope(s: string): Scope | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  let type = s.slice(0, first);
  const paren = type.indexOf('(');
  if (paren >= 0) type = type.slice(0, paren);
  return { type, name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',').filter(Boolean) };
}
