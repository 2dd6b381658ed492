// The instruction model: raw nodes become typed instructions with validated flags and arguments, as
// BuildKit's frontend/dockerfile/instructions package does (parse.go, bflag.go, commands_run*.go).

import { DockerfileSyntaxError, UnlocatedError } from './errors.js';
import { goQuote, parseGoDuration, parseGoInt32, suggest, trimGoSpace } from './gocompat.js';
import { parseMountSpec } from './mounts.js';
import { chompHeredocContent, mustParseHeredocWord, parseRaw, type Heredoc, type RawNode } from './parser.js';

interface InstructionBase {
  /** The keyword as written ("copy", "COPY"). */
  keyword: string;
  /** 1-based first line of the instruction. */
  line: number;
  /** Last line, heredoc bodies included. */
  endLine: number;
  /** The instruction's source: continuation lines joined, surrounding blanks trimmed. */
  original: string;
  /** Builder flags as written. */
  flags: string[];
  heredocs: Heredoc[];
}

export interface FromInstruction extends InstructionBase {
  kind: 'from';
  /** The image or stage name as written, before global ARG expansion. */
  image: string;
  /** Stage name after AS, lower-cased. */
  name?: string;
  /** `--platform` as written, before expansion. */
  platform?: string;
}

export interface ArgInstruction extends InstructionBase {
  kind: 'arg';
  args: { key: string; value?: string }[];
}

export interface KeyValue {
  key: string;
  value: string;
  /** Written in the legacy `KEY value` form. */
  legacy: boolean;
}

export interface EnvInstruction extends InstructionBase {
  kind: 'env';
  pairs: KeyValue[];
}

export interface LabelInstruction extends InstructionBase {
  kind: 'label';
  pairs: KeyValue[];
}

export interface MaintainerInstruction extends InstructionBase {
  kind: 'maintainer';
  maintainer: string;
}

export interface InlineFile {
  name: string;
  data: string;
  chomp: boolean;
}

export interface RunInstruction extends InstructionBase {
  kind: 'run';
  /** Exec form: the argv; shell form: one element, the command line. */
  cmdLine: string[];
  /** Shell form: the shell is put in front at dispatch. */
  prependShell: boolean;
  /** Heredoc bodies attached to the command. */
  files: InlineFile[];
  /** `--mount` values as written (expanded and parsed at dispatch). */
  mounts: string[];
  network: 'default' | 'none' | 'host';
  security: 'sandbox' | 'insecure';
  devices: string[];
}

export interface CmdInstruction extends InstructionBase {
  kind: 'cmd';
  cmdLine: string[];
  prependShell: boolean;
}

export interface EntrypointInstruction extends InstructionBase {
  kind: 'entrypoint';
  /** null for `ENTRYPOINT []`. */
  cmdLine: string[] | null;
  prependShell: boolean;
}

export interface ShellInstruction extends InstructionBase {
  kind: 'shell';
  shell: string[];
}

export interface HeredocSource {
  /** The heredoc's name: the file name it is copied as. */
  path: string;
  data: string;
  /** Variables in the body are expanded (delimiter not quoted). */
  expand: boolean;
}

export interface CopyInstruction extends InstructionBase {
  kind: 'copy' | 'add';
  sources: string[];
  heredocSources: HeredocSource[];
  dest: string;
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  checksum?: string;
  keepGitDir?: boolean;
  unpack?: boolean;
}

export interface WorkdirInstruction extends InstructionBase {
  kind: 'workdir';
  path: string;
}

export interface UserInstruction extends InstructionBase {
  kind: 'user';
  user: string;
}

export interface VolumeInstruction extends InstructionBase {
  kind: 'volume';
  volumes: string[];
}

export interface StopSignalInstruction extends InstructionBase {
  kind: 'stopsignal';
  signal: string;
}

export interface ExposeInstruction extends InstructionBase {
  kind: 'expose';
  /** As written (sorted, as BuildKit sorts them before expansion). */
  ports: string[];
}

