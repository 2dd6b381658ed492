import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../../store/atomic.js';
import { encodedOf, algorithmOf } from '../../oci/digest.js';
import type { Store } from '../../store/store.js';
import type { Descriptor } from '../../oci/types.js';

// What the client remembers between runs, beside the store's blobs (<root>/distribution/):
//   sources/<alg>-<hex>     the registry/repository pairs a blob was pulled from or pushed to, one a
//                           line, so a push to another repository of the same registry can mount it;
//   compressed/<alg>-<hex>  for a layer stored uncompressed, the gzip blob made of it for a push, so a
//                           second push does not compress again. The gzip blob is ordinary content:
//                           if the store's GC removed it, it is made again (gzip here is deterministic).

function recordPath(store: Store, kind: 'sources' | 'compressed', digest: string): string {
  return join(store.root, 'distribution', kind, `${algorithmOf(digest)}-${encodedOf(digest)}`);
}

export async function blobSources(store: Store, digest: string): Promise<string[]> {
  const text = await readFile(recordPath(store, 'sources', digest), 'utf8').catch(() => '');
  return [...new Set(text.split('\n').filter(Boolean))].reverse();
}

/** Remember that `repository` (registry host/path) has `digest`. */
export async function addBlobSource(store: Store, digest: string, repository: string): Promise<void> {
  const known = await blobSources(store, digest);
  if (known.includes(repository)) return;
  const path = recordPath(store, 'sources', digest);
  await mkdir(join(path, '..'), { recursive: true });
  await appendFile(path, repository + '\n');
}

export async function compressedVariant(store: Store, digest: string): Promise<Descriptor | undefined> {
  try {
    const rec = JSON.parse(await readFile(recordPath(store, 'compressed', digest), 'utf8')) as { mediaType: string; encoded: string; algorithm: string; size: number };
    const d = `${rec.algorithm}:${rec.encoded}`;
    if (!existsSync(store.content.blobPath(d))) return undefined;
    return { mediaType: rec.mediaType, digest: d, size: rec.size };
  } catch {
    return undefined;
  }
}

export async function setCompressedVariant(store: Store, digest: string, variant: Descriptor): Promise<void> {
  const rec = { mediaType: variant.mediaType, algorithm: algorithmOf(variant.digest), encoded: encodedOf(variant.digest), size: variant.size };
  await writeFileAtomic(recordPath(store, 'compressed', digest), JSON.stringify(rec));
}
