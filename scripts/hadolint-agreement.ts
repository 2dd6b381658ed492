// How often kiln lint agrees with hadolint's own rule specs. Reads the Haskell spec files of a hadolint
// checkout (test/Hadolint/Rule/*Spec.hs) at run time, pulls out every ruleCatches / ruleCatchesNot /
// onBuildRuleCatches / onBuildRuleCatchesNot case (rule code, Dockerfile text, configuration), lints the
// text in-process and compares with what the case expects, as hadolint's test/Helpers.hs does:
//   ruleCatches             at least one finding with the code
//   ruleCatchesNot          none
//   onBuildRuleCatches      exactly one, once every RUN is wrapped in ONBUILD
//   onBuildRuleCatchesNot   none, with every RUN wrapped in ONBUILD
// Nothing of hadolint is copied into kiln: the spec files are read from the checkout given.
//   npx tsc -p . && node dist/scripts/hadolint-agreement.js <hadolint work tree or git dir> [--verbose] [--rule DL3009] [--cases]
// --verbose prints the Dockerfile of each disagreement, --cases every case extracted (to audit the
// extraction), --json one JSON object instead of the report (what test/lint/hadolint-agreement.test.ts reads).
//
// The spec files are Haskell, so the Dockerfile text is found by evaluating a small part of Haskell:
// string literals (escapes and string gaps), lists, `unlines`/`Text.unlines`, `<>`/`++`, `$`, and
// variables bound by `let` (resolved by Haskell's layout: in the same `it` block, or bound further
// out). A case whose text uses anything else is counted as not extracted rather than guessed.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lintDockerfile, mergeConfig, rules, type PartialConfig } from '../src/lint/index.js';
import { parseRules } from '../src/lint/rules/index.js';
import { parseRaw, type RawNode } from '../src/dockerfile/parser.js';

// ---------------------------------------------------------------------------------------------------
// Reading the checkout

interface SpecFile {
  name: string;
  text: string;
}

/** Every `*Spec.hs` under test/ (the rule specs, and the pragma and regression specs that use the same helpers). */
function readSpecs(source: string): SpecFile[] {
  const dir = join(source, 'test');
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    return (readdirSync(dir, { recursive: true }) as string[])
      .filter((f) => f.endsWith('Spec.hs'))
      .sort()
      .map((f) => ({ name: `test/${f}`, text: readFileSync(join(dir, f), 'utf8') }));
  }
  // A bare git directory (what `fetch` brings): read the files of HEAD.
  const git = (...args: string[]) => execFileSync('git', ['--git-dir', source, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return git('ls-tree', '-r', '--name-only', 'HEAD', 'test/')
    .split('\n')
    .filter((f) => f.endsWith('Spec.hs'))
    .sort()
    .map((f) => ({ name: f, text: git('show', `HEAD:${f}`) }));
}

// ---------------------------------------------------------------------------------------------------
// Haskell tokens

interface Token {
  kind: 'string' | 'char' | 'ident' | 'symbol' | 'number';
  value: string;
  line: number;
  /** 1-based column. */
  col: number;
  /** The first token on its line: Haskell's layout rule looks at these. */
  first: boolean;
}

const asciiNames: Record<string, number> = {
  NUL: 0, SOH: 1, STX: 2, ETX: 3, EOT: 4, ENQ: 5, ACK: 6, BEL: 7, BS: 8, HT: 9, LF: 10, VT: 11, FF: 12, CR: 13,
  SO: 14, SI: 15, DLE: 16, DC1: 17, DC2: 18, DC3: 19, DC4: 20, NAK: 21, SYN: 22, ETB: 23, CAN: 24, EM: 25,
  SUB: 26, ESC: 27, FS: 28, GS: 29, RS: 30, US: 31, SP: 32, DEL: 127,
};
const simpleEscapes: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };
const symbolChars = '!#$%&*+./<=>?@\\^|-~:';

