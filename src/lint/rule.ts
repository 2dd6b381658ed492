// What a lint rule is and what it sees: the parsed Dockerfile (src/dockerfile) grouped by stage, each
// RUN's shell parsed once, and the configuration. Rules never parse text themselves.

import type { Dockerfile, FromInstruction, RunInstruction, StageInstruction } from '../dockerfile/index.js';
import type { LintConfig } from './config.js';
import type { ShellScript } from './shell.js';

/** hadolint's severities, most severe first; `ignore` turns a rule off. */
export const severities = ['error', 'warning', 'info', 'style'] as const;
export type Severity = (typeof severities)[number];
export type Level = Severity | 'ignore';

export interface Finding {
  file: string;
  line: number;
  column: number;
  level: Severity;
  code: string;
  message: string;
}

export interface StageContext {
  index: number;
  /** Name after AS, lower-cased. */
  name?: string;
  /** Undefined for the instructions before the first FROM, which lint reads as a stage of their own. */
  from?: FromInstruction;
  instructions: StageInstruction[];
  /** The stage this one is built FROM, when its base is an earlier stage. */
  parent?: number;
}

export interface RunContext {
  instr: RunInstruction;
  stage: number;
  /** The script as the shell sees it (heredoc bodies included). */
  script: string;
  /** The parsed script; undefined when the stage's shell is not a POSIX shell (SHELL ["pwsh", …]). */
  shell: ShellScript | undefined;
  /** An `ONBUILD RUN` trigger rather than a RUN. */
  onbuild: boolean;
  /** The SHELL in effect (`["/bin/sh", "-c"]` unless changed). */
  shellCommand: string[];
}

export interface LintContext {
  file: string;
  dockerfile: Dockerfile;
  stages: StageContext[];
  runs: RunContext[];
  /** Stages whose files end up in the built image: the last stage and the stages it is built FROM. */
  shipped: Set<number>;
  config: LintConfig;
  /** `# kiln production` in the file, or `production: true` in the configuration. */
  production: boolean;
}

/** Reports a finding at an instruction's line; the message defaults to the rule's. */
export type Report = (line: number, message?: string) => void;

export interface Rule {
  code: string;
  /** Default severity; `ignore` means off unless the configuration overrides it. */
  severity: Level;
  message: string;
  check(ctx: LintContext, report: Report): void;
}

/** Runs of one stage, in order. */
export function stageRuns(ctx: LintContext, stage: number): RunContext[] {
  return ctx.runs.filter((r) => r.stage === stage);
}

/** The stage and its ancestors through `FROM <stage>`, nearest first. */
export function stageChain(ctx: LintContext, stage: number): StageContext[] {
  const out: StageContext[] = [];
  let s: StageContext | undefined = ctx.stages[stage];
  while (s && !out.includes(s)) {
    out.push(s);
    s = s.parent === undefined ? undefined : ctx.stages[s.parent];
  }
  return out;
}

/** The line a finding about a whole stage is reported at: its FROM, or its first instruction. */
export function stageLine(stage: StageContext): number {
  return stage.from?.line ?? stage.instructions[0]?.line ?? 1;
}
