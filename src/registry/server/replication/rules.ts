import { UsageError } from '../../../errors.js';
import { isLoopback } from '../../client/config.js';
import type { ReplicationRule } from '../metadata/metadata.js';
import { checkPattern, globMatches, pathInNamespace } from '../governance.js';
import { isName, isNamespace } from '../names.js';

// What a replication rule says, checked once when it is given (CLI, API), and the two questions
// a run asks of it: does a repository and tag fall under it, and what is the repository called on
// the other side.

const ruleNameRe = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const labelRe = /^[^=\s]{1,256}=.{0,1024}$/s;

/** A rule as a person gives it: strings and flags, before checking. */
export interface ReplicationRuleInput {
  name: string;
  direction?: string;
  remote?: string;
  namespace?: string;
  remoteNamespace?: string;
  repos?: string;
  tags?: string;
  label?: string;
  trigger?: string;
  /** Seconds. */
  interval?: number;
  username?: string;
  password?: string;
  insecure?: boolean;
  enabled?: boolean;
}

/** The rule to store, or a UsageError naming the field that is wrong. */
export function checkReplicationRule(i: ReplicationRuleInput, createdBy: string, now: number): Omit<ReplicationRule, 'id'> {
  if (!ruleNameRe.test(i.name)) throw new UsageError(`name "${i.name.slice(0, 100)}": lower-case letters, digits and . _ - (at most 64)`);
  if (i.direction !== 'push' && i.direction !== 'pull') throw new UsageError(`direction: "${String(i.direction ?? '')}" is neither push (kiln to the remote) nor pull (the remote to kiln)`);
  const remote = checkRemote(i.remote, i.insecure === true);
  if (i.namespace === undefined || !isNamespace(i.namespace)) throw new UsageError(`namespace "${i.namespace ?? ''}": a local namespace (lower-case letters, digits and . _ - separators)`);
  if (i.remoteNamespace !== undefined && !isName(i.remoteNamespace)) throw new UsageError(`remote-namespace "${i.remoteNamespace.slice(0, 300)}": a repository path prefix on the remote (team, or org/team)`);
  const trigger = i.trigger ?? 'manual';
  if (trigger !== 'manual' && trigger !== 'schedule' && trigger !== 'event') throw new UsageError(`trigger: "${trigger}" is not manual, schedule or event`);
  if (trigger === 'event' && i.direction !== 'push') throw new UsageError('trigger event: only push rules follow push events (a pull rule has no events from the remote; use schedule)');
  if (trigger === 'schedule' && (i.interval === undefined || !(i.interval >= 1))) throw new UsageError('interval: a schedule needs an interval of at least 1s (30s, 10m, 1h…)');
  if (trigger !== 'schedule' && i.interval !== undefined) throw new UsageError('interval: only with --trigger schedule');
  if (i.label !== undefined && !labelRe.test(i.label)) throw new UsageError(`label "${i.label.slice(0, 100)}": expected KEY=VALUE`);
  if ((i.username === undefined) !== (i.password === undefined)) throw new UsageError(i.username === undefined ? 'password: give the username too' : 'username: give the password too (--password-stdin)');
  if (i.username !== undefined && (i.username === '' || i.username.length > 256 || /[:\s]/.test(i.username))) throw new UsageError('username: 1 to 256 characters, no spaces or colons');
  if (i.password !== undefined && (i.password === '' || i.password.length > 4096)) throw new UsageError('password: 1 to 4096 characters');
  return {
    name: i.name,
    direction: i.direction,
    remote,
    namespace: i.namespace,
    remoteNamespace: i.remoteNamespace,
    repos: checkPattern(i.repos ?? '**', 'repos'),
    tags: checkPattern(i.tags ?? '**', 'tags'),
    label: i.label,
    trigger,
    interval: trigger === 'schedule' ? i.interval : undefined,
    username: i.username,
    secret: i.password,
    insecure: i.insecure === true,
    enabled: i.enabled !== false,
    createdBy,
    createdAt: now,
  };
}

/** http(s)://host[:port], nothing else; plain HTTP only to loopback unless insecure. */
function checkRemote(v: string | undefined, insecure: boolean): string {
  let u: URL;
  try {
    u = new URL(v ?? '');
  } catch {
    throw new UsageError(`remote "${(v ?? '').slice(0, 200)}": expected a URL such as https://registry.example.com or http://127.0.0.1:5000`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`remote ${v}: only http:// and https:// registries`);
  if (u.username || u.password) throw new UsageError('remote: no credentials in the URL; give --username and --password-stdin');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) throw new UsageError(`remote ${v}: the registry's address only (no path; repositories come from --remote-namespace)`);
  if (u.protocol === 'http:' && !insecure && !isLoopback(u.host)) throw new UsageError(`remote ${v}: plain HTTP to a host other than loopback sends credentials and images in clear; give --insecure if you mean it`);
  return `${u.protocol}//${u.host}`;
}

/** The remote's name for the local namespace. */
export function remotePrefix(rule: ReplicationRule): string {
  return rule.remoteNamespace ?? rule.namespace;
}

/** Whether the rule covers `repository` (a local name for push rules, a remote one for pull rules). */
export function coversRepository(rule: ReplicationRule, repository: string): boolean {
  const base = rule.direction === 'push' ? rule.namespace : remotePrefix(rule);
  if (repository !== base && !repository.startsWith(base + '/')) return false;
  return globMatches(pathInNamespace(base, repository), rule.repos);
}

export function coversTag(rule: ReplicationRule, tag: string): boolean {
  return globMatches(tag, rule.tags);
}

/** The repository a run writes for the one it reads: the namespace (prefix) swapped. */
export function targetRepository(rule: ReplicationRule, source: string): string {
  const [from, to] = rule.direction === 'push' ? [rule.namespace, remotePrefix(rule)] : [remotePrefix(rule), rule.namespace];
  return source === from ? to : to + source.slice(from.length);
}

/** One line for listings and the audit log (never the secret). */
export function describeReplicationRule(r: ReplicationRule): string {
  const local = `${r.namespace}/${r.repos}:${r.tags}`;
  const remote = `${r.remote}/${remotePrefix(r)}`;
  const filters = r.label ? ` with label ${r.label}` : '';
  const trigger = r.trigger === 'schedule' ? `every ${r.interval}s` : r.trigger === 'event' ? 'on push' : 'manual';
  return `${r.direction} ${r.direction === 'push' ? `${local} to ${remote}` : `${remote} (${r.repos}:${r.tags}) into ${r.namespace}`}${filters}, ${trigger}${r.username ? `, as ${r.username}` : ''}${r.enabled ? '' : ', disabled'}`;
}
