import { SbomUnreadable } from './errors.js';

// Reading the package list back out of an SBOM document someone else wrote: SPDX 2.x JSON
// (spdx.github.io/spdx-spec/v2.3: packages[].name, versionInfo, externalRefs of type "purl") and
// CycloneDX JSON (cyclonedx.org/docs/1.5/json: components[] with name, group, version, purl,
// nested components). Only what "which images contain package X" needs.

export const SpdxJson = 'application/spdx+json';
export const CycloneDxJson = 'application/vnd.cyclonedx+json';

/** Media types (of an artifact, or of its layer) that carry an SBOM document kiln can read. */
export function isSbomMediaType(mt: string | undefined): boolean {
  if (!mt) return false;
  const base = mt.split(';')[0]!.trim().toLowerCase();
  return base === SpdxJson || base === CycloneDxJson;
}

export interface SbomPackage {
  name: string;
  version: string;
  /** Package URL type (deb, apk, pypi, npm…); "unknown" without a purl. */
  type: string;
  purl?: string;
  /** Source package (Debian: the purl's "upstream" qualifier). */
  source?: string;
}

/** Name and source-package keys, the way the ecosystem compares names (PEP 503 for Python, else lower case). */
export function packageNameKey(type: string, name: string): string {
  const lower = name.toLowerCase();
  return type === 'pypi' ? lower.replace(/[-_.]+/g, '-') : lower;
}

/** purl-spec: pkg:type/namespace/name@version?qualifiers#subpath; only type and qualifiers are needed here. */
function purlParts(purl: string): { type: string; qualifiers: URLSearchParams } | undefined {
  const m = /^pkg:\/*([a-zA-Z][a-zA-Z0-9.+-]*)\/[^?#]*(?:\?([^#]*))?/.exec(purl);
  if (!m) return undefined;
  return { type: m[1]!.toLowerCase(), qualifiers: new URLSearchParams(m[2] ?? '') };
}

/** A package from its name, version and purl (type and Debian source from the purl); undefined without a name or version. */
export function sbomPackage(name: unknown, version: unknown, purl: unknown): SbomPackage | undefined {
  if (typeof name !== 'string' || name === '' || typeof version !== 'string' || version === '') return undefined;
  const p = typeof purl === 'string' && purl.startsWith('pkg:') ? purl : undefined;
  const parts = p ? purlParts(p) : undefined;
  const upstream = parts?.qualifiers.get('upstream') ?? undefined;
  return {
    name,
    version,
    type: parts?.type ?? 'unknown',
    ...(p ? { purl: p } : {}),
    // Debian purls name the source as "upstream=openssl" or "upstream=openssl@3.0.11-1".
    ...(upstream ? { source: upstream.split('@')[0]! } : {}),
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function spdxPackages(doc: Obj, where: string): SbomPackage[] {
  if (!Array.isArray(doc.packages)) throw new SbomUnreadable(`${where}: SPDX document without a "packages" array`);
  const out: SbomPackage[] = [];
  for (const p of doc.packages) {
    if (!isObj(p)) continue;
    const refs = Array.isArray(p.externalRefs) ? p.externalRefs.filter(isObj) : [];
    const purl = refs.find((r) => r.referenceType === 'purl')?.referenceLocator;
    const e = sbomPackage(p.name, p.versionInfo, purl);
    if (e) out.push(e);
  }
  return out;
}

function cycloneDxPackages(doc: Obj, where: string): SbomPackage[] {
  if (doc.components !== undefined && !Array.isArray(doc.components)) throw new SbomUnreadable(`${where}: CycloneDX "components" is not an array`);
  const out: SbomPackage[] = [];
  const walk = (list: unknown[]) => {
    for (const c of list) {
      if (!isObj(c)) continue;
      // npm scopes and Maven groups live in "group"; the name alone would be ambiguous.
      const name = typeof c.group === 'string' && c.group && typeof c.name === 'string' ? `${c.group}/${c.name}` : c.name;
      const e = sbomPackage(name, c.version, c.purl);
      // kiln's own CycloneDX output names the source package in a property ("name@version").
      const props = Array.isArray(c.properties) ? c.properties.filter(isObj) : [];
      const source = props.find((p) => p.name === 'kiln:package:source')?.value;
      if (e && !e.source && typeof source === 'string' && source) e.source = source.split('@')[0]!;
      if (e) out.push(e);
      if (Array.isArray(c.components)) walk(c.components);
    }
  };
  walk((doc.components as unknown[] | undefined) ?? []);
  return out;
}

/** The packages an SPDX or CycloneDX JSON document lists; `where` names the document in errors. */
export function readSbomPackages(bytes: Buffer | string, where: string): SbomPackage[] {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch (e) {
    throw new SbomUnreadable(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(doc)) throw new SbomUnreadable(`${where}: expected a JSON object`);
  if (typeof doc.spdxVersion === 'string') return spdxPackages(doc, where);
  if (doc.bomFormat === 'CycloneDX') return cycloneDxPackages(doc, where);
  throw new SbomUnreadable(`${where}: unknown SBOM format (neither "spdxVersion" nor "bomFormat": "CycloneDX")`);
}
