// The functions a bake file can call: those of buildx's bake/hclparser/stdlib.go that need no
// network, key material or cty type system (go-cty's function/stdlib and go-cty-funcs), with their
// semantics. Left out: bcrypt, rsadecrypt, the cidr*, set* and csvdecode functions, convert, try/can
// (they take unevaluated expressions), semvercmp and formattimestamp's Go layouts.

import { createHash, randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import { basename, dirname } from 'node:path';
import { asBool, asList, asNumber, asObject, asString, equal, formatNumber, type HclFunction } from './eval.js';
import type { Pos, Value } from './syntax.js';

type Impl = (args: Value[], pos: Pos) => Value;

/** arity: exact count, or [min, max] (max Infinity for variadic). */
function fn(arity: number | [number, number], impl: Impl): HclFunction {
  const [min, max] = typeof arity === 'number' ? [arity, arity] : arity;
  return (args, pos) => {
    if (args.length < min || args.length > max) {
      throw new Error(`expected ${min === max ? min : max === Infinity ? `at least ${min}` : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${args.length}`);
    }
    return impl(args, pos);
  };
}

const str = (v: Value, p: Pos) => asString(v, p, 'argument');
const num = (v: Value, p: Pos) => asNumber(v, p, 'argument');
const int = (v: Value, p: Pos) => {
  const n = num(v, p);
  if (!Number.isInteger(n)) throw new Error(`expected a whole number, got ${formatNumber(n)}`);
  return n;
};
const list = (v: Value, p: Pos) => asList(v, p, 'argument');
const hash = (alg: string) => fn(1, ([s], p) => createHash(alg).update(str(s!, p)).digest('hex'));

function flatten(v: Value[]): Value[] {
  return v.flatMap((x) => (Array.isArray(x) ? flatten(x) : [x]));
}

function compare(a: Value, b: Value): number {
  return a! < b! ? -1 : a! > b! ? 1 : 0;
}

/** Go's strings.Title as go-cty uses it: the first letter of each word upper-cased. */
function title(s: string): string {
  return s.replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, sep: string, c: string) => sep + c.toUpperCase());
}

