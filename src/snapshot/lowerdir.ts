import { relative } from 'node:path';

// The lowerdir= option of every overlay mount kiln makes (build steps, views, containers).
//
// overlayfs refuses the same directory twice in one lowerdir list (ELOOP, "overlapping lowerdir
// path"), and images do repeat a layer: two RUNs that change nothing but the same directory's
// metadata, two identical COPYs, a RUN that writes only into a cache mount, an image pulled or
// loaded with one digest listed twice. Each layer is extracted once, so a repeat is the same
// directory.
//
// Keeping only the topmost occurrence of each directory gives the same merged tree. overlayfs looks
// a path up from the top lower down (kernel Documentation/filesystems/overlayfs.rst, "Multiple
// lower layers", "whiteouts and opaque directories") and stops at the first layer whose entry is not
// a plain directory: a file, symlink, whiteout or opaque directory. A lower occurrence of a layer
// also present higher up has, at every path, exactly the entry the higher one has, which is found
// first: if that entry stops the lookup, the lower occurrence is never reached; if it is a plain
// directory, the directory's own metadata comes from the higher one (the topmost directory wins) and
// each name under it is again found in the higher one first. So the lower occurrence adds nothing and
// hides nothing, whatever lies between the two (whiteouts, opaque directories) or below, which it
// cannot shadow without the higher one shadowing it first. In layer-tar terms (OCI image-spec
// layer.md, applying changesets): applying a layer again writes every path it names again and
// deletes again what its whiteouts name, so the first application leaves nothing the second does
// not redo, and the tree is the one the layers give applied in order.
// test/snapshot/repeated-layers.test.ts compares the two, with whiteouts and opaque directories.

/** Longest lowerdir= value kiln passes: mount(2) takes one page of options, upperdir= and the rest need room too. */
const MAX_LOWERDIR = 3500;

/**
 * The lowerdir= value for `dirs` (top first): each directory once, at its topmost place, relative
 * to `cwd` (the directory the mount runs in) to keep the option short.
 */
export function lowerdirOption(cwd: string, dirs: readonly string[]): string {
  const kept = [...new Set(dirs)];
  const value = kept.map((d) => relative(cwd, d) || '.').join(':');
  if (value.length > MAX_LOWERDIR) throw new Error(`too many layers (${kept.length}) to stack in one overlay mount`);
  return value;
}