class HaskellSyntax extends Error {}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  let lastLine = 0;
  const push = (kind: Token['kind'], value: string, startLine: number, startCol: number) => {
    tokens.push({ kind, value, line: startLine, col: startCol, first: startLine !== lastLine });
    lastLine = startLine;
  };
  const isIdStart = (c: string) => /[A-Za-z_]/.test(c);
  const isId = (c: string) => /[A-Za-z0-9_']/.test(c);
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (src.startsWith('{-', i)) {
      let depth = 0;
      do {
        if (src.startsWith('{-', i)) (depth++, (i += 2));
        else if (src.startsWith('-}', i)) (depth--, (i += 2));
        else {
          if (src[i] === '\n') (line++, (lineStart = i + 1));
          i++;
        }
      } while (depth > 0 && i < src.length);
      continue;
    }
    if (src.startsWith('--', i)) {
      // A line comment: two or more dashes not followed by another symbol character (`-->` is an operator).
      let j = i;
      while (src[j] === '-') j++;
      if (!symbolChars.includes(src[j] ?? ' ')) {
        while (i < src.length && src[i] !== '\n') i++;
        continue;
      }
    }
    const col = i - lineStart + 1;
    const startLine = line;
    if (c === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new HaskellSyntax(`unterminated string at line ${startLine}`);
        const d = src[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\n') throw new HaskellSyntax(`newline in string at line ${line}`);
        if (d !== '\\') {
          out += d;
          i++;
          continue;
        }
        const e = src[i + 1] ?? '';
        if (/\s/.test(e)) {
          // A string gap: backslash, white space (newlines too), backslash.
          i++;
          while (i < src.length && /\s/.test(src[i]!)) {
            if (src[i] === '\n') (line++, (lineStart = i + 1));
            i++;
          }
          if (src[i] !== '\\') throw new HaskellSyntax(`bad string gap at line ${line}`);
          i++;
          continue;
        }
        const [text, used] = readEscape(src, i + 1, line);
        out += text;
        i += 1 + used;
      }
      push('string', out, startLine, col);
      lastLine = line; // a token after a string with gaps, on the string's last line, does not start a line
      continue;
    }
    if (c === "'" && !(tokens.length > 0 && isId(src[i - 1] ?? ' '))) {
      const m = /^'(\\[^']+|[^'\\])'/.exec(src.slice(i, i + 12));
      if (m) {
        const body = m[1]!;
        const value = body.startsWith('\\') ? readEscape(body, 1, line)[0] : body;
        push('char', value, startLine, col);
        i += m[0].length;
        continue;
      }
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(src.slice(i))![0];
      push('number', m, startLine, col);
      i += m.length;
      continue;
    }
    if (isIdStart(c) || (c === '?' && isIdStart(src[i + 1] ?? ''))) {
      // Identifiers, qualified ones (Text.unlines, Rule.RawText) and implicit parameters (?config).
      let j = i + 1;
      for (;;) {
        while (j < src.length && isId(src[j]!)) j++;
        if (src[j] === '.' && isIdStart(src[j + 1] ?? '') && /^[A-Z]/.test(src.slice(i, j).split('.').pop()!)) {
          j++;
          continue;
        }
        break;
      }
      push('ident', src.slice(i, j), startLine, col);
      i = j;
      continue;
    }
    if ('()[]{},;`'.includes(c)) {
      push('symbol', c, startLine, col);
      i++;
      continue;
    }
    if (symbolChars.includes(c)) {
      let j = i;
      while (j < src.length && symbolChars.includes(src[j]!)) j++;
      push('symbol', src.slice(i, j), startLine, col);
      i = j;
      continue;
    }
    throw new HaskellSyntax(`unexpected ${JSON.stringify(c)} at line ${line}`);
  }
  return tokens;
}

