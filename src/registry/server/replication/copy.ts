import type { Descriptor, Index, Manifest } from '../../../oci/types.js';
import { isIndex } from '../../../oci/mediatypes.js';
import type { Side, StoredManifest } from './sides.js';

// Copying one image or index from a Side to another with the same digests: the manifests' exact
// bytes, an index's images before the index, blobs before the manifest that lists them (so the
// target never names what it lacks), each blob skipped when the target has it and mounted when
// another repository of the same run already put it there; then the manifests whose subject it
// is (signatures, SBOMs), by digest.

export interface CopyCounts {
  blobsCopied: number;
  blobsSkipped: number;
}

export interface CopyContext {
  from: Side;
  to: Side;
  /** Blob digest -> a repository of the target that has it (this run put or found it there). */
  placed: Map<string, string>;
  signal: AbortSignal;
}

export type CopyResult = { digest: string; skipped?: string } & CopyCounts;

/**
 * Copy `reference` (a tag or digest) of `source` to `target`. `accept` may refuse the image
 * (a label filter) with a reason; a target tag that names the digest already is "up to date".
 */
export async function copyArtifact(
  cx: CopyContext,
  source: string,
  target: string,
  reference: string,
  accept?: (m: StoredManifest) => Promise<string | undefined>,
): Promise<CopyResult> {
  const top = await cx.from.manifest(source, reference);
  if (!top) throw new ItemGone(`${cx.from.name}: ${source}${reference.includes(':') ? '@' : ':'}${reference} is gone`);
  const counts: CopyCounts = { blobsCopied: 0, blobsSkipped: 0 };
  const refused = accept ? await accept(top) : undefined;
  if (refused) return { digest: top.digest, skipped: refused, ...counts };
  const referrers = await cx.from.referrers(source, top.digest);
  if ((await cx.to.manifestDigest(target, reference)) === top.digest && (await missingReferrers(cx, target, referrers)).length === 0) {
    return { digest: top.digest, skipped: 'up to date', ...counts };
  }
  await copyTree(cx, source, target, top, counts);
  await cx.to.putManifest(target, reference, top);
  for (const r of await missingReferrers(cx, target, referrers)) {
    const m = await cx.from.manifest(source, r);
    if (!m) continue;
    await copyTree(cx, source, target, m, counts);
    await cx.to.putManifest(target, r, m);
  }
  return { digest: top.digest, ...counts };
}

async function missingReferrers(cx: CopyContext, target: string, referrers: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of referrers) if ((await cx.to.manifestDigest(target, r)) === undefined) out.push(r);
  return out;
}

/** What `m` lists, present on the target before `m` is put there. */
async function copyTree(cx: CopyContext, source: string, target: string, m: StoredManifest, counts: CopyCounts): Promise<void> {
  cx.signal.throwIfAborted();
  const doc = JSON.parse(m.bytes.toString('utf8')) as Manifest & Index;
  if (isIndex(m.mediaType) || Array.isArray(doc.manifests)) {
    for (const child of doc.manifests ?? []) {
      if ((await cx.to.manifestDigest(target, child.digest)) !== undefined) continue;
      const cm = await cx.from.manifest(source, child.digest);
      if (!cm) throw new ItemGone(`${cx.from.name}: ${source}@${child.digest}, listed by ${m.digest}, is gone`);
      await copyTree(cx, source, target, cm, counts);
      await cx.to.putManifest(target, child.digest, cm);
    }
    return;
  }
  const blobs = [...new Map([doc.config, ...(doc.layers ?? [])].filter((d): d is Descriptor => !!d?.digest).map((d) => [d.digest, d])).values()];
  for (const desc of blobs) {
    cx.signal.throwIfAborted();
    const elsewhere = cx.placed.get(desc.digest);
    const outcome = await cx.to.putBlob(target, desc, () => cx.from.openBlob(source, desc, cx.signal), elsewhere && elsewhere !== target ? [elsewhere] : [], cx.signal);
    cx.placed.set(desc.digest, target);
    if (outcome === 'pushed') counts.blobsCopied++;
    else counts.blobsSkipped++;
  }
}

/** An image's config labels, for a label filter. */
export async function imageLabels(side: Side, repository: string, m: StoredManifest): Promise<Record<string, string>[]> {
  const doc = JSON.parse(m.bytes.toString('utf8')) as Manifest & Index;
  if (isIndex(m.mediaType) || Array.isArray(doc.manifests)) {
    const out: Record<string, string>[] = [];
    for (const child of doc.manifests ?? []) {
      const cm = await side.manifest(repository, child.digest);
      if (cm) out.push(...(await imageLabels(side, repository, cm)));
    }
    return out;
  }
  if (!doc.config?.digest) return [];
  const bytes = await side.smallBlob(repository, doc.config);
  try {
    const config = JSON.parse(bytes.toString('utf8')) as { config?: { Labels?: Record<string, string> | null } };
    return [config.config?.Labels ?? {}];
  } catch {
    // Not a JSON image config (an artifact): no labels.
    return [{}];
  }
}

/** The source no longer has what the item names: the item fails, the run goes on. */
export class ItemGone extends Error {}
