import { availableParallelism } from 'node:os';
import { parseDockerfile, planBuild, requiredSecrets, type BuildPlan, type SourceRef, type Warning } from '../dockerfile/index.js';
import type { Platform } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';
import { hostPlatform } from '../store/store.js';
import { checkEmulation } from '../sandbox/emulation.js';
import type { Executor, NetworkMode, Rlimit, RunRequest } from '../sandbox/executor.js';
import { createSnapshotter } from '../snapshot/index.js';
import type { LayerRef, Snapshotter } from '../snapshot/snapshotter.js';
import { fetchingLayers } from './fetching.js';
import { BuildCache, type CacheSource } from './cache.js';
import type { BuildContext } from './context.js';
import { BuildStepError } from './errors.js';
import type { ProgressSink } from './progress.js';
import { KilnError } from '../errors.js';
import { resolveDockerfileEpoch } from './epoch.js';
import type { OpKinds } from './frontend.js';
import { createNamedContexts } from './ops/context.js';
import { createCopy } from './ops/copy.js';
import { createExec, insecureRefused } from './ops/exec.js';
import { createGitSources } from './ops/git.js';
import { createHttpSources } from './ops/http.js';
import { createImageSources, imageLayers } from './ops/image.js';
import type { OpContext } from './ops/op.js';
import { Limiter, Scheduler, type SharedSteps } from './scheduler.js';
import { createStages, type StageResult } from './stage.js';

// How a build runs: the Dockerfile is planned (dockerfile/plan.ts) into stages; the frontend makes
// each stage a node of the build graph (stage.ts: its FROM a source node, its instructions
// dispatched on that base's config, its steps ops by frontend.ts) of ops (ops/: exec, copy, file,
// merge; image, context, http and git sources), each owning its cache key and its execution; the
// scheduler (scheduler.ts) solves them in dependency order, in parallel up to --jobs, from the cache
// when it can. solve() plans, builds the services ops share, and asks the scheduler for the target.

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

export type { BaseImage, StageResult } from './stage.js';

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
 * The solver: plans the stages, then has the scheduler solve each needed stage's node, so a stage
 * starts as soon as the ones it depends on are done and independent stages run in parallel. Every
 * step has a cache key computed from its inputs' keys and its own definition; a key found in the
 * cache reuses the recorded layer instead of running.
 */
export async function solve(req: BuildRequest): Promise<BuildResult> {
  const host = hostPlatform();
  const targetPlatform = req.platform ?? host;
  const named = req.namedContexts ?? new Map<string, NamedContext>();
  const check = req.buildArgs.BUILDKIT_DOCKERFILE_CHECK;
  const planned = planBuild(parseDockerfile(req.dockerfile.text, { file: req.dockerfile.name, ...(check !== undefined ? { check } : {}) }), { buildArgs: req.buildArgs, target: req.target, platform: targetPlatform, namedContexts: new Set(named.keys()) });
  const { epoch, plan } = await resolveDockerfileEpoch(planned, req, named);
  req = { ...req, sourceDateEpoch: epoch };
  const cache = new BuildCache(req.store, req.cacheSources ?? []);
  const snapshotter: Snapshotter = fetchingLayers(req.snapshotter ?? (await createSnapshotter(req.store)), cache);
  const limiter = new Limiter(Math.max(1, req.jobs));
  // A RUN mostly waits (on its process, the network, a sleep) and needs no core of kiln's, but
  // writing a layer (the diff, tar, gzip and digests) keeps one busy: whatever --jobs allows, at most
  // one layer per core is written at once, so four stages that finish together on two cores do not
  // share them four ways and all finish late.
  const layerWrites = req.layerWrites ?? new Limiter(availableParallelism());
  const scheduler = new Scheduler({ cache, limiter, progress: req.progress, signal: req.signal, vertexBase: req.vertexBase, sharedSteps: req.sharedSteps });
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
    describeSource: (from) => ('stage' in from ? `stage ${stages.label(from.stage)}` : `image ${from.image}`),
    namedDir: (ref) => contexts.dir(ref),
    namedTree: (path) => contexts.tree(path),
  };
  const contexts = createNamedContexts(ctx, named);
  const images = createImageSources(req, named, host, targetPlatform);
  const kinds: OpKinds = { ctx, exec: createExec(ctx), copy: createCopy(ctx), http: createHttpSources(), git: createGitSources() };

  const stages = createStages({ plan, kinds, scheduler, images, contexts, targetPlatform });
  const stage = (index: number) => stages.result(index);
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

  try {
    const used = plan.stages.filter((s) => s.used).map((s) => s.index);
    await stages.resolveBases();
    // Start every needed stage now; each waits only for what it depends on.
    const settled = await Promise.allSettled(used.map((i) => scheduler.solve(stages.node(i))));
    await Promise.allSettled(ctx.preparations);
    const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
    await stages.dispatchUnbuilt();
    await req.context.save();
    await contexts.save();
    const result = (await scheduler.solve(stages.node(plan.target))) as StageResult;
    await cache.ensure(result.layers);
    const allKeys = [...new Set((await Promise.all(used.map((i) => stage(i)))).flatMap((r) => r.keys))];
    // BuildKit's linter.Error names the rules: "lint violation found for rules: FromAsCasing".
    const warnings = stages.warnings;
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