/** The escape after a backslash at `at`: its text and how many characters it used. */
function readEscape(src: string, at: number, line: number): [string, number] {
  const rest = src.slice(at, at + 8);
  const e = rest[0] ?? '';
  if (e in simpleEscapes) return [simpleEscapes[e]!, 1];
  if (e === '&') return ['', 1];
  let m = /^[0-9]+/.exec(rest);
  if (m) return [String.fromCodePoint(parseInt(m[0], 10)), m[0].length];
  m = /^x[0-9a-fA-F]+/.exec(rest);
  if (m) return [String.fromCodePoint(parseInt(m[0].slice(1), 16)), m[0].length];
  m = /^o[0-7]+/.exec(rest);
  if (m) return [String.fromCodePoint(parseInt(m[0].slice(1), 8)), m[0].length];
  if (e === '^') return [String.fromCharCode((rest.charCodeAt(1) ?? 64) - 64), 2];
  // Longest ASCII name first (SO vs SOH).
  for (const name of Object.keys(asciiNames).sort((a, b) => b.length - a.length)) {
    if (rest.startsWith(name)) return [String.fromCharCode(asciiNames[name]!), name.length];
  }
  throw new HaskellSyntax(`unknown escape \\${e} at line ${line}`);
}

// ---------------------------------------------------------------------------------------------------
// A small evaluator: the values spec files build Dockerfiles and configurations from

type Value = string | Value[] | { tuple: Value[] } | { ctor: string } | { record: Record<string, Value>; base: string } | boolean | ((v: Value) => Value);

class NotExtractable extends Error {}

const functions: Record<string, (v: Value) => Value> = {};
const asStrings = (v: Value): string[] => {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new NotExtractable('expected a list of strings');
  return v as string[];
};
const asString = (v: Value): string => {
  if (typeof v !== 'string') throw new NotExtractable('expected a string');
  return v;
};
for (const q of ['', 'Text.', 'T.', 'Data.Text.']) {
  functions[`${q}unlines`] = (v) => asStrings(v).map((s) => s + '\n').join('');
  functions[`${q}unwords`] = (v) => asStrings(v).join(' ');
  functions[`${q}concat`] = (v) => asStrings(v).join('');
  functions[`${q}pack`] = (v) => asString(v);
  functions[`${q}intercalate`] = (sep) => (v) => asStrings(v).join(asString(sep));
}
functions['mconcat'] = (v) => asStrings(v).join('');
functions['id'] = (v) => v;
functions['Map.fromList'] = (v) => v;

interface Binding {
  name: string;
  /** Index of the token after `=`. */
  valueAt: number;
  /** Index of the name's token. */
  at: number;
}

class SpecSource {
  readonly tokens: Token[];
  readonly bindings: Binding[] = [];
  constructor(text: string) {
    this.tokens = tokenize(text);
    const t = this.tokens;
    for (let i = 0; i + 1 < t.length; i++) {
      if (t[i]!.kind !== 'ident' || t[i + 1]!.value !== '=') continue;
      const prev = t[i - 1];
      if (prev?.value === 'let' || t[i]!.first) this.bindings.push({ name: t[i]!.value, valueAt: i + 2, at: i });
    }
  }

  /** The `it` block a token is in: the last `it` starting a statement before it. */
  enclosingIt(at: number): number | undefined {
    for (let i = at; i >= 0; i--) {
      const t = this.tokens[i]!;
      if (t.kind === 'ident' && t.value === 'it' && this.tokens[i + 1]?.kind === 'string') return i;
    }
    return undefined;
  }

  /**
   * The binding of `name` in scope at token `at`: the nearest before it in the same `it` block, or
   * bound outside any `it` block further out (on a line indented less than the `it`).
   */
  lookup(name: string, at: number): Binding | undefined {
    const it = this.enclosingIt(at);
    const itCol = it === undefined ? Infinity : this.tokens[it]!.col;
    let found: Binding | undefined;
    for (const b of this.bindings) {
      if (b.name !== name || b.at >= at) continue;
      const inside = it !== undefined && b.at > it;
      const outer = this.lineIndent(b.at) < itCol;
      if (inside || outer) found = b;
    }
    return found;
  }

  lineIndent(at: number): number {
    let i = at;
    while (i > 0 && !this.tokens[i]!.first) i--;
    return this.tokens[i]!.col;
  }
}

