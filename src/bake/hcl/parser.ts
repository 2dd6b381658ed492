// A recursive-descent parser of HCL's native syntax (hashicorp/hcl hclsyntax/spec.md): bodies of
// attributes and blocks, and the expression language with templates and heredocs. It reads
// characters directly (the template and heredoc rules make a separate token stream more trouble
// than it saves). Newlines end an attribute, and are ignored inside (), [] and {}, as the spec says.

import { HclError, type Attribute, type Block, type Body, type Expr, type Pos, type TemplatePart } from './syntax.js';

export function parseHcl(text: string, file: string): Body {
  return new Parser(text, file).document();
}

const idStart = /[A-Za-z_\p{L}]/u;
const idChar = /[A-Za-z0-9_\-\p{L}\p{N}]/u;

/** Binary operators by precedence, loosest first (hclsyntax spec.md "Operations"). */
const levels: string[][] = [['||'], ['&&'], ['==', '!='], ['>=', '<=', '>', '<'], ['+', '-'], ['*', '/', '%']];

class Parser {
  private i = 0;
  /** How many brackets are open: newlines are plain whitespace inside them. */
  private depth = 0;
  private readonly lineStarts: number[] = [0];

  constructor(
    private readonly s: string,
    private readonly fileName: string,
  ) {
    for (let j = 0; j < s.length; j++) if (s[j] === '\n') this.lineStarts.push(j + 1);
  }

  pos(at = this.i): Pos {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { file: this.fileName, line: lo + 1, col: at - this.lineStarts[lo]! + 1 };
  }

  fail(why: string, at = this.i): never {
    throw new HclError(this.pos(at), why);
  }

  document(): Body {
    const body = this.body(false);
    if (this.i < this.s.length) this.fail(`unexpected ${this.show()}`);
    return body;
  }

