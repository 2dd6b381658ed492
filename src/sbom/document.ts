// What an SBOM document says about the image it describes, and the identifiers every format gives a
// package: derived from the package's facts only, so the same image always gives the same document.

import { createHash } from 'node:crypto';
import type { Package } from './catalog.js';

export interface SbomSubject {
  /** The image's name as the user knows it (first tag), or its manifest digest when untagged. */
  name: string;
  /** Manifest digest. */
  digest: string;
  /** The image config's `created`, used as the document's creation time so documents are reproducible. */
  created?: string;
}

export const KILN_TOOL = { name: 'kiln', version: '0.1.0' };

/** A stable identifier for a package within a document: type, name, and a hash of purl and location. */
export function packageId(p: Package): string {
  const hash = createHash('sha256').update(`${p.purl}\0${p.location}`).digest('hex').slice(0, 16);
  return `${p.type}-${p.name.replace(/[^A-Za-z0-9.-]+/g, '-')}-${hash}`;
}

/** The creation time: the image's own when it has one (reproducible), else now. */
export function createdAt(subject: SbomSubject): string {
  const t = subject.created ? Date.parse(subject.created) : NaN;
  return new Date(Number.isNaN(t) ? Date.now() : t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
