import type { RegistryEvent, RegistryEventType } from '../events.js';
import { namespaceOf } from '../names.js';
import { pathInNamespace } from '../governance.js';

// The JSON a receiver gets, modelled on Harbor's webhook payload (type, occur_at, operator,
// event_data.resources and .repository) so receivers written for Harbor read most of it; kiln's
// own fields sit beside those in event_data. docs/registry.md gives the schema and an example of
// each type. The body is fixed when the delivery is queued: every attempt sends the same bytes.

export interface Resource {
  digest: string;
  tag?: string;
  /** What a client pulls: host/repository:tag or host/repository@digest. */
  resource_url: string;
}

export interface RepositoryInfo {
  /** The path below the namespace (Harbor's "name"). */
  name: string;
  namespace: string;
  repo_full_name: string;
}

export interface WebhookPayload {
  type: RegistryEventType;
  /** Unix seconds (Harbor's unit). */
  occur_at: number;
  operator: string;
  event_data: {
    resources: Resource[];
    repository?: RepositoryInfo;
    [kiln: string]: unknown;
  };
}

const repositoryInfo = (repository: string): RepositoryInfo => {
  const namespace = namespaceOf(repository);
  return { name: pathInNamespace(namespace, repository), namespace, repo_full_name: repository };
};

/**
 * The payloads of one event, each with the namespace whose hooks receive it. Most events concern
 * one namespace; "base-updated" goes to every namespace with an affected image, each payload
 * listing only that namespace's images (one team is not told about another's).
 */
export function payloadsOf(e: RegistryEvent, host: string): { namespace: string; payload: WebhookPayload }[] {
  const url = (repository: string, ref: { tag?: string; digest: string }): Resource => ({
    digest: ref.digest,
    ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
    resource_url: `${host}/${repository}${ref.tag !== undefined ? `:${ref.tag}` : `@${ref.digest}`}`,
  });
  const tagged = (repository: string, digest: string, tags: string[]) => (tags.length ? tags.map((tag) => url(repository, { tag, digest })) : [url(repository, { digest })]);
  const base = { type: e.type, occur_at: Math.floor(e.at / 1000), operator: e.actor };
  const one = (namespace: string, event_data: WebhookPayload['event_data']) => [{ namespace, payload: { ...base, event_data } }];

  switch (e.type) {
    case 'push':
      return one(namespaceOf(e.repository), {
        resources: tagged(e.repository, e.digest, e.tags),
        repository: repositoryInfo(e.repository),
        media_type: e.mediaType,
        size: e.size,
        ...(e.subject ? { subject: e.subject } : {}),
      });
    case 'pull': {
      const tag = e.reference.includes(':') ? undefined : e.reference;
      return one(namespaceOf(e.repository), { resources: [url(e.repository, { tag, digest: e.digest })], repository: repositoryInfo(e.repository), media_type: e.mediaType });
    }
    case 'delete':
      return one(namespaceOf(e.repository), { resources: tagged(e.repository, e.digest, e.tags), repository: repositoryInfo(e.repository), tag_only: e.tagOnly });
    case 'promote':
      return one(namespaceOf(e.repository), { resources: [url(e.repository, { tag: e.tag, digest: e.digest })], repository: repositoryInfo(e.repository), source: e.source });
    case 'quota-exceeded':
      return one(e.namespace, {
        resources: [{ digest: e.digest, resource_url: `${host}/${e.repository}@${e.digest}` }],
        repository: repositoryInfo(e.repository),
        quota: { namespace: e.namespace, limit_bytes: e.quota, used_bytes: e.used, requested_bytes: e.size },
      });
    case 'retention':
      return one(e.namespace, {
        resources: [...e.tags.map((t) => url(t.repository, { tag: t.tag, digest: t.digest })), ...e.untagged.map((u) => url(u.repository, { digest: u.digest }))],
        retention: {
          namespace: e.namespace,
          dry_run: e.dryRun,
          deleted_tags: e.tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest })),
          deleted_untagged: e.untagged.map((u) => ({ repository: u.repository, digest: u.digest })),
        },
      });
    case 'replication': {
      // A rule belongs to one (local) namespace: its hooks hear of the rule's runs.
      return one(e.namespace, { resources: [], replication: { rule: e.rule, run: e.run, status: e.status, copied: e.copied, failed: e.failed, ...(e.error ? { error: e.error } : {}) } });
    }
    case 'base-updated': {
      const byNamespace = new Map<string, typeof e.affected>();
      for (const a of e.affected) {
        const ns = namespaceOf(a.repository);
        byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), a]);
      }
      return [...byNamespace].map(([namespace, affected]) => ({
        namespace,
        payload: {
          ...base,
          event_data: {
            resources: tagged(e.repository, e.digest, e.tags),
            repository: repositoryInfo(e.repository),
            affected: affected.map((a) => ({ repository: a.repository, digest: a.digest, tags: a.tags, base_digest: a.base, resource_url: tagged(a.repository, a.digest, a.tags)[0]!.resource_url })),
          },
        },
      }));
    }
  }
}
