// The shell inside RUN, as the package-manager rules need it: every simple command of a script with
// its name and arguments, wherever it sits (after `&&`, `;`, `||`, in pipes, subshells, `{ }`, `if`,
// loops, `$(…)`), plus the commands of `sh -c '…'` and of wrappers such as `sudo` and `env`.
//
// Parsing is tree-sitter's Bash grammar (tree-sitter-bash) run by web-tree-sitter: a maintained,
// complete parser shipped as WebAssembly, so no native build. Its grammar is a superset of POSIX sh,
// which is what a RUN line is written in.

import { createRequire } from 'node:module';
import { Language, Parser, type Node } from 'web-tree-sitter';

/** One argument of a command. */
export interface ShellWord {
  /** The word as written. */
  text: string;
  /** Its value after quote removal; undefined when it depends on an expansion ($X, $(…), …). */
  value: string | undefined;
}

export interface ShellCommand {
  /** The command name without its directory (`/usr/bin/apt-get` → `apt-get`); '' when it is dynamic. */
  name: string;
  args: ShellWord[];
  /** The command's source text. */
  text: string;
  /** Run by a command before it (`sudo X`, `sh -c 'X'`) rather than by the script itself. */
  wrapped?: boolean;
}

export interface ShellScript {
  /** Every simple command, in source order; a wrapped command (`sudo X`, `sh -c 'X'`) follows its wrapper. */
  commands: ShellCommand[];
  /** The script has at least one pipe (`a | b`). */
  hasPipe: boolean;
  /** The parser met something it could not read; the commands are a best effort. */
  hasError: boolean;
}

let parser: Parser | undefined;
let loading: Promise<Parser> | undefined;

/** Loads the grammar once per process. */
export function shellParser(): Promise<Parser> {
  if (parser) return Promise.resolve(parser);
  loading ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const bash = await Language.load(require.resolve('tree-sitter-bash/tree-sitter-bash.wasm'));
    const p = new Parser();
    p.setLanguage(bash);
    parser = p;
    return p;
  })();
  return loading;
}

/** Parses a script. */
export async function parseShell(script: string): Promise<ShellScript> {
  return parseWith(await shellParser(), script, 0);
}

const shells = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh']);
/** Commands that run the command given as their arguments. */
const wrappers = new Set(['sudo', 'env', 'nice', 'nohup', 'time', 'exec', 'command', 'stdbuf', 'doas', 'gosu', 'su-exec', 'chroot']);
const maxNesting = 4;

function parseWith(p: Parser, script: string, depth: number): ShellScript {
  const tree = p.parse(script);
  const out: ShellScript = { commands: [], hasPipe: false, hasError: false };
  if (!tree) {
    out.hasError = true;
    return out;
  }
  try {
    out.hasError = tree.rootNode.hasError;
    const visit = (n: Node): void => {
      if (n.type === 'pipeline') out.hasPipe = true;
      if (n.type === 'command') {
        const cmd = toCommand(n);
        if (cmd) {
          out.commands.push(cmd);
          for (const inner of unwrap(p, cmd, depth)) {
            out.commands.push(...inner.commands.map((c) => ({ ...c, wrapped: true })));
            out.hasPipe ||= inner.hasPipe;
          }
        }
      }
      for (const c of n.namedChildren) if (c) visit(c);
    };
    visit(tree.rootNode);
  } finally {
    tree.delete();
  }
  return out;
}

function toCommand(n: Node): ShellCommand | undefined {
  const nameNode = n.childForFieldName('name');
  if (!nameNode) return undefined; // a bare assignment (`A=1`)
  const nameWord = wordOf(nameNode.namedChildren[0] ?? nameNode);
  const name = nameWord.value === undefined ? '' : nameWord.value.slice(nameWord.value.lastIndexOf('/') + 1);
  const args = n.childrenForFieldName('argument').filter((a): a is Node => a !== null).map(wordOf);
  return { name, args, text: n.text };
}

/** A wrapped command, or the script of `sh -c`, parsed in turn. */
function unwrap(p: Parser, cmd: ShellCommand, depth: number): ShellScript[] {
  if (depth >= maxNesting) return [];
  if (shells.has(cmd.name)) {
    const i = cmd.args.findIndex((a) => a.value !== undefined && /^-[a-z]*c[a-z]*$/.test(a.value));
    const script = i >= 0 ? cmd.args[i + 1]?.value : undefined;
    return script === undefined ? [] : [parseWith(p, script, depth + 1)];
  }
  if (!wrappers.has(cmd.name)) return [];
  let k = 0;
  while (k < cmd.args.length) {
    const v = cmd.args[k]!.value;
    if (v === undefined) return [];
    if (v === '--') {
      k++;
      break;
    }
    // Options of the wrapper, and env's NAME=value assignments; sudo -u USER takes a value.
    if (v.startsWith('-')) {
      if (cmd.name === 'sudo' && /^-[ugCDhprtT]$/.test(v)) k++;
      k++;
      continue;
    }
    if (cmd.name === 'env' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(v)) {
      k++;
      continue;
    }
    break;
  }
  // gosu and su-exec take the user first; chroot the new root.
  if (cmd.name === 'gosu' || cmd.name === 'su-exec' || cmd.name === 'chroot') k++;
  const rest = cmd.args.slice(k);
  if (rest.length === 0 || rest[0]!.value === undefined) return [];
  const first = rest[0]!.value;
  const inner: ShellCommand = { name: first.slice(first.lastIndexOf('/') + 1), args: rest.slice(1), text: rest.map((w) => w.text).join(' ') };
  return [{ commands: [inner], hasPipe: false, hasError: false }, ...unwrap(p, inner, depth + 1)];
}

