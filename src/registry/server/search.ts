import type { Metadata, PackageRow, SearchHit, IndexedPackage } from './metadata/metadata.js';
import type { ParsedManifest } from './manifests.js';
import type { BlobDriver } from './storage/driver.js';
import type { Logger } from './log.js';
import { CycloneDxJson, SpdxJson, isSbomMediaType, packageNameKey, readSbomPackages } from '../../sbom/sbom-document.js';
import { SbomUnreadable } from '../../sbom/errors.js';
import { packageMatches, type VersionRange } from '../../sbom/version-range.js';

// "Which images are affected?" on the registry: SBOMs pushed as referrers (distribution-spec
// "Pushing Manifests with Subject") are read once, when pushed, and their packages indexed against
// the subject; base images come from manifest annotations (indexed by the metadata on push).
// Searches then answer from the index alone.

export interface PackageResult extends SearchHit {
  packages: IndexedPackage[];
}
export interface BaseResult extends SearchHit {
  base: { digest: string; name?: string };
  /** 1: built directly on the base; 2: on an image built on it; and so on. */
  depth: number;
}

export interface SearchIndex {
  /** After a manifest was stored: index the SBOM it carries, if it is one. A bad document is logged, never fatal. */
  indexPushed(repository: string, digest: string, body: Buffer, parsed: ParsedManifest): Promise<void>;
  /** Index SBOMs stored before the index existed; returns how many were read. */
  indexMissing(): Promise<number>;
  /** Images whose SBOM lists the package (by name or source package), with the matching versions. */
  packages(name: string, range: VersionRange | undefined, visible: (repository: string) => boolean): Promise<PackageResult[]>;
  /** Images built on `digest`, directly or through images built on it. */
  builtOn(digest: string, visible: (repository: string) => boolean): Promise<BaseResult[]>;
}

type Obj = Record<string, unknown>;

/** The layer holding the SBOM document: one whose media type says so, else the only layer of an SBOM artifact. */
export function sbomLayer(body: Buffer, artifactType: string | undefined): { digest: string; size: number } | undefined {
  let doc: Obj;
  try {
    doc = JSON.parse(body.toString('utf8')) as Obj;
  } catch {
    return undefined;
  }
  const layers = (Array.isArray(doc.layers) ? doc.layers : []) as { mediaType?: string; digest: string; size: number }[];
  const typed = layers.find((l) => isSbomMediaType(l.mediaType));
  if (typed) return typed;
  return isSbomMediaType(artifactType) && layers.length === 1 ? layers[0] : undefined;
}

export function searchIndex(opts: { metadata: Metadata; driver: BlobDriver; log: Logger; sbomSize: number }): SearchIndex {
  const { metadata, driver, log } = opts;

  const rowsOf = (packages: IndexedPackage[]): PackageRow[] =>
    packages.map((p) => ({ package: p, nameKey: packageNameKey(p.type, p.name), ...(p.source ? { sourceKey: packageNameKey(p.type, p.source) } : {}) }));

  /** Read and index one SBOM manifest; storage errors propagate (the SBOM stays unindexed and is retried at start). */
  const index = async (repository: string, digest: string, subject: string, body: Buffer, artifactType: string | undefined): Promise<boolean> => {
    const layer = sbomLayer(body, artifactType);
    if (!layer) return false;
    let packages: IndexedPackage[] = [];
    if (layer.size > opts.sbomSize) {
      log.log('warn', 'SBOM not indexed: larger than limits.sbomSize', { repository, digest, size: layer.size, limit: opts.sbomSize });
    } else {
      try {
        const blob = await metadata.blob(layer.digest);
        if (!blob) throw new SbomUnreadable(`its layer ${layer.digest} is not stored`);
        packages = readSbomPackages(await driver.read(blob.key), `${repository}@${digest}`);
      } catch (e) {
        if (!(e instanceof SbomUnreadable)) throw e;
        log.log('warn', 'SBOM not indexed', { repository, digest, error: e.message });
      }
    }
    // Recorded even when empty or unreadable, so it is not read again at every start.
    await metadata.indexPackages(repository, digest, subject, rowsOf(packages));
    return true;
  };

  return {
    async indexPushed(repository, digest, body, parsed) {
      if (!parsed.subject) return;
      try {
        await index(repository, digest, parsed.subject.digest, body, parsed.artifactType);
      } catch (e) {
        log.log('error', 'SBOM indexing failed', { repository, digest, error: String(e) });
      }
    },

    async indexMissing() {
      let n = 0;
      for (const r of await metadata.unindexedReferrers([SpdxJson, CycloneDxJson])) {
        const m = await metadata.getManifest(r.repository, r.digest);
        if (m && (await index(r.repository, r.digest, r.subject, m.body, m.artifactType).catch(() => false))) n++;
      }
      return n;
    },

    async packages(name, range, visible) {
      const keys = [...new Set([packageNameKey('generic', name), packageNameKey('pypi', name)])];
      const byImage = new Map<string, PackageResult>();
      for (const h of await metadata.findPackages(keys)) {
        if (!visible(h.repository)) continue;
        if (!packageMatches(h.package, name, range)) continue;
        const k = `${h.repository}@${h.digest}`;
        let r = byImage.get(k);
        if (!r) byImage.set(k, (r = { repository: h.repository, digest: h.digest, tags: h.tags, packages: [] }));
        // The same package listed by two SBOMs of one image (SPDX and CycloneDX) counts once.
        if (!r.packages.some((p) => p.name === h.package.name && p.version === h.package.version && p.type === h.package.type)) r.packages.push(h.package);
      }
      return [...byImage.values()];
    },

    async builtOn(digest, visible) {
      // Breadth first through every repository: an image the caller may not read still leads to
      // its descendants the caller may read (they are affected too), but is itself never shown.
      const out: BaseResult[] = [];
      const seen = new Set<string>([digest]);
      let frontier = [digest];
      for (let depth = 1; frontier.length > 0; depth++) {
        const next: string[] = [];
        for (const h of await metadata.findBuiltOn(frontier)) {
          if (visible(h.repository)) out.push({ ...h, depth });
          if (!seen.has(h.digest)) {
            seen.add(h.digest);
            next.push(h.digest);
          }
        }
        frontier = next;
      }
      return out;
    },
  };
}
