import { blobKey, digestOfKey, StorageNotFound, trashKey, type BlobDriver } from './storage/driver.js';
import type { Metadata } from './metadata/metadata.js';

// Garbage collection while pushes go on. Marking and sweeping the database happen in one write
// transaction, so a manifest push (which checks its blobs in its own transaction) sees either the
// blobs before GC or their absence — never a manifest pointing at a blob GC is deleting. Files move
// to a trash inside that transaction and are deleted after it commits (containerd's GC also
// separates the metadata sweep from content deletion). A grace period keeps blobs uploaded but not
// yet referenced, manifests pushed by digest just before their index, and blobs a client just checked.

export interface GcReport {
  dryRun: boolean;
  manifests: { repository: string; digest: string }[];
  links: number;
  blobs: string[];
  bytes: number;
  /** Blob files with no database row (a crash between rename and commit) that were removed. */
  orphans: number;
}

export async function collectGarbage(opts: { metadata: Metadata; driver: BlobDriver; graceSeconds: number; dryRun?: boolean; now?: number }): Promise<GcReport> {
  const { metadata, driver } = opts;
  const now = opts.now ?? Date.now();
  const graceMs = opts.graceSeconds * 1000;
  const dryRun = !!opts.dryRun;

  const swept = await metadata.exclusive(async (w) => {
    const g = w.findGarbage(now, graceMs);
    if (dryRun) return { manifests: g.manifests, links: g.links.length, blobs: g.blobs };
    for (const m of g.manifests) w.removeManifest(m.repository, m.digest);
    for (const l of g.links) w.removeLink(l.repository, l.digest);
    const removed: { digest: string; size: number }[] = [];
    for (const b of g.blobs) {
      if (!w.removeBlobIfUnused(b.digest, now, graceMs)) continue;
      try {
        await driver.move(blobKey(b.digest), trashKey(b.digest));
      } catch (e) {
        if (!(e instanceof StorageNotFound)) throw e;
      }
      removed.push(b);
    }
    return { manifests: g.manifests, links: g.links.length, blobs: removed };
  });
  if (!dryRun) for (const b of swept.blobs) await driver.delete(trashKey(b.digest));

  // Files without rows: list outside the lock, delete inside it after checking again.
  const orphanCandidates: string[] = [];
  for (const alg of ['sha256', 'sha512']) {
    for await (const o of driver.list(alg)) {
      const d = digestOfKey(o.key);
      if (d && o.modified.getTime() < now - graceMs && (await metadata.blobSize(d)) === undefined) orphanCandidates.push(d);
    }
  }
  let orphans = 0;
  if (orphanCandidates.length) {
    orphans = await metadata.exclusive(async (w) => {
      let n = 0;
      for (const d of orphanCandidates) {
        if (w.blobExists(d)) continue;
        if (!dryRun) await driver.delete(blobKey(d));
        n++;
      }
      return n;
    });
  }
  return {
    dryRun,
    manifests: swept.manifests,
    links: swept.links,
    blobs: swept.blobs.map((b) => b.digest),
    bytes: swept.blobs.reduce((n, b) => n + b.size, 0),
    orphans,
  };
}

/**
 * After a crash in the middle of a sweep: trash whose row survived (the transaction rolled back)
 * goes back into place; trash whose row is gone is deleted.
 */
export async function recoverTrash(metadata: Metadata, driver: BlobDriver): Promise<void> {
  for await (const o of driver.list('_trash')) {
    const m = /^_trash\/(sha256|sha512)-([0-9a-f]+)$/.exec(o.key);
    if (!m) continue;
    const digest = `${m[1]}:${m[2]}`;
    if ((await metadata.blobSize(digest)) !== undefined && !(await driver.stat(blobKey(digest)))) await driver.move(o.key, blobKey(digest));
    else await driver.delete(o.key);
  }
}
