// Shell-style word processing exactly as BuildKit's frontend/dockerfile/shell/lex.go does it: quotes,
// the escape token, $v, ${v}, ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m} ${v?m} ${v#p} ${v##p} ${v%p}
// ${v%%p} ${v/p/r} ${v//p/r}, and word splitting after expansion. It never runs anything.

import { UnlocatedError } from './errors.js';
import { goQuote, isGoSpace } from './gocompat.js';

/** A variable environment the lexer reads from. */
export interface EnvLookup {
  get(name: string): string | undefined;
  keys(): string[];
}

/**
 * An ordered environment with BuildKit's llb.EnvList semantics: setting a key replaces its value and
 * moves it to the end (the order a process sees is the order of last assignment).
 */
export class EnvList implements EnvLookup {
  private readonly map = new Map<string, string>();
  constructor(entries?: Iterable<readonly [string, string]>) {
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }
  static fromStrings(env: readonly string[] | undefined): EnvList {
    const list = new EnvList();
    for (const e of env ?? []) {
      const eq = e.indexOf('=');
      list.set(eq < 0 ? e : e.slice(0, eq), eq < 0 ? '' : e.slice(eq + 1));
    }
    return list;
  }
  static fromRecord(rec: Record<string, string>): EnvList {
    return new EnvList(Object.entries(rec));
  }
  set(key: string, value: string): void {
    this.map.delete(key);
    this.map.set(key, value);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
  toStrings(): string[] {
    return [...this.map].map(([k, v]) => `${k}=${v}`);
  }
  clone(): EnvList {
    return new EnvList(this.map);
  }
}

/** Accepts the usual shapes of an environment. */
export function toEnvLookup(env: EnvLookup | Record<string, string> | readonly string[]): EnvLookup {
  if (Array.isArray(env)) return EnvList.fromStrings(env as readonly string[]);
  if (typeof (env as EnvLookup).get === 'function' && typeof (env as EnvLookup).keys === 'function') return env as EnvLookup;
  return EnvList.fromRecord(env as Record<string, string>);
}

export const emptyEnv: EnvLookup = { get: () => undefined, keys: () => [] };

export interface LexOptions {
  /** The Dockerfile's escape token: `\` (default) or a backtick. */
  escapeToken?: string;
  /** Keep quote characters in the output. */
  rawQuotes?: boolean;
  /** Keep escape tokens in the output. */
  rawEscapes?: boolean;
  /** Treat quotes as ordinary characters (used for heredoc bodies). */
  skipProcessQuotes?: boolean;
  /** Leave references to unset variables as written. */
  skipUnsetEnv?: boolean;
}

export interface WordResult {
  result: string;
  words: string[];
  matched: Set<string>;
  unmatched: Set<string>;
}

const EOF = null;
type Ch = string | null;

class Words {
  words: string[] = [];
  inWord = false;
  constructor(private readonly buf: { s: string }) {}
  addChar(ch: string): void {
    if (isGoSpace(ch) && this.inWord) {
      if (this.buf.s.length !== 0) {
        this.words.push(this.buf.s);
        this.buf.s = '';
        this.inWord = false;
      }
    } else if (!isGoSpace(ch)) {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.buf.s += ch;
    this.inWord = true;
  }
  addString(str: string): void {
    for (const ch of str) this.addChar(ch);
  }
  addRawString(str: string): void {
    this.buf.s += str;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.buf.s.length > 0) {
      this.words.push(this.buf.s);
      this.buf.s = '';
      this.inWord = false;
    }
    return this.words;
  }
}

const letterRe = /^\p{L}$/u;
const digitRe = /^\p{Nd}$/u;

function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch);
}

class ShellWord {
  private chars: string[];
  private pos = 0;
  private rawEscapes: boolean;
  // BuildKit shares one words buffer between nested ${...} processing and the enclosing word; a
  // nested expansion therefore drops the part of the word before it when splitting into words
  // (`EXPOSE 8${P:-0}` gives "0"). Reproduced on purpose so EXPOSE matches BuildKit.
  private readonly wordsBuffer = { s: '' };
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(
    private readonly opts: Required<LexOptions>,
    word: string,
    private readonly env: EnvLookup,
  ) {
    this.chars = [...word];
    this.rawEscapes = opts.rawEscapes;
  }

  private peek(): Ch {
    return this.pos < this.chars.length ? this.chars[this.pos]! : EOF;
  }
  private next(): Ch {
    return this.pos < this.chars.length ? this.chars[this.pos++]! : EOF;
  }

  process(): [string, string[]] {
    return this.processStopOn(EOF, this.rawEscapes);
  }