export interface HealthcheckInstruction extends InstructionBase {
  kind: 'healthcheck';
  /** ["NONE"], ["CMD", ...argv] or ["CMD-SHELL", cmdline]. */
  test: string[];
  /** Nanoseconds; 0 means inherit. */
  interval: number;
  timeout: number;
  startPeriod: number;
  startInterval: number;
  retries: number;
}

export interface OnbuildInstruction extends InstructionBase {
  kind: 'onbuild';
  /** The trigger as stored in the image's OnBuild list: source after ONBUILD, heredoc bodies appended. */
  expression: string;
  /** The trigger's instruction keyword, upper case. */
  trigger: string;
}

export type Instruction =
  | FromInstruction
  | ArgInstruction
  | EnvInstruction
  | LabelInstruction
  | MaintainerInstruction
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | ShellInstruction
  | CopyInstruction
  | WorkdirInstruction
  | UserInstruction
  | VolumeInstruction
  | StopSignalInstruction
  | ExposeInstruction
  | HealthcheckInstruction
  | OnbuildInstruction;

/** Instructions that can appear inside a stage (everything but FROM). */
export type StageInstruction = Exclude<Instruction, FromInstruction>;

export const instructionNames = [
  'add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir',
];

type FlagType = 'bool' | 'string' | 'strings';

class Flags {
  private readonly values = new Map<string, string | string[]>();
  readonly used = new Set<string>();
  constructor(
    private readonly instruction: string,
    private readonly raw: string[],
    private readonly spec: Record<string, FlagType>,
  ) {}

  /** BuildKit's BFlags.Parse with kiln's message for unknown flags (naming the instruction). */
  parse(): void {
    for (const a of this.raw) {
      if (a === '--') return;
      if (!a.startsWith('--')) throw new UnlocatedError(`arg should start with -- : ${a}`);
      const eq = a.indexOf('=');
      const flagName = eq < 0 ? a : a.slice(0, eq);
      const hasValue = eq >= 0;
      const value = hasValue ? a.slice(eq + 1) : '';
      const name = flagName.slice(2);
      const type = Object.hasOwn(this.spec, name) ? this.spec[name] : undefined;
      if (!type) {
        // BuildKit's bflag.go wraps this error with suggest.WrapError: the nearest flag, if any.
        const s = suggest(name, Object.keys(this.spec), true);
        throw new UnlocatedError(`unknown flag ${flagName} for ${this.instruction}${s ? ` (did you mean ${s}?)` : ''}`);
      }
      if (this.used.has(name) && type !== 'strings') throw new UnlocatedError(`duplicate flag specified: ${flagName}`);
      this.used.add(name);
      switch (type) {
        case 'bool': {
          if (hasValue && value === '') throw new UnlocatedError(`missing a value on flag: ${flagName}`);
          const v = value.toLowerCase();
          if (v !== 'true' && v !== '' && v !== 'false') throw new UnlocatedError(`expecting boolean value for flag ${flagName}, not: ${value}`);
          this.values.set(name, v === 'false' ? 'false' : 'true');
          break;
        }
        case 'string':
          if (!hasValue) throw new UnlocatedError(`missing a value on flag: ${flagName}`);
          this.values.set(name, value);
          break;
        case 'strings': {
          if (!hasValue) throw new UnlocatedError(`missing a value on flag: ${flagName}`);
          const list = (this.values.get(name) as string[] | undefined) ?? [];
          list.push(value);
          this.values.set(name, list);
          break;
        }
      }
    }
  }
  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  bool(name: string): boolean {
    return this.values.get(name) === 'true';
  }
  strings(name: string): string[] {
    return (this.values.get(name) as string[] | undefined) ?? [];
  }
}

function handleJSONArgs(args: string[], json: boolean): string[] {
  if (args.length === 0) return [];
  if (json) return args;
  return [args.join(' ')];
}

