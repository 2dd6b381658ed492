import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  dispatchStage,
  parseDockerfile,
  planBuild,
  requiredSecrets,
  triggerSources,
  type BuildPlan,
  type SourceRef,
  type StageProgram,
  type Warning,
} from '../dockerfile/index.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';
import { hostPlatform } from '../store/store.js';
import { checkEmulation } from '../sandbox/emulation.js';
import type { Executor, NetworkMode, Rlimit, RunRequest } from '../sandbox/executor.js';
import { createSnapshotter } from '../snapshot/index.js';
import type { LayerRef, Snapshotter } from '../snapshot/snapshotter.js';
import { fetchingLayers } from './fetching.js';
import { BuildCache, cacheKey, type CacheSource } from './cache.js';
import type { BuildContext } from './context.js';
import { BuildStepError } from './errors.js';
import type { ProgressSink } from './progress.js';
import { KilnError } from '../errors.js';
import { resolveDockerfileEpoch } from './epoch.js';
import { stageConfig, stageOps, type OpKinds } from './frontend.js';
import { createNamedContexts } from './ops/context.js';
import { createCopy } from './ops/copy.js';
import { createExec, insecureRefused } from './ops/exec.js';
import { createGitSources } from './ops/git.js';
import { createHttpSources } from './ops/http.js';
import { createImageSources, imageKey, imageLayers } from './ops/image.js';
import type { OpContext, Source, State } from './ops/op.js';
import { Limiter, Scheduler, type OpResult, type SharedSteps } from './scheduler.js';

// How a build runs: the Dockerfile is planned (dockerfile/plan.ts) into stages; each stage's base is
// resolved and its instructions dispatched, and the frontend (frontend.ts) turns its steps into ops
// (ops/: exec, copy, file, with image and context sources), each owning its cache key and its
// execution; the scheduler (scheduler.ts) solves them in dependency order, in parallel up to --jobs,
// from the cache when it can. solve() wires these together for one platform.

export { Limiter } from './scheduler.js';

export interface BuildRequest {
  store: Store;
  context: BuildContext;
  /** Dockerfile text and the name errors should carry ("Dockerfile"). */
  dockerfile: { text: string; name: string };
  buildArgs: Record<string, string>;
  target?: string;
  noCache: boolean;
  /** Stages (by name, case-insensitive) whose steps ignore the cache: buildx --no-cache-filter. */
  noCacheStages?: string[];
  labels: Record<string, string>;
  network: NetworkMode;
  /** Steps that execute at once at most; Infinity lets every ready step start, as BuildKit does. */
  jobs: number;
  executor: Executor;
  progress: ProgressSink;
  signal: AbortSignal;
  /** Secret values by id (from --secret), never stored. */
  secrets: Map<string, Buffer>;
  /** --shm-size: bytes of every RUN's /dev/shm (64 MiB when not given). */
  shmSize?: number;
  /** --allow security.insecure: RUN --security=insecure may run (with every capability). */
  allowInsecure?: boolean;
  /** --ulimit: every RUN's resource limits. */
  ulimits?: Rlimit[];
  /** SSH agent sockets on the host by id (from --ssh), for RUN --mount=type=ssh. */
  ssh?: Map<string, string>;
  sourceDateEpoch?: number;
  /** Resolve a base image that is not in the store (pulling, once a registry client exists). */
  resolveMissingImage?: (ref: string, platform?: Platform) => Promise<StoredImage>;
  /** The trust policy's check of a base image taken from the store (pulled ones are checked by the pull); throws to refuse it. */
  admitStoredImage?: (image: StoredImage, ref: string) => Promise<void>;
  pullPolicy: 'always' | 'missing' | 'never';
  /** --build-context name=…: extra directories and image aliases, by lower-cased name. */
  namedContexts?: Map<string, NamedContext>;
  /**
   * Called when a RUN fails, before its snapshot is thrown away (kiln build --on-error=shell): the
   * step's sandbox as the command left it, for a look from inside. The build fails all the same.
   */
  onRunFailure?: (failure: RunFailure) => Promise<void>;
  /** --cache-from: records imported from registries, consulted after the local cache. */
  cacheSources?: CacheSource[];
  /** The platform the image is built for (TARGETPLATFORM); the host's by default. */
  platform?: Platform;
  /**
   * Steps of a multi-platform build by cache key, shared by its per-platform solves: a step whose key
   * two platforms share (a FROM --platform=$BUILDPLATFORM stage that reads no TARGET* arg) runs once.
   */
  sharedSteps?: SharedSteps;
  /** Progress vertex ids start above this (per-platform solves report to one display), and steps are titled with the platform. */
  vertexBase?: number;
  platformLabel?: string;
  /**
   * The solves of one multi-platform build share one snapshotter (each layer extracted once, not
   * once per platform that uses it) and one bound on layer writes (the cores, not the cores per
   * platform). A single solve makes its own.
   */
  snapshotter?: Snapshotter;
  layerWrites?: Limiter;
}