  private processStopOn(stopChar: Ch, rawEscapes: boolean): [string, string[]] {
    let result = '';
    this.wordsBuffer.s = '';
    const words = new Words(this.wordsBuffer);
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      while (this.peek() !== EOF) {
        let ch = this.peek()!;
        if (stopChar !== EOF && ch === stopChar) {
          this.next();
          return [result, words.getWords()];
        }
        let special: (() => string) | undefined;
        if (ch === '$') special = () => this.processDollar();
        else if (ch === '<') special = () => this.processPossibleHeredoc();
        else if (!this.opts.skipProcessQuotes && ch === "'") special = () => this.processSingleQuote();
        else if (!this.opts.skipProcessQuotes && ch === '"') special = () => this.processDoubleQuote();
        if (special) {
          const tmp = special();
          result += tmp;
          if (ch === '$') words.addString(tmp);
          else words.addRawString(tmp);
          continue;
        }
        ch = this.next()!;
        if (ch === this.opts.escapeToken) {
          if (this.rawEscapes) {
            words.addRawChar(ch);
            result += ch;
          }
          const escaped = this.next();
          if (escaped === EOF) break;
          ch = escaped;
          words.addRawChar(ch);
        } else {
          words.addChar(ch);
        }
        result += ch;
      }
      if (stopChar !== EOF) throw new UnlocatedError(`unexpected end of statement while looking for matching ${stopChar}`);
      return [result, words.getWords()];
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a ' cannot be escaped inside.
    let result = '';
    const open = this.next()!;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === EOF) throw new UnlocatedError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    // Literal up to the next ", except $ expansions and the escape token before " $ or itself.
    let result = '';
    const open = this.next()!;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const p = this.peek();
      if (p === EOF) throw new UnlocatedError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        if (this.opts.rawQuotes) result += p;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next()!;
      if (ch === this.opts.escapeToken) {
        if (this.rawEscapes) result += ch;
        const after = this.peek();
        if (after === EOF) continue;
        if (after === '"' || after === '$' || after === this.opts.escapeToken) ch = this.next()!;
      }
      result += ch;
    }
  }

  private getEnv(name: string): string | undefined {
    const v = this.env.get(name);
    if (v !== undefined) this.matched.add(name);
    else this.unmatched.add(name);
    return v;
  }

  private processName(): string {
    let name = '';
    while (this.peek() !== EOF) {
      const ch = this.peek()!;
      if (name === '' && digitRe.test(ch)) {
        while (this.peek() !== EOF && digitRe.test(this.peek()!)) name += this.next();
        return name;
      }
      if (name === '' && isSpecialParam(ch)) {
        this.next();
        return ch;
      }
      if (!letterRe.test(ch) && !digitRe.test(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }

  private processDollar(): string {
    this.next();
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const value = this.getEnv(name);
      if (value === undefined && this.opts.skipUnsetEnv) return '$' + name;
      return value ?? '';
    }
    this.next();
    const first = this.peek();
    if (first === EOF) throw new UnlocatedError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new UnlocatedError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    let chs = ch ?? '\ufffd';
    let nullIsUnset = false;
    const unsupported = () => new UnlocatedError(`unsupported modifier (${chs}) in substitution`);

    if (ch === '}') {
      const value = this.getEnv(name);
      if (value === undefined && this.opts.skipUnsetEnv) return '${' + name + '}';
      return value ?? '';
    }
    if (ch === ':' || ch === '+' || ch === '-' || ch === '?' || ch === '#' || ch === '%') {
      if (ch === ':') {
        nullIsUnset = true;
        ch = this.next();
        chs += ch ?? '\ufffd';
      }
      const rawEscapes = ch === '#' || ch === '%';
      if (nullIsUnset && rawEscapes) throw unsupported();
      let word: string;
      try {
        [word] = this.processStopOn('}', rawEscapes);
      } catch (err) {
        if (this.peek() === EOF) throw new UnlocatedError("syntax error: missing '}'");
        throw err;
      }
      const value = this.getEnv(name);
      const set = value !== undefined;
      if (this.opts.skipUnsetEnv && !set) return '${' + name + chs + word + '}';
      const v = value ?? '';
      switch (ch) {
        case '-':
          return !set || (nullIsUnset && v === '') ? word : v;
        case '+':
          return !set || (nullIsUnset && v === '') ? '' : word;
        case '?':
          if (!set) throw new UnlocatedError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
          if (nullIsUnset && v === '') throw new UnlocatedError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
          return v;
        case '%':
        case '#': {
          // % and # remove the shortest match, %% and ## the longest.
          let greedy = false;
          if (word.length > 0 && word[0] === ch) {
            greedy = true;
            word = word.slice(1);
          }
          return ch === '%' ? trimSuffix(word, v, greedy) : trimPrefix(word, v, greedy);
        }
        default:
          throw unsupported();
      }
    }
    if (ch === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      let pattern: string;
      let replacement: string;
      try {
        [pattern] = this.processStopOn('/', true);
      } catch (err) {
        if (this.peek() === EOF) throw new UnlocatedError("syntax error: missing '/' in ${}");
        throw err;
      }
      try {
        [replacement] = this.processStopOn('}', true);
      } catch (err) {
        if (this.peek() === EOF) throw new UnlocatedError("syntax error: missing '}'");
        throw err;
      }
      const value = this.getEnv(name);
      if (this.opts.skipUnsetEnv && value === undefined) return '${' + name + '/' + pattern + '/' + replacement + '}';
      let re: RegExp;
      try {
        re = shellPatternToRegex(pattern, true, false);
      } catch (err) {
        throw new UnlocatedError(`invalid pattern (${pattern}) in substitution: ${(err as Error).message}`);
      }
      const v = value ?? '';
      if (replaceAll) {
        // Go's Regexp.ReplaceAllString expands $name templates in the replacement; the pattern has
        // no groups, so every reference is empty and $$ is a dollar.
        const expanded = expandGoTemplate(replacement);
        return v.replace(new RegExp(re.source, 'gu'), () => expanded);
      }
      const m = re.exec(v);
      return m ? v.slice(0, m.index) + replacement + v.slice(m.index + m[0].length) : v;
    }
    throw unsupported();
  }

  private processPossibleHeredoc(): string {
    this.next();
    if (this.peek() !== '<') return '<';
    this.next();
    let space = '';
    for (let p = this.peek(); p === '\t' || p === '\r' || p === ' '; p = this.peek()) space += this.next();
    return '<<' + space;
  }
}

function expandGoTemplate(template: string): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    const m = /^(?:\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)/.exec(template.slice(i + 1));
    if (m) i += m[0].length;
    else out += '$';
  }
  return out;
}

