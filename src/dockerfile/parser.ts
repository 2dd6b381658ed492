// The line-level parser: parser directives, comments, line continuations, heredocs, builder flags and
// each instruction's argument syntax (JSON/exec form, key=value pairs, whitespace lists), following
// BuildKit's frontend/dockerfile/parser package. It produces raw nodes; instructions.ts gives them
// meaning and validates them.

import { DockerfileSyntaxError, UnlocatedError } from './errors.js';
import { goQuote, isGoSpace, trimGoSpace, trimLeftGoSpace } from './gocompat.js';
import { ShellLex, emptyEnv } from './shell.js';

export interface Heredoc {
  /** The delimiter word, quotes removed: `EOF` for `<<"EOF"`. */
  name: string;
  /** The file descriptor written before `<<` (`3<<EOF`), 0 when absent. */
  fileDescriptor: number;
  /** False when any part of the delimiter was quoted: the body is then taken literally. */
  expand: boolean;
  /** `<<-`: leading tabs are stripped from the body and the terminator. */
  chomp: boolean;
  /** The body, each line with its newline, terminator excluded. */
  content: string;
}

export interface Directive {
  name: 'syntax' | 'escape' | 'check';
  value: string;
  line: number;
}

export interface ParseWarning {
  rule: string;
  message: string;
  line: number;
}

/** One instruction as the line parser sees it (BuildKit's parser.Node). */
export interface RawNode {
  /** The instruction keyword as written ("copy", "COPY"). */
  keyword: string;
  /** Builder flags as written, e.g. `--from=build`. */
  flags: string[];
  /** Arguments after the line parser: JSON elements, words, or [key, value, sep] triples for ENV/LABEL. */
  args: string[];
  /** The arguments were a JSON array (exec form). */
  json: boolean;
  heredocs: Heredoc[];
  /** The logical line (continuations joined), as BuildKit's Node.Original. */
  original: string;
  startLine: number;
  endLine: number;
  /** ONBUILD's nested instruction. */
  child?: RawNode;
  /** The comment lines right before the instruction, without `#` (BuildKit's Node.PrevComment). */
  comments?: string[];
}

export interface RawParseResult {
  nodes: RawNode[];
  escapeToken: string;
  directives: Directive[];
  warnings: ParseWarning[];
}

const reWhitespace = /[\t\v\f\r ]+/;
const reHeredoc = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;
const heredocInstructions = new Set(['add', 'copy', 'run']);

const directiveRe = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/;

class DirectiveState {
  escapeToken = '\\';
  continuation = makeContinuationRegex('\\');
  private line = 0;
  private done = false;
  private readonly seen = new Set<string>();
  readonly found: Directive[] = [];

  /** BuildKit's possibleParserDirective: true when the line was a directive. */
  parseLine(line: string): boolean {
    this.line++;
    if (this.done) return false;
    if (!line.startsWith('#')) {
      this.done = true;
      return false;
    }
    const m = directiveRe.exec(trimLeftGoSpace(line.slice(1)));
    if (!m) {
      this.done = true;
      return false;
    }
    const name = m[1]!.toLowerCase();
    if (name !== 'syntax' && name !== 'escape' && name !== 'check') {
      this.done = true;
      return false;
    }
    if (this.seen.has(name)) throw new UnlocatedError(`only one ${name} parser directive can be used`);
    this.seen.add(name);
    const value = m[2]!;
    if (name === 'escape') {
      if (value !== '`' && value !== '\\') throw new UnlocatedError(`invalid escape token '${value}' does not match \` or \\`);
      this.escapeToken = value;
      this.continuation = makeContinuationRegex(value);
    }
    this.found.push({ name, value, line: this.line });
    return true;
  }
}

function makeContinuationRegex(token: string): RegExp {
  // The escape token is the line-continuation token when it is the last non-blank character, unless
  // it is itself escaped (a preceding escape token). One alone on a line also continues.
  const t = token === '\\' ? '\\\\' : token;
  return new RegExp(`([^${t}])${t}[ \\t]*$|^${t}[ \\t]*$`);
}

function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) lines.push(text.slice(start));
      return lines;
    }
    lines.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
}

function trimNewline(s: string): string {
  return s.replace(/[\r\n]+$/, '');
}