  /** Skip spaces and comments; newlines too when inside brackets or when asked. */
  private skip(newlines = this.depth > 0): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === ' ' || c === '\t' || c === '\r' || (c === '\n' && newlines)) this.i++;
      else if (c === '#' || (c === '/' && s[this.i + 1] === '/')) {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else if (c === '/' && s[this.i + 1] === '*') {
        const end = s.indexOf('*/', this.i + 2);
        if (end < 0) this.fail('unterminated /* comment');
        this.i = end + 2;
      } else break;
    }
  }

  private show(): string {
    if (this.i >= this.s.length) return 'end of file';
    const c = this.s[this.i]!;
    return c === '\n' ? 'newline' : JSON.stringify(c);
  }

  private peek(t: string): boolean {
    return this.s.startsWith(t, this.i);
  }

  private eat(t: string): boolean {
    this.skip();
    if (!this.peek(t)) return false;
    this.i += t.length;
    return true;
  }

  private expect(t: string, what = JSON.stringify(t)): void {
    if (!this.eat(t)) this.fail(`expected ${what}, got ${this.show()}`);
  }

  private ident(): string | undefined {
    this.skip();
    if (this.i >= this.s.length || !idStart.test(this.s[this.i]!)) return undefined;
    const start = this.i++;
    while (this.i < this.s.length && idChar.test(this.s[this.i]!)) this.i++;
    return this.s.slice(start, this.i);
  }

  private body(inBlock: boolean): Body {
    const body: Body = { attributes: [], blocks: [] };
    const saved = this.depth;
    this.depth = 0;
    for (;;) {
      this.skip(true);
      if (this.i >= this.s.length) {
        if (inBlock) this.fail('expected "}" to close the block, got end of file');
        break;
      }
      if (inBlock && this.peek('}')) break;
      const start = this.i;
      const name = this.ident();
      if (name === undefined) this.fail(`expected an attribute or a block, got ${this.show()}`);
      this.skip(false);
      if (this.peek('=') && !this.peek('==')) {
        this.i++;
        const expr = this.expr();
        body.attributes.push({ name, expr, pos: this.pos(start) } satisfies Attribute);
      } else {
        const labels: string[] = [];
        for (;;) {
          this.skip(false);
          if (this.peek('"')) {
            const l = this.template();
            if (l.k !== 'lit' || typeof l.v !== 'string') this.fail('a block label cannot be a template');
            labels.push(l.v);
          } else {
            const id = this.ident();
            if (id === undefined) break;
            labels.push(id);
          }
        }
        if (!this.peek('{')) this.fail(`expected "=" or a block's "{" after "${name}", got ${this.show()}`);
        this.i++;
        const inner = this.body(true);
        this.i++; // the "}"
        body.blocks.push({ type: name, labels, body: inner, pos: this.pos(start) } satisfies Block);
      }
      this.skip(false);
      if (this.i < this.s.length && this.s[this.i] !== '\n' && !(inBlock && this.peek('}'))) this.fail(`expected a newline after "${name}", got ${this.show()}`);
    }
    this.depth = saved;
    return body;
  }

  expr(): Expr {
    const cond = this.binary(0);
    this.skip();
    if (!this.peek('?')) return cond;
    this.i++;
    const then = this.expr();
    this.expect(':', '":" of a conditional');
    const otherwise = this.expr();
    return { k: 'cond', cond, then, else: otherwise, pos: cond.pos };
  }

  private binary(level: number): Expr {
    if (level === levels.length) return this.unary();
    let l = this.binary(level + 1);
    for (;;) {
      this.skip();
      // Longer operators come first in their level: ">=" before ">".
      const op = levels[level]!.find((o) => this.peek(o));
      if (!op) return l;
      const pos = this.pos();
      this.i += op.length;
      const r = this.binary(level + 1);
      l = { k: 'binary', op, l, r, pos };
    }
  }

  private unary(): Expr {
    this.skip();
    const pos = this.pos();
    if (this.peek('!') && !this.peek('!=')) {
      this.i++;
      return { k: 'unary', op: '!', e: this.unary(), pos };
    }
    if (this.peek('-')) {
      this.i++;
      return { k: 'unary', op: '-', e: this.unary(), pos };
    }
    return this.postfix(this.primary());
  }

  private postfix(e: Expr): Expr {
    for (;;) {
      this.skip();
      const pos = this.pos();
      if (this.peek('[*]') || this.peek('.*')) {
        this.i += this.peek('.*') ? 2 : 3;
        const names: string[] = [];
        while (this.peek('.') && idStart.test(this.s[this.i + 1] ?? '')) {
          this.i++;
          names.push(this.ident()!);
        }
        e = { k: 'splat', e, names, pos };
      } else if (this.peek('[')) {
        this.i++;
        this.depth++;
        const i = this.expr();
        this.expect(']');
        this.depth--;
        e = { k: 'index', e, i, pos };
      } else if (this.peek('.') && !/[0-9]/.test(this.s[this.i + 1] ?? '')) {
        this.i++;
        const name = this.ident();
        if (name === undefined) this.fail(`expected an attribute name after ".", got ${this.show()}`);
        e = { k: 'attr', e, name, pos };
      } else if (this.peek('.')) {
        // Legacy index syntax: a.0
        this.i++;
        const start = this.i;
        while (/[0-9]/.test(this.s[this.i] ?? '')) this.i++;
        e = { k: 'index', e, i: { k: 'lit', v: Number(this.s.slice(start, this.i)), pos }, pos };
      } else return e;
    }
  }

  private primary(): Expr {
    this.skip();
    const pos = this.pos();
    const c = this.s[this.i];
    if (c === undefined) this.fail('expected an expression, got end of file');
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i, this.i + 64))!;
      this.i += m[0].length;
      return { k: 'lit', v: Number(m[0]), pos };
    }
    if (c === '"') return this.template();
    if (this.peek('<<')) return this.heredoc();
    if (c === '(') {
      this.i++;
      this.depth++;
      const e = this.expr();
      this.expect(')');
      this.depth--;
      return e;
    }
    if (c === '[') return this.tuple();
    if (c === '{') return this.object();
    const name = this.ident();
    if (name === undefined) this.fail(`expected an expression, got ${this.show()}`);
    if (name === 'true' || name === 'false') return { k: 'lit', v: name === 'true', pos };
    if (name === 'null') return { k: 'lit', v: null, pos };
    this.skip(false);
    if (this.peek('(')) {
      this.i++;
      this.depth++;
      const args: Expr[] = [];
      let expand = false;
      while (!this.eat(')')) {
        args.push(this.expr());
        if (this.eat('...')) {
          expand = true;
          this.expect(')', '")" after "..."');
          break;
        }
        if (!this.eat(',')) {
          this.expect(')', '"," or ")" in the arguments');
          break;
        }
      }
      this.depth--;
      return { k: 'call', name, args, expand, pos };
    }
    return { k: 'var', name, pos };
  }

  /** for x in xs / for k, v in m: the head of a for expression, after "[" or "{". */
  private forHead(): { keyVar?: string; valVar: string; coll: Expr } | undefined {
    const save = this.i;
    if (this.ident() !== 'for') {
      this.i = save;
      return undefined;
    }
    this.skip();
    if (!idStart.test(this.s[this.i] ?? '')) {
      this.i = save; // a variable named "for"
      return undefined;
    }
    const head = this.forVariables('for', 'the for expression');
    this.expect(':', '":" of the for expression');
    return head;
  }

  /** `v in coll` or `k, v in coll`, after the `for` of a for expression or a %{for} directive. */
  private forVariables(after: string, within: string): { keyVar?: string; valVar: string; coll: Expr } {
    let valVar = this.ident() ?? this.fail(`expected a variable name after ${after}`);
    let keyVar: string | undefined;
    if (this.eat(',')) {
      keyVar = valVar;
      valVar = this.ident() ?? this.fail('expected a variable name after ","');
    }
    if (this.ident() !== 'in') this.fail(`expected "in" in ${within}`);
    return { keyVar, valVar, coll: this.expr() };
  }

  private tuple(): Expr {
    const pos = this.pos();
    this.i++;
    this.depth++;
    const head = this.forHead();
    if (head) {
      const valExpr = this.expr();
      const cond = this.ident() === 'if' ? this.expr() : undefined;
      this.expect(']', '"]" to close the for expression');
      this.depth--;
      return { k: 'for', ...head, valExpr, cond, group: false, pos };
    }
    const items: Expr[] = [];
    while (!this.eat(']')) {
      if (this.i >= this.s.length) this.fail('expected "]" to close the tuple, got end of file');
      items.push(this.expr());
      if (!this.eat(',')) {
        this.expect(']', '"," or "]" in the tuple');
        break;
      }
    }
    this.depth--;
    return { k: 'tuple', items, pos };
  }

  private object(): Expr {
    const pos = this.pos();
    this.i++;
    this.depth++;
    const head = this.forHead();
    if (head) {
      const keyExpr = this.expr();
      this.expect('=>', '"=>" of the for expression');
      const valExpr = this.expr();
      const group = this.eat('...');
      const save = this.i;
      const kw = this.ident();
      let cond: Expr | undefined;
      if (kw === 'if') cond = this.expr();
      else this.i = save;
      this.expect('}', '"}" to close the for expression');
      this.depth--;
      return { k: 'for', ...head, keyExpr, valExpr, cond, group, pos };
    }
    const items: { key: Expr; value: Expr }[] = [];
    while (!this.eat('}')) {
      if (this.i >= this.s.length) this.fail('expected "}" to close the object, got end of file');
      const key = this.expr();
      // A bare name as a key is the name itself, not a variable (hclsyntax ObjectConsKeyExpr).
      const k = key.k === 'var' ? ({ k: 'lit', v: key.name, pos: key.pos } as Expr) : key;
      this.skip();
      if (!this.eat('=') && !this.eat(':')) this.fail(`expected "=" or ":" after the object key, got ${this.show()}`);
      items.push({ key: k, value: this.expr() });
      this.eat(',');
    }
    this.depth--;
    return { k: 'object', items, pos };
  }

  /** A quoted template "…${x}…"; a template of one literal is a literal string. */
  private template(): Expr {
    const pos = this.pos();
    const open = this.i++;
    const { parts } = this.templateParts({ quoted: true, end: this.s.length, open });
    this.i++; // the closing quote
    return simplify(parts, pos);
  }

  private heredoc(): Expr {
    const pos = this.pos();
    const m = /^<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\r?\n/.exec(this.s.slice(this.i, this.i + 200));
    if (!m) this.fail('expected a heredoc marker and a newline after "<<"');
    const indent = m[1] === '-';
    const marker = m[2]!;
    const start = this.i + m[0].length;
    // The body ends at the first line that is the marker alone (with leading spaces under <<-).
    let end = -1;
    let after = -1;
    for (let j = start; j <= this.s.length; ) {
      const nl = this.s.indexOf('\n', j);
      const line = this.s.slice(j, nl < 0 ? this.s.length : nl).replace(/\r$/, '');
      if (line.trim() === marker && (indent || line.trimEnd() === marker)) {
        end = j;
        after = j + line.trimEnd().length + (line.length - line.trimEnd().length);
        break;
      }
      if (nl < 0) break;
      j = nl + 1;
    }
    if (end < 0) this.fail(`unterminated heredoc: no line "${marker}" closes it`, this.i);
    let strip = 0;
    if (indent) {
      const lines = this.s.slice(start, end).split('\n').filter((l) => l.trim() !== '');
      strip = lines.length ? Math.min(...lines.map((l) => /^[ \t]*/.exec(l)![0].length)) : 0;
    }
    this.i = start;
    const { parts } = this.templateParts({ quoted: false, end, open: pos.col, strip });
    this.i = after;
    return simplify(parts, pos);
  }

  /**
   * Template text up to the closing quote (quoted) or `end` (heredoc), or up to a directive in
   * `stops` (%{else}, %{endif}, %{endfor}), which is consumed and returned.
   */
  private templateParts(o: { quoted: boolean; end: number; open: number; strip?: number; stops?: string[] }): { parts: TemplatePart[]; stop?: string } {
    const parts: TemplatePart[] = [];
    let text = '';
    let lineStart = !o.quoted;
    let trimNext = false;
    const flush = () => {
      if (text) parts.push(text);
      text = '';
    };
    const s = this.s;
    while (this.i < o.end) {
      const c = s[this.i]!;
      if (trimNext) {
        if (/\s/.test(c)) {
          this.i++;
          continue;
        }
        trimNext = false;
      }
      if (lineStart && o.strip) {
        let n = 0;
        while (n < o.strip && (s[this.i] === ' ' || s[this.i] === '\t')) {
          this.i++;
          n++;
        }
        lineStart = false;
        continue;
      }
      lineStart = false;
      if (o.quoted && c === '"') break;
      if (o.quoted && c === '\n') this.fail('unterminated string: a quoted string ends on its line', o.open);
      if ((c === '$' || c === '%') && s[this.i + 1] === c && s[this.i + 2] === '{') {
        text += `${c}{`; // $${ and %%{ are a literal ${ and %{
        this.i += 3;
        continue;
      }
      if ((c === '$' || c === '%') && s[this.i + 1] === '{') {
        const at = this.i;
        this.i += 2;
        if (s[this.i] === '~') {
          this.i++;
          text = text.replace(/\s+$/, '');
          if (parts.length && typeof parts[parts.length - 1] === 'string') parts[parts.length - 1] = (parts[parts.length - 1] as string).replace(/\s+$/, '');
        }
        flush();
        const saved = this.depth;
        this.depth = 1;
        if (c === '$') {
          parts.push(this.expr());
        } else {
          const d = this.directive(o, at);
          if (typeof d === 'string') {
            trimNext = this.closeBrace();
            this.depth = saved;
            return { parts, stop: d };
          }
          parts.push(d);
          this.depth = saved;
          continue;
        }
        trimNext = this.closeBrace();
        this.depth = saved;
        continue;
      }
      if (o.quoted && c === '\\') {
        const e = s[this.i + 1];
        const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' };
        if (e !== undefined && e in simple) {
          text += simple[e];
          this.i += 2;
        } else if (e === 'u' || e === 'U') {
          const len = e === 'u' ? 4 : 8;
          const hex = s.slice(this.i + 2, this.i + 2 + len);
          if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== len) this.fail(`invalid \\${e} escape: expected ${len} hex digits`);
          text += String.fromCodePoint(parseInt(hex, 16));
          this.i += 2 + len;
        } else this.fail(`invalid escape sequence "\\${e ?? ''}"`);
        continue;
      }
      if (c === '\n') lineStart = true;
      text += c;
      this.i++;
    }
    if (o.quoted && s[this.i] !== '"') this.fail('unterminated string: no closing quote', o.open);
    if (o.stops) this.fail(`expected %{${o.stops.join('} or %{')}}, got the end of the template`);
    flush();
    return { parts };
  }

  /** After "%{": if/for (parsed with its body) or one of the stops, returned as a string. */
  private directive(o: { quoted: boolean; end: number; open: number; strip?: number; stops?: string[] }, at: number): TemplatePart | string {
    const kw = this.ident();
    if (kw && o.stops?.includes(kw)) return kw;
    if (kw === 'if') {
      const cond = this.expr();
      this.closeBrace();
      const then = this.templateParts({ ...o, stops: ['else', 'endif'] });
      let otherwise: TemplatePart[] = [];
      if (then.stop === 'else') otherwise = this.templateParts({ ...o, stops: ['endif'] }).parts;
      return { k: 'tif', cond, then: then.parts, else: otherwise };
    }
    if (kw === 'for') {
      const { keyVar, valVar, coll } = this.forVariables('%{for', '%{for}');
      this.closeBrace();
      const body = this.templateParts({ ...o, stops: ['endfor'] });
      return { k: 'tfor', keyVar, valVar, coll, body: body.parts };
    }
    return this.fail(`unknown template directive %{${kw ?? ''}}`, at);
  }

  /** The "}" ending an interpolation or directive; true when it is "~}" (strip what follows). */
  private closeBrace(): boolean {
    this.skip(true);
    const trim = this.peek('~');
    if (trim) this.i++;
    if (this.s[this.i] !== '}') this.fail(`expected "}" to close the interpolation, got ${this.show()}`);
    this.i++;
    return trim;
  }
}

function simplify(parts: TemplatePart[], pos: Pos): Expr {
  if (parts.length === 0) return { k: 'lit', v: '', pos };
  if (parts.length === 1 && typeof parts[0] === 'string') return { k: 'lit', v: parts[0], pos };
  return { k: 'tpl', parts, pos };
}