/** Evaluates the expression starting at token `at`; the statement it belongs to starts at column `stmtCol`. */
class Evaluator {
  pos: number;
  private depth = 0;
  constructor(
    private readonly src: SpecSource,
    at: number,
    private readonly stmtCol: number,
    private readonly seen: string[] = [],
  ) {
    this.pos = at;
  }

  private peek(): Token | undefined {
    const t = this.src.tokens[this.pos];
    if (!t) return undefined;
    // Haskell layout: a line starting at or left of the statement's column starts a new statement.
    if (t.first && t.col <= this.stmtCol && this.depth === 0) return undefined;
    if (this.depth === 0 && t.kind === 'ident' && ['in', 'where', 'then', 'else', 'of', 'let', 'do'].includes(t.value)) return undefined;
    return t;
  }

  private expect(value: string): void {
    const t = this.peek();
    if (t?.value !== value) throw new NotExtractable(`expected ${value} at line ${t?.line ?? '?'}`);
    this.pos++;
  }

  expr(): Value {
    const left = this.application();
    const t = this.peek();
    if (t?.kind === 'symbol' && (t.value === '<>' || t.value === '++')) {
      this.pos++;
      const right = this.expr();
      if (typeof left === 'string' && typeof right === 'string') return left + right;
      if (Array.isArray(left) && Array.isArray(right)) return [...left, ...right];
      throw new NotExtractable('<> of unlike values');
    }
    if (t?.kind === 'symbol' && t.value === '$') {
      this.pos++;
      const right = this.expr();
      if (typeof left !== 'function') throw new NotExtractable('$ after a value that is not a function');
      return left(right);
    }
    return left;
  }

  private application(): Value {
    let f = this.atom();
    while (typeof f === 'function' && this.startsAtom()) f = f(this.atom());
    return f;
  }

  private startsAtom(): boolean {
    const t = this.peek();
    if (!t) return false;
    return t.kind === 'string' || t.kind === 'char' || t.kind === 'ident' || t.kind === 'number' || t.value === '(' || t.value === '[';
  }

  atom(): Value {
    const t = this.peek();
    if (!t) throw new NotExtractable('expression ends early');
    this.pos++;
    if (t.kind === 'string' || t.kind === 'char') return t.value;
    if (t.value === '[' || t.value === '(') {
      const close = t.value === '[' ? ']' : ')';
      const items: Value[] = [];
      this.depth++;
      try {
        if (this.src.tokens[this.pos]?.value !== close) {
          for (;;) {
            items.push(this.expr());
            if (this.src.tokens[this.pos]?.value !== ',') break;
            this.pos++;
          }
        }
        this.expect(close);
      } finally {
        this.depth--;
      }
      if (close === ']') return items;
      return items.length === 1 ? items[0]! : { tuple: items };
    }
    if (t.kind === 'ident') {
      if (t.value === 'True' || t.value === 'False') return t.value === 'True';
      if (t.value === 'def') return this.record('def');
      if (t.value in functions) return functions[t.value]!;
      if (/^[A-Z]/.test(t.value.split('.').pop()!)) return { ctor: t.value.split('.').pop()! };
      return this.variable(t.value, this.pos - 1);
    }
    throw new NotExtractable(`cannot evaluate ${t.value} at line ${t.line}`);
  }

  /** `def` or `def { field = value, … }`. */
  private record(base: string): Value {
    const fields: Record<string, Value> = {};
    if (this.src.tokens[this.pos]?.value === '{') {
      this.pos++;
      this.depth++;
      try {
        for (;;) {
          const name = this.src.tokens[this.pos];
          if (name?.kind !== 'ident') throw new NotExtractable('record field expected');
          this.pos++;
          this.expect('=');
          fields[name.value] = this.expr();
          if (this.src.tokens[this.pos]?.value !== ',') break;
          this.pos++;
        }
        this.expect('}');
      } finally {
        this.depth--;
      }
    }
    return { record: fields, base };
  }

