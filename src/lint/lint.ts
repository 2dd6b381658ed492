// The lint engine: read the file leniently with the Dockerfile frontend's parser (parse.ts), group by
// stage, parse every RUN's shell once, run the rules and ShellCheck, then apply the configuration
// (ignored, override) and the pragmas.

import type { RunInstruction } from '../dockerfile/index.js';
import { parseTrigger } from '../dockerfile/instructions.js';
import { levelOf, type LintConfig } from './config.js';
import { readPragmas } from './pragmas.js';
import { readForLint, type LintSource } from './parse.js';
import { parseRules, rules } from './rules/index.js';
import { parseShell } from './shell.js';
import { runShellcheck, type ShellcheckInput } from './shellcheck.js';
import { severities, type Finding, type Level, type LintContext, type RunContext, type Severity, type StageContext } from './rule.js';
import { byCodeUnits } from '../order.js';

export interface LintOptions {
  /** Name findings carry ("Dockerfile", "docker/app.Dockerfile"). */
  file: string;
  config: LintConfig;
  /** ShellCheck's path; undefined skips SC rules. */
  shellcheck?: string;
}

const posixShells = new Set(['sh', 'bash', 'ash', 'dash', 'ksh', 'mksh', 'zsh', 'busybox']);
const defaultShell = ['/bin/sh', '-c'];

/** Lints one Dockerfile's text. Findings are sorted by line, then code. */
export async function lintDockerfile(text: string, opts: LintOptions): Promise<Finding[]> {
  const { file, config } = opts;
  const raw: { code: string; level: Level; line: number; message: string }[] = [];
  const add = (code: string, defaultLevel: Level, line: number, message: string) => raw.push({ code, level: levelOf(code, defaultLevel, config), line, message });

  const source = readForLint(text, file, (code, line, message) => add(code, parseRules[code].severity, line, message));
  if (!source) return finish(raw, file, config);
  const instructions = source.dockerfile.instructions;
  const pragmas = readPragmas(text, instructions.map((i) => i.line), instructions.filter((i) => i.kind === 'from').map((i) => i.line));
  const ctx = await buildContext(source, config, pragmas.shell, pragmas.production);
  for (const line of pragmas.inline) add('DL1001', parseRules.DL1001.severity, line, parseRules.DL1001.message);

  for (const rule of rules) {
    const level = levelOf(rule.code, rule.severity, config);
    if (level === 'ignore') continue;
    rule.check(ctx, (line, message) => raw.push({ code: rule.code, level, line, message: message ?? rule.message }));
  }

  if (opts.shellcheck) {
    const inputs: ShellcheckInput[] = ctx.runs
      .filter((r) => r.shell && r.instr.prependShell)
      .map((r) => ({ line: r.instr.line, script: r.script, shell: r.shellCommand[0] ?? '/bin/sh', variables: variablesBefore(ctx, r) }));
    for (const f of await runShellcheck(opts.shellcheck, inputs)) add(f.code, f.level, f.line, f.message);
  }
  return finish(raw, file, config, pragmas);
}

async function buildContext(source: LintSource, config: LintConfig, pragmaShell: string | undefined, pragmaProduction: boolean): Promise<LintContext> {
  const df = source.dockerfile;
  // Instructions before the first FROM (a fragment, or a file whose FROM comes late) are linted as a
  // stage of their own, without a base, as hadolint lints them.
  const stages: StageContext[] = source.beforeFrom.length > 0 ? [{ index: 0, instructions: source.beforeFrom }] : [];
  for (const s of df.stages) {
    const stage: StageContext = { index: stages.length, from: s.from, instructions: s.instructions };
    if (s.name !== undefined) stage.name = s.name;
    const parent = stages.findIndex((p) => p.name !== undefined && p.name === s.from.image.toLowerCase());
    if (parent >= 0) stage.parent = parent;
    stages.push(stage);
  }
  const shipped = new Set<number>();
  for (let s: StageContext | undefined = stages[stages.length - 1]; s && !shipped.has(s.index); s = s.parent === undefined ? undefined : stages[s.parent]) shipped.add(s.index);

  const runs: RunContext[] = [];
  const shellOf = new Map<number, string[]>();
  for (const s of stages) {
    let shell = s.parent !== undefined ? shellOf.get(s.parent) ?? defaultShell : pragmaShell ? [pragmaShell] : defaultShell;
    for (const i of s.instructions) {
      if (i.kind === 'shell') shell = i.shell;
      if (i.kind === 'run') runs.push(await runContext(i, s.index, shell, false));
      if (i.kind === 'onbuild' && i.trigger === 'RUN') {
        try {
          const t = parseTrigger(i.expression, df.file, i.line);
          if (t.kind === 'run') runs.push(await runContext(t, s.index, shell, true));
        } catch {
          /* a trigger that does not parse fails when the image is used; not this file's build */
        }
      }
    }
    shellOf.set(s.index, shell);
  }
  const labelled = df.instructions.some((i) => i.kind === 'label' && i.pairs.some((kv) => /^(environment|env)$/i.test(kv.key) && /^"?prod(uction)?"?$/i.test(kv.value)));
  return { file: df.file, dockerfile: df, stages, runs, shipped, config, production: config.production || pragmaProduction || labelled };
}