function isComment(line: string): boolean {
  return trimLeftGoSpace(line).startsWith('#');
}

function trimContinuation(line: string, d: DirectiveState): [string, boolean] {
  if (d.continuation.test(line)) return [line.replace(d.continuation, '$1'), false];
  return [line, true];
}

function processLine(d: DirectiveState, token: string, stripLeftWhitespace: boolean): [string, boolean] {
  token = trimNewline(token);
  if (stripLeftWhitespace) token = trimLeftGoSpace(token);
  const directive = d.parseLine(token);
  return [isComment(token) ? '' : token, directive];
}

/** Parses a whole Dockerfile into raw nodes. Throws DockerfileSyntaxError. */
export function parseRaw(text: string, file: string): RawParseResult {
  const d = new DirectiveState();
  const lines = splitLines(text);
  const nodes: RawNode[] = [];
  const warnings: ParseWarning[] = [];
  let currentLine = 0;
  let i = 0;
  let comments: string[] = [];
  const fail = (err: unknown, line: number): never => {
    if (err instanceof UnlocatedError) throw new DockerfileSyntaxError(file, line, err.message);
    throw err;
  };

  while (i < lines.length) {
    let bytesRead = lines[i++]!;
    if (currentLine === 0 && bytesRead.startsWith('\ufeff')) bytesRead = bytesRead.slice(1);
    // BuildKit's parser: comment lines gather until an instruction takes them; an empty `#` restarts
    // them and a parser directive is not one.
    if (isComment(bytesRead)) {
      const comment = trimGoSpace(trimNewline(trimLeftGoSpace(bytesRead)).slice(1));
      comments = comment === '' ? [] : [...comments, comment];
    }
    try {
      let directive: boolean;
      [bytesRead, directive] = processLine(d, bytesRead, true);
      if (directive) comments.pop();
    } catch (err) {
      fail(err, currentLine + 1);
    }
    currentLine++;
    const startLine = currentLine;
    let isEndOfLine: boolean;
    [bytesRead, isEndOfLine] = trimContinuation(bytesRead, d);
    if (isEndOfLine && bytesRead.length === 0) continue;
    let buf = bytesRead;
    let hasEmptyContinuationLine = false;
    while (!isEndOfLine && i < lines.length) {
      const raw = lines[i++]!;
      let processed: string;
      try {
        [processed] = processLine(d, raw, false);
      } catch (err) {
        fail(err, currentLine + 1);
      }
      currentLine++;
      if (isComment(raw)) continue; // comment lines inside a continued instruction are dropped
      if (trimLeftGoSpace(trimNewline(processed!)).length === 0) {
        hasEmptyContinuationLine = true;
        continue;
      }
      [processed, isEndOfLine] = trimContinuation(processed!, d);
      buf += processed;
    }
    const line = buf;
    if (hasEmptyContinuationLine) {
      warnings.push({ rule: 'NoEmptyContinuation', message: 'Empty continuation line', line: currentLine });
    }

    let node: RawNode;
    try {
      node = nodeFromLine(line, d.escapeToken);
    } catch (err) {
      fail(err, startLine);
    }
    node!.startLine = startLine;
    if (comments.length > 0) node!.comments = comments;
    comments = [];

    if (canContainHeredoc(node!) && line.includes('<<')) {
      let docs: Heredoc[];
      try {
        docs = heredocsFromLine(line);
      } catch (err) {
        fail(err, startLine);
      }
      for (const doc of docs!) {
        let terminated = false;
        let content = '';
        while (i < lines.length) {
          const raw = lines[i++]!;
          currentLine++;
          let candidate = trimNewline(raw);
          if (doc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          content += raw;
        }
        if (!terminated) throw new DockerfileSyntaxError(file, startLine, 'unterminated heredoc');
        doc.content = content;
        node!.heredocs.push(doc);
      }
    }
    node!.endLine = currentLine;
    if (node!.child) {
      node!.child.startLine = startLine;
      node!.child.endLine = currentLine;
    }
    nodes.push(node!);
  }

  if (nodes.length === 0) throw new DockerfileSyntaxError(file, Math.max(currentLine, 1), 'file with no instructions');
  return { nodes, escapeToken: d.escapeToken, directives: d.found, warnings };
}

function canContainHeredoc(node: RawNode): boolean {
  let n = node;
  if (n.keyword.toLowerCase() === 'onbuild' && n.child) n = n.child;
  return heredocInstructions.has(n.keyword.toLowerCase()) && !n.json;
}

function nodeFromLine(line: string, escapeToken: string): RawNode {
  const trimmed = trimGoSpace(line);
  const m = reWhitespace.exec(trimmed);
  const keyword = m ? trimmed.slice(0, m.index) : trimmed;
  let rest = '';
  let flags: string[] = [];
  if (m) [rest, flags] = extractBuilderFlags(trimmed.slice(m.index + m[0].length), escapeToken);
  rest = trimGoSpace(rest);
  const node: RawNode = { keyword, flags, args: [], json: false, heredocs: [], original: line, startLine: 0, endLine: 0 };
  switch (keyword.toLowerCase()) {
    case 'add':
    case 'copy':
    case 'volume':
      setArgs(node, parseMaybeJSONToList(rest));
      break;
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell':
      setArgs(node, parseMaybeJSON(rest));
      break;
    case 'arg':
      node.args = parseWords(rest, escapeToken);
      break;
    case 'env':
      node.args = parseNameVal(rest, 'ENV', escapeToken);
      break;
    case 'label':
      node.args = parseNameVal(rest, 'LABEL', escapeToken);
      break;
    case 'expose':
    case 'from':
      node.args = parseStringsWhitespaceDelimited(rest);
      break;
    case 'healthcheck':
      parseHealthConfig(node, rest);
      break;
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      node.args = rest === '' ? [] : [rest];
      break;
    case 'onbuild':
      if (rest !== '') {
        node.child = nodeFromLine(rest, escapeToken);
        node.args = [node.child.keyword, ...node.child.args];
      }
      break;
    default:
      // unknown instructions are reported when the nodes are turned into instructions
      break;
  }
  return node;
}

function setArgs(node: RawNode, parsed: { args: string[]; json: boolean }): void {
  node.args = parsed.args;
  node.json = parsed.json;
}

/** BuildKit's extractBuilderFlags: leading `--name[=value]` words, with quotes and escapes. */
function extractBuilderFlags(line: string, escapeToken: string): [string, string[]] {
  const words: string[] = [];
  const chars = [...line];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let sb = '';
  let quote = '';
  let blankOK = false;
  let ch = '';
  for (let pos = 0; pos <= chars.length; pos++) {
    if (pos !== chars.length) ch = chars[pos]!;
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === chars.length || chars[pos + 1] !== '-') return [chars.slice(pos).join(''), words];
      phase = 'word';
    }
    if (pos === chars.length) {
      if (sb !== '--' && (blankOK || sb.length > 0)) words.push(sb);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (sb === '--') return [chars.slice(pos).join(''), words];
        if (blankOK || sb.length > 0) words.push(sb);
        sb = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === escapeToken) {
        if (pos + 1 === chars.length) continue;
        pos++;
        ch = chars[pos]!;
      }
      sb += ch;
      continue;
    }
    // in a quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === escapeToken) {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      pos++;
      ch = chars[pos]!;
    }
    sb += ch;
  }
  return ['', words];
}

