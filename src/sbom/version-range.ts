import { UsageError } from '../errors.js';
import { compareDpkgVersions } from './version-dpkg.js';
import { compareApkVersions, comparePep440, compareSemver, type CompareVersions } from './version-ecosystem.js';
import { VersionSyntax } from './errors.js';
import { packageNameKey, type SbomPackage } from './sbom-document.js';

// Version ranges of `kiln query --package NAME@RANGE` and of the registry's search API: comma-separated
// constraints that must all hold, each an operator (<, <=, >, >=, =, !=; none means =) and a version:
//   bash@<5.2.15-3      openssl@>=3.0,<3.0.11      requests@==2.31.0      @babel/core@>=7,<7.23.2
// Versions are compared in the package's own ecosystem, named by its package URL type (purl-spec
// PURL-TYPES.rst): deb as dpkg does, apk as apk-tools does, pypi by PEP 440, npm by SemVer. Other types,
// and versions their ecosystem's grammar does not allow, compare by dpkg's rules without epoch or
// revision: digit runs as numbers, the rest character by character.

const orderings: Record<string, CompareVersions> = { deb: compareDpkgVersions, apk: compareApkVersions, pypi: comparePep440, npm: compareSemver };

/** Negative, zero or positive as `a` sorts before, equal to or after `b` for packages of purl type `type`. */
export function compareVersionsOf(type: string, a: string, b: string): number {
  const ordering = orderings[type];
  if (ordering) {
    try {
      return ordering(a, b);
    } catch (e) {
      if (!(e instanceof VersionSyntax)) throw e;
    }
  }
  return compareDpkgVersions({ epoch: 0, upstream: a, revision: '' }, { epoch: 0, upstream: b, revision: '' });
}

export type Operator = '<' | '<=' | '>' | '>=' | '=' | '!=';
export interface Constraint {
  op: Operator;
  version: string;
}
export type VersionRange = Constraint[];

const constraintRe = /^(<=|>=|==|!=|<|>|=)?\s*([^\s<>=!,]+)$/;

/** Parse "OP VERSION[,OP VERSION…]"; throws a UsageError naming the part at fault. */
export function parseVersionRange(text: string): VersionRange {
  const parts = text.split(',').map((p) => p.trim());
  return parts.map((p) => {
    const m = constraintRe.exec(p);
    if (!m) throw new UsageError(`version range "${text}": "${p}" is not OPERATOR VERSION (operators: < <= > >= = !=)`);
    const op = (m[1] === '==' ? '=' : (m[1] ?? '=')) as Operator;
    return { op, version: m[2]! };
  });
}

/** "NAME" or "NAME@RANGE"; the name may start with "@" (npm scopes). */
export function parsePackageQuery(text: string): { name: string; range?: VersionRange; rangeText?: string } {
  const at = text.indexOf('@', 1);
  const name = (at < 0 ? text : text.slice(0, at)).trim();
  if (!name || name === '@' || /\s/.test(name)) throw new UsageError(`package "${text}": expected NAME or NAME@RANGE`);
  if (at < 0) return { name };
  const rangeText = text.slice(at + 1).trim();
  if (!rangeText) throw new UsageError(`package "${text}": empty version range after "@"`);
  return { name, range: parseVersionRange(rangeText), rangeText };
}

/** Whether `version` of a package of purl type `type` satisfies every constraint. */
export function satisfies(type: string, version: string, range: VersionRange): boolean {
  return range.every((c) => {
    const d = compareVersionsOf(type, version, c.version);
    switch (c.op) {
      case '<':
        return d < 0;
      case '<=':
        return d <= 0;
      case '>':
        return d > 0;
      case '>=':
        return d >= 0;
      case '=':
        return d === 0;
      case '!=':
        return d !== 0;
    }
  });
}

export function formatVersionRange(range: VersionRange): string {
  return range.map((c) => `${c.op}${c.version}`).join(',');
}

/**
 * Whether a package answers "NAME[@RANGE]": its name, or its source package, is NAME as its ecosystem
 * compares names (PEP 503 for Python, else case-insensitive), and its version is in the range.
 */
export function packageMatches(p: Pick<SbomPackage, 'name' | 'version' | 'type' | 'source'>, name: string, range?: VersionRange): boolean {
  const key = packageNameKey(p.type, name);
  if (packageNameKey(p.type, p.name) !== key && (!p.source || packageNameKey(p.type, p.source) !== key)) return false;
  return !range || satisfies(p.type, p.version, range);
}