/** go-cty's format verbs: %s %d %f %q %v %t %%, with width and precision. */
function format(spec: string, args: Value[], pos: Pos): string {
  let n = 0;
  return spec.replace(/%([-+ 0#]*)(\d+)?(?:\.(\d+))?([sdfqvtxXeEgbo%])/g, (_m, flags: string, width?: string, prec?: string, verb?: string) => {
    if (verb === '%') return '%';
    if (n >= args.length) throw new Error(`not enough arguments for "${spec}"`);
    const a = args[n++]!;
    let out: string;
    switch (verb) {
      case 'd':
        out = String(Math.trunc(num(a, pos)));
        break;
      case 'f':
        out = num(a, pos).toFixed(prec === undefined ? 6 : Number(prec));
        break;
      case 'e':
      case 'E':
        out = num(a, pos).toExponential(prec === undefined ? 6 : Number(prec));
        if (verb === 'E') out = out.toUpperCase();
        break;
      case 'g':
        out = formatNumber(num(a, pos));
        break;
      case 'x':
      case 'X':
        out = Math.trunc(num(a, pos)).toString(16);
        if (verb === 'X') out = out.toUpperCase();
        break;
      case 'b':
        out = Math.trunc(num(a, pos)).toString(2);
        break;
      case 'o':
        out = Math.trunc(num(a, pos)).toString(8);
        break;
      case 't':
        out = String(asBool(a, pos, 'argument'));
        break;
      case 'q':
        out = JSON.stringify(str(a, pos));
        break;
      case 'v':
        out = typeof a === 'string' ? a : a !== null && typeof a === 'object' ? JSON.stringify(a) : str(a, pos);
        break;
      default:
        out = str(a, pos);
        if (prec !== undefined) out = [...out].slice(0, Number(prec)).join('');
    }
    if (flags.includes('+') && 'dfeg'.includes(verb!) && !out.startsWith('-')) out = `+${out}`;
    if (width && out.length < Number(width)) {
      const pad = flags.includes('-') ? 'end' : flags.includes('0') && verb !== 's' ? 'zero' : 'start';
      out = pad === 'end' ? out.padEnd(Number(width)) : pad === 'zero' ? (out.startsWith('-') ? `-${out.slice(1).padStart(Number(width) - 1, '0')}` : out.padStart(Number(width), '0')) : out.padStart(Number(width));
    }
    return out;
  });
}

/** Go's time layout for formatdate (go-cty's formatdate uses its own letters, as Terraform's). */
function formatdate(spec: string, ts: string): string {
  const d = new Date(ts);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(ts) || Number.isNaN(d.getTime())) throw new Error(`"${ts}" is not an RFC 3339 timestamp`);
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const p2 = (x: number) => String(x).padStart(2, '0');
  const h = d.getUTCHours();
  const map: Record<string, () => string> = {
    YYYY: () => String(d.getUTCFullYear()),
    YY: () => p2(d.getUTCFullYear() % 100),
    MMMM: () => months[d.getUTCMonth()]!,
    MMM: () => months[d.getUTCMonth()]!.slice(0, 3),
    MM: () => p2(d.getUTCMonth() + 1),
    M: () => String(d.getUTCMonth() + 1),
    DD: () => p2(d.getUTCDate()),
    D: () => String(d.getUTCDate()),
    EEEE: () => days[d.getUTCDay()]!,
    EEE: () => days[d.getUTCDay()]!.slice(0, 3),
    hh: () => p2(h),
    h: () => String(h),
    HH: () => p2(h % 12 || 12),
    H: () => String(h % 12 || 12),
    AA: () => (h < 12 ? 'AM' : 'PM'),
    aa: () => (h < 12 ? 'am' : 'pm'),
    mm: () => p2(d.getUTCMinutes()),
    m: () => String(d.getUTCMinutes()),
    ss: () => p2(d.getUTCSeconds()),
    s: () => String(d.getUTCSeconds()),
    ZZZZZ: () => '+00:00',
    ZZZZ: () => '+0000',
    ZZZ: () => 'UTC',
    Z: () => 'Z',
  };
  return spec.replace(/'([^']*)'|YYYY|YY|MMMM|MMM|MM|M|DD|D|EEEE|EEE|hh|h|HH|H|AA|aa|mm|m|ss|s|ZZZZZ|ZZZZ|ZZZ|Z/g, (m, lit?: string) => (lit !== undefined ? lit || "'" : map[m]!()));
}

