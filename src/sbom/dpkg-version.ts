// Debian version comparison exactly as dpkg does it (Debian Policy 5.6.12 "Version";
// deb-version(7)): [epoch:]upstream[-revision], compared field by field. Within upstream and
// revision, alternating runs of non-digits (compared character by character, with "~" before
// everything, even the end of the string, and letters before all other characters) and digits
// (compared as numbers).

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** Split a version into its three fields; the revision is what follows the last hyphen. */
export function parseDpkgVersion(v: string): DpkgVersion {
  const s = v.trim();
  const colon = s.indexOf(':');
  let epoch = 0;
  let rest = s;
  if (colon >= 0 && /^\d+$/.test(s.slice(0, colon))) {
    epoch = Number(s.slice(0, colon));
    rest = s.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: '' };
}

const isDigit = (c: string) => c >= '0' && c <= '9';
const isLetter = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

/** Weight of one character in a non-digit run; '' is the end of the string. */
function order(c: string): number {
  if (c === '' || isDigit(c)) return 0;
  if (c === '~') return -1;
  if (isLetter(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** One field (upstream or revision), as dpkg's verrevcmp. */
function compareField(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const ac = order(a[i] ?? '');
      const bc = order(b[j] ?? '');
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    let firstDiff = 0;
    while (i < a.length && j < b.length && isDigit(a[i]!) && isDigit(b[j]!)) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a[i]!)) return 1;
    if (j < b.length && isDigit(b[j]!)) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Negative, zero or positive as `a` sorts before, equal to or after `b` (dpkg --compare-versions). */
export function compareDpkgVersions(a: string, b: string): number {
  const x = parseDpkgVersion(a);
  const y = parseDpkgVersion(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return Math.sign(compareField(x.upstream, y.upstream)) || Math.sign(compareField(x.revision, y.revision));
}
