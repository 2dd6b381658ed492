// How a layer records deletions. OCI image-spec layer.md, "Whiteouts": a file named `.wh.NAME`
// deletes NAME from the layers below; a file named `.wh..wh..opq` in a directory hides everything
// the layers below have in that directory ("opaque whiteout"). Names starting with `.wh..wh.` are
// otherwise reserved (AUFS kept its own metadata there) and carry nothing to apply.
//
// overlayfs records the same facts differently (kernel Documentation/filesystems/overlayfs.rst):
// a deleted NAME is a character device 0/0 named NAME in the upper directory, and an opaque
// directory carries the xattr `trusted.overlay.opaque=y` (`user.overlay.opaque` when mounted with
// userxattr, as rootless overlay is).

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** What a base name in a layer tar means: an ordinary entry, the deletion of `target`, or an opaque directory marker. */
export type Whiteout = { kind: 'none' } | { kind: 'whiteout'; target: string } | { kind: 'opaque' } | { kind: 'meta' };

export function classifyWhiteout(base: string): Whiteout {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque' };
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  return { kind: 'whiteout', target: base.slice(WHITEOUT_PREFIX.length) };
}

/** The layer-tar name that deletes `name` (a base name). */
export function whiteoutName(name: string): string {
  return WHITEOUT_PREFIX + name;
}

/** overlayfs' own bookkeeping xattrs: never carried into a layer, never taken from one. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** The xattr overlayfs reads to decide a directory is opaque, in the namespace the mount uses. */
export function opaqueXattr(namespace: 'trusted' | 'user'): string {
  return `${namespace}.overlay.opaque`;
}