async function runContext(instr: RunInstruction, stage: number, shellCommand: string[], onbuild: boolean): Promise<RunContext> {
  const program = (shellCommand[0] ?? '').slice((shellCommand[0] ?? '').lastIndexOf('/') + 1).toLowerCase();
  let script: string;
  let posix = true;
  if (instr.prependShell) {
    posix = posixShells.has(program);
    const line = instr.cmdLine[0] ?? '';
    const onlyHeredocs = instr.files.length > 0 && /^(\s*\d*<<-?\s*["']?[\w.-]+["']?\s*)+$/.test(line);
    if (onlyHeredocs) {
      // `RUN <<EOF … EOF`: the body is the script, unless it names an interpreter of its own.
      script = instr.files.map((f) => f.data).join('\n');
      if (/^#!/.test(script) && !/^#!\s*\/(usr\/)?bin\/(env\s+)?(ba|da|a|k)?sh\b/.test(script)) posix = false;
    } else {
      script = [line, ...instr.files.map((f) => f.data + f.name)].join('\n');
    }
  } else {
    // Exec form: the argv as one command; `["sh", "-c", "…"]` is unwrapped by the shell reader.
    script = instr.cmdLine.map(shellQuote).join(' ');
  }
  return { instr, stage, script, shell: posix ? await parseShell(script) : undefined, onbuild, shellCommand };
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** ARG and ENV names defined before a RUN, in its stage and the stages it is built on, plus global ARGs. */
function variablesBefore(ctx: LintContext, run: RunContext): string[] {
  const names = new Set<string>(ctx.dockerfile.metaArgs.flatMap((a) => a.args.map((kv) => kv.key)));
  for (let s: StageContext | undefined = ctx.stages[run.stage]; s; s = s.parent === undefined ? undefined : ctx.stages[s.parent]) {
    for (const i of s.instructions) {
      if (s.index === run.stage && i.line >= run.instr.line) break;
      if (i.kind === 'arg') for (const a of i.args) names.add(a.key);
      if (i.kind === 'env') for (const kv of i.pairs) names.add(kv.key);
    }
  }
  return [...names];
}

function finish(
  raw: { code: string; level: Level; line: number; message: string }[],
  file: string,
  config: LintConfig,
  pragmas?: ReturnType<typeof readPragmas>,
): Finding[] {
  const seen = new Set<string>();
  const out: Finding[] = [];
  for (const r of raw) {
    if (r.level === 'ignore') continue;
    if (pragmas && !config.disableIgnorePragma) {
      if (pragmas.global.has(r.code) || pragmas.byLine.get(r.line)?.has(r.code)) continue;
      if (pragmas.byStage.some((s) => s.from <= r.line && r.line < s.to && s.codes.has(r.code))) continue;
    }
    const key = `${r.code}\0${r.line}\0${r.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ file, line: r.line, column: 1, level: r.level, code: r.code, message: r.message });
  }
  return out.sort((a, b) => a.line - b.line || byCodeUnits(a.code, b.code));
}

/** True when a finding reaches the failure threshold (hadolint's --failure-threshold; `none` never fails). */
export function reachesThreshold(f: Finding, threshold: Level | 'none'): boolean {
  if (threshold === 'none') return false;
  if (threshold === 'ignore') return true;
  return severities.indexOf(f.level) <= severities.indexOf(threshold as Severity);
}
