// Go standard-library behaviour that BuildKit's output depends on: history strings are written with
// fmt verbs (%q, %v, %+v), durations with time.Duration.String, numbers parsed with strconv. Matching
// these byte for byte keeps our image history identical to BuildKit's.

import { UnlocatedError } from './errors.js';

/** unicode.IsSpace */
export function isGoSpace(ch: string): boolean {
  switch (ch) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ': case '\u0085': case '\u00a0':
    case '\u1680': case '\u2028': case '\u2029': case '\u202f': case '\u205f': case '\u3000':
      return true;
  }
  return ch >= '\u2000' && ch <= '\u200a';
}

/** strings.TrimSpace */
export function trimGoSpace(s: string): string {
  const chars = [...s];
  let a = 0;
  let b = chars.length;
  while (a < b && isGoSpace(chars[a]!)) a++;
  while (b > a && isGoSpace(chars[b - 1]!)) b--;
  return chars.slice(a, b).join('');
}

export function trimLeftGoSpace(s: string): string {
  const chars = [...s];
  let a = 0;
  while (a < chars.length && isGoSpace(chars[a]!)) a++;
  return chars.slice(a).join('');
}

const printable = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** strconv.Quote: a double-quoted Go string literal. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\x07': out += '\\a'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\v': out += '\\v'; continue;
    }
    if (ch === ' ' || printable.test(ch)) out += ch;
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd'; // lone surrogate: Go sees invalid UTF-8
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + '"';
}

/** fmt %v of a []string: `[a b c]`. */
export function goSliceV(items: readonly string[] | null | undefined): string {
  return '[' + (items ?? []).join(' ') + ']';
}

/** fmt %q of a []string: `["a" "b"]`. */
export function goSliceQ(items: readonly string[] | null | undefined): string {
  return '[' + (items ?? []).map(goQuote).join(' ') + ']';
}

const Nanosecond = 1n;
const Microsecond = 1000n * Nanosecond;
const Millisecond = 1000n * Microsecond;
const Second = 1000n * Millisecond;
const Minute = 60n * Second;
const Hour = 60n * Minute;

function fmtFrac(v: bigint, prec: number): [string, bigint] {
  // Omit trailing zeros up to and including the decimal point.
  let out = '';
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) out = digit.toString() + out;
    v /= 10n;
  }
  if (print) out = '.' + out;
  return [out, v];
}

/** time.Duration.String, the form %v and %+v print durations in. */
export function goDuration(ns: number | bigint): string {
  let u = BigInt(ns);
  const neg = u < 0n;
  if (neg) u = -u;
  let out: string;
  if (u < Second) {
    if (u === 0n) return '0s';
    let prec: number;
    let unit: string;
    if (u < Microsecond) { prec = 0; unit = 'ns'; }
    else if (u < Millisecond) { prec = 3; unit = 'µs'; }
    else { prec = 6; unit = 'ms'; }
    const [frac, rest] = fmtFrac(u, prec);
    out = rest.toString() + frac + unit;
  } else {
    const [frac, secs] = fmtFrac(u, 9);
    out = (secs % 60n).toString() + frac + 's';
    let mins = secs / 60n;
    if (mins > 0n) {
      out = (mins % 60n).toString() + 'm' + out;
      const hours = mins / 60n;
      if (hours > 0n) out = hours.toString() + 'h' + out;
      mins = 0n;
    }
  }
  return (neg ? '-' : '') + out;
}

const unitMap: Record<string, bigint> = {
  ns: Nanosecond, us: Microsecond, 'µs': Microsecond, 'μs': Microsecond, ms: Millisecond, s: Second, m: Minute, h: Hour,
};

const maxInt64 = (1n << 63n) - 1n;

/** time.ParseDuration, returning nanoseconds. Throws with Go's message. */
export function parseGoDuration(input: string): bigint {
  const orig = input;
  const quoted = `"${orig}"`;
  const invalid = (): never => { throw new UnlocatedError(`time: invalid duration ${quoted}`); };
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') invalid();
  let d = 0n;
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) invalid();
    let i = 0;
    let v = 0n;
    while (isDigit(s[i])) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > 1n << 63n) invalid();
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    let post = false;
    let f = 0n;
    let scale = 1;
    if (s !== '' && s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (isDigit(s[j])) {
        if (!overflow) {
          const next = f * 10n + BigInt(s.charCodeAt(j) - 48);
          if (next > 1n << 63n) overflow = true;
          else { f = next; scale *= 10; }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) invalid();
    let k = 0;
    while (k < s.length && !(s[k] === '.' || isDigit(s[k]))) k++;
    if (k === 0) throw new UnlocatedError(`time: missing unit in duration ${quoted}`);
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = unitMap[u];
    if (unit === undefined) throw new UnlocatedError(`time: unknown unit "${u}" in duration ${quoted}`);
    if (v > (1n << 63n) / unit) invalid();
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.floor(Number(f) * (Number(unit) / scale)));
      if (v > 1n << 63n) invalid();
    }
    d += v;
    if (d > 1n << 63n) invalid();
  }
  if (neg) return -d;
  if (d > maxInt64) invalid();
  return d;
}

/** strconv.ParseBool */
export function parseGoBool(s: string): boolean | undefined {
  switch (s) {
    case '1': case 't': case 'T': case 'TRUE': case 'true': case 'True': return true;
    case '0': case 'f': case 'F': case 'FALSE': case 'false': case 'False': return false;
  }
  return undefined;
}

/** strconv.ParseUint(s, base, 32) without the 0x/0o prefixes (base given explicitly). */
export function parseGoUint32(s: string, base: 8 | 10): number | undefined {
  const re = base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(s)) return undefined;
  const n = parseInt(s, base);
  return n > 0xffffffff ? undefined : n;
}

/** strconv.ParseInt(s, 10, 32) */
export function parseGoInt32(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = parseInt(s, 10);
  return n > 0x7fffffff || n < -0x80000000 ? undefined : n;
}

/** strconv.Atoi */
export function parseGoInt(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** docker/go-units RAMInBytes: "64m", "1.5GiB", "512" (binary multipliers). */
export function ramInBytes(size: string): number | undefined {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(size);
  if (!m) return undefined;
  const num = parseFloat(m[1]!);
  if (Number.isNaN(num)) return undefined;
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(num * (m[2] ? mult[m[2].toLowerCase()]! : 1));
}

function levenshtein(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[y.length]!;
}

/** BuildKit's util/suggest.Search: the closest option within edit distance 2, or undefined. */
export function suggest(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const val = caseSensitive ? value : value.toLowerCase();
  let match: string | undefined;
  let min = 3;
  for (const option of options) {
    const opt = caseSensitive ? option : option.toLowerCase();
    if (opt === val) return undefined;
    const dist = levenshtein(val, opt);
    if (dist < min) {
      min = dist;
      match = caseSensitive ? opt : value === value.toUpperCase() ? opt.toUpperCase() : value === value.toLowerCase() ? opt : opt;
    }
  }
  return match;
}
