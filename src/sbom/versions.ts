import { compareDpkgVersions } from './dpkg-version.js';

// Version order per package ecosystem: each compares versions the way its own package manager does.
// The ecosystem is the package URL type (purl-spec PURL-TYPES.rst: deb, apk, pypi, npm).

export type VersionScheme = 'deb' | 'apk' | 'pypi' | 'npm' | 'generic';

/** The comparison a package URL type calls for; unknown types compare generically. */
export function schemeOf(purlType: string | undefined): VersionScheme {
  switch (purlType) {
    case 'deb':
    case 'apk':
    case 'pypi':
    case 'npm':
      return purlType;
    case 'python':
      return 'pypi';
    default:
      return 'generic';
  }
}

/** Negative, zero or positive as `a` sorts before, equal to or after `b` in the scheme. */
export function compareVersions(scheme: VersionScheme, a: string, b: string): number {
  switch (scheme) {
    case 'deb':
      return compareDpkgVersions(a, b);
    case 'apk':
      return compareApk(a, b);
    case 'pypi':
      return comparePep440(a, b);
    case 'npm':
      return compareSemver(a, b);
    default:
      // dpkg's rules without an epoch or revision: digit runs as numbers, the rest as text.
      return compareDpkgVersions(`0:${a}-`, `0:${b}-`);
  }
}

const cmp = (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0);

// --- apk (apk-tools version.c): numbers separated by dots, an optional letter, suffixes, -rN.
// Pre-release suffixes sort before the bare version, post-release ones after it.
const apkSuffixes = ['alpha', 'beta', 'pre', 'rc', '', 'cvs', 'svn', 'git', 'hg', 'p'];
interface ApkVersion {
  numbers: number[];
  letter: string;
  suffixes: [number, number][];
  revision: number;
}
const apkRe = /^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:~[0-9a-f]+)?(?:-r(\d+))?$/;
function parseApk(v: string): ApkVersion | undefined {
  const m = apkRe.exec(v.trim());
  if (!m) return undefined;
  const suffixes: [number, number][] = [];
  for (const s of m[3]!.matchAll(/_([a-z]+)(\d*)/g)) suffixes.push([apkSuffixes.indexOf(s[1]!), Number(s[2] || 0)]);
  return { numbers: m[1]!.split('.').map(Number), letter: m[2]!, suffixes, revision: Number(m[4] ?? 0) };
}
function compareApk(a: string, b: string): number {
  const x = parseApk(a);
  const y = parseApk(b);
  if (!x || !y) return compareVersions('generic', a, b);
  for (let i = 0; i < Math.max(x.numbers.length, y.numbers.length); i++) {
    // A version with more components is later: 1.2.1 > 1.2.
    if (x.numbers[i] === undefined) return -1;
    if (y.numbers[i] === undefined) return 1;
    const c = cmp(x.numbers[i]!, y.numbers[i]!);
    if (c) return c;
  }
  if (x.letter !== y.letter) return x.letter < y.letter ? -1 : 1;
  const none = apkSuffixes.indexOf('');
  for (let i = 0; i < Math.max(x.suffixes.length, y.suffixes.length); i++) {
    const [xs, xn] = x.suffixes[i] ?? [none, 0];
    const [ys, yn] = y.suffixes[i] ?? [none, 0];
    const c = cmp(xs, ys) || cmp(xn, yn);
    if (c) return c;
  }
  return cmp(x.revision, y.revision);
}

// --- PEP 440 (packaging.python.org "Version specifiers"): epoch, release, pre, post, dev; local ignored
// except as a tie-break. A dev release of a final version sorts before its pre-releases.
const pep440Re = /^v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d*))?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$/i;
function pep440Key(v: string): number[] | undefined {
  const m = pep440Re.exec(v.trim());
  if (!m) return undefined;
  const release = m[2]!.split('.').map(Number);
  while (release.length > 1 && release[release.length - 1] === 0) release.pop();
  const preKind = m[3]?.toLowerCase();
  const preRank = preKind === undefined ? undefined : preKind.startsWith('a') ? 0 : preKind.startsWith('b') ? 1 : 2;
  const hasPost = m[5] !== undefined || m[6] !== undefined;
  const hasDev = m[8] !== undefined;
  const inf = Number.MAX_SAFE_INTEGER;
  // [pre rank, pre number]: no pre-release sorts after any, except a bare dev release which sorts before.
  const pre = preRank !== undefined ? [preRank, Number(m[4] || 0)] : hasDev && !hasPost ? [-1, 0] : [inf, 0];
  const post = hasPost ? Number(m[5] ?? (m[7] || 0)) : -1;
  const dev = hasDev ? Number(m[9] || 0) : inf;
  return [Number(m[1] ?? 0), release.length, ...release, ...pre, post, dev];
}
function comparePep440(a: string, b: string): number {
  const x = pep440Key(a);
  const y = pep440Key(b);
  if (!x || !y) return compareVersions('generic', a, b);
  // epoch, then release component by component (missing ones are 0), then the rest.
  const c0 = cmp(x[0]!, y[0]!);
  if (c0) return c0;
  const xr = x.slice(2, 2 + x[1]!);
  const yr = y.slice(2, 2 + y[1]!);
  for (let i = 0; i < Math.max(xr.length, yr.length); i++) {
    const c = cmp(xr[i] ?? 0, yr[i] ?? 0);
    if (c) return c;
  }
  const xt = x.slice(2 + x[1]!);
  const yt = y.slice(2 + y[1]!);
  for (let i = 0; i < xt.length; i++) {
    const c = cmp(xt[i]!, yt[i]!);
    if (c) return c;
  }
  return 0;
}

// --- Semantic Versioning 2.0.0 section 11: major.minor.patch, then pre-release identifiers
// (numeric ones numerically and before alphanumeric ones); build metadata is ignored.
const semverRe = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;
function compareSemver(a: string, b: string): number {
  const x = semverRe.exec(a.trim());
  const y = semverRe.exec(b.trim());
  if (!x || !y) return compareVersions('generic', a, b);
  for (let i = 1; i <= 3; i++) {
    const c = cmp(Number(x[i] ?? 0), Number(y[i] ?? 0));
    if (c) return c;
  }
  const xp = x[4]?.split('.');
  const yp = y[4]?.split('.');
  if (!xp || !yp) return xp ? -1 : yp ? 1 : 0;
  for (let i = 0; i < Math.max(xp.length, yp.length); i++) {
    const p = xp[i];
    const q = yp[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    const c = pn && qn ? cmp(Number(p), Number(q)) : pn ? -1 : qn ? 1 : p < q ? -1 : p > q ? 1 : 0;
    if (c) return c;
  }
  return 0;
}
