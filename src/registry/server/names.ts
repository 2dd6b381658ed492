import { isDigest } from '../../oci/digest.js';
import { digestInvalid, nameInvalid, tagInvalid } from './errors.js';

// OCI distribution-spec "Pulling manifests": the grammar of <name> and of tags.
const nameRe = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagRe = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// Anything shaped like algorithm:encoded is meant as a digest, whatever its algorithm (image-spec descriptor.md).
const digestShapeRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** Clients limit host + "/" + name to 255 characters; names alone are held to that too. */
export const NameMaxLength = 255;

export function isName(name: string): boolean {
  return name.length > 0 && name.length <= NameMaxLength && nameRe.test(name);
}

export function assertName(name: string): string {
  if (!isName(name)) throw nameInvalid(name);
  return name;
}

/** The namespace (project) a repository belongs to: its first path component. */
export function namespaceOf(name: string): string {
  const i = name.indexOf('/');
  return i < 0 ? name : name.slice(0, i);
}

export function isNamespace(ns: string): boolean {
  return ns.length > 0 && ns.length <= NameMaxLength && !ns.includes('/') && nameRe.test(ns);
}

export function isTag(s: string): boolean {
  return tagRe.test(s);
}

/** A sha256 or sha512 digest kiln can verify; other shapes are DIGEST_INVALID. */
export function assertDigest(s: string): string {
  if (!isDigest(s)) throw digestInvalid(`invalid digest "${s.slice(0, 200)}": expected sha256:<64 hex> or sha512:<128 hex>`, { digest: s.slice(0, 200) });
  return s;
}

export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** `<tag-or-digest>`: a tag, or a digest (invalid digests are DIGEST_INVALID, invalid tags TAG_INVALID). */
export function parseManifestReference(ref: string): ManifestReference {
  if (ref.includes(':')) {
    if (!digestShapeRe.test(ref) && !isDigest(ref)) throw digestInvalid(`invalid digest "${ref.slice(0, 200)}"`, { digest: ref.slice(0, 200) });
    return { kind: 'digest', digest: assertDigest(ref) };
  }
  if (!tagRe.test(ref)) throw tagInvalid(ref.slice(0, 200));
  return { kind: 'tag', tag: ref };
}
