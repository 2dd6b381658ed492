// planBuild: the stage graph of a parsed Dockerfile for one set of build args, target and platform.
// Global ARGs are resolved and FROM lines expanded here; each stage's base, dependencies (FROM
// <stage>, COPY --from, RUN --mount from=) and whether the target needs it are decided as BuildKit's
// dockerfile2llb/convert.go does (toDispatchState, buildDispatchStates, buildStageDependencyGraph).

import { parseReference } from '../reference/reference.js';
import type { Dockerfile } from './dockerfile.js';
import { DockerfileExpansionError, DockerfileStageError, DockerfileSyntaxError, UnlocatedError } from './errors.js';
import { goQuote, parseGoInt, suggest } from './gocompat.js';
import { parseTrigger, type StageInstruction } from './instructions.js';
import { WarningSink, type Warning } from './lint.js';
import { parseMountSpec } from './mounts.js';
import { formatPlatform, hostPlatform, parsePlatform, type Platform } from './platform.js';
import { EnvList, ShellLex, emptyEnv } from './shell.js';

export type { Platform } from './platform.js';

/**
 * What a stage starts from. `context`: a named build context (--build-context NAME=…) of the stage's
 * own name replaces the stage as a whole; its FROM and its instructions are not used.
 */
export type StageBase = { kind: 'scratch' } | { kind: 'stage'; index: number } | { kind: 'image'; ref: string } | { kind: 'context'; name: string };

/** Where COPY --from or RUN --mount from= takes files from. */
export type SourceRef = { stage: number } | { image: string };

export interface StagePlan {
  index: number;
  /** Name after AS, lower-cased. */
  name?: string;
  base: StageBase;
  /** From `FROM --platform=`, after global ARG expansion. */
  platform?: Platform;
  /** 1-based line of the FROM instruction. */
  line: number;
  /** Stages this one needs, sorted: its FROM stage, COPY --from stages, RUN --mount from= stages. */
  deps: number[];
  /** Images referenced by COPY --from or RUN --mount from= (as written), for the engine to resolve. */
  images: string[];
  /** The target needs this stage. */
  used: boolean;
  instructions: StageInstruction[];
}

export interface PlanOptions {
  buildArgs: Record<string, string>;
  target?: string;
  /** The platform the image is built for (TARGETPLATFORM). */
  platform: Platform;
  /** The platform the build runs on (BUILDPLATFORM); defaults to this machine's. */
  buildPlatform?: Platform;
  /** Names (lower-cased) given a build context: a stage of one of these names is replaced by it. */
  namedContexts?: ReadonlySet<string>;
}

export interface BuildPlan {
  dockerfile: Dockerfile;
  stages: StagePlan[];
  /** Index of the target stage. */
  target: number;
  /** The global scope after meta ARGs and build args: what FROM lines (and ARG re-declarations) see. */
  globalArgs: Record<string, string>;
  /** Parse warnings and plan warnings; dispatchStage adds its own per stage. */
  warnings: Warning[];
  /** `# check=error=true`: the caller should fail the build when there are warnings. */
  failOnWarnings: boolean;
  targetPlatform: Platform;
  buildPlatform: Platform;
  /** Internal: global args in order, for dispatchStage. */
  globalArgList: [string, string][];
  /** Internal: the build args given. */
  buildArgs: Record<string, string>;
}

const proxyArgs = new Set(['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy']);

/** Build args that need no ARG declaration, so never count as unconsumed. */
function isPredefinedArg(key: string): boolean {
  if (proxyArgs.has(key.toLowerCase())) return true;
  return /^(BUILD|TARGET)(PLATFORM|OS|OSVERSION|ARCH|VARIANT)$/.test(key) || key === 'TARGETSTAGE' || key === 'SOURCE_DATE_EPOCH' || key.startsWith('BUILDKIT_');
}