/** Space-separated words with quotes and escapes kept (they are processed at expansion time). */
export function parseWords(rest: string, escapeToken: string): string[] {
  const words: string[] = [];
  const chars = [...rest];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOK = false;
  let sb = '';
  let ch = '';
  for (let pos = 0; pos <= chars.length; pos++) {
    if (pos !== chars.length) ch = chars[pos]!;
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isGoSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || sb.length > 0) words.push(sb);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (blankOK || sb.length > 0) words.push(sb);
        sb = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escapeToken) {
        if (pos + 1 === chars.length) continue; // an escape token at the end of the line is dropped
        // Unquoted, an escape token and the character after it are both kept, even a quote.
        sb += ch;
        pos++;
        ch = chars[pos]!;
      }
      sb += ch;
      continue;
    }
    // in a quote
    if (ch === quote) phase = 'word';
    if (ch === escapeToken && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      pos++;
      sb += ch;
      ch = chars[pos]!;
    }
    sb += ch;
  }
  return words;
}

/** ENV and LABEL: `k=v k2=v2`, or the legacy `k v` (everything after the first blank is the value). */
function parseNameVal(rest: string, key: string, escapeToken: string): string[] {
  const words = parseWords(rest, escapeToken);
  if (words.length === 0) return [];
  if (!words[0]!.includes('=')) {
    const m = reWhitespace.exec(rest);
    if (!m) throw new UnlocatedError(`${key} must have two arguments`);
    return [rest.slice(0, m.index), rest.slice(m.index + m[0].length), ''];
  }
  const out: string[] = [];
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 0) throw new UnlocatedError(`Syntax error - can't find = in ${goQuote(word)}. Must be of the form: name=value`);
    out.push(word.slice(0, eq), word.slice(eq + 1), '=');
  }
  return out;
}

