// Version orderings of the ecosystems whose OSV records kiln matches: SemVer 2.0 (npm, and OSV's
// SEMVER range type), PEP 440 (PyPI), Alpine's apk versions, and dpkg's (Debian). Each returns
// negative, zero or positive, and throws VersionSyntax for a string its grammar does not allow.

import { VersionSyntax } from './errors.js';
import { compareDpkgVersions } from './version-dpkg.js';

export type CompareVersions = (a: string, b: string) => number;

/** The ordering of an OSV ecosystem ("npm", "PyPI", "Debian:12", "Alpine:v3.19"), if kiln has one. */
export function ecosystemOrdering(ecosystem: string): CompareVersions | undefined {
  const base = ecosystem.split(':')[0];
  switch (base) {
    case 'npm':
      return compareSemver;
    case 'PyPI':
      return comparePep440;
    case 'Debian':
      return compareDpkgVersions;
    case 'Alpine':
      return compareApkVersions;
    default:
      return undefined;
  }
}

// --- SemVer 2.0.0 §11 precedence -------------------------------------------------------------------

interface Semver {
  core: [number, number, number];
  pre: string[];
}

function parseSemver(text: string): Semver {
  // A leading "v" and missing minor/patch are tolerated, as npm's loose mode and OSV data have them.
  const m = /^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\s*$/.exec(text);
  if (!m) throw new VersionSyntax(`"${text}" is not a semantic version`);
  return { core: [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)], pre: m[4] ? m[4].split('.') : [] };
}

export function compareSemver(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i]! < y.core[i]! ? -1 : 1;
  // §11.3: a pre-release has lower precedence than the release itself.
  if (x.pre.length === 0 || y.pre.length === 0) return x.pre.length === y.pre.length ? 0 : x.pre.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i]!;
    const q = y.pre[i]!;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    // §11.4: numeric identifiers numerically and below alphanumeric ones; others in ASCII order.
    if (pn && qn) return Number(p) < Number(q) ? -1 : 1;
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return Math.sign(x.pre.length - y.pre.length);
}

// --- PEP 440 (Python packaging "Version specifiers", version scheme and ordering) --------------------

const pep440 =
  /^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

type Key = (number | string)[];

function pep440Key(text: string): Key[] {
  const m = pep440.exec(text);
  if (!m) throw new VersionSyntax(`"${text}" is not a PEP 440 version`);
  const [, epoch, release, preL, preN, postImplicit, postL, postN, devL, devN, local] = m;
  const rel = release!.split('.').map(Number);
  while (rel.length > 1 && rel[rel.length - 1] === 0) rel.pop(); // 1.0 == 1.0.0
  const preRank: Record<string, number> = { a: 0, alpha: 0, b: 1, beta: 1, c: 2, rc: 2, pre: 2, preview: 2 };
  const hasPost = postImplicit !== undefined || postL !== undefined;
  const post = postImplicit !== undefined ? Number(postImplicit) : postN !== undefined ? Number(postN) : 0;
  const INF = Number.POSITIVE_INFINITY;
  const NEG = Number.NEGATIVE_INFINITY;
  // A bare .devN release sorts before all pre-releases of that release; a final release after them.
  const pre: Key = preL ? [preRank[preL.toLowerCase()]!, Number(preN ?? 0)] : devL && !hasPost ? [NEG] : [INF];
  const postKey: Key = hasPost ? [post] : [NEG];
  const dev: Key = devL ? [Number(devN ?? 0)] : [INF];
  // Local versions sort after the public one; numeric segments above alphanumeric ones.
  const localKey: Key = local
    ? local.toLowerCase().split(/[-_.]/).flatMap((s) => (/^\d+$/.test(s) ? [1, Number(s)] : [0, s]))
    : [NEG];
  return [[Number(epoch ?? 0)], rel, pre, postKey, dev, localKey];
}

function compareKey(a: Key, b: Key): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    // A shorter release is padded with zeros; a shorter local segment list sorts first.
    const x = a[i] ?? (typeof b[i] === 'number' ? 0 : '');
    const y = b[i] ?? (typeof a[i] === 'number' ? 0 : '');
    if (x === y) continue;
    return x < y ? -1 : 1;
  }
  return 0;
}

export function comparePep440(a: string, b: string): number {
  const x = pep440Key(a);
  const y = pep440Key(b);
  for (let i = 0; i < x.length; i++) {
    const c = compareKey(x[i]!, y[i]!);
    if (c !== 0) return c;
  }
  return 0;
}

// --- Alpine apk versions (apk-tools version.c) -----------------------------------------------------

const apkSuffixes = ['alpha', 'beta', 'pre', 'rc', '', 'cvs', 'svn', 'git', 'hg', 'p'];
const apkVersion = /^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:~[0-9a-f]+)?(?:-r(\d+))?$/;

interface ApkVersion {
  numbers: number[];
  letter: string;
  suffixes: [number, number][];
  revision: number;
}

function parseApk(text: string): ApkVersion {
  const m = apkVersion.exec(text.trim());
  if (!m) throw new VersionSyntax(`"${text}" is not an apk version`);
  const suffixes = [...m[3]!.matchAll(/_([a-z]+)(\d*)/g)].map((s): [number, number] => [apkSuffixes.indexOf(s[1]!), Number(s[2] || 0)]);
  return { numbers: m[1]!.split('.').map(Number), letter: m[2]!, suffixes, revision: Number(m[4] ?? 0) };
}

export function compareApkVersions(a: string, b: string): number {
  const x = parseApk(a);
  const y = parseApk(b);
  for (let i = 0; i < Math.max(x.numbers.length, y.numbers.length); i++) {
    // More components is newer when the shared ones are equal: 1.2.1 > 1.2.
    const p = x.numbers[i] ?? -1;
    const q = y.numbers[i] ?? -1;
    if (p !== q) return p < q ? -1 : 1;
  }
  if (x.letter !== y.letter) return x.letter < y.letter ? -1 : 1;
  const none: [number, number] = [apkSuffixes.indexOf(''), 0];
  for (let i = 0; i < Math.max(x.suffixes.length, y.suffixes.length); i++) {
    // _alpha.._rc sort below no suffix, _cvs.._p above it.
    const [sp, np] = x.suffixes[i] ?? none;
    const [sq, nq] = y.suffixes[i] ?? none;
    if (sp !== sq) return sp < sq ? -1 : 1;
    if (np !== nq) return np < nq ? -1 : 1;
  }
  return Math.sign(x.revision - y.revision);
}