/** BuildKit's defaultArgs: the predefined platform args, overridable by build args. */
function defaultArgs(build: Platform, target: Platform, buildArgs: Record<string, string>, targetName: string): EnvList {
  const pairs: [string, string][] = [
    ['BUILDPLATFORM', formatPlatform(build)],
    ['BUILDOS', build.os],
    ['BUILDOSVERSION', ''],
    ['BUILDARCH', build.architecture],
    ['BUILDVARIANT', build.variant ?? ''],
    ['TARGETPLATFORM', formatPlatform(target)],
    ['TARGETOS', target.os],
    ['TARGETOSVERSION', ''],
    ['TARGETARCH', target.architecture],
    ['TARGETVARIANT', target.variant ?? ''],
    ['TARGETSTAGE', targetName || 'default'],
  ];
  const env = new EnvList();
  for (const [k, v] of pairs) env.set(k, Object.hasOwn(buildArgs, k) ? buildArgs[k]! : v);
  return env;
}

function validReference(ref: string): string | undefined {
  try {
    parseReference(ref);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Resolves the stage graph. Throws DockerfileStageError / DockerfileExpansionError. */
export function planBuild(df: Dockerfile, opts: PlanOptions): BuildPlan {
  const file = df.file;
  const sink = new WarningSink(file, df.check);
  const buildArgs = opts.buildArgs;
  const lex = new ShellLex({ escapeToken: df.escapeChar });
  const buildPlatform = opts.buildPlatform ?? hostPlatform();
  const targetPlatform = opts.platform;
  const lastName = df.stages[df.stages.length - 1]!.name ?? '';
  const defaults = defaultArgs(buildPlatform, targetPlatform, buildArgs, opts.target || lastName);

  // Meta args: ARGs before the first FROM, evaluated in order against what came before them.
  const declaredMeta = new Set<string>();
  const resolveMeta = (withBuildArgs: boolean): EnvList => {
    const args = defaults.clone();
    for (const cmd of df.metaArgs) {
      for (const kp of cmd.args) {
        declaredMeta.add(kp.key);
        let value: string | undefined;
        if (withBuildArgs && Object.hasOwn(buildArgs, kp.key)) value = buildArgs[kp.key];
        else if (kp.value !== undefined) {
          try {
            value = lex.processWord(kp.value, args).result;
          } catch (err) {
            if (err instanceof UnlocatedError) throw new DockerfileExpansionError(file, cmd.line, err.message);
            throw err;
          }
        }
        if (value !== undefined) args.set(kp.key, value);
      }
    }
    return args;
  };

  // InvalidDefaultArgInFrom: FROM must be valid with the defaults alone.
  try {
    const defaultsOnly = resolveMeta(false);
    for (const stage of df.stages) {
      const name = lex.processWord(stage.from.image, defaultsOnly).result;
      if (validReference(name) !== undefined) {
        sink.warn('InvalidDefaultArgInFrom', `Default value for ARG ${stage.from.image} results in empty or invalid base image name`, stage.from.line);
      }
    }
  } catch {
    // an error here is reported below with the real build args
  }
  const globalArgs = resolveMeta(true);
  const knownArgKeys = new Set([...declaredMeta, ...globalArgs.keys()]);
  const reportUndeclared = (unmatched: Set<string>, line: number) => {
    for (const arg of unmatched) {
      if (knownArgKeys.has(arg)) continue;
      const s = suggest(arg, [...knownArgKeys], true);
      sink.warn('UndefinedArgInFrom', `FROM argument '${arg}' is not declared${s ? ` (did you mean ${s}?)` : ''}`, line);
    }
  };

  const stages: StagePlan[] = [];
  const stageName = (i: number) => df.stages[i]!.name ?? `stage-${i}`;
  for (const src of df.stages) {
    const from = src.from;
    let base: string;
    try {
      const m = lex.processWord(from.image, globalArgs);
      reportUndeclared(m.unmatched, from.line);
      base = m.result;
    } catch (err) {
      if (err instanceof UnlocatedError) throw new DockerfileExpansionError(file, from.line, err.message);
      throw err;
    }
    if (base === '') throw new DockerfileExpansionError(file, from.line, `base name (${from.image}) should not be blank`);
    const plan: StagePlan = { index: src.index, base: { kind: 'scratch' }, line: from.line, deps: [], images: [], used: false, instructions: src.instructions };
    if (src.name !== undefined) plan.name = src.name;

    if (from.platform !== undefined) {
      let m;
      try {
        m = lex.processWord(from.platform, globalArgs);
      } catch (err) {
        if (err instanceof UnlocatedError) throw new DockerfileExpansionError(file, from.line, `failed to process arguments for platform: ${err.message}`);
        throw err;
      }
      reportUndeclared(m.unmatched, from.line);
      if (m.matched.size === 1 && m.unmatched.size === 0 && m.matched.has('TARGETPLATFORM') && m.result === globalArgs.get('TARGETPLATFORM')) {
        sink.warn('RedundantTargetPlatform', `Setting platform to predefined ${from.platform} in FROM is redundant as this is the default behavior`, from.line);
      }
      if (m.result === '') {
        // BuildKit wraps this with the nearest declared argument (suggest.WrapError over the unmatched names).
        const missing = [...m.unmatched][0];
        const s = missing === undefined ? undefined : suggest(missing, [...knownArgKeys], true);
        throw new DockerfileExpansionError(file, from.line, `empty platform value from expression ${from.platform}${s ? ` (did you mean ${s}?)` : ''}`);
      }
      try {
        plan.platform = parsePlatform(m.result, buildPlatform);
      } catch (err) {
        throw new DockerfileExpansionError(file, from.line, `failed to parse platform ${from.platform}: ${(err as Error).message}`);
      }
      if (m.matched.size === 0 && m.unmatched.size === 0) {
        const p = plan.platform;
        const nm = src.name ?? '';
        if (!nm.includes(p.os) && !nm.includes(p.architecture)) {
          sink.warn('FromPlatformFlagConstDisallowed', `FROM --platform flag should not use constant value ${goQuote(m.result)}`, from.line);
        }
      }
    }

    // A FROM names an earlier stage (BuildKit compares exactly; kiln ignores case, as stage names
    // are lower-cased and an image reference with upper case could never be valid anyway).
    let baseStage: number | undefined;
    for (let i = stages.length - 1; i >= 0; i--) {
      if (stages[i]!.name !== undefined && stages[i]!.name === base.toLowerCase()) {
        baseStage = i;
        break;
      }
    }
    if (baseStage !== undefined) {
      plan.base = { kind: 'stage', index: baseStage };
      plan.deps.push(baseStage);
    } else if (base === 'scratch') {
      plan.base = { kind: 'scratch' };
    } else {
      const why = validReference(base);
      if (why !== undefined) throw new DockerfileStageError(file, from.line, `failed to parse stage name ${goQuote(base)}: ${why}`);
      plan.base = { kind: 'image', ref: base };
    }
    // A named context of the stage's name replaces the stage: BuildKit gives the dispatch state the
    // context and drops the base its FROM named (dockerfile2llb/convert.go:460-474, `ds.base = nil`),
    // and never dispatches its instructions (resolveBaseImage marks it dispatched), so they add no
    // dependencies either. Its FROM is still expanded and checked above, as BuildKit does first.
    if (src.name !== undefined && opts.namedContexts?.has(src.name)) {
      plan.base = { kind: 'context', name: src.name };
      plan.deps = [];
      plan.instructions = [];
    }
    stages.push(plan);
  }

  // A later stage of the same name wins for --from and --target, as in BuildKit's name map.
  const byName = new Map<string, number>();
  for (const s of stages) if (s.name !== undefined) byName.set(s.name, s.index);

  // Edges from COPY --from and RUN --mount from=, with the instruction that makes them.
  const edges: { from: number; to: number; line: number }[] = [];
  const forward: { stage: number; to: number; line: number; message: string }[] = [];
  for (const s of stages) {
    for (const instr of s.instructions) {
      const refs = sourcesOf(instr, file, lex, byName, stages.length);
      for (const ref of refs) {
        if ('image' in ref.source) {
          const why = validReference(ref.source.image);
          if (why !== undefined) throw new DockerfileStageError(file, instr.line, `failed to parse stage name ${goQuote(ref.source.image)}: ${why}`);
          if (!s.images.includes(ref.source.image)) s.images.push(ref.source.image);
          continue;
        }
        const to = ref.source.stage;
        edges.push({ from: s.index, to, line: instr.line });
        if (!s.deps.includes(to)) s.deps.push(to);
        if (to >= s.index) forward.push({ stage: s.index, to, line: instr.line, message: ref.forwardMessage(stageName(s.index)) });
      }
    }
    // ONBUILD triggers of a base stage run in this stage and can add edges of their own.
    if (s.base.kind === 'stage') {
      for (const instr of stages[s.base.index]!.instructions) {
        if (instr.kind !== 'onbuild') continue;
        let trigger: StageInstruction;
        try {
          trigger = parseTrigger(instr.expression, file, s.line);
        } catch {
          continue; // reported when the stage is dispatched
        }
        for (const ref of sourcesOf(trigger, file, lex, byName, stages.length)) {
          if ('image' in ref.source) {
            if (!s.images.includes(ref.source.image)) s.images.push(ref.source.image);
            continue;
          }
          edges.push({ from: s.index, to: ref.source.stage, line: s.line });
          if (!s.deps.includes(ref.source.stage)) s.deps.push(ref.source.stage);
          if (ref.source.stage >= s.index) forward.push({ stage: s.index, to: ref.source.stage, line: s.line, message: ref.forwardMessage(stageName(s.index)) });
        }
      }
    }
    s.deps.sort((a, b) => a - b);
  }

  const cycle = findCycle(stages.length, edges);
  if (cycle) throw new DockerfileStageError(file, cycle.line, `circular dependency detected on stage: ${stageName(cycle.stage)}`);

  let target = stages.length - 1;
  if (opts.target) {
    const t = byName.get(opts.target.toLowerCase());
    if (t === undefined) {
      const s = suggest(opts.target, [...byName.keys()], true);
      throw new DockerfileStageError(file, undefined, `target stage ${goQuote(opts.target)} could not be found${s ? ` (did you mean ${s}?)` : ''}`);
    }
    target = t;
  }
  const mark = (i: number) => {
    if (stages[i]!.used) return;
    stages[i]!.used = true;
    for (const d of stages[i]!.deps) mark(d);
  };
  mark(target);

  for (const f of forward) {
    if (stages[f.stage]!.used) throw new DockerfileStageError(file, f.line, f.message);
  }

  // The classic builder's warning for build args nothing declares.
  const declared = new Set(declaredMeta);
  for (const s of stages) {
    if (!s.used) continue;
    for (const i of s.instructions) if (i.kind === 'arg') for (const a of i.args) declared.add(a.key);
  }
  const unconsumed = Object.keys(buildArgs).filter((k) => !declared.has(k) && !isPredefinedArg(k)).sort();
  if (unconsumed.length > 0) sink.warn('UnconsumedBuildArgs', `One or more build-args [${unconsumed.join(' ')}] were not consumed`);

  const globalArgList: [string, string][] = globalArgs.keys().map((k) => [k, globalArgs.get(k)!]);
  return {
    dockerfile: df,
    stages,
    target,
    globalArgs: Object.fromEntries(globalArgList),
    warnings: [...df.warnings, ...sink.warnings],
    failOnWarnings: df.check.error,
    targetPlatform,
    buildPlatform,
    globalArgList,
    buildArgs,
  };
}

interface SourceUse {
  source: SourceRef;
  forwardMessage: (current: string) => string;
}

/** The stages and images an instruction takes files from. */
function sourcesOf(instr: StageInstruction, file: string, lex: ShellLex, byName: Map<string, number>, count: number): SourceUse[] {
  const out: SourceUse[] = [];
  if (instr.kind === 'copy' && instr.from !== undefined) {
    const from = instr.from;
    const source = resolveCopyFrom(from, lex, byName, count, (msg) => new DockerfileStageError(file, instr.line, msg));
    out.push({ source, forwardMessage: (cur) => `cannot copy from stage ${goQuote(from)}, it needs to be defined before current stage ${goQuote(cur)}` });
  }
  if (instr.kind === 'run') {
    for (const raw of instr.mounts) {
      let spec;
      try {
        spec = parseMountSpec(raw, undefined);
      } catch (err) {
        if (err instanceof UnlocatedError) throw new DockerfileSyntaxError(file, instr.line, err.message);
        throw err;
      }
      if (spec.from === '') continue;
      const from = spec.from;
      const idx = byName.get(from.toLowerCase());
      const source: SourceRef = idx !== undefined ? { stage: idx } : { image: from };
      out.push({
        source,
        forwardMessage: () => `cannot mount from stage ${goQuote(from)} to ${goQuote(mountTarget(raw))}, stage needs to be defined before current command`,
      });
    }
  }
  return out;
}

function mountTarget(raw: string): string {
  const m = /(?:^|,)(?:target|dst|destination)=([^,]*)/i.exec(raw);
  return m ? m[1]! : '';
}

/** COPY --from: a stage index, a stage name, or else an image. Variables are not allowed. */
export function resolveCopyFrom(
  from: string,
  lex: ShellLex,
  byName: Map<string, number>,
  count: number,
  fail: (msg: string) => Error,
): SourceRef {
  let processed: string;
  try {
    processed = lex.processWord(from, emptyEnv).result;
  } catch {
    processed = '';
  }
  if (processed !== from) {
    throw fail('variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround');
  }
  const index = parseGoInt(from);
  if (index !== undefined) {
    if (index < 0 || index >= count) throw fail(`invalid stage index ${index}`);
    return { stage: index };
  }
  const named = byName.get(from.toLowerCase());
  return named !== undefined ? { stage: named } : { image: from };
}

/** BuildKit's validateCircularDependency: the first stage (in order) on a cycle, and the line of the
 * first instruction on the path that closes it. */
function findCycle(n: number, edges: { from: number; to: number; line: number }[]): { stage: number; line: number } | undefined {
  const adj: { to: number; line: number }[][] = Array.from({ length: n }, () => []);
  for (const e of edges) adj[e.from]!.push(e);
  const visited = new Set<number>();
  const onPath = new Set<number>();
  const visit = (s: number, pathLines: number[]): number[] | undefined => {
    if (visited.has(s)) return undefined;
    visited.add(s);
    onPath.add(s);
    for (const e of adj[s]!) {
      const next = [...pathLines, e.line];
      if (onPath.has(e.to)) return next;
      const found = visit(e.to, next);
      if (found) return found;
    }
    onPath.delete(s);
    return undefined;
  };
  for (let s = 0; s < n; s++) {
    const lines = visit(s, []);
    if (lines) return { stage: s, line: lines[0]! };
  }
  return undefined;
}


/**
 * The stages and images the ONBUILD triggers of an image base take files from (COPY --from, RUN
 * --mount from=). planBuild cannot know them before the base image's config is fetched; an engine
 * that finds stages here must build them before dispatching this stage.
 */
export function triggerSources(plan: BuildPlan, stageIndex: number, onBuild: readonly string[] | null | undefined): SourceRef[] {
  const df = plan.dockerfile;
  const stage = plan.stages[stageIndex]!;
  const lex = new ShellLex({ escapeToken: df.escapeChar });
  const byName = new Map<string, number>();
  for (const s of plan.stages) if (s.name !== undefined) byName.set(s.name, s.index);
  const out: SourceRef[] = [];
  for (const expression of onBuild ?? []) {
    const trigger = parseTrigger(expression, df.file, stage.line);
    for (const use of sourcesOf(trigger, df.file, lex, byName, plan.stages.length)) out.push(use.source);
  }
  return out;
}

/**
 * The secrets RUN steps of the stages the target needs declare `required`, with their lines, so a
 * build can refuse to start without them rather than fail halfway. A mount whose id is spelled with
 * a variable is left to the step itself (its value is known only at dispatch).
 */
export function requiredSecrets(plan: BuildPlan): { id: string; line: number }[] {
  const out: { id: string; line: number }[] = [];
  for (const st of plan.stages) {
    if (!st.used) continue;
    for (const instr of st.instructions) {
      if (instr.kind !== 'run') continue;
      for (const raw of instr.mounts) {
        if (raw.includes('$')) continue;
        const m = parseMountSpec(raw, (w) => w);
        // As dispatch names it (BuildKit): source=, else id=, else the base name of the target.
        if (m.type === 'secret' && m.required) out.push({ id: m.source || m.id || m.target.slice(m.target.lastIndexOf('/') + 1), line: instr.line });
      }
    }
  }
  return out;
}