/** A failed RUN: where it is in the Dockerfile and the sandbox it ran in (root filesystem still mounted). */
export interface RunFailure {
  file: string;
  line: number;
  exitCode: number;
  sandbox: Omit<RunRequest, 'stdin' | 'stdout' | 'stderr' | 'signal'>;
}

/** A named build context (buildx --build-context): a directory, or another name for an image. */
export type NamedContext = { kind: 'dir'; path: string; /** The git or http(s) URL it was fetched from. */ source?: string } | { kind: 'image'; ref: string } | { kind: 'oci-layout'; path: string; ref?: string };

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

/** A base image as the image-spec's base.name / base.digest annotations record it. */
export interface BaseImage {
  /** The FROM reference, normalised (docker.io/library/busybox:latest). */
  name: string;
  /** Manifest digest of the image actually used. */
  digest: string;
}

export interface BuildResult extends StageResult {
  warnings: Warning[];
  plan: BuildPlan;
  /** Cache keys of the steps of every stage built (what --cache-to mode=max exports). */
  allKeys: string[];
  /** RUN --mount=type=cache directories the build used: cache id → directory in the store. */
  cacheMounts: Map<string, string>;
  /** The cache the build used: its records (imported ones too) for --cache-to. */
  cache: BuildCache;
}

/**
 * The solver: plans the stages, then builds each needed stage as soon as the stages it depends on are
 * done, so independent stages run in parallel: its base resolved, its instructions dispatched, its
 * steps' ops solved by the scheduler. Every step has a cache key computed from its parent's key and
 * its own definition; a key found in the cache reuses the recorded layer instead of running.
 */