export function stdlib(): Map<string, HclFunction> {
  const f: Record<string, HclFunction> = {
    // Logic and comparison
    and: fn([0, Infinity], (a, p) => a.every((x) => asBool(x, p, 'argument'))),
    or: fn([0, Infinity], (a, p) => a.some((x) => asBool(x, p, 'argument'))),
    not: fn(1, ([x], p) => !asBool(x!, p, 'argument')),
    equal: fn(2, ([a, b]) => equal(a!, b!)),
    notequal: fn(2, ([a, b]) => !equal(a!, b!)),
    greaterthan: fn(2, ([a, b], p) => num(a!, p) > num(b!, p)),
    greaterthanorequalto: fn(2, ([a, b], p) => num(a!, p) >= num(b!, p)),
    lessthan: fn(2, ([a, b], p) => num(a!, p) < num(b!, p)),
    lessthanorequalto: fn(2, ([a, b], p) => num(a!, p) <= num(b!, p)),
    coalesce: fn([1, Infinity], (a) => {
      const v = a.find((x) => x !== null && x !== '');
      if (v === undefined) throw new Error('no non-null, non-empty argument');
      return v;
    }),
    coalescelist: fn([1, Infinity], (a, p) => a.find((x) => list(x, p).length > 0) ?? []),
    // Numbers
    add: fn(2, ([a, b], p) => num(a!, p) + num(b!, p)),
    subtract: fn(2, ([a, b], p) => num(a!, p) - num(b!, p)),
    multiply: fn(2, ([a, b], p) => num(a!, p) * num(b!, p)),
    divide: fn(2, ([a, b], p) => {
      if (num(b!, p) === 0) throw new Error('division by zero');
      return num(a!, p) / num(b!, p);
    }),
    modulo: fn(2, ([a, b], p) => num(a!, p) % num(b!, p)),
    negate: fn(1, ([a], p) => -num(a!, p)),
    abs: fn(1, ([a], p) => Math.abs(num(a!, p))),
    absolute: fn(1, ([a], p) => Math.abs(num(a!, p))),
    ceil: fn(1, ([a], p) => Math.ceil(num(a!, p))),
    floor: fn(1, ([a], p) => Math.floor(num(a!, p))),
    int: fn(1, ([a], p) => Math.trunc(num(a!, p))),
    log: fn(2, ([a, b], p) => Math.log(num(a!, p)) / Math.log(num(b!, p))),
    pow: fn(2, ([a, b], p) => num(a!, p) ** num(b!, p)),
    signum: fn(1, ([a], p) => Math.sign(num(a!, p))),
    max: fn([1, Infinity], (a, p) => Math.max(...a.map((x) => num(x, p)))),
    min: fn([1, Infinity], (a, p) => Math.min(...a.map((x) => num(x, p)))),
    parseint: fn(2, ([s, b], p) => {
      const base = int(b!, p);
      const t = str(s!, p);
      const digits = '0123456789abcdefghijklmnopqrstuvwxyz'.slice(0, base);
      if (base < 2 || base > 36 || !new RegExp(`^[-+]?[${digits}]+$`, 'i').test(t)) throw new Error(`cannot parse "${t}" as a base ${base} integer`);
      return parseInt(t, base);
    }),
    // Strings
    chomp: fn(1, ([s], p) => str(s!, p).replace(/(\r\n|\n|\r)+$/, '')),
    format: fn([1, Infinity], ([s, ...a], p) => format(str(s!, p), a, p)),
    formatlist: fn([1, Infinity], ([s, ...a], p) => {
      const lens = a.filter(Array.isArray).map((x) => (x as Value[]).length);
      if (new Set(lens).size > 1) throw new Error('all list arguments must have the same length');
      const n = lens[0] ?? 1;
      return Array.from({ length: n }, (_x, i) => format(str(s!, p), a.map((x) => (Array.isArray(x) ? x[i]! : x)), p));
    }),
    indent: fn(2, ([n, s], p) => str(s!, p).replace(/\n/g, `\n${' '.repeat(int(n!, p))}`)),
    join: fn([2, Infinity], ([sep, ...ls], p) => ls.flatMap((l) => list(l, p)).map((x) => str(x, p)).join(str(sep!, p))),
    split: fn(2, ([sep, s], p) => str(s!, p).split(str(sep!, p))),
    lower: fn(1, ([s], p) => str(s!, p).toLowerCase()),
    upper: fn(1, ([s], p) => str(s!, p).toUpperCase()),
    title: fn(1, ([s], p) => title(str(s!, p))),
    strlen: fn(1, ([s], p) => [...str(s!, p)].length),
    substr: fn(3, ([s, o, l], p) => {
      const chars = [...str(s!, p)];
      let off = int(o!, p);
      let len = int(l!, p);
      if (off < 0) off = Math.max(chars.length + off, 0);
      if (len < 0) len = chars.length - off;
      return chars.slice(off, off + len).join('');
    }),
    trim: fn(2, ([s, cut], p) => {
      const set = new Set([...str(cut!, p)]);
      const chars = [...str(s!, p)];
      let a = 0;
      let b = chars.length;
      while (a < b && set.has(chars[a]!)) a++;
      while (b > a && set.has(chars[b - 1]!)) b--;
      return chars.slice(a, b).join('');
    }),
    trimprefix: fn(2, ([s, x], p) => (str(s!, p).startsWith(str(x!, p)) ? str(s!, p).slice(str(x!, p).length) : str(s!, p))),
    trimsuffix: fn(2, ([s, x], p) => (str(x!, p) !== '' && str(s!, p).endsWith(str(x!, p)) ? str(s!, p).slice(0, -str(x!, p).length) : str(s!, p))),
    trimspace: fn(1, ([s], p) => str(s!, p).trim()),
    replace: fn(3, ([s, find, rep], p) => {
      const f = str(find!, p);
      // go-cty's replace: a substring wrapped in slashes is a regular expression.
      if (f.length > 1 && f.startsWith('/') && f.endsWith('/')) return str(s!, p).replace(new RegExp(f.slice(1, -1), 'g'), goReplacement(str(rep!, p)));
      return str(s!, p).split(f).join(str(rep!, p));
    }),
    regex_replace: fn(3, ([s, re, rep], p) => str(s!, p).replace(new RegExp(str(re!, p), 'g'), goReplacement(str(rep!, p)))),
    regex: fn(2, ([re, s], p) => {
      const m = new RegExp(str(re!, p)).exec(str(s!, p));
      if (!m) throw new Error('pattern did not match any part of the given string');
      if (m.groups) return Object.fromEntries(Object.entries(m.groups).map(([k, v]) => [k, v ?? null]));
      return m.length > 1 ? m.slice(1).map((x) => x ?? null) : m[0];
    }),
    regexall: fn(2, ([re, s], p) => [...str(s!, p).matchAll(new RegExp(str(re!, p), 'g'))].map((m) => (m.length > 1 ? m.slice(1).map((x) => x ?? null) : m[0]))),
    sanitize: fn(1, ([s], p) => str(s!, p).replace(/[^a-zA-Z0-9_-]/g, '_')),
    // Collections
    concat: fn([1, Infinity], (a, p) => a.flatMap((x) => list(x, p))),
    contains: fn(2, ([l, v], p) => list(l!, p).some((x) => equal(x, v!))),
    distinct: fn(1, ([l], p) => list(l!, p).filter((x, i, all) => all.findIndex((y) => equal(x, y)) === i)),
    element: fn(2, ([l, i], p) => {
      const xs = list(l!, p);
      if (xs.length === 0) throw new Error('cannot use element function with an empty list');
      const n = int(i!, p);
      if (n < 0) throw new Error('cannot use element function with a negative index');
      return xs[n % xs.length]!;
    }),
    flatten: fn(1, ([l], p) => flatten(list(l!, p))),
    chunklist: fn(2, ([l, n], p) => {
      const xs = list(l!, p);
      const size = int(n!, p);
      if (size <= 0) return [xs];
      const out: Value[] = [];
      for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
      return out;
    }),
    compact: fn(1, ([l], p) => list(l!, p).filter((x) => x !== null && x !== '')),
    hasindex: fn(2, ([c, k], p) => (Array.isArray(c) ? Number.isInteger(num(k!, p)) && num(k!, p) >= 0 && num(k!, p) < c.length : Object.hasOwn(asObject(c!, p, 'argument'), str(k!, p)))),
    index: fn(2, ([c, k], p) => {
      if (Array.isArray(c)) {
        const n = int(k!, p);
        if (n < 0 || n >= c.length) throw new Error('index out of range');
        return c[n]!;
      }
      const o = asObject(c!, p, 'argument');
      if (!Object.hasOwn(o, str(k!, p))) throw new Error(`no element "${str(k!, p)}"`);
      return o[str(k!, p)]!;
    }),
    indexof: fn(2, ([l, v], p) => {
      const i = list(l!, p).findIndex((x) => equal(x, v!));
      if (i < 0) throw new Error('item not found');
      return i;
    }),
    keys: fn(1, ([o], p) => Object.keys(asObject(o!, p, 'argument')).sort()),
    values: fn(1, ([o], p) => {
      const obj = asObject(o!, p, 'argument');
      return Object.keys(obj).sort().map((k) => obj[k]!);
    }),
    length: fn(1, ([c], p) => (typeof c === 'string' ? [...c].length : Array.isArray(c) ? c.length : Object.keys(asObject(c!, p, 'argument')).length)),
    lookup: fn([2, 3], ([o, k, d], p) => {
      const obj = asObject(o!, p, 'argument');
      const key = str(k!, p);
      if (Object.hasOwn(obj, key)) return obj[key]!;
      if (d === undefined) throw new Error(`the object has no element "${key}" and no default was given`);
      return d;
    }),
    merge: fn([0, Infinity], (a, p) => Object.assign({}, ...a.filter((x) => x !== null).map((x) => asObject(x, p, 'argument')))),
    range: fn([1, 3], (a, p) => {
      const n = a.map((x) => num(x, p));
      const [start, end, step] = n.length === 1 ? [0, n[0]!, 1] : [n[0]!, n[1]!, n[2] ?? (n[0]! <= n[1]! ? 1 : -1)];
      if (step === 0) throw new Error('step must not be zero');
      const out: number[] = [];
      for (let x = start; step > 0 ? x < end : x > end; x += step) {
        out.push(x);
        if (out.length > 1024) throw new Error('more than 1024 values');
      }
      return out;
    }),
    reverse: fn(1, ([l], p) => (typeof l === 'string' ? [...l].reverse().join('') : [...list(l!, p)].reverse())),
    reverselist: fn(1, ([l], p) => [...list(l!, p)].reverse()),
    slice: fn(3, ([l, a, b], p) => {
      const xs = list(l!, p);
      const s = int(a!, p);
      const e = int(b!, p);
      if (s < 0 || e > xs.length || s > e) throw new Error(`invalid slice [${s}:${e}] of a list of ${xs.length}`);
      return xs.slice(s, e);
    }),
    sort: fn(1, ([l], p) => list(l!, p).map((x) => str(x, p)).sort(compare)),
    // Encoding and hashing
    base64encode: fn(1, ([s], p) => Buffer.from(str(s!, p), 'utf8').toString('base64')),
    base64decode: fn(1, ([s], p) => {
      const t = str(s!, p);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) throw new Error('invalid base64 data');
      return Buffer.from(t, 'base64').toString('utf8');
    }),
    jsonencode: fn(1, ([v]) => JSON.stringify(v)),
    jsondecode: fn(1, ([s], p) => {
      try {
        return JSON.parse(str(s!, p)) as Value;
      } catch (e) {
        throw new Error(`invalid JSON: ${(e as Error).message}`);
      }
    }),
    md5: hash('md5'),
    sha1: hash('sha1'),
    sha256: hash('sha256'),
    sha512: hash('sha512'),
    uuidv4: fn(0, () => randomUUID()),
    // Time and paths
    timestamp: fn(0, () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')),
    formatdate: fn(2, ([f, t], p) => formatdate(str(f!, p), str(t!, p))),
    timeadd: fn(2, ([t, d], p) => {
      const base = new Date(str(t!, p));
      const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(str(d!, p));
      if (Number.isNaN(base.getTime()) || !m) throw new Error('expected an RFC 3339 timestamp and a duration such as "1h30m"');
      const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
      let ms = 0;
      for (const [, n, u] of m[2]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * unit[u!]!;
      return new Date(base.getTime() + (m[1] ? -ms : ms)).toISOString().replace(/\.000Z$/, 'Z');
    }),
    homedir: fn(0, () => homedir()),
    basename: fn(1, ([s], p) => basename(str(s!, p))),
    dirname: fn(1, ([s], p) => dirname(str(s!, p))),
  };
  return new Map(Object.entries(f));
}

/** Go's regexp replacement ($1, ${name}) in JavaScript's ($1, $<name>). */
function goReplacement(rep: string): string {
  return rep.replace(/\$\{(\w+)\}/g, (_m, n: string) => (/^\d+$/.test(n) ? `$${n}` : `$<${n}>`));
}
