// The Dockerfile as lint reads it: leniently, the way hadolint does. hadolint lints any sequence of
// instructions (a fragment of RUN lines, a file whose FROM comes late), reports an instruction before
// the first FROM as DL3061 and goes on with every other rule. The build frontend (parseDockerfile)
// refuses such files outright, which is right for `kiln build` and wrong for a linter: one bad line
// would hide every other finding. So lint takes the frontend's line parser (parseRaw) and instruction
// model (toInstruction) node by node, and an instruction that does not parse is reported (DL1000, or
// DL3043 for a trigger ONBUILD may not have) and left out, instead of ending the lint.

import { DockerfileSyntaxError, UnlocatedError } from '../dockerfile/errors.js';
import { toInstruction, type ArgInstruction, type Instruction, type StageInstruction } from '../dockerfile/instructions.js';
import { parseCheckDirective } from '../dockerfile/lint.js';
import { parseRaw } from '../dockerfile/parser.js';
import type { Dockerfile, StageSource } from '../dockerfile/index.js';
import { parseRules } from './rules/index.js';

export type ParseFinding = (code: keyof typeof parseRules, line: number, message: string) => void;

export interface LintSource {
  /** The stages that start with FROM, and every instruction that parsed, in file order. */
  dockerfile: Dockerfile;
  /** Instructions before the first FROM other than ARG (each also reported as DL3061). */
  beforeFrom: StageInstruction[];
}

/**
 * Reads `text` for linting. Undefined only when the text cannot be split into instructions at all
 * (a bad parser directive, an unterminated heredoc, an array that is not strings): that is DL1000.
 */
export function readForLint(text: string, file: string, report: ParseFinding): LintSource | undefined {
  let raw: ReturnType<typeof parseRaw>;
  try {
    raw = parseRaw(text, file);
  } catch (e) {
    if (!(e instanceof DockerfileSyntaxError)) throw e;
    // A file with nothing but comments and blank lines has nothing to lint (hadolint: no findings).
    if (e.detail === 'file with no instructions') return empty(file);
    report('DL1000', e.line ?? 1, e.detail);
    return undefined;
  }
  const directives: Dockerfile['directives'] = { list: raw.directives };
  for (const d of raw.directives) directives[d.name] = d.value;

  const instructions: Instruction[] = [];
  const metaArgs: ArgInstruction[] = [];
  const stages: StageSource[] = [];
  const beforeFrom: StageInstruction[] = [];
  for (const node of raw.nodes) {
    let instr: Instruction;
    try {
      instr = toInstruction(node);
    } catch (e) {
      if (!(e instanceof UnlocatedError)) throw e;
      if (/ONBUILD/.test(e.message) && /isn't allowed/.test(e.message)) report('DL3043', node.startLine, parseRules.DL3043.message);
      else report('DL1000', node.startLine, e.message);
      continue;
    }
    instructions.push(instr);
    if (instr.kind === 'from') {
      const stage: StageSource = { index: stages.length, from: instr, instructions: [] };
      if (instr.name !== undefined) stage.name = instr.name;
      stages.push(stage);
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(instr);
    } else if (instr.kind === 'arg') {
      metaArgs.push(instr);
    } else {
      report('DL3061', instr.line, parseRules.DL3061.message);
      beforeFrom.push(instr);
    }
  }
  const dockerfile: Dockerfile = { file, escapeChar: raw.escapeToken, directives, instructions, metaArgs, stages, warnings: [], check: checkOf(directives.check) };
  return { dockerfile, beforeFrom };
}

/** The `# check=` directive: lint has no use for BuildKit's checks, so a bad one is not an error here. */
function checkOf(value: string | undefined): Dockerfile['check'] {
  try {
    return parseCheckDirective(value);
  } catch {
    return parseCheckDirective(undefined);
  }
}

function empty(file: string): LintSource {
  const dockerfile: Dockerfile = { file, escapeChar: '\\', directives: { list: [] }, instructions: [], metaArgs: [], stages: [], warnings: [], check: parseCheckDirective(undefined) };
  return { dockerfile, beforeFrom: [] };
}