/** Shell wildcard (* and ?) to a regular expression, as BuildKit's convertShellPatternToRegex. */
function shellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  const chars = [...pattern];
  let out = anchored ? '^' : '';
  const star = greedy ? '.*' : '.*?';
  for (let i = 0; i < chars.length; i++) {
    let tok = chars[i]!;
    if (tok === '*') {
      out += star;
      continue;
    }
    if (tok === '?') {
      out += '.';
      continue;
    }
    if (tok === '\\') {
      // } and / are escaped inside ${} but the escape is not part of the pattern
      const peek = chars[i + 1];
      if (peek === '}' || peek === '/') continue;
      out += '\\';
      i++;
      tok = chars[i] ?? '\ufffd';
      if (tok !== '*' && tok !== '?' && tok !== '\\') throw new UnlocatedError(`invalid escape '\\${tok}'`);
    } else if ('[]{}.+()|^$'.includes(tok)) {
      out += '\\';
    }
    out += tok;
  }
  return new RegExp(out, 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  let re: RegExp;
  try {
    re = shellPatternToRegex(pattern, greedy, true);
  } catch (err) {
    throw new UnlocatedError(`invalid pattern (${pattern}) in substitution: ${(err as Error).message}`);
  }
  const m = re.exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Reverses a pattern keeping each escape before the character it escapes: a\*c → c\*a. */
function reversePattern(pattern: string): string {
  const runes = [...pattern];
  const out: string[] = new Array(runes.length);
  const last = runes.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = runes[i]!;
    const outIdx = last - i;
    if (tok === '\\' && i !== last) {
      out[outIdx - 1] = tok;
      out[outIdx] = runes[i + 1]!;
      i += 2;
    } else {
      out[outIdx] = tok;
      i++;
    }
  }
  return out.join('');
}

function reverseString(s: string): string {
  return [...s].reverse().join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // Regular expressions cannot find the shortest rightmost match, so search the reversed string.
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

/** BuildKit's shell.Lex: processes one Dockerfile word against an environment. */
export class ShellLex {
  readonly opts: Required<LexOptions>;
  constructor(opts: LexOptions = {}) {
    this.opts = {
      escapeToken: opts.escapeToken ?? '\\',
      rawQuotes: opts.rawQuotes ?? false,
      rawEscapes: opts.rawEscapes ?? false,
      skipProcessQuotes: opts.skipProcessQuotes ?? false,
      skipUnsetEnv: opts.skipUnsetEnv ?? false,
    };
  }
  with(opts: LexOptions): ShellLex {
    return new ShellLex({ ...this.opts, ...opts });
  }
  /** Expands the word and reports which variables were found and which were not. Throws UnlocatedError. */
  processWord(word: string, env: EnvLookup): WordResult {
    const sw = new ShellWord(this.opts, word, env);
    try {
      const [result, words] = sw.process();
      return { result, words, matched: sw.matched, unmatched: sw.unmatched };
    } catch (err) {
      if (err instanceof UnlocatedError) throw new UnlocatedError(`failed to process ${goQuote(word)}: ${err.message}`);
      throw err;
    }
  }
  /** Expands, then splits into words on unquoted white space. */
  processWords(word: string, env: EnvLookup): string[] {
    return this.processWord(word, env).words;
  }
}

/**
 * Expands variables in one Dockerfile word the way BuildKit does for ENV, LABEL, COPY, WORKDIR…:
 * quotes are removed, the escape character escapes, `${…}` operators apply.
 */
export function expandWord(
  word: string,
  env: EnvLookup | Record<string, string> | readonly string[],
  escapeChar = '\\',
): string {
  return new ShellLex({ escapeToken: escapeChar }).processWord(word, toEnvLookup(env)).result;
}

/** Like expandWord, then split into words on unquoted white space (EXPOSE does this). */
export function expandWords(
  word: string,
  env: EnvLookup | Record<string, string> | readonly string[],
  escapeChar = '\\',
): string[] {
  return new ShellLex({ escapeToken: escapeChar }).processWords(word, toEnvLookup(env));
}
