import { UsageError } from '../../errors.js';
import type { ImmutableRule, Metadata, RetentionKind, RetentionRule, TagRecord } from './metadata/metadata.js';
import { RetentionKinds } from './metadata/metadata.js';
import { checkPattern, globMatches, pathInNamespace, ruleProtects } from './governance.js';

// Retention (Harbor's tag retention, issue 23): rules of a namespace say which tags to keep; a tag
// that some rule's patterns cover and no rule keeps goes, as do tags a `never` rule names and
// untagged manifests older than an `untagged-older-than` rule's days. Removing a tag leaves its
// manifest untagged; garbage collection then takes it, its referrers (signatures, SBOMs,
// attestations: their subject is gone) and the blobs nothing else uses. Immutable tags stay.

const DAY = 86_400_000;

/** What one evaluation removes, and what it leaves although a rule would remove it. */
export interface RetentionPlan {
  namespace: string;
  tags: { repository: string; tag: string; digest: string; why: string }[];
  untagged: { repository: string; digest: string; why: string }[];
  /** Tags a rule would remove that an immutability rule protects. */
  immutable: { repository: string; tag: string }[];
  /** Tags in the rules' scope that stay. */
  kept: number;
}

export function describeRetention(r: Pick<RetentionRule, 'kind' | 'value' | 'repos' | 'tags'>): string {
  const what: Record<RetentionKind, string> = {
    'latest-pushed': `keep the ${r.value} most recently pushed`,
    'latest-pulled': `keep the ${r.value} most recently pulled`,
    'pushed-within': `keep those pushed within ${r.value} days`,
    'pulled-within': `keep those pulled within ${r.value} days`,
    always: 'always keep',
    never: 'never keep',
    'untagged-older-than': `remove untagged manifests older than ${r.value} days`,
  };
  return r.kind === 'untagged-older-than' ? `${what[r.kind]} in repositories matching "${r.repos}"` : `${what[r.kind]} of tags matching "${r.tags}" in repositories matching "${r.repos}"`;
}

/** A rule as given by a person (CLI, API): checked, with the field named when it is wrong. */
export function checkRetentionRule(r: { repos: string; tags?: string; kind: string; value?: number }): { repos: string; tags: string; kind: RetentionKind; value: number } {
  if (!(RetentionKinds as readonly string[]).includes(r.kind)) throw new UsageError(`kind: "${r.kind}" is not a retention rule (${RetentionKinds.join(', ')})`);
  const kind = r.kind as RetentionKind;
  const needsValue = kind !== 'always' && kind !== 'never';
  const value = r.value ?? 0;
  if (needsValue && (!Number.isSafeInteger(value) || value < (kind.startsWith('latest') ? 1 : 0))) {
    throw new UsageError(`${kind}: expected ${kind.startsWith('latest') ? 'a count of at least 1' : 'a number of days'}`);
  }
  return { repos: checkPattern(r.repos, 'repos'), tags: kind === 'untagged-older-than' ? '**' : checkPattern(r.tags ?? '**', 'tags'), kind, value: needsValue ? value : 0 };
}

/** The tags of one repository that `rules` (those whose repository pattern matches it) remove. */
export function tagsToRemove(rules: RetentionRule[], tags: TagRecord[], now: number): { tag: TagRecord; why: string }[] {
  const tagRules = rules.filter((r) => r.kind !== 'untagged-older-than');
  const matches = (r: RetentionRule, t: TagRecord) => globMatches(t.tag, r.tags);
  const kept = new Set<string>();
  const inScope = new Set<string>();
  const never = new Map<string, RetentionRule>();
  for (const r of tagRules) {
    const mine = tags.filter((t) => matches(r, t));
    for (const t of mine) inScope.add(t.tag);
    const keep = (list: TagRecord[]) => list.forEach((t) => kept.add(t.tag));
    switch (r.kind) {
      case 'latest-pushed':
        keep([...mine].sort((a, b) => b.pushedAt - a.pushedAt || a.tag.localeCompare(b.tag)).slice(0, r.value));
        break;
      case 'latest-pulled':
        keep([...mine].filter((t) => t.pulledAt !== undefined).sort((a, b) => b.pulledAt! - a.pulledAt! || a.tag.localeCompare(b.tag)).slice(0, r.value));
        break;
      case 'pushed-within':
        keep(mine.filter((t) => t.pushedAt >= now - r.value * DAY));
        break;
      case 'pulled-within':
        keep(mine.filter((t) => t.pulledAt !== undefined && t.pulledAt >= now - r.value * DAY));
        break;
      case 'always':
        keep(mine);
        break;
      case 'never':
        for (const t of mine) if (!never.has(t.tag)) never.set(t.tag, r);
        break;
    }
  }
  const out: { tag: TagRecord; why: string }[] = [];
  for (const t of tags) {
    const always = tagRules.some((r) => r.kind === 'always' && matches(r, t));
    if (never.has(t.tag) && !always) out.push({ tag: t, why: `rule ${never.get(t.tag)!.id}: never keep` });
    else if (inScope.has(t.tag) && !kept.has(t.tag)) out.push({ tag: t, why: 'no rule keeps it' });
  }
  return out;
}

