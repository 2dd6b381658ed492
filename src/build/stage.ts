// The frontend's stages: each stage of the plan as a node of the build graph. A stage's FROM is a
// source node (an image, a directory context, scratch, or another stage's node), its instructions
// are dispatched on the config that base brings, its steps become ops (frontend.ts) that the
// scheduler solves in order, and what they leave becomes the stage's image config.

import { randomBytes } from 'node:crypto';
import { dispatchStage, triggerSources, type BuildPlan, type StageProgram, type Warning } from '../dockerfile/index.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import { cacheKey } from './cache.js';
import { stageConfig, stageOps, type OpKinds } from './frontend.js';
import { directorySource, type NamedContexts } from './ops/context.js';
import { imageSource, scratchSource, type ImageSources } from './ops/image.js';
import type { BaseImage, BaseState, Node, Source, State } from './ops/op.js';
import type { OpResult, Scheduler } from './scheduler.js';

export type { BaseImage } from './ops/op.js';

/** A built stage: its layers (base first) and final config. */
export interface StageResult {
  layers: LayerRef[];
  config: ImageConfig;
  program: StageProgram;
  /** Cache key of the stage's final state: names its content for dependent steps' keys. */
  key: string;
  /** Cache keys of the steps whose layers make up `layers` (parent stages' included), in order. */
  keys: string[];
  /** The image the stage starts from, through FROM <stage> chains; none for scratch or a directory. */
  base?: BaseImage;
}

export interface Stages {
  /** A stage's final state as a node of the graph (its StageResult): FROM <stage>, COPY --from and RUN --mount from= read it. */
  node(index: number): Source;
  /** A stage built (once): the state its node resolves to. */
  result(index: number): Promise<StageResult>;
  /** `stage-N`, or the stage's name. */
  label(index: number): string;
  /** The platform a stage runs for: its FROM --platform, else the target's (BuildKit convert.go: platformOpt). */
  platform(index: number): Platform;
  /**
   * Every FROM image resolved (pulled, and admitted by the trust policy), as BuildKit's frontend
   * resolves each base's config before solving: a refused or missing base fails the build before a
   * step of another stage runs.
   */
  resolveBases(): Promise<void>;
  /**
   * BuildKit reports the checks of every stage, built or not (testAllTargetUnmarshal): a stage the
   * target does not need is dispatched for its warnings only, when its base is known without
   * pulling anything (scratch, or a stage).
   */
  dispatchUnbuilt(): Promise<void>;
  /** The warnings of the stages dispatched so far. */
  readonly warnings: Warning[];
}

export interface StagesOptions {
  plan: BuildPlan;
  kinds: OpKinds;
  scheduler: Scheduler;
  images: ImageSources;
  contexts: NamedContexts;
  targetPlatform: Platform;
}