function parseStringsWhitespaceDelimited(rest: string): string[] {
  if (rest === '') return [];
  return rest.split(new RegExp(reWhitespace.source));
}

const notStringArray = 'when using JSON array syntax, arrays must be comprised of strings only';

/** A JSON array of strings; undefined when the text is not a JSON array (shell form then applies). */
function parseJSON(rest: string): string[] | undefined {
  rest = trimLeftGoSpace(rest);
  if (!rest.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(rest);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  for (const item of value) if (typeof item !== 'string') throw new UnlocatedError(notStringArray);
  return value as string[];
}

function parseMaybeJSON(rest: string): { args: string[]; json: boolean } {
  if (rest === '') return { args: [], json: false };
  const json = parseJSON(rest);
  if (json) return { args: json, json: true };
  return { args: [rest], json: false };
}

function parseMaybeJSONToList(rest: string): { args: string[]; json: boolean } {
  const json = parseJSON(rest);
  if (json) return { args: json, json: true };
  return { args: parseStringsWhitespaceDelimited(rest), json: false };
}

function parseHealthConfig(node: RawNode, rest: string): void {
  const chars = [...rest];
  let sep = 0;
  while (sep < chars.length && !isGoSpace(chars[sep]!)) sep++;
  let next = sep;
  while (next < chars.length && isGoSpace(chars[next]!)) next++;
  if (sep === 0) return;
  const cmd = parseMaybeJSON(chars.slice(next).join(''));
  node.args = [chars.slice(0, sep).join(''), ...cmd.args];
  node.json = cmd.json;
}

const heredocLexer = new ShellLex({ escapeToken: '\\', skipUnsetEnv: true });

/** BuildKit's ParseHeredoc: the heredoc a word like `<<EOF`, `<<-"EOF"` or `3<<EOF` introduces. */
export function parseHeredocWord(src: string): Heredoc | undefined {
  const m = reHeredoc.exec(src);
  if (!m) return undefined;
  const rest = m[3]!;
  if (rest.length === 0) return undefined;
  const words = heredocLexer.processWords(rest, emptyEnv);
  if (words.length !== 1) return undefined;
  const wordsRaw = heredocLexer.with({ rawQuotes: true }).processWords(rest, emptyEnv);
  if (wordsRaw.length !== words.length) throw new UnlocatedError(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  const quotes = (w: string) => (w.match(/['"]/g) ?? []).length;
  return {
    name: words[0]!,
    fileDescriptor: m[1] ? parseInt(m[1], 10) : 0,
    expand: quotes(words[0]!) === quotes(wordsRaw[0]!),
    chomp: m[2] === '-',
    content: '',
  };
}

/** parseHeredocWord that treats lexing errors as "not a heredoc". */
export function mustParseHeredocWord(src: string): Heredoc | undefined {
  try {
    return parseHeredocWord(src);
  } catch {
    return undefined;
  }
}

function heredocsFromLine(line: string): Heredoc[] {
  let words: string[];
  try {
    words = heredocLexer.with({ rawQuotes: true, rawEscapes: true }).processWords(line, emptyEnv);
  } catch {
    words = [];
  }
  const docs: Heredoc[] = [];
  for (const word of words) {
    const doc = parseHeredocWord(word);
    if (doc) docs.push(doc);
  }
  return docs;
}

/** `<<-` bodies: leading tabs removed from every line. */
export function chompHeredocContent(src: string): string {
  return src.replace(/^\t+/gm, '');
}
