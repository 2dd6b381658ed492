import type { Stats } from 'node:fs';

// A source file's identity, apart from the layer code that checks it, so that a build's context can
// name files without loading that code.

/** What identifies a file's content without reading it (the figures lstat gives). */
export type FileIdentity = Pick<Stats, 'size' | 'mtimeMs' | 'ctimeMs' | 'dev' | 'ino'>;

/** A file's identity as the build context sees it: size, modification and change times, device, inode. */
export function sourceIdentity(st: FileIdentity): string {
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.dev}:${st.ino}`;
}
