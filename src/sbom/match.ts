// Matching catalogued packages against the vulnerability database. Debian packages are matched the
// way the Debian Security Tracker means its data: by SOURCE package and release codename, comparing
// the installed source version with the tracker's fixed version (a source version) by dpkg's rules.
// OSV entries are matched by ecosystem and name, with the record's ranges.

import { VersionSyntax } from './errors.js';
import { evaluateAffected, packageName } from './osv.js';
import { severityRank, type Severity } from './severity.js';
import { compareDpkgVersions } from './version-dpkg.js';
import type { VulnDb } from './vulndb.js';
import { byCodeUnits } from '../order.js';

/** What matching needs of a catalogued package (sbom/catalog.ts's Package has all of it). */
export interface MatchablePackage {
  type: string;
  name: string;
  version: string;
  purl: string;
  source?: { name: string; version: string };
  layer: { index: number; digest: string; diffId?: string };
  location: string;
}

export interface MatchableDistro {
  id: string;
  versionId?: string;
  codename?: string;
}

export interface VulnerabilityMatch {
  id: string;
  aliases: string[];
  package: string;
  installedVersion: string;
  /** '' while no fix is known for the release or ecosystem. */
  fixedVersion: string;
  severity: Severity;
  /** Debian packages: the source package and version the tracker's data is about. */
  sourcePackage?: { name: string; version: string };
  type: string;
  purl: string;
  /** The layer that brought the package in. */
  layer: { index: number; digest: string };
  location: string;
  /** Where the advisory came from: "debian-tracker" or "osv:<ecosystem>". */
  dataSource: string;
  description: string;
}

export interface MatchProblem {
  /** The package ("name@version") or the image's file the problem is about. */
  subject: string;
  message: string;
}

/** Debian's release numbers and codenames, for images whose os-release has no VERSION_CODENAME. */
const debianCodenames: Record<string, string> = {
  '8': 'jessie', '9': 'stretch', '10': 'buster', '11': 'bullseye', '12': 'bookworm', '13': 'trixie', '14': 'forky',
};

export function debianRelease(distro: MatchableDistro | undefined): string | undefined {
  if (distro?.id !== 'debian') return undefined;
  return distro.codename || debianCodenames[(distro.versionId ?? '').split('.')[0]!];
}

/** The OSV ecosystem a package of this type belongs to in this distribution, if kiln matches it. */
function osvEcosystem(p: MatchablePackage, distro: MatchableDistro | undefined): string | undefined {
  switch (p.type) {
    case 'npm':
      return 'npm';
    case 'python':
      return 'PyPI';
    case 'deb':
      return distro?.id === 'debian' && distro.versionId ? `Debian:${distro.versionId.split('.')[0]}` : undefined;
    case 'apk': {
      const m = /^(\d+)\.(\d+)/.exec(distro?.versionId ?? '');
      return distro?.id === 'alpine' && m ? `Alpine:v${m[1]}.${m[2]}` : undefined;
    }
    default:
      return undefined;
  }
}

export function matchPackages(db: VulnDb, packages: readonly MatchablePackage[], distro: MatchableDistro | undefined): { matches: VulnerabilityMatch[]; problems: MatchProblem[] } {
  const matches: VulnerabilityMatch[] = [];
  const problems: MatchProblem[] = [];
  const release = debianRelease(distro);
  // Say why deb packages go unmatched rather than report a clean image.
  if (!release && packages.some((p) => p.type === 'deb')) {
    problems.push({
      subject: '/etc/os-release',
      message: distro && distro.id !== 'debian'
        ? `deb packages in a ${distro.id} image: the Debian security tracker's data covers Debian releases only`
        : 'deb packages but no Debian release (ID=debian with VERSION_CODENAME or VERSION_ID): Debian advisories not applied',
    });
  }
  for (const p of packages) {
    const base = {
      package: p.name,
      installedVersion: p.version,
      type: p.type,
      purl: p.purl,
      layer: { index: p.layer.index, digest: p.layer.digest },
      location: p.location,
    };
    const found: VulnerabilityMatch[] = [];
    // A version one side's ordering cannot read costs that one advisory, reported, not the scan.
    const readable = <T>(id: string, f: () => T): T | undefined => {
      try {
        return f();
      } catch (e) {
        if (!(e instanceof VersionSyntax)) throw e;
        problems.push({ subject: `${p.name}@${p.version}`, message: `${id}: ${e.message}` });
        return undefined;
      }
    };
    {
      if (p.type === 'deb' && release) {
        const source = { name: p.source?.name || p.name, version: p.source?.version || p.version };
        for (const a of db.debian(release, source.name)) {
          // Open and undetermined issues have no fix in the release yet: every version is affected.
          if (a.fixedVersion !== '' && readable(a.id, () => compareDpkgVersions(source.version, a.fixedVersion) >= 0) !== false) continue;
          found.push({ ...base, id: a.id, aliases: [], fixedVersion: a.fixedVersion, severity: a.severity, sourcePackage: source, dataSource: 'debian-tracker', description: a.description });
        }
      }
      const ecosystem = osvEcosystem(p, distro);
      if (ecosystem) {
        // OSV's Debian records name source packages, like the tracker.
        const name = p.type === 'deb' ? p.source?.name || p.name : packageName(ecosystem, p.name);
        const version = p.type === 'deb' ? p.source?.version || p.version : p.version;
        const ids = new Set(found.map((m) => m.id));
        for (const a of db.osv(ecosystem, name)) {
          if (ids.has(a.id) || a.aliases.some((x) => ids.has(x))) continue; // the tracker already said it
          const verdict = readable(a.id, () => evaluateAffected(a, version));
          if (!verdict?.affected) continue;
          ids.add(a.id);
          found.push({
            ...base,
            id: a.id,
            aliases: a.aliases,
            fixedVersion: verdict.fixedVersion,
            severity: a.severity,
            ...(p.type === 'deb' ? { sourcePackage: { name, version } } : {}),
            dataSource: `osv:${a.ecosystem}`,
            description: a.summary,
          });
        }
      }
    }
    matches.push(...found);
  }
  matches.sort(
    (a, b) => severityRank(b.severity) - severityRank(a.severity) || byCodeUnits(a.package, b.package) || byCodeUnits(a.id, b.id) || byCodeUnits(a.location, b.location),
  );
  return { matches, problems };
}