/** A word's value after quote removal, when it has no expansion in it. */
function wordOf(n: Node): ShellWord {
  return { text: n.text, value: literal(n) };
}

function literal(n: Node): string | undefined {
  switch (n.type) {
    case 'word':
    case 'number':
      return n.text.replace(/\\(.)/gs, '$1');
    case 'raw_string':
      return n.text.slice(1, -1);
    case 'string': {
      let s = '';
      for (const c of n.namedChildren) {
        if (!c) continue;
        if (c.type !== 'string_content') return undefined;
        s += c.text.replace(/\\([$`"\\\n])/g, '$1');
      }
      return s;
    }
    case 'concatenation': {
      let s = '';
      for (const c of n.namedChildren) {
        const v = c ? literal(c) : undefined;
        if (v === undefined) return undefined;
        s += v;
      }
      return s;
    }
    case 'command_name':
      return n.namedChildren[0] ? literal(n.namedChildren[0]) : undefined;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a command's options the way getopt-style programs do.

/** Options a program takes that consume the next word (`-o X`, `--target-release X`). */
export interface OptionSpec {
  /** Short option letters that take a value. */
  shortWithValue?: string;
  /** Long option names (without --) that take a value. */
  longWithValue?: string[];
}

/** True when a short letter (`-y`, also inside `-qy`) or a long option (`--yes`, `--yes=…`) is present. */
export function hasOption(cmd: ShellCommand, short: string, long: string[] = [], spec: OptionSpec = {}): boolean {
  for (const o of options(cmd, spec)) {
    if (o.long !== undefined ? long.includes(o.long) : short.includes(o.short!)) return true;
  }
  return false;
}

/** The value of an option (`-u 1000`, `--uid=1000`, `-u1000`), or undefined. */
export function optionValue(cmd: ShellCommand, short: string, long: string[], spec: OptionSpec = {}): string | undefined {
  for (const o of options(cmd, spec)) {
    if (o.long !== undefined ? long.includes(o.long) : short.includes(o.short!)) return o.value;
  }
  return undefined;
}

/** How many times a short letter or long option appears (`-qq` counts two). */
export function countOption(cmd: ShellCommand, short: string, long: string[] = [], spec: OptionSpec = {}): number {
  let n = 0;
  for (const o of options(cmd, spec)) if (o.long !== undefined ? long.includes(o.long) : short.includes(o.short!)) n++;
  return n;
}

interface ParsedOption {
  short?: string;
  long?: string;
  value?: string;
}

function options(cmd: ShellCommand, spec: OptionSpec): ParsedOption[] {
  const out: ParsedOption[] = [];
  const args = cmd.args;
  for (let i = 0; i < args.length; i++) {
    const v = args[i]!.value;
    if (v === undefined || !v.startsWith('-') || v === '-') continue;
    if (v === '--') break;
    if (v.startsWith('--')) {
      const eq = v.indexOf('=');
      const name = eq < 0 ? v.slice(2) : v.slice(2, eq);
      let value = eq < 0 ? undefined : v.slice(eq + 1);
      if (value === undefined && spec.longWithValue?.includes(name)) value = args[++i]?.value;
      out.push({ long: name, value });
      continue;
    }
    for (let j = 1; j < v.length; j++) {
      const letter = v[j]!;
      if (spec.shortWithValue?.includes(letter)) {
        const value = j + 1 < v.length ? v.slice(j + 1) : args[++i]?.value;
        out.push({ short: letter, value });
        break;
      }
      out.push({ short: letter });
    }
  }
  return out;
}

/** The words that are not options nor option values, in order (after `--`, everything). */
export function positionals(cmd: ShellCommand, spec: OptionSpec = {}): ShellWord[] {
  const out: ShellWord[] = [];
  const args = cmd.args;
  let rest = false;
  for (let i = 0; i < args.length; i++) {
    const w = args[i]!;
    const v = w.value;
    if (rest || v === undefined || !v.startsWith('-') || v === '-') {
      out.push(w);
      continue;
    }
    if (v === '--') {
      rest = true;
      continue;
    }
    if (v.startsWith('--')) {
      if (!v.includes('=') && spec.longWithValue?.includes(v.slice(2))) i++;
      continue;
    }
    for (let j = 1; j < v.length; j++) {
      if (spec.shortWithValue?.includes(v[j]!)) {
        if (j + 1 === v.length) i++;
        break;
      }
    }
  }
  return out;
}

/**
 * For `apt-get install a b`, `pip install x`: true when the first positional word is one of `subcommands`
 * (and so the command is that action).
 */
export function isAction(cmd: ShellCommand, names: string[], subcommands: string[], spec: OptionSpec = {}): boolean {
  if (!names.includes(cmd.name)) return false;
  const first = positionals(cmd, spec)[0]?.value;
  return first !== undefined && subcommands.includes(first);
}

/** The positional words after the subcommand (`apt-get install -y a b` → a, b). */
export function actionArgs(cmd: ShellCommand, spec: OptionSpec = {}): ShellWord[] {
  return positionals(cmd, spec).slice(1);
}
