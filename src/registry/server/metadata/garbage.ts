import type { GcCandidates } from './metadata.js';

// The mark of garbage collection, the same for every backend: given a read of the rows, what no
// tag reaches and whose grace period is over. It changes nothing; the backend removes each
// candidate with a change that checks again (see GcRows in metadata.ts).

export interface GcSnapshot {
  manifests: { repo: string; digest: string; last_used: number; subject: string | null }[];
  tags: { repo: string; digest: string }[];
  refs: { repo: string; digest: string; child: string; kind: string }[];
  links: { repo: string; digest: string; last_used: number }[];
  /** Live blobs only. */
  blobs: { digest: string; size: number; last_used: number }[];
}

const key = (repo: string, digest: string) => `${repo}\0${digest}`;

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

export function markGarbage(rows: GcSnapshot, cutoff: number): GcCandidates {
  const children = new Map<string, string[]>();
  const blobRefs = new Map<string, string[]>();
  for (const r of rows.refs) push(r.kind === 'manifest' ? children : blobRefs, key(r.repo, r.digest), r.child);
  const referrersOf = new Map<string, string[]>();
  for (const m of rows.manifests) if (m.subject) push(referrersOf, key(m.repo, m.subject), m.digest);

  // Roots: tagged manifests and those still in their grace period. Children of a live index and
  // referrers of a live manifest are live too (distribution-spec: referrers follow their subject).
  const live = new Set<string>();
  const queue: [string, string][] = [];
  const mark = (repo: string, d: string) => {
    const k = key(repo, d);
    if (live.has(k)) return;
    live.add(k);
    queue.push([repo, d]);
  };
  for (const t of rows.tags) mark(t.repo, t.digest);
  for (const m of rows.manifests) if (m.last_used >= cutoff) mark(m.repo, m.digest);
  while (queue.length) {
    const [repo, d] = queue.pop()!;
    for (const c of children.get(key(repo, d)) ?? []) mark(repo, c);
    for (const r of referrersOf.get(key(repo, d)) ?? []) mark(repo, r);
  }

  const dead = rows.manifests.filter((m) => !live.has(key(m.repo, m.digest)));
  const usedLinks = new Set<string>();
  const usedBlobs = new Set<string>();
  for (const k of live) {
    const repo = k.slice(0, k.indexOf('\0'));
    for (const b of blobRefs.get(k) ?? []) {
      usedLinks.add(key(repo, b));
      usedBlobs.add(b);
    }
  }
  const deadLinks = rows.links.filter((l) => !usedLinks.has(key(l.repo, l.digest)) && l.last_used < cutoff);
  const deadLinkKeys = new Set(deadLinks.map((l) => key(l.repo, l.digest)));
  const linked = new Set(rows.links.filter((l) => !deadLinkKeys.has(key(l.repo, l.digest))).map((l) => l.digest));
  const deadBlobs = rows.blobs.filter((b) => !usedBlobs.has(b.digest) && !linked.has(b.digest) && b.last_used < cutoff);
  return {
    manifests: orderForRemoval(dead, children, referrersOf),
    links: deadLinks.map((l) => ({ repository: l.repo, digest: l.digest })),
    blobs: deadBlobs.map((b) => ({ digest: b.digest, size: b.size })),
  };
}

/**
 * Dead manifests with every parent index before the manifests it lists and every subject before
 * its referrers: each conditional removal then finds nothing left that references its manifest.
 */
function orderForRemoval(
  dead: { repo: string; digest: string }[],
  children: Map<string, string[]>,
  referrersOf: Map<string, string[]>,
): { repository: string; digest: string }[] {
  const deadKeys = new Set(dead.map((m) => key(m.repo, m.digest)));
  // Edges from what references to what is referenced: parent -> child, subject -> referrer.
  const incoming = new Map<string, number>();
  const next = new Map<string, string[]>();
  for (const m of dead) {
    const k = key(m.repo, m.digest);
    const followers = [...(children.get(k) ?? []), ...(referrersOf.get(k) ?? [])].map((d) => key(m.repo, d)).filter((f) => deadKeys.has(f) && f !== k);
    next.set(k, followers);
    for (const f of followers) incoming.set(f, (incoming.get(f) ?? 0) + 1);
  }
  const ready = [...deadKeys].filter((k) => !incoming.get(k));
  const out: { repository: string; digest: string }[] = [];
  const seen = new Set<string>();
  while (ready.length) {
    const k = ready.shift()!;
    if (seen.has(k)) continue;
    seen.add(k);
    const sep = k.indexOf('\0');
    out.push({ repository: k.slice(0, sep), digest: k.slice(sep + 1) });
    for (const f of next.get(k) ?? []) {
      const n = (incoming.get(f) ?? 0) - 1;
      incoming.set(f, n);
      if (n === 0) ready.push(f);
    }
  }
  // A cycle cannot be built from content-addressed manifests, but a referrer may name itself: keep the rest anyway.
  for (const k of deadKeys) {
    if (seen.has(k)) continue;
    const sep = k.indexOf('\0');
    out.push({ repository: k.slice(0, sep), digest: k.slice(sep + 1) });
  }
  return out;
}
