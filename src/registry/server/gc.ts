import { blobKey, StorageNotFound, type BlobDriver } from './storage/driver.js';
import type { Metadata } from './metadata/metadata.js';
import type { GcReport } from './governance-rows.js';

export type { GcReport };

// Garbage collection while pushes and pulls go on, in any number of processes at once, with no
// lock: a read finds the candidates, then each is removed by a change that checks again, in the
// same statement, that nothing references it and that its grace period has passed (GcRows in
// metadata/metadata.ts). A blob's bytes are deleted only after its row is marked 'deleting',
// which no reader, mount or manifest accepts; an upload of the same digest meanwhile writes new
// bytes under a new key and takes the row back. A collector that dies leaves rows marked
// 'deleting', which the next run, in any process, finishes. The grace period keeps blobs
// uploaded but not yet referenced, manifests pushed by digest just before their index, and blobs
// a client was just told exist.

/** A report in one line, as the audit log keeps it: "2 manifests, 5 blobs, 10240 bytes". */
export function gcSummary(r: GcReport): string {
  return `${r.manifests.length} manifests, ${r.blobs.length} blobs, ${r.bytes} bytes`;
}

/** Where objects of blobs live: keys of new uploads, and the digest paths of blobs stored before keys existed. */
const objectPrefixes = ['data', 'sha256', 'sha512'];

export async function collectGarbage(opts: { metadata: Metadata; driver: BlobDriver; graceSeconds: number; dryRun?: boolean; now?: number }): Promise<GcReport> {
  const { metadata, driver } = opts;
  const now = opts.now ?? Date.now();
  const cutoff = now - opts.graceSeconds * 1000;
  const dryRun = !!opts.dryRun;

  let lost = 0;
  if (!dryRun) {
    await finishDeletions(metadata, driver);
    lost = await repairMissing(metadata, driver);
  }
  const found = await metadata.findGarbage(cutoff);
  const orphans = await removeOrphans(metadata, driver, cutoff, dryRun);
  if (dryRun) {
    return {
      dryRun,
      manifests: found.manifests,
      links: found.links.length,
      blobs: found.blobs.map((b) => b.digest),
      bytes: found.blobs.reduce((n, b) => n + b.size, 0),
      orphans,
      lost,
    };
  }

  // Parents before children, subjects before referrers (findGarbage's order), so each check finds
  // the references of the ones removed before it gone.
  const manifests: { repository: string; digest: string }[] = [];
  for (const m of found.manifests) if (await metadata.removeManifestIfUnused(m.repository, m.digest, cutoff)) manifests.push(m);
  let links = 0;
  for (const l of found.links) if (await metadata.removeLinkIfUnused(l.repository, l.digest, cutoff)) links++;
  const blobs: string[] = [];
  let bytes = 0;
  for (const b of found.blobs) {
    const key = await metadata.claimBlob(b.digest, cutoff);
    if (key === undefined) continue;
    await driver.delete(key);
    await metadata.forgetBlob(b.digest, key);
    blobs.push(b.digest);
    bytes += b.size;
  }
  return { dryRun, manifests, links, blobs, bytes, orphans, lost };
}

/** Rows a collector marked 'deleting' and did not finish (it was killed, or its process died). */
async function finishDeletions(metadata: Metadata, driver: BlobDriver): Promise<void> {
  for (const b of await metadata.deletingBlobs()) {
    await driver.delete(b.key);
    await metadata.forgetBlob(b.digest, b.key);
  }
}

/**
 * Blobs a read found no bytes for: live again when the object is there after all (a store that
 * was briefly wrong), else their rows go, so HEAD says 404 and the next push uploads them.
 */
async function repairMissing(metadata: Metadata, driver: BlobDriver): Promise<number> {
  let lost = 0;
  for (const b of await metadata.missingBlobs()) {
    if (await driver.stat(b.key)) await metadata.restoreBlob(b.digest, b.key);
    else {
      await metadata.forgetBlob(b.digest, b.key);
      lost++;
    }
  }
  return lost;
}

/**
 * Objects no row or upload session uses, older than the grace period: what a process left when it
 * died between storing bytes and recording them. Younger ones may be about to be recorded.
 */
async function removeOrphans(metadata: Metadata, driver: BlobDriver, cutoff: number, dryRun: boolean): Promise<number> {
  let n = 0;
  for (const prefix of objectPrefixes) {
    for await (const o of driver.list(prefix)) {
      if (o.modified.getTime() >= cutoff || (await metadata.keyInUse(o.key))) continue;
      if (!dryRun) await driver.delete(o.key);
      n++;
    }
  }
  return n;
}

/**
 * Trash that collectors of earlier versions (which moved blobs to _trash inside a transaction)
 * left when they crashed: a blob whose row survived goes back into place, the rest is deleted.
 */
export async function recoverTrash(metadata: Metadata, driver: BlobDriver): Promise<void> {
  for await (const o of driver.list('_trash')) {
    const m = /^_trash\/(sha256|sha512)-([0-9a-f]+)$/.exec(o.key);
    if (!m) continue;
    const digest = `${m[1]}:${m[2]}`;
    const row = await metadata.blob(digest);
    if (row && row.key === blobKey(digest) && !(await driver.stat(row.key))) {
      try {
        await driver.move(o.key, row.key);
      } catch (e) {
        if (!(e instanceof StorageNotFound)) throw e;
      }
    } else await driver.delete(o.key);
  }
}
