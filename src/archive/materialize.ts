// Writing a COPY's entries straight into a directory: what applyLayer makes of their tar, without
// the tar. A COPY's layer is packed, hashed and compressed on one thread; the directory the next
// step mounts is made on another. Packing the tar a second time there and parsing it back only to
// extract it costs as much CPU as the packing itself; here file contents are copied by the kernel
// (copy_file_range), and a file that an earlier extraction of the same COPY already holds, with the
// same source, owner, mode and mtime, is hard-linked from it instead (extracted layers are never
// written again). Editing one file of a large context then costs one file's copy, not the context's.
//
// The result is named by the layer's diffID, which the packing thread computes from its own read of
// the sources. Both reads give the same bytes as long as no source changed in between, which
// sourcesUnchanged checks afterwards by the sources' identities (size, times, inode), the same test
// the build context's hash cache relies on.

import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { applyEntries, type ApplyOptions, type EntryToApply } from './apply.js';
import { entryContent, entryHeader, type LayerEntry, type PackEntriesOptions } from './pack.js';
import { sourceIdentity } from './identity.js';
import type { TarHeader } from './tar.js';

/** An earlier extraction of entries like these: its directory, and the identity of each file it holds. */
export interface Donor {
  dir: string;
  ids: Record<string, string>;
}

export interface Materialized {
  /** Layer path → identity of every file made from a source: what a later extraction may link from. */
  ids: Record<string, string>;
  /** Files hard-linked from the donor. */
  linked: number;
}

/**
 * Whether materializeEntries can make these entries: directories, symlinks, hard links, and files
 * given as content or as a source with an identity; no xattrs, no device nodes.
 */
export function canMaterialize(entries: readonly LayerEntry[]): boolean {
  return entries.every((e) => {
    if (e.xattrs && Object.keys(e.xattrs).length > 0) return false;
    if (e.type === 'file') return e.content !== undefined || e.sourcePath === undefined || e.sourceId !== undefined;
    return e.type === 'directory' || e.type === 'symlink' || e.type === 'hardlink';
  });
}

/** A file's identity as a donor records it: its source as it was, and its metadata in the layer. */
function donorId(e: LayerEntry, h: TarHeader): string | undefined {
  return e.sourceId === undefined ? undefined : `${e.sourceId}|${h.mode}|${h.uid}|${h.gid}|${h.mtime}`;
}

/**
 * Makes in `dest` what applyLayer(packEntries(entries, pack), dest, apply) would, linking from
 * `donor` the files it holds unchanged. The caller checks sourcesUnchanged once the layer's own
 * read of the sources is over, and uses `dest` only then.
 */
export async function materializeEntries(entries: readonly LayerEntry[], dest: string, pack: PackEntriesOptions, apply: ApplyOptions, donor?: Donor): Promise<Materialized> {
  const ids: Record<string, string> = {};
  function* toApply(): Generator<EntryToApply> {
    for (const e of entries) {
      const header = entryHeader(e, pack);
      if (e.type !== 'file') yield { header, body: [] };
      else if (e.content !== undefined) yield { header, body: [entryContent(e.content)] };
      else if (e.sourcePath === undefined) yield { header, body: [] };
      else {
        const id = donorId(e, header);
        if (id !== undefined) ids[header.path] = id;
        const same = donor !== undefined && id !== undefined && donor.ids[header.path] === id;
        yield { header, body: { copyFrom: e.sourcePath, ...(same ? { linkFrom: join(donor.dir, header.path) } : {}) } };
      }
    }
  }
  const { linked } = await applyEntries(toApply(), dest, apply);
  return { ids, linked };
}

/** Whether every source still is what it was when its entry was made. */
export function sourcesUnchanged(entries: readonly LayerEntry[]): boolean {
  for (const e of entries) {
    if (e.sourceId === undefined || e.sourcePath === undefined) continue;
    const st = lstatSync(e.sourcePath, { throwIfNoEntry: false });
    if (!st || sourceIdentity(st) !== e.sourceId) return false;
  }
  return true;
}