  private variable(name: string, at: number): Value {
    if (this.seen.includes(name)) throw new NotExtractable(`recursive binding ${name}`);
    const b = this.src.lookup(name, at);
    if (!b) throw new NotExtractable(`unbound ${name}`);
    const inner = new Evaluator(this.src, b.valueAt, this.src.tokens[b.at]!.col, [...this.seen, name]);
    return inner.expr();
  }
}

// ---------------------------------------------------------------------------------------------------
// Cases

type Helper = 'ruleCatches' | 'ruleCatchesNot' | 'onBuildRuleCatches' | 'onBuildRuleCatchesNot';
const helpers = new Set<string>(['ruleCatches', 'ruleCatchesNot', 'onBuildRuleCatches', 'onBuildRuleCatchesNot']);

interface Case {
  spec: string;
  line: number;
  helper: Helper;
  code: string;
  dockerfile: string;
  /** undefined: hadolint's default configuration. */
  config?: PartialConfig;
  configText?: string;
}

interface Unextracted {
  spec: string;
  line: number;
  helper: string;
  reason: string;
}

/** hadolint's label types (Hadolint.Rule.LabelType constructors) as kiln's configuration names them. */
const labelTypeNames: Record<string, string> = { RawText: 'text', Url: 'url', SemVer: 'semver', GitHash: 'hash', Rfc3339: 'rfc3339', Spdx: 'spdx', Email: 'email' };

