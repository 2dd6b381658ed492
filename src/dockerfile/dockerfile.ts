// parseDockerfile: text to the Dockerfile model (directives, instructions with lines, stages, warnings).

import { DockerfileSyntaxError, UnlocatedError } from './errors.js';
import {
  toLocatedInstruction,
  type ArgInstruction,
  type FromInstruction,
  type Instruction,
  type StageInstruction,
} from './instructions.js';
import { WarningSink, instructionCheck, parseCheckDirective, type CheckConfig, type Warning } from './lint.js';
import { parseRaw, type Directive } from './parser.js';

export interface StageSource {
  /** Position among the Dockerfile's stages, 0-based. */
  index: number;
  /** Stage name after AS, lower-cased. */
  name?: string;
  from: FromInstruction;
  instructions: StageInstruction[];
}

export interface Dockerfile {
  /** The name used in error messages and warnings. */
  file: string;
  /** `\` or a backtick (`# escape=` directive). */
  escapeChar: string;
  directives: { syntax?: string; escape?: string; check?: string; list: Directive[] };
  /** Every instruction in file order. */
  instructions: Instruction[];
  /** ARG instructions before the first FROM: the global scope, visible in FROM lines. */
  metaArgs: ArgInstruction[];
  stages: StageSource[];
  warnings: Warning[];
  check: CheckConfig;
}

export interface ParseOptions {
  /** Name for messages, e.g. "Dockerfile" or "app.Dockerfile". Default "Dockerfile". */
  file?: string;
  /** The BUILDKIT_DOCKERFILE_CHECK build arg: replaces the `# check=` directive (BuildKit dockerui/config.go:308-313, convert.go:191-201). */
  check?: string;
}

const reservedStageNames = new Set(['context', 'scratch']);

/** Parses a Dockerfile. Throws DockerfileSyntaxError naming file and line. */
export function parseDockerfile(text: string, opts: ParseOptions = {}): Dockerfile {
  const file = opts.file ?? 'Dockerfile';
  if (text.length === 0) throw new DockerfileSyntaxError(file, undefined, 'the Dockerfile cannot be empty');
  const raw = parseRaw(text, file);
  const directives: Dockerfile['directives'] = { list: raw.directives };
  for (const d of raw.directives) directives[d.name] = d.value;
  let check: CheckConfig;
  try {
    check = parseCheckDirective(opts.check ?? directives.check);
  } catch (err) {
    if (opts.check !== undefined && err instanceof UnlocatedError) throw new DockerfileSyntaxError(file, undefined, `failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: ${err.message}`);
    const line = raw.directives.find((d) => d.name === 'check')?.line;
    if (err instanceof UnlocatedError) throw new DockerfileSyntaxError(file, line, err.message);
    throw err;
  }
  for (const node of raw.nodes) {
    const local = node.comments && instructionCheck(node.comments);
    if (local) (check.byLine ??= new Map()).set(node.startLine, local);
  }
  const sink = new WarningSink(file, check);
  for (const w of raw.warnings) sink.warn(w.rule, w.message, w.line);

  const instructions: Instruction[] = [];
  const metaArgs: ArgInstruction[] = [];
  const stages: StageSource[] = [];
  for (const node of raw.nodes) {
    const instr = toLocatedInstruction(node, file);
    instructions.push(instr);
    // InvalidDefinitionDescription (experimental): the comment right above a named FROM or an ARG
    // starts with the name it describes (BuildKit instructions/parse.go:107-109, :132-140, :879-894).
    const defined = instr.kind === 'arg' ? instr.args.map((a) => a.key) : instr.kind === 'from' && instr.name !== undefined ? [instr.name] : [];
    const description = node.comments?.at(-1);
    if (description !== undefined && defined.length > 0 && !defined.includes(description.split(' ')[0]!)) {
      sink.warn('InvalidDefinitionDescription', `Comment for ${instr.kind.toUpperCase()} should follow the format: \`# ${defined.length > 1 ? '<arg_key>' : defined[0]} <description>\``, instr.line);
    }
    if (instr.kind === 'maintainer') sink.warn('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', instr.line);
    if (instr.kind === 'from') {
      const args = node.args;
      if (args.length === 3 && args[2] !== args[2]!.toLowerCase()) {
        sink.warn('StageNameCasing', `Stage name '${args[2]}' should be lowercase`, instr.line);
      }
      if (args.length >= 3) {
        const cmd = node.keyword;
        const lowerCmd = cmd === cmd.toLowerCase();
        const upperCmd = cmd === cmd.toUpperCase();
        if ((lowerCmd && args[1] !== args[1]!.toLowerCase()) || (!lowerCmd && upperCmd && args[1] !== args[1]!.toUpperCase())) {
          sink.warn('FromAsCasing', `'${args[1]}' and '${cmd}' keywords' casing do not match`, instr.line);
        }
      }
      const stage: StageSource = { index: stages.length, from: instr, instructions: [] };
      if (instr.name !== undefined) stage.name = instr.name;
      stages.push(stage);
      continue;
    }
    if (stages.length === 0) {
      if (instr.kind === 'arg') {
        metaArgs.push(instr);
        continue;
      }
      throw new DockerfileSyntaxError(file, instr.line, 'no build stage in current context');
    }
    stages[stages.length - 1]!.instructions.push(instr);
  }
  if (stages.length === 0) throw new DockerfileSyntaxError(file, undefined, 'dockerfile contains no stages to build');

  // Checks BuildKit runs over the whole file before converting it.
  const seen = new Set<string>();
  for (const stage of stages) {
    if (stage.name === undefined) continue;
    if (reservedStageNames.has(stage.name)) {
      sink.warn('ReservedStageName', `Stage name should not use the same name as reserved stage "${stage.name}"`, stage.from.line);
    }
    if (seen.has(stage.name)) {
      sink.warn('DuplicateStageName', `Duplicate stage name "${stage.name}", stage names should be unique`, stage.from.line);
    }
    seen.add(stage.name);
  }
  checkCommandCasing(stages, sink);

  const df: Dockerfile = { file, escapeChar: raw.escapeToken, directives, instructions, metaArgs, stages, warnings: sink.warnings, check };
  return df;
}

function checkCommandCasing(stages: StageSource[], sink: WarningSink): void {
  const consistent = (s: string) => s === s.toLowerCase() || s === s.toUpperCase();
  let lower = 0;
  let upper = 0;
  const all = stages.flatMap((s) => [s.from as Instruction, ...s.instructions]);
  for (const i of all) {
    if (!consistent(i.keyword)) continue;
    if (i.keyword === i.keyword.toLowerCase()) lower++;
    else upper++;
  }
  const majorityLower = lower > upper;
  for (const i of all) {
    const name = i.keyword;
    let casing = '';
    if (majorityLower && name.toLowerCase() !== name) casing = 'lowercase';
    else if (!majorityLower && name.toUpperCase() !== name) casing = 'uppercase';
    if (casing) sink.warn('ConsistentInstructionCasing', `Command '${name}' should match the case of the command majority (${casing})`, i.line);
  }
}
