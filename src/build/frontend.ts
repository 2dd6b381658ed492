// The Dockerfile frontend's half of a build: a dispatched stage (dockerfile/dispatch.ts) becomes a
// chain of ops (build/ops/) on top of its base, each naming the stages it reads as inputs; and the
// states the scheduler solved become the stage's image config. It executes nothing itself.

import type { CopyStep, SourceRef, Step, StageProgram } from '../dockerfile/index.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import type { Store } from '../store/store.js';
import { emptyLayer } from './empty-layer.js';
import { fetchedSources, type Copy, type Fetched } from './ops/copy.js';
import type { Exec } from './ops/exec.js';
import { runWorkdir, workdirKey } from './ops/file.js';
import type { GitSources } from './ops/git.js';
import type { HttpSources } from './ops/http.js';
import { copyMerges, linkBase } from './ops/merge.js';
import type { Merge, Node, Op, OpContext, State } from './ops/op.js';
import type { OpResult } from './scheduler.js';

/** The op kinds a build has, with the state they share across its steps. */
export interface OpKinds {
  ctx: OpContext;
  exec: Exec;
  copy: Copy;
  http: HttpSources;
  git: GitSources;
}

export interface StageOpsOptions {
  /** Progress titles: `[platform stage n/total] instruction`. */
  label: string;
  platformLabel?: string;
  /** 1 when the FROM counts as the stage's first step (an image is pulled), else 0. */
  fromSteps: number;
  platform: Platform;
  noCache: boolean;
  /** The stage's layers are the image's (the target and the stages it is built FROM). */
  lookAhead: boolean;
  /** The node of another stage's final state, for COPY --from and RUN --mount from=. */
  stage(index: number): Node;
}

/** A step's node: its op, or for COPY --link the merge of its copy on scratch over its parent. */
export type StepNode = Op | Merge;

/** The nodes of a stage's steps, in order, each on the state the one before it leaves. */
export function stageOps(kinds: OpKinds, program: StageProgram, base: Node, o: StageOpsOptions): StepNode[] {
  const total = program.steps.length + o.fromSteps;
  const ops: StepNode[] = [];
  let parent = base;
  for (const [n, step] of program.steps.entries()) {
    const name = `[${o.platformLabel ? `${o.platformLabel} ` : ''}${o.label} ${n + 1 + o.fromSteps}/${total}] ${(step.title ?? step.instruction).replace(/\s+/g, ' ').trim()}`;
    const next = program.steps[n + 1];
    const op = stepOp(kinds, step, { name, parent, inputs: stageInputs(step).map(o.stage), platform: o.platform, noCache: o.noCache, lookAhead: o.lookAhead }, next?.kind === 'copy' ? next : undefined);
    ops.push(op);
    parent = op;
  }
  return ops;
}

type OpHead = Pick<Op, 'name' | 'parent' | 'inputs' | 'platform' | 'noCache' | 'lookAhead'>;

function stepOp(kinds: OpKinds, step: Step, head: OpHead, nextCopy: CopyStep | undefined): StepNode {
  const store = kinds.ctx.req.store;
  switch (step.kind) {
    case 'run':
      return {
        kind: 'op',
        ...head,
        key: (parent) => kinds.exec.key(step, parent.key, head.platform),
        run: async (parent, _inputs, vertex) => {
          // The COPY after a RUN is prepared while the RUN runs (see Copy.prepareAhead).
          if (nextCopy) kinds.copy.prepareAhead(nextCopy, parent.layers);
          return withEmptyLayer(store, await kinds.exec.run(step, parent.layers, vertex));
        },
      };
    case 'workdir':
      return { kind: 'op', ...head, key: async (parent) => workdirKey(step, parent.key), run: async (parent) => withEmptyLayer(store, await runWorkdir(kinds.ctx, step, parent.layers)) };
    case 'copy': {
      // The repositories and URLs an ADD names are sources it reads, fetched once per build.
      const { git, remote } = fetchedSources(step);
      const file = kinds.ctx.file;
      const sources = [...git.map((src) => [src, kinds.git.node(src, step, file)] as const), ...remote.map((url) => [url, kinds.http.node(url, step, file)] as const)];
      const fetched = (inputs: readonly State[]): Fetched => new Map(sources.map(([src], i) => [src, inputs[head.inputs.length + i]!.files!]));
      const copy = (h: OpHead): Op => ({
        kind: 'op',
        ...h,
        inputs: [...h.inputs, ...sources.map(([, n]) => n)],
        key: (parent, inputs) => kinds.copy.key(step, parent.key, fetched(inputs)),
        run: async (parent, inputs) => withEmptyLayer(store, await kinds.copy.run(step, parent.layers, fetched(inputs))),
      });
      if (!copyMerges(step)) return copy(head);
      // One progress step, as BuildKit groups the copy and its merge: the merge has no vertex.
      return { kind: 'merge', inputs: [head.parent, copy({ ...head, parent: linkBase(head.platform, kinds.ctx.req.sourceDateEpoch) })] };
    }
  }
}

/** A step's layer; one that changed nothing gets the empty layer, as BuildKit's do (empty-layer.ts). */
async function withEmptyLayer(store: Store, layer: LayerRef | undefined): Promise<LayerRef> {
  return layer ?? (await emptyLayer(store));
}

/**
 * The stages a step's key reads besides its parent: COPY --from=<stage>, RUN --mount=type=bind
 * from=<stage>. A cache mount seeded from a stage names it in its key only by number and reads it
 * when it runs (sourceLayers waits for it then), so a cached RUN does not wait for that stage.
 */
function stageInputs(step: Step): number[] {
  const froms: (SourceRef | undefined)[] = step.kind === 'copy' ? [step.from] : step.kind === 'run' ? step.mounts.filter((m) => m.type === 'bind').map((m) => m.from) : [];
  return [...new Set(froms.flatMap((f) => (f && 'stage' in f ? [f.stage] : [])))];
}

/**
 * The stage's image config from its program and what its steps left: the layers' diff IDs, and
 * history times from when each step first ran (its cache record), so a fully cached rebuild gives
 * the same image ID, as with BuildKit. `stageTime` is the time before any step (the base's, or the epoch's).
 */
export function stageConfig(program: StageProgram, layers: LayerRef[], results: readonly OpResult[], stageTime: string, o: { sourceDateEpoch?: number; now: Date }): ImageConfig {
  const emptyHistory = new Set<number>();
  for (const [n, r] of results.entries()) {
    if (o.sourceDateEpoch === undefined && r.created > stageTime) stageTime = r.created;
    if (r.empty) emptyHistory.add(program.steps[n]!.historyIndex);
  }
  const config = structuredClone(program.config);
  if (o.sourceDateEpoch === undefined && program.steps.length === 0 && stageTime === new Date(0).toISOString()) stageTime = o.now.toISOString();
  config.created = stageTime;
  config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
  config.history = (config.history ?? []).map((h, i) => {
    const out = { ...h };
    if (!out.created) out.created = stageTime;
    if (emptyHistory.has(i)) out.empty_layer = true;
    return out;
  });
  return config;
}