export async function solve(req: BuildRequest): Promise<BuildResult> {
  const host = hostPlatform();
  const targetPlatform = req.platform ?? host;
  const named = req.namedContexts ?? new Map<string, NamedContext>();
  const check = req.buildArgs.BUILDKIT_DOCKERFILE_CHECK;
  const planned = planBuild(parseDockerfile(req.dockerfile.text, { file: req.dockerfile.name, ...(check !== undefined ? { check } : {}) }), { buildArgs: req.buildArgs, target: req.target, platform: targetPlatform, namedContexts: new Set(named.keys()) });
  const { epoch, plan } = await resolveDockerfileEpoch(planned, req, named);
  req = { ...req, sourceDateEpoch: epoch };
  const warnings: Warning[] = [...plan.warnings];
  const cache = new BuildCache(req.store, req.cacheSources ?? []);
  const snapshotter: Snapshotter = fetchingLayers(req.snapshotter ?? (await createSnapshotter(req.store)), cache);
  const limiter = new Limiter(Math.max(1, req.jobs));
  // A RUN mostly waits (on its process, the network, a sleep) and needs no core of kiln's, but
  // writing a layer (the diff, tar, gzip and digests) keeps one busy: whatever --jobs allows, at most
  // one layer per core is written at once, so four stages that finish together on two cores do not
  // share them four ways and all finish late.
  const layerWrites = req.layerWrites ?? new Limiter(availableParallelism());
  const scheduler = new Scheduler({ cache, limiter, progress: req.progress, signal: req.signal, vertexBase: req.vertexBase, sharedSteps: req.sharedSteps });
  const results = new Map<number, Promise<StageResult>>();
  // The target stage and the stages it is built FROM: their layers are the image's.
  const imageStages = new Set<number>();
  for (let i: number | undefined = plan.target; i !== undefined && !imageStages.has(i); ) {
    imageStages.add(i);
    const base: BuildPlan['stages'][number]['base'] = plan.stages[i]!.base;
    i = base.kind === 'stage' ? base.index : undefined;
  }
  /** The platform a stage runs for: its FROM --platform, else the target's (BuildKit convert.go: platformOpt). */
  const stagePlatform = (index: number): Platform => plan.stages[index]!.platform ?? targetPlatform;
  const file = req.dockerfile.name;
  const now = req.sourceDateEpoch !== undefined ? new Date(req.sourceDateEpoch * 1000) : new Date();

  // A required secret that was not given fails the build before any step runs.
  for (const { id, line } of requiredSecrets(plan)) {
    if (!req.secrets.has(id)) throw new BuildStepError(file, line, `secret "${id}" is required but was not given (use --secret id=${id},src=FILE)`);
  }

  // Entitlements are checked when BuildKit loads the graph, before any step runs (solver/llbsolver/vertex.go:128-138).
  for (const sp of plan.stages) {
    const insecure = sp.used && !req.allowInsecure ? sp.instructions.find((i) => i.kind === 'run' && i.security === 'insecure') : undefined;
    if (insecure) throw new BuildStepError(file, insecure.line, insecureRefused);
  }

  await checkEmulators(plan, file);

  const ctx: OpContext = {
    req,
    file,
    now,
    host,
    targetPlatform,
    cache,
    snapshotter,
    limiter,
    layerWrites,
    // Work started ahead of its step (prepared COPYs): the build waits for it all before it returns or fails.
    preparations: [],
    checkAbort: () => scheduler.checkAbort(),
    sourceLayers: (from, line, platform) => sourceLayers(from, line, platform),
    sourceKey: (from, line) => sourceKey(from, line),
    describeSource: (from) => ('stage' in from ? `stage ${stageLabel(from.stage)}` : `image ${from.image}`),
    namedDir: (ref) => contexts.dir(ref),
    namedTree: (path) => contexts.tree(path),
  };
  const contexts = createNamedContexts(ctx, named);
  const images = createImageSources(req, named, host, targetPlatform);
  const kinds: OpKinds = { ctx, exec: createExec(ctx), copy: createCopy(ctx), http: createHttpSources(), git: createGitSources() };

  const stage = (index: number): Promise<StageResult> => {
    let p = results.get(index);
    if (!p) {
      p = buildStage(index);
      results.set(index, p);
    }
    return p;
  };
  /** Another stage's final state as a node of the graph: COPY --from and RUN --mount from= read it. */
  const stageNodes = new Map<number, Source>();
  const stageNode = (index: number): Source => {
    let n = stageNodes.get(index);
    if (!n) stageNodes.set(index, (n = { kind: 'source', inputs: [], resolve: () => stage(index) }));
    return n;
  };

  const stageLabel = (index: number) => plan.stages[index]!.name ?? `stage-${index}`;
  const noCacheStage = (index: number) => !!req.noCacheStages?.some((n) => n.toLowerCase() === (plan.stages[index]!.name ?? String(index)).toLowerCase());
  /** The layers a COPY --from or RUN --mount from= names: a stage (built first) or an image. */
  // An image a COPY --from or a mount names is the target platform's (BuildKit: the stage's platform).
  const sourceLayers = async (from: SourceRef, line: number, platform: Platform = targetPlatform): Promise<LayerRef[]> => {
    if ('stage' in from) return (await stage(from.stage)).layers;
    if (contexts.scratch(from.image)) return [];
    const dir = contexts.dir(from.image);
    if (dir) return [(await contexts.base(dir)).layer];
    return imageLayers(await images.resolve(from.image, line, platform));
  };

  async function sourceKey(src: SourceRef, line: number): Promise<string> {
    if ('stage' in src) return (await stage(src.stage)).key;
    if (contexts.scratch(src.image)) return 'scratch';
    const dir = contexts.dir(src.image);
    if (dir) return (await contexts.base(dir)).key;
    return (await images.resolve(src.image, line, targetPlatform)).manifestDescriptor.digest;
  }

  /** A stage: its base resolved and its instructions dispatched, its steps' ops solved in order. */
  async function buildStage(index: number): Promise<StageResult> {
    const sp = plan.stages[index]!;
    const platform = stagePlatform(index);
    let layers: LayerRef[] = [];
    let keys: string[] = [];
    let key: string;
    let baseInput: Parameters<typeof dispatchStage>[2];
    let base: BaseImage | undefined;
    const fromId = scheduler.nextVertex();
    // A stage a named context replaces starts from that context as `FROM <its name>` would.
    const fromRef = sp.base.kind === 'image' ? sp.base.ref : sp.base.kind === 'context' ? sp.base.name : undefined;
    const fromName = fromRef ?? (sp.base.kind === 'stage' ? stageLabel(sp.base.index) : 'scratch');
    if (sp.base.kind === 'stage') {
      const parent = await stage(sp.base.index);
      layers = [...parent.layers];
      keys = [...parent.keys];
      key = parent.key;
      base = parent.base;
      baseInput = { config: parent.program.config, program: parent.program };
    } else if (fromRef !== undefined && contexts.dir(fromRef)) {
      // FROM <name of a directory context>: the directory is the base filesystem, as one layer.
      const d = await contexts.base(contexts.dir(fromRef)!);
      key = d.key;
      layers = [d.layer];
      keys = [key];
      baseInput = { config: { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] } };
    } else if (fromRef !== undefined && contexts.scratch(fromRef)) {
      key = cacheKey('', { scratch: true, platform });
      baseInput = { config: { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] } };
    } else if (fromRef !== undefined) {
      req.progress.start(fromId, `[${req.platformLabel ? `${req.platformLabel} ` : ""}${stageLabel(index)} 1/${0}] FROM ${fromName}`.replace(' 1/0]', ']'));
      const img = await images.resolve(fromRef, sp.line, platform);
      req.progress.done(fromId);
      layers = imageLayers(img);
      key = imageKey(img);
      base = { name: images.baseName(fromRef), digest: img.manifestDescriptor.digest };
      baseInput = { config: img.config };
      if (sp.base.kind === 'context') {
        // The replaced stage runs nothing, its image's ONBUILD triggers included: BuildKit clears
        // them on the state it dispatches nothing for (dockerfile2llb/convert.go:578, `d.image.Config.OnBuild = nil`).
        const config = structuredClone(img.config);
        if (config.config) delete config.config.OnBuild;
        baseInput = { config };
      }
      const triggers = baseInput.config?.config?.OnBuild ?? [];
      if (triggers.length) {
        for (const src of triggerSources(plan, index, triggers)) if ('stage' in src) await stage(src.stage);
      }
    } else {
      key = cacheKey('', { scratch: true, platform });
      baseInput = { config: undefined };
    }
    const program = dispatchStage(plan, index, baseInput, {
      buildArgs: req.buildArgs,
      labels: index === plan.target ? req.labels : undefined,
    });
    warnings.push(...program.warnings);
    // A stage built without the cache may give other results than its cached ones (a download, a
    // random file): keys salted once per build keep the steps that read it from stale results.
    if (noCacheStage(index)) key = cacheKey(key, { noCache: randomBytes(16).toString('hex') });
    // kiln clamps mtimes when it writes a layer, where BuildKit rewrites them at export
    // (exporter/containerimage rewrite-timestamp): a layer written under one epoch, or none, is not
    // the layer of another, so the epoch is part of the key.
    if (req.sourceDateEpoch !== undefined) key = cacheKey(key, { sourceDateEpoch: req.sourceDateEpoch });
    // BuildKit counts the FROM as step 1 only when it pulls an image: FROM scratch and FROM <stage>
    // start at the first instruction (dockerfile2llb: cmdTotal, prefixCommand).
    const fromSteps = fromRef !== undefined ? 1 : 0;
    // History times come from when each step first ran (its cache record), so a fully cached
    // rebuild gives the same image ID, as with BuildKit.
    const stageTime = req.sourceDateEpoch !== undefined ? now.toISOString() : baseInput.config?.created ?? new Date(0).toISOString();
    const baseState: State = { key, layers, keys };
    const ops = stageOps(kinds, program, { kind: 'source', state: baseState }, {
      label: stageLabel(index),
      ...(req.platformLabel ? { platformLabel: req.platformLabel } : {}),
      fromSteps,
      platform,
      noCache: req.noCache || noCacheStage(index),
      lookAhead: imageStages.has(index),
      stage: stageNode,
    });
    const solved: OpResult[] = [];
    for (const op of ops) solved.push(await scheduler.solve(op));
    const final: State = solved.at(-1) ?? baseState;
    const config = stageConfig(program, final.layers, solved, stageTime, { ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}), now });
    return { layers: final.layers, config, program, key: final.key, keys: final.keys, ...(base ? { base } : {}) };
  }

  try {
    const used = plan.stages.filter((s) => s.used).map((s) => s.index);
    // Every FROM image is resolved first (pulled, and admitted by the trust policy), as BuildKit's
    // frontend resolves each base's config before solving: a refused or missing base fails the
    // build before a step of another stage runs.
    await Promise.all(
      plan.stages.flatMap((sp) => (sp.used && sp.base.kind === 'image' && !contexts.dir(sp.base.ref) && !contexts.scratch(sp.base.ref) ? [images.resolve(sp.base.ref, sp.line, stagePlatform(sp.index))] : [])),
    );
    // Start every needed stage now; each waits only for what it depends on.
    const all = used.map((i) => stage(i));
    const settled = await Promise.allSettled(all);
    await Promise.allSettled(ctx.preparations);
    const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
    // BuildKit reports the checks of every stage, built or not (testAllTargetUnmarshal): a stage the
    // target does not need is dispatched for its warnings only, when its base is known without
    // pulling anything (scratch, or a stage).
    const unbuilt = new Map<number, StageProgram>();
    for (const sp of plan.stages) {
      if (sp.used) continue;
      let input: Parameters<typeof dispatchStage>[2];
      if (sp.base.kind === 'scratch') input = { config: undefined };
      else if (sp.base.kind === 'stage') {
        const parent = plan.stages[sp.base.index]!.used ? (await stage(sp.base.index)).program : unbuilt.get(sp.base.index);
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
    await req.context.save();
    await contexts.save();
    const result = await stage(plan.target);
    await cache.ensure(result.layers);
    const allKeys = [...new Set((await Promise.all(used.map((i) => stage(i)))).flatMap((r) => r.keys))];
    // BuildKit's linter.Error names the rules: "lint violation found for rules: FromAsCasing".
    const violated = [...new Set(warnings.map((w) => w.rule))].sort().join(', ');
    if (plan.failOnWarnings && warnings.length) throw new KilnError(`${file}: lint violation found for rules: ${violated} (# check=error=true): ${warnings.map((w) => w.message ?? String(w)).join('; ')}`);
    return { ...result, warnings, plan, allKeys, cacheMounts: kinds.exec.cacheMounts, cache };
  } finally {
    await kinds.http.cleanup();
    await kinds.git.cleanup();
  }
}

/**
 * A RUN for a platform this machine cannot execute needs its QEMU interpreter: checked before any
 * step runs (for every platform of a multi-platform build before any of them starts), so the build
 * fails at once with the command that fixes it.
 */
export async function checkEmulators(plan: BuildPlan, file: string): Promise<void> {
  const host = hostPlatform();
  const native = (p: Platform) => p.architecture === host.architecture || (host.architecture === 'amd64' && p.architecture === '386');
  for (const sp of plan.stages) {
    const p = sp.platform ?? plan.targetPlatform;
    const run = sp.instructions.find((i) => i.kind === 'run');
    if (sp.used && run && !native(p)) {
      await checkEmulation(p).catch((e: Error) => {
        throw new BuildStepError(file, run.line, e.message);
      });
    }
  }
}

/** checkEmulators for a build request before it is solved (kiln build --platform A,B checks all first). */
export async function checkEmulatorsFor(req: Pick<BuildRequest, 'dockerfile' | 'buildArgs' | 'target' | 'platform' | 'namedContexts'>): Promise<void> {
  const named = new Set((req.namedContexts ?? new Map()).keys());
  const plan = planBuild(parseDockerfile(req.dockerfile.text, { file: req.dockerfile.name }), { buildArgs: req.buildArgs, target: req.target, platform: req.platform ?? hostPlatform(), namedContexts: named });
  await checkEmulators(plan, req.dockerfile.name);
}
