// Debian package versions compared exactly as dpkg compares them (deb-version(7); dpkg's
// lib/dpkg/version.c): [epoch:]upstream[-revision], epochs numerically, then upstream and revision
// each by alternating runs of non-digits (compared character by character with `~` lowest, below even
// the end of the string, then letters, then everything else) and digits (compared as numbers).

import { VersionSyntax } from './errors.js';

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  /** '' when the version has no `-`; dpkg treats that the same as revision "0". */
  revision: string;
}

export function parseDpkgVersion(text: string): DpkgVersion {
  const v = text.trim();
  if (v === '') throw new VersionSyntax('version string is empty');
  if (/\s/.test(v)) throw new VersionSyntax(`version "${text}" has embedded spaces`);
  let epoch = 0;
  let rest = v;
  const colon = v.indexOf(':');
  if (colon >= 0) {
    const e = v.slice(0, colon);
    if (!/^[0-9]+$/.test(e)) throw new VersionSyntax(`version "${text}": epoch "${e}" is not a number`);
    epoch = Number(e);
    if (epoch > 0x7fffffff) throw new VersionSyntax(`version "${text}": epoch is too big`);
    rest = v.slice(colon + 1);
    if (rest === '') throw new VersionSyntax(`version "${text}": nothing after the colon`);
  }
  const dash = rest.lastIndexOf('-');
  const upstream = dash >= 0 ? rest.slice(0, dash) : rest;
  const revision = dash >= 0 ? rest.slice(dash + 1) : '';
  if (upstream === '') throw new VersionSyntax(`version "${text}": empty upstream version`);
  if (dash >= 0 && revision === '') throw new VersionSyntax(`version "${text}": empty revision`);
  // Characters outside deb-version(7)'s set are only a warning to dpkg, which compares them anyway.
  return { epoch, upstream, revision };
}

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isAlpha = (c: string): boolean => (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');

/** The weight of one character in a non-digit run; '' is the end of the string. */
function order(c: string): number {
  if (c === '' || isDigit(c)) return 0;
  if (isAlpha(c)) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp: negative, zero or positive. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const at = (s: string, k: number): string => (k < s.length ? s[k]! : '');
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const d = order(at(a, i)) - order(at(b, j));
      if (d !== 0) return d;
      i++;
      j++;
    }
    while (at(a, i) === '0') i++;
    while (at(b, j) === '0') j++;
    let firstDiff = 0;
    while (isDigit(at(a, i)) && isDigit(at(b, j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(at(a, i))) return 1;
    if (isDigit(at(b, j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

export function compareDpkgVersions(a: string | DpkgVersion, b: string | DpkgVersion): number {
  const x = typeof a === 'string' ? parseDpkgVersion(a) : a;
  const y = typeof b === 'string' ? parseDpkgVersion(b) : b;
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return Math.sign(compareFragment(x.upstream, y.upstream)) || Math.sign(compareFragment(x.revision, y.revision));
}