function parseKvps(args: string[], name: string): KeyValue[] {
  if (args.length === 0) throw new UnlocatedError(`${name} requires at least one argument`);
  if (args.length % 3 !== 0) throw new UnlocatedError(`Bad input to ${name}, too many arguments`);
  const out: KeyValue[] = [];
  for (let j = 0; j < args.length; j += 3) {
    if (args[j]!.length === 0) throw new UnlocatedError(`${name} names can not be blank`);
    out.push({ key: args[j]!, value: args[j + 1]!, legacy: args[j + 2] === '' });
  }
  return out;
}

function parseOptInterval(flags: Flags, name: string): number {
  const s = flags.string(name) ?? '';
  if (s === '') return 0;
  const d = parseGoDuration(s);
  if (d === 0n) return 0;
  if (d < 1_000_000n) throw new UnlocatedError(`Interval ${goQuote(name)} cannot be less than 1ms`);
  return Number(d);
}

const validStageName = /^[a-z][a-z0-9-_.]*$/;

/** Turns a raw node into an instruction, validating it. Throws UnlocatedError (located by the caller). */
export function toInstruction(node: RawNode): Instruction {
  const lower = node.keyword.toLowerCase();
  const upper = node.keyword.toUpperCase();
  const args = node.args;
  const base: InstructionBase = {
    keyword: node.keyword,
    line: node.startLine,
    endLine: node.endLine,
    original: trimGoSpace(node.original),
    flags: node.flags,
    heredocs: node.heredocs,
  };
  const flags = (spec: Record<string, FlagType>) => new Flags(upper, node.flags, spec);
  const noFlags = () => flags({}).parse();
  const exactlyOne = () => {
    if (args.length !== 1) throw new UnlocatedError(`${upper} requires exactly one argument`);
  };
  const atLeastOne = () => {
    if (args.length === 0) throw new UnlocatedError(`${upper} requires at least one argument`);
  };

  switch (lower) {
    case 'env': {
      noFlags();
      return { ...base, kind: 'env', pairs: parseKvps(args, 'ENV') };
    }
    case 'label': {
      noFlags();
      return { ...base, kind: 'label', pairs: parseKvps(args, 'LABEL') };
    }
    case 'maintainer': {
      if (args.length !== 1) throw new UnlocatedError('MAINTAINER requires exactly one argument');
      noFlags();
      return { ...base, kind: 'maintainer', maintainer: args[0]! };
    }
    case 'add':
    case 'copy': {
      if (args.length < 2) {
        throw new UnlocatedError(`${upper} requires at least two arguments, but only one was provided. Destination could not be determined`);
      }
      const f = lower === 'add'
        ? flags({ chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', unpack: 'bool', exclude: 'strings' })
        : flags({ chown: 'string', from: 'string', chmod: 'string', link: 'bool', exclude: 'strings', parents: 'bool' });
      f.parse();
      const dest = args[args.length - 1]!;
      if (mustParseHeredocWord(dest)) throw new UnlocatedError(`${upper} cannot accept a heredoc as a destination`);
      const lookup = new Map(node.heredocs.map((h) => [h.name, h]));
      const sources: string[] = [];
      const heredocSources: HeredocSource[] = [];
      for (const src of args.slice(0, -1)) {
        const doc = mustParseHeredocWord(src);
        if (doc) {
          let data = lookup.get(doc.name)?.content ?? '';
          if (doc.chomp) data = chompHeredocContent(data);
          heredocSources.push({ path: doc.name, data, expand: doc.expand });
        } else {
          sources.push(src);
        }
      }
      const instr: CopyInstruction = {
        ...base,
        kind: lower,
        sources,
        heredocSources,
        dest,
        chown: f.string('chown') || undefined,
        chmod: f.string('chmod') || undefined,
        link: f.bool('link'),
        parents: lower === 'copy' && f.bool('parents'),
        exclude: f.strings('exclude'),
      };
      if (lower === 'copy') {
        const from = f.string('from');
        if (from) instr.from = from;
      } else {
        if (f.string('checksum')) instr.checksum = f.string('checksum');
        if (f.used.has('keep-git-dir')) instr.keepGitDir = f.bool('keep-git-dir');
        if (f.used.has('unpack')) instr.unpack = f.bool('unpack');
      }
      return instr;
    }
    case 'from': {
      let name: string | undefined;
      if (args.length === 3 && args[1]!.toLowerCase() === 'as') {
        name = args[2]!.toLowerCase();
        if (!validStageName.test(name)) {
          throw new UnlocatedError(`invalid name for build stage: ${goQuote(args[2]!)}, name can't start with a number or contain symbols`);
        }
      } else if (args.length !== 1) {
        throw new UnlocatedError('FROM requires either one or three arguments');
      }
      const f = flags({ platform: 'string' });
      f.parse();
      const instr: FromInstruction = { ...base, kind: 'from', image: args[0]! };
      if (name !== undefined) instr.name = name;
      if (f.string('platform')) instr.platform = f.string('platform');
      return instr;
    }
    case 'onbuild': {
      if (args.length === 0) throw new UnlocatedError('ONBUILD requires at least one argument');
      noFlags();
      const trigger = args[0]!.trim().toUpperCase();
      if (trigger === 'ONBUILD') throw new UnlocatedError('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (trigger === 'MAINTAINER' || trigger === 'FROM') throw new UnlocatedError(`${trigger} isn't allowed as an ONBUILD trigger`);
      let expression = node.original.replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, '');
      for (const doc of node.heredocs) expression += '\n' + doc.content + doc.name;
      return { ...base, kind: 'onbuild', expression, trigger };
    }
    case 'workdir': {
      exactlyOne();
      noFlags();
      return { ...base, kind: 'workdir', path: args[0]! };
    }
    case 'run': {
      const f = flags({ mount: 'strings', network: 'string', security: 'string', device: 'strings' });
      f.parse();
      const mounts = f.strings('mount');
      // BuildKit parses mounts once without expansion to validate `from`, which cannot use variables.
      for (const m of mounts) parseMountSpec(m, undefined);
      const network = f.string('network') ?? 'default';
      if (network !== 'default' && network !== 'none' && network !== 'host') throw new UnlocatedError(`invalid network mode ${goQuote(network)}`);
      const security = f.string('security') ?? 'sandbox';
      if (security !== 'sandbox' && security !== 'insecure') throw new UnlocatedError(`security ${goQuote(security)} is not valid`);
      return {
        ...base,
        kind: 'run',
        cmdLine: handleJSONArgs(args, node.json),
        prependShell: !node.json,
        files: node.heredocs.map((h) => ({ name: h.name, data: h.content, chomp: h.chomp })),
        mounts,
        network,
        security,
        devices: f.strings('device'),
      };
    }
    case 'cmd': {
      noFlags();
      return { ...base, kind: 'cmd', cmdLine: handleJSONArgs(args, node.json), prependShell: !node.json };
    }
    case 'entrypoint': {
      noFlags();
      const cmdLine = handleJSONArgs(args, node.json);
      return { ...base, kind: 'entrypoint', cmdLine: cmdLine.length === 0 ? null : cmdLine, prependShell: !node.json };
    }
    case 'healthcheck': {
      atLeastOne();
      const typ = args[0]!.toUpperCase();
      const rest = args.slice(1);
      const none = { ...base, kind: 'healthcheck' as const, interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0 };
      if (typ === 'NONE') {
        if (rest.length !== 0) throw new UnlocatedError('HEALTHCHECK NONE takes no arguments');
        return { ...none, test: ['NONE'] };
      }
      const f = flags({ interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' });
      f.parse();
      if (typ !== 'CMD') throw new UnlocatedError(`Unknown type ${goQuote(typ)} in HEALTHCHECK (try CMD)`);
      const cmdSlice = handleJSONArgs(rest, node.json);
      if (cmdSlice.length === 0) throw new UnlocatedError('Missing command after HEALTHCHECK CMD');
      const test = [node.json ? 'CMD' : 'CMD-SHELL', ...cmdSlice];
      const interval = parseOptInterval(f, 'interval');
      const timeout = parseOptInterval(f, 'timeout');
      const startPeriod = parseOptInterval(f, 'start-period');
      const startInterval = parseOptInterval(f, 'start-interval');
      let retries = 0;
      const r = f.string('retries') ?? '';
      if (r !== '') {
        const n = parseGoInt32(r);
        if (n === undefined) throw new UnlocatedError(`strconv.ParseInt: parsing ${goQuote(r)}: invalid syntax`);
        if (n < 0) throw new UnlocatedError(`--retries cannot be negative (${n})`);
        retries = n;
      }
      return { ...none, test, interval, timeout, startPeriod, startInterval, retries };
    }
    case 'expose': {
      atLeastOne();
      noFlags();
      // Go's sort.Strings: byte order
      const ports = [...args].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      return { ...base, kind: 'expose', ports };
    }
    case 'user': {
      exactlyOne();
      noFlags();
      return { ...base, kind: 'user', user: args[0]! };
    }
    case 'volume': {
      atLeastOne();
      noFlags();
      const volumes = args.map((v) => v.trim());
      if (volumes.some((v) => v === '')) throw new UnlocatedError('VOLUME specified can not be an empty string');
      return { ...base, kind: 'volume', volumes };
    }
    case 'stopsignal': {
      // BuildKit does not parse STOPSIGNAL's flags at all.
      exactlyOne();
      return { ...base, kind: 'stopsignal', signal: args[0]! };
    }
    case 'arg': {
      // Nor ARG's.
      atLeastOne();
      const pairs = args.map((arg) => {
        const eq = arg.indexOf('=');
        if (eq < 0) return { key: arg };
        if (eq === 0) throw new UnlocatedError('ARG names can not be blank');
        return { key: arg.slice(0, eq), value: arg.slice(eq + 1) };
      });
      return { ...base, kind: 'arg', args: pairs };
    }
    case 'shell': {
      noFlags();
      const shell = handleJSONArgs(args, node.json);
      if (shell.length === 0) throw new UnlocatedError('SHELL requires at least one argument');
      if (!node.json) throw new UnlocatedError('SHELL requires the arguments to be in JSON form');
      return { ...base, kind: 'shell', shell };
    }
  }
  const match = suggest(node.keyword, instructionNames.map((n) => n.toUpperCase()), false);
  throw new UnlocatedError(`unknown instruction: ${node.keyword}${match ? ` (did you mean ${match}?)` : ''}`);
}

/** toInstruction, located at the node's line. */
export function toLocatedInstruction(node: RawNode, file: string, line = node.startLine): Instruction {
  try {
    return toInstruction(node);
  } catch (err) {
    if (err instanceof UnlocatedError) throw new DockerfileSyntaxError(file, line, err.message);
    throw err;
  }
}

/**
 * Parses an ONBUILD trigger (an image's OnBuild entry) the way BuildKit does when the image is used as
 * a base: a fresh parse with default directives, exactly one instruction, never FROM. Errors are
 * located at `line` (the FROM line of the stage running the trigger).
 */
export function parseTrigger(expression: string, file: string, line: number): StageInstruction {
  let nodes: RawNode[];
  try {
    nodes = parseRaw(expression, file).nodes;
  } catch (err) {
    if (err instanceof DockerfileSyntaxError) throw new DockerfileSyntaxError(file, line, `ONBUILD trigger: ${err.detail}`);
    throw err;
  }
  if (nodes.length !== 1) throw new DockerfileSyntaxError(file, line, 'onbuild trigger should be a single expression');
  const instr = toLocatedInstruction(nodes[0]!, file, line);
  if (instr.kind === 'from') throw new DockerfileSyntaxError(file, line, 'FROM isn\'t allowed as an ONBUILD trigger');
  return { ...instr, line, endLine: line };
}