export function createStages({ plan, kinds, scheduler, images, contexts, targetPlatform }: StagesOptions): Stages {
  const { req, now } = kinds.ctx;
  const warnings: Warning[] = [...plan.warnings];
  const results = new Map<number, Promise<StageResult>>();
  // The target stage and the stages it is built FROM: their layers are the image's.
  const imageStages = new Set<number>();
  for (let i: number | undefined = plan.target; i !== undefined && !imageStages.has(i); ) {
    imageStages.add(i);
    const base: BuildPlan['stages'][number]['base'] = plan.stages[i]!.base;
    i = base.kind === 'stage' ? base.index : undefined;
  }
  const platform = (index: number): Platform => plan.stages[index]!.platform ?? targetPlatform;
  const label = (index: number) => plan.stages[index]!.name ?? `stage-${index}`;
  const noCacheStage = (index: number) => !!req.noCacheStages?.some((n) => n.toLowerCase() === (plan.stages[index]!.name ?? String(index)).toLowerCase());

  const result = (index: number): Promise<StageResult> => {
    let p = results.get(index);
    if (!p) {
      p = buildStage(index);
      results.set(index, p);
    }
    return p;
  };
  const nodes = new Map<number, Source>();
  const node = (index: number): Source => {
    let n = nodes.get(index);
    if (!n) nodes.set(index, (n = { kind: 'source', inputs: [], resolve: () => result(index) }));
    return n;
  };

  /** The node a stage's FROM names. `fromId`: the vertex of the FROM's progress line, when an image is resolved. */
  function fromNode(index: number, fromId: number): Node {
    const sp = plan.stages[index]!;
    const p = platform(index);
    if (sp.base.kind === 'stage') return node(sp.base.index);
    // A stage a named context replaces starts from that context as `FROM <its name>` would.
    const ref = sp.base.kind === 'image' ? sp.base.ref : sp.base.kind === 'context' ? sp.base.name : undefined;
    if (ref === undefined) return scratchSource(p, { named: false });
    const dir = contexts.dir(ref);
    if (dir) return directorySource(contexts, dir, p);
    if (contexts.scratch(ref)) return scratchSource(p, { named: true });
    const title = `[${req.platformLabel ? `${req.platformLabel} ` : ''}${label(index)} 1/${0}] FROM ${ref}`.replace(' 1/0]', ']');
    return imageSource(images, ref, sp.line, p, { sink: req.progress, id: fromId, title });
  }

  /** A stage: its base solved and its instructions dispatched, its steps' ops solved in order. */
  async function buildStage(index: number): Promise<StageResult> {
    const sp = plan.stages[index]!;
    const fromId = scheduler.nextVertex();
    const from = (await scheduler.solve(fromNode(index, fromId))) as BaseState | StageResult;
    let baseInput: Parameters<typeof dispatchStage>[2];
    if ('program' in from && from.program) baseInput = { config: from.program.config, program: from.program };
    else {
      baseInput = { config: from.config };
      if (sp.base.kind === 'context' && from.config) {
        // The replaced stage runs nothing, its image's ONBUILD triggers included: BuildKit clears
        // them on the state it dispatches nothing for (dockerfile2llb/convert.go:578, `d.image.Config.OnBuild = nil`).
        const config = structuredClone(from.config!);
        if (config.config) delete config.config.OnBuild;
        baseInput = { config };
      }
      // The stages an image's ONBUILD triggers copy from are built before they run.
      const triggers = baseInput.config?.config?.OnBuild ?? [];
      if (triggers.length) {
        for (const src of triggerSources(plan, index, triggers)) if ('stage' in src) await result(src.stage);
      }
    }
    const program = dispatchStage(plan, index, baseInput, {
      buildArgs: req.buildArgs,
      labels: index === plan.target ? req.labels : undefined,
    });
    warnings.push(...program.warnings);
    let key = from.key;
    // A stage built without the cache may give other results than its cached ones (a download, a
    // random file): keys salted once per build keep the steps that read it from stale results.
    if (noCacheStage(index)) key = cacheKey(key, { noCache: randomBytes(16).toString('hex') });
    // kiln clamps mtimes when it writes a layer, where BuildKit rewrites them at export
    // (exporter/containerimage rewrite-timestamp): a layer written under one epoch, or none, is not
    // the layer of another, so the epoch is part of the key.
    if (req.sourceDateEpoch !== undefined) key = cacheKey(key, { sourceDateEpoch: req.sourceDateEpoch });
    // BuildKit counts the FROM as step 1 only when it pulls an image: FROM scratch and FROM <stage>
    // start at the first instruction (dockerfile2llb: cmdTotal, prefixCommand).
    const fromSteps = sp.base.kind === 'image' || sp.base.kind === 'context' ? 1 : 0;
    // History times come from when each step first ran (its cache record), so a fully cached
    // rebuild gives the same image ID, as with BuildKit.
    const stageTime = req.sourceDateEpoch !== undefined ? now.toISOString() : (baseInput.config?.created ?? new Date(0).toISOString());
    const baseState: State = { key, layers: [...from.layers], keys: [...from.keys] };
    const ops = stageOps(kinds, program, { kind: 'source', state: baseState }, {
      label: label(index),
      ...(req.platformLabel ? { platformLabel: req.platformLabel } : {}),
      fromSteps,
      platform: platform(index),
      noCache: req.noCache || noCacheStage(index),
      lookAhead: imageStages.has(index),
      stage: node,
    });
    const solved: OpResult[] = [];
    for (const op of ops) solved.push(await scheduler.solve(op));
    const final: State = solved.at(-1) ?? baseState;
    const config = stageConfig(program, final.layers, solved, stageTime, { ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}), now });
    return { layers: final.layers, config, program, key: final.key, keys: final.keys, ...(from.base ? { base: from.base } : {}) };
  }

  async function resolveBases(): Promise<void> {
    await Promise.all(
      plan.stages.flatMap((sp) => (sp.used && sp.base.kind === 'image' && !contexts.dir(sp.base.ref) && !contexts.scratch(sp.base.ref) ? [images.resolve(sp.base.ref, sp.line, platform(sp.index))] : [])),
    );
  }

  async function dispatchUnbuilt(): Promise<void> {
    const unbuilt = new Map<number, StageProgram>();
    for (const sp of plan.stages) {
      if (sp.used) continue;
      let input: Parameters<typeof dispatchStage>[2];
      if (sp.base.kind === 'scratch') input = { config: undefined };
      else if (sp.base.kind === 'stage') {
        const parent = plan.stages[sp.base.index]!.used ? (await result(sp.base.index)).program : unbuilt.get(sp.base.index);
        if (!parent) continue;
        input = { config: parent.config, program: parent };
      } else continue;
      try {
        const p = dispatchStage(plan, sp.index, input, { buildArgs: req.buildArgs });
        unbuilt.set(sp.index, p);
        warnings.push(...p.warnings);
      } catch {
        // an error of a stage nothing builds is not this build's
      }
    }
  }

  return { node, result, label, platform, resolveBases, dispatchUnbuilt, warnings };
}
