import type { ManifestListing } from './metadata.js';

// listManifests() of both backends: three plain reads (manifests, their references, their bases)
// joined here, so that the SQL stays a table scan on either database.

export interface ListingRows {
  manifests: { repo: string; digest: string; subject: string | null }[];
  refs: { repo: string; digest: string; child: string; kind: string; size: number | null }[];
  bases: { repo: string; digest: string; base: string; base_name: string | null }[];
}

export function manifestListing(rows: ListingRows): ManifestListing[] {
  const byKey = new Map<string, ManifestListing>();
  const key = (repo: string, digest: string) => repo + '\0' + digest;
  for (const m of rows.manifests) {
    byKey.set(key(m.repo, m.digest), { repository: m.repo, digest: m.digest, ...(m.subject ? { subject: m.subject } : {}), refs: { blobs: [], manifests: [] } });
  }
  for (const r of rows.refs) {
    const m = byKey.get(key(r.repo, r.digest));
    if (!m) continue; // the manifest was deleted between the reads
    if (r.kind === 'blob') m.refs.blobs.push({ digest: r.child, size: r.size ?? 0 });
    else m.refs.manifests.push(r.child);
  }
  for (const b of rows.bases) {
    const m = byKey.get(key(b.repo, b.digest));
    if (m) m.refs.base = { digest: b.base, ...(b.base_name ? { name: b.base_name } : {}) };
  }
  return [...byKey.values()];
}