/** A hadolint Configuration value as kiln's configuration; throws for fields kiln has no equivalent of. */
function kilnConfig(v: Value): PartialConfig | undefined {
  if (typeof v !== 'object' || v === null || !('record' in v)) throw new NotExtractable('configuration is not a record');
  const out: PartialConfig = {};
  for (const [field, value] of Object.entries(v.record)) {
    if (field === 'allowedRegistries') out.trustedRegistries = asStrings(value);
    else if (field === 'ignoreRules') out.ignored = asStrings(value);
    else if (field === 'disableIgnorePragma') out.disableIgnorePragma = value === true;
    else if (/^(error|warning|info|style)Rules$/.test(field)) out.override = { ...out.override, [field.slice(0, -'Rules'.length)]: asStrings(value) };
    else if (field === 'strictLabels') out.strictLabels = value === true;
    else if (field === 'labelSchema') {
      if (!Array.isArray(value)) throw new NotExtractable('labelSchema is not a list');
      const schema: Record<string, string> = {};
      for (const pair of value) {
        if (typeof pair !== 'object' || pair === null || !('tuple' in pair)) throw new NotExtractable('labelSchema entry');
        const [k, t] = pair.tuple;
        const type = typeof t === 'object' && t !== null && 'ctor' in t ? labelTypeNames[t.ctor] : undefined;
        if (typeof k !== 'string' || !type) throw new NotExtractable('labelSchema entry');
        schema[k] = type;
      }
      out.labelSchema = schema as PartialConfig['labelSchema'];
    } else throw new NotExtractable(`configuration field ${field}`);
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

function extractCases(spec: SpecFile, unextracted: Unextracted[]): Case[] {
  let src: SpecSource;
  try {
    src = new SpecSource(spec.text);
  } catch (e) {
    const calls = (spec.text.match(/\b(onBuild)?[rR]uleCatches(Not)?\b/g) ?? []).length;
    for (let k = 0; k < calls; k++) unextracted.push({ spec: spec.name, line: 0, helper: '?', reason: `tokenizer: ${(e as Error).message}` });
    return [];
  }
  const cases: Case[] = [];
  const t = src.tokens;
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    if (tok.kind !== 'ident' || !/Catches/.test(tok.value)) continue;
    // The helpers' own definitions (a local helper shadowing one) and type signatures are not cases.
    if (t[i + 1]?.value === '::') continue;
    if (!helpers.has(tok.value)) {
      unextracted.push({ spec: spec.name, line: tok.line, helper: tok.value, reason: 'unknown helper' });
      continue;
    }
    try {
      const ev = new Evaluator(src, i + 1, tok.col);
      const code = asString(ev.atom());
      let dockerfile: Value;
      if (t[ev.pos]?.value === '$') {
        ev.pos++;
        dockerfile = ev.expr();
      } else {
        dockerfile = ev.atom();
      }
      const c: Case = { spec: spec.name, line: tok.line, helper: tok.value as Helper, code, dockerfile: asString(dockerfile) };
      const cfg = src.lookup('?config', i);
      if (cfg) {
        const value = new Evaluator(src, cfg.valueAt, t[cfg.at]!.col).expr();
        const config = kilnConfig(value);
        if (config) {
          c.config = config;
          c.configText = JSON.stringify(config);
        }
      }
      cases.push(c);
    } catch (e) {
      if (!(e instanceof NotExtractable)) throw e;
      unextracted.push({ spec: spec.name, line: tok.line, helper: tok.value, reason: e.message });
    }
  }
  return cases;
}

/** hadolint's assertOnBuildChecks: every RUN instruction becomes `ONBUILD RUN`, on the same lines. */
function wrapRunsInOnbuild(text: string): string {
  const lines = text.split('\n');
  let nodes: RawNode[];
  try {
    nodes = parseRaw(text, 'Dockerfile').nodes;
  } catch {
    return text; // nothing to wrap (no instructions), or kiln reports the parse error itself
  }
  for (const node of nodes) {
    if (node.keyword.toLowerCase() !== 'run') continue;
    const k = node.startLine - 1;
    lines[k] = lines[k]!.replace(/^(\s*)/, '$1ONBUILD ');
  }
  return lines.join('\n');
}

/**
 * Rules off by default (severity ignore, in hadolint as in kiln: DL1001, DL3057) are still run by
 * hadolint's test harness, which looks at the rule's findings whatever their severity; so they are
 * switched on for the cases about them.
 */
const offByDefault = new Set([...rules.filter((r) => r.severity === 'ignore').map((r) => r.code), ...Object.entries(parseRules).filter(([, r]) => r.severity === 'ignore').map(([code]) => code)].filter((code) => code.startsWith('DL')));

interface Outcome {
  c: Case;
  found: number;
  agrees: boolean;
  /** kiln could not parse the text at all (DL1000), though hadolint's parser did. */
  parseError: boolean;
  error?: string;
}

async function judge(c: Case): Promise<Outcome> {
  // Helpers.hs lints `dockerfile <> "\n"`.
  let text = c.dockerfile + '\n';
  try {
    if (c.helper.startsWith('onBuild')) text = wrapRunsInOnbuild(text);
    const enable: PartialConfig = offByDefault.has(c.code) ? { override: { info: [c.code] } } : {};
    const findings = await lintDockerfile(text, { file: 'Dockerfile', config: mergeConfig(c.config ?? {}, enable) });
    const found = findings.filter((f) => f.code === c.code).length;
    const parseError = findings.some((f) => f.code === 'DL1000');
    const agrees = c.helper === 'ruleCatches' ? found >= 1 : c.helper === 'onBuildRuleCatches' ? found === 1 : found === 0;
    return { c, found, agrees, parseError };
  } catch (e) {
    return { c, found: 0, agrees: false, parseError: true, error: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const verbose = args.includes('--verbose');
  const listCases = args.includes('--cases');
  const ruleAt = args.indexOf('--rule');
  const onlyRule = ruleAt >= 0 ? args[ruleAt + 1] : undefined;
  const source = args.find((a, k) => !a.startsWith('--') && args[k - 1] !== '--rule');
  if (!source) {
    console.error('usage: node dist/scripts/hadolint-agreement.js <hadolint checkout or git dir> [--verbose] [--rule CODE]');
    process.exit(2);
  }
  const specs = readSpecs(source);
  if (!specs.some((s) => s.name.startsWith('test/Hadolint/Rule/'))) throw new Error(`${source}: no test/Hadolint/Rule/*Spec.hs files`);
  const unextracted: Unextracted[] = [];
  let cases = specs.flatMap((s) => extractCases(s, unextracted));
  if (onlyRule) cases = cases.filter((c) => c.code === onlyRule);
  const outcomes: Outcome[] = [];
  for (const c of cases) outcomes.push(await judge(c));

  const agree = outcomes.filter((o) => o.agrees).length;
  if (args.includes('--json')) {
    const disagreements = outcomes.filter((o) => !o.agrees).map((o) => ({ spec: o.c.spec, line: o.c.line, helper: o.c.helper, code: o.c.code, found: o.found }));
    console.log(JSON.stringify({ specFiles: specs.length, cases: outcomes.length, agree, unextracted: unextracted.length, disagreements }));
    return;
  }
  const pct = (n: number, d: number) => (d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`);
  const configured = outcomes.filter((o) => o.c.config);
  const withCases = new Set(cases.map((c) => c.spec)).size;
  console.log(`hadolint specs: ${withCases} of ${specs.length} spec files under test/ have ruleCatches cases (${source})`);
  console.log(`cases: ${outcomes.length} extracted, ${unextracted.length} not extracted`);
  console.log(`  ${configured.length} with a non-default configuration, applied as kiln configuration (allowedRegistries → trustedRegistries, ignoreRules → ignored, labelSchema, strictLabels, …Rules → override)`);
  console.log(`  ${outcomes.filter((o) => offByDefault.has(o.c.code)).length} about rules off by default (${[...offByDefault].sort().join(', ')}), switched on for them as hadolint's harness runs them`);
  console.log(`  ${outcomes.filter((o) => o.parseError).length} where kiln lint reported an instruction it could not parse (DL1000)`);
  console.log(`agreement: ${agree} / ${outcomes.length} = ${pct(agree, outcomes.length)}`);
  for (const h of helpers) {
    const of = outcomes.filter((o) => o.c.helper === h);
    console.log(`  ${h.padEnd(22)} ${of.filter((o) => o.agrees).length} / ${of.length}`);
  }

  console.log('\nper rule (agree / cases):');
  const byRule = new Map<string, Outcome[]>();
  for (const o of outcomes) byRule.set(o.c.code, [...(byRule.get(o.c.code) ?? []), o]);
  const rows = [...byRule.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const cells = rows.map(([code, os]) => `${/^[A-Z]+[0-9]+$/.test(code) ? code : JSON.stringify(code)} ${os.filter((o) => o.agrees).length}/${os.length}`);
  for (let k = 0; k < cells.length; k += 6) console.log('  ' + cells.slice(k, k + 6).map((s) => s.padEnd(16)).join(''));

  if (listCases) {
    console.log('\ncases:');
    for (const o of outcomes) console.log(`  ${o.agrees ? 'agree   ' : 'DISAGREE'} ${basename(o.c.spec)}:${o.c.line} ${o.c.helper} ${o.c.code} found ${o.found} ${JSON.stringify(o.c.dockerfile)}`);
  }

  const wrong = outcomes.filter((o) => !o.agrees);
  console.log(`\ndisagreements: ${wrong.length}`);
  for (const o of wrong) {
    const expect = o.c.helper === 'ruleCatches' ? '≥1' : o.c.helper === 'onBuildRuleCatches' ? '1' : '0';
    console.log(`  ${basename(o.c.spec)}:${o.c.line} ${o.c.helper} ${o.c.code}: expected ${expect}, kiln ${o.found}${o.error ? ` (error: ${o.error})` : ''}${o.c.configText ? ` config ${o.c.configText}` : ''}`);
    if (verbose) for (const l of o.c.dockerfile.split('\n')) console.log(`      | ${l}`);
  }
  if (unextracted.length > 0) {
    console.log(`\nnot extracted: ${unextracted.length}`);
    for (const u of unextracted) console.log(`  ${basename(u.spec)}:${u.line} ${u.helper}: ${u.reason}`);
  }
}

await main();