/**
 * Evaluate the namespace's rules now. With `force` unset, a plan that would remove every tag of
 * a repository is refused: rules that keep nothing are usually a mistake.
 */
export async function planRetention(metadata: Metadata, namespace: string, now: number, opts: { force?: boolean } = {}): Promise<RetentionPlan> {
  const rules = await metadata.retentionRules(namespace);
  const immutable: ImmutableRule[] = await metadata.immutableRules(namespace);
  const plan: RetentionPlan = { namespace, tags: [], untagged: [], immutable: [], kept: 0 };
  if (rules.length === 0) return plan;
  const emptied: string[] = [];
  for (const repository of await repositoriesOf(metadata, namespace)) {
    const mine = rules.filter((r) => globMatches(pathInNamespace(namespace, repository), r.repos));
    if (mine.length === 0) continue;
    const tags = await metadata.tagRecords(repository);
    const going = tagsToRemove(mine, tags, now);
    let removed = 0;
    for (const { tag, why } of going) {
      if (immutable.some((r) => ruleProtects(r, repository, tag.tag))) plan.immutable.push({ repository, tag: tag.tag });
      else {
        plan.tags.push({ repository, tag: tag.tag, digest: tag.digest, why });
        removed++;
      }
    }
    plan.kept += tags.length - removed;
    if (tags.length > 0 && removed === tags.length) emptied.push(repository);
    for (const r of mine.filter((x) => x.kind === 'untagged-older-than')) {
      for (const digest of await metadata.untaggedManifests(repository, now - r.value * DAY)) {
        if (!plan.untagged.some((u) => u.repository === repository && u.digest === digest)) plan.untagged.push({ repository, digest, why: `rule ${r.id}: untagged for more than ${r.value} days` });
      }
    }
  }
  if (emptied.length && !opts.force) {
    throw new UsageError(`retention of ${namespace} would remove every tag of ${emptied.join(', ')}: check the rules, or give --force`);
  }
  return plan;
}

/** The repositories of a namespace, in order. */
export async function repositoriesOf(metadata: Metadata, namespace: string): Promise<string[]> {
  const out: string[] = [];
  // Start just before the namespace's own name (names are ASCII): a one-component repository is its own namespace.
  let after: string | undefined = namespace.slice(0, -1) + String.fromCharCode(namespace.charCodeAt(namespace.length - 1) - 1) + '\uffff';
  for (;;) {
    const batch = await metadata.listRepositories(after, 1000);
    for (const r of batch) if (r === namespace || r.startsWith(namespace + '/')) out.push(r);
    // Repositories are listed in order: once past the namespace's names, none of it follows.
    if (batch.length < 1000 || (batch.length && batch[batch.length - 1]! > namespace + '/\uffff')) return out;
    after = batch[batch.length - 1];
  }
}

/** Carry out a plan: tags and untagged manifests deleted, each in the audit log as retention's. */
export async function applyRetention(metadata: Metadata, plan: RetentionPlan, actor: string, now: number): Promise<void> {
  for (const t of plan.tags) {
    // The tag may have moved since the plan was made: only the tag as planned goes.
    if ((await metadata.resolveTag(t.repository, t.tag)) !== t.digest) continue;
    await metadata.deleteTag(t.repository, t.tag);
  }
  for (const u of plan.untagged) {
    if ((await metadata.tagsOf(u.repository, u.digest)).length) continue;
    await metadata.deleteManifest(u.repository, u.digest);
  }
  const detail = `removed ${plan.tags.length} tags and ${plan.untagged.length} untagged manifests, kept ${plan.kept} tags${plan.immutable.length ? `, ${plan.immutable.length} immutable tags stay` : ''}`;
  await metadata.recordAudit([{ actor, time: now, action: 'retention', namespace: plan.namespace, detail }]);
}
