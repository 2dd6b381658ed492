import { mkdtemp, readdir, readFile, rm, writeFile, chmod, chown } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { LayerDigests, LayerEntry } from '../archive/index.js';
import {
  dispatchStage,
  parseDockerfile,
  parseDockerignore,
  planBuild,
  requiredSecrets,
  triggerSources,
  type BuildPlan,
  type CopyStep,
  type RunStep,
  type SourceRef,
  type StageProgram,
  type Step,
  type WorkdirStep,
  type Warning,
} from '../dockerfile/index.js';
import { isGitSource } from '../dockerfile/dispatch.js';
import { cloneGitContext, parseGitSource, type GitSourceSpec } from './gitcontext.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Store, StoredImage } from '../store/store.js';
import { hostPlatform, PlatformUnknown } from '../store/store.js';
import { formatPlatform } from '../dockerfile/platform.js';
import { checkEmulation } from '../sandbox/emulation.js';
import type { Executor, Mount, NetworkMode, Rlimit, RunRequest } from '../sandbox/executor.js';
import { resolveChown, resolveUser } from '../sandbox/user.js';
import { InvalidUserSpec, UnknownUser } from '../sandbox/errors.js';
import { ensureWorkingDir } from '../sandbox/mountpoints.js';
import { createSnapshotter } from '../snapshot/index.js';
import { emptyLayer } from './empty-layer.js';
import { pathInfo } from '../snapshot/snapshotter.js';
import { copyPath } from '../snapshot/cp.js';
import type { LayerRef, Snapshotter } from '../snapshot/snapshotter.js';
import { fetchingLayers } from './fetching.js';
import { BuildCache, cacheKey, type CacheSource } from './cache.js';
import { cacheMountDir, emptyCacheMount, openCacheMount } from './cachemount.js';
import { BuildContext } from './context.js';
import { DirTree, type SourceTree } from './tree.js';
import { archiveKind, chmodOf, contextDigest, copyEntries, destInfo, downloadSource, excludePatterns, sameDestInfo, selectSources, unpackArchive, type DestInfo, type Selection } from './copy.js';
import { BuildCancelled, BuildStepError } from './errors.js';
import type { ProgressSink } from './progress.js';
import { ImageUnknown, KilnError } from '../errors.js';
import { loadOciLayout } from './named.js';
import { resolveDockerfileEpoch } from './epoch.js';
import { forwardAgent } from './ssh.js';
import { formatReference, parseNamed } from '../reference/reference.js';


/** BuildKit's words (util/entitlements/entitlements.go:165, "security.insecure is not allowed"), and the flag that grants it. */
const insecureRefused = 'RUN --security=insecure: entitlement security.insecure is not allowed (grant it with --allow security.insecure)';

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
  sharedSteps?: Map<string, Promise<{ layer: LayerRef | undefined; created: string }>>;
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

/** A counting semaphore bounding how many steps execute at once (--jobs). */
export class Limiter {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** Runs fn if a slot is free right now; otherwise runs nothing and returns undefined. */
  tryRun<T>(fn: () => Promise<T>): Promise<T> | undefined {
    if (this.free === 0) return undefined;
    this.free--;
    return fn().finally(() => this.release());
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** What a COPY read of its parent image: its path queries with their answers, and its --chown. */
interface ParentReads {
  paths: Map<string, DestInfo | undefined>;
  owner?: { uid: number; gid: number };
}

/** A COPY prepared ahead of its parent, with what it read of the state it was prepared against. */
interface PreparedCopy {
  layer: LayerRef | undefined;
  reads: ParentReads;
}

/**
 * The solver: plans the stages, then runs each needed stage as soon as the stages it depends on are
 * done, so independent stages run in parallel. Every step has a cache key computed from its parent's
 * key and its own definition; a key found in the cache reuses the recorded layer instead of running.
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
  const cacheMounts = new Map<string, string>();
  const restoring = new Map<string, Promise<void>>();
  const limiter = new Limiter(Math.max(1, req.jobs));
  // A RUN mostly waits (on its process, the network, a sleep) and needs no core of kiln's, but
  // writing a layer (the diff, tar, gzip and digests) keeps one busy: whatever --jobs allows, at most
  // one layer per core is written at once, so four stages that finish together on two cores do not
  // share them four ways and all finish late.
  const layerWrites = req.layerWrites ?? new Limiter(availableParallelism());
  const results = new Map<number, Promise<StageResult>>();
  // COPYs prepared while the RUN before them runs (see prepareAhead), and every such preparation,
  // so that the build waits for them all before it returns or fails.
  const preparedCopies = new Map<CopyStep, Promise<PreparedCopy | undefined>>();
  const preparations: Promise<unknown>[] = [];
  const copyContentKeys = new Map<CopyStep, Promise<unknown>>();
  // The target stage and the stages it is built FROM: their layers are the image's.
  const imageStages = new Set<number>();
  for (let i: number | undefined = plan.target; i !== undefined && !imageStages.has(i); ) {
    imageStages.add(i);
    const base: BuildPlan['stages'][number]['base'] = plan.stages[i]!.base;
    i = base.kind === 'stage' ? base.index : undefined;
  }
  const images = new Map<string, Promise<StoredImage>>();
  let vertex = req.vertexBase ?? 0;
  const samePlatform = (a: Platform, b: Platform) => a.os === b.os && a.architecture === b.architecture && (a.variant ?? '').replace(/^v8$/, '') === (b.variant ?? '').replace(/^v8$/, '');
  /** The platform a stage runs for: its FROM --platform, else the target's (BuildKit convert.go: platformOpt). */
  const stagePlatform = (index: number): Platform => plan.stages[index]!.platform ?? targetPlatform;
  const file = req.dockerfile.name;
  const now = req.sourceDateEpoch !== undefined ? new Date(req.sourceDateEpoch * 1000) : new Date();

  const checkAbort = () => {
    if (req.signal.aborted) throw new BuildCancelled('build cancelled');
  };

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

  /** docker-image://scratch is the empty image (BuildKit dockerui/namedcontext.go:80). */
  const namedScratch = (ref: string): boolean => {
    const c = named.get(ref.toLowerCase());
    return c?.kind === 'image' && c.ref === 'scratch';
  };
  const namedDir = (ref: string): string | undefined => {
    const c = named.get(ref.toLowerCase());
    return c?.kind === 'dir' ? c.path : undefined;
  };
  const readDockerignore = (dir: string): Promise<string[]> => readFile(join(dir, '.dockerignore'), 'utf8').then(parseDockerignore, () => []);
  const namedTrees = new Map<string, Promise<BuildContext>>();
  const namedTree = (path: string): Promise<BuildContext> => {
    let t = namedTrees.get(path);
    // A directory context is filtered by its own .dockerignore (BuildKit dockerui/namedcontext.go:253).
    if (!t) namedTrees.set(path, (t = readDockerignore(path).then((ignore) => BuildContext.open(path, ignore, join(req.store.root, 'contexts')))));
    return t;
  };

  // `via`: the names an alias chain went through. An alias naming itself or an earlier name
  // (busybox=docker-image://busybox) is the image of that name, as BuildKit resolves a
  // docker-image:// context without looking at the named contexts again.
  // `platform`: the image's entry for it. The host's is what an index resolves to anyway, so an image
  // without platform information (or of another platform) stays usable for a host build, as before.
  const resolveImage = (ref: string, line: number, platform: Platform = targetPlatform, via: ReadonlySet<string> = new Set()): Promise<StoredImage> => {
    const wanted = samePlatform(platform, host) ? undefined : platform;
    const memo = `${wanted ? formatPlatform(wanted) : ''}\0${ref}`;
    let p = images.get(memo);
    if (!p) {
      p = (async () => {
        const alias = named.get(ref.toLowerCase());
        const seen = new Set([...via, ref.toLowerCase()]);
        if (alias?.kind === 'image' && !seen.has(alias.ref.toLowerCase())) return resolveImage(alias.ref, line, platform, seen);
        if (alias?.kind === 'oci-layout') return loadOciLayout(req.store, alias.path, alias.ref).catch((e: Error) => {
          throw new BuildStepError(file, line, `build context "${ref}": ${e.message}`);
        });
        if (req.pullPolicy !== 'always') {
          try {
            const stored = await req.store.resolveImage(ref, wanted);
            if (req.admitStoredImage) await req.admitStoredImage(stored, ref).catch((e: Error) => Promise.reject(new BuildStepError(file, line, `base image "${ref}": ${e.message}`)));
            return stored;
          } catch (e) {
            if (e instanceof PlatformUnknown && (req.pullPolicy === 'never' || !req.resolveMissingImage)) throw new BuildStepError(file, line, `base image: ${e.message}`);
            if (!(e instanceof ImageUnknown)) throw e;
          }
        }
        if (req.pullPolicy !== 'never' && req.resolveMissingImage) {
          try {
            return await req.resolveMissingImage(ref, wanted);
          } catch (e) {
            throw new BuildStepError(file, line, `base image "${ref}" is not in the store and could not be pulled: ${(e as Error).message}`);
          }
        }
        throw new BuildStepError(file, line, `base image "${ref}" not found in the store (load it with kiln load or pull it)`);
      })();
      images.set(memo, p);
    }
    return p;
  };

  /** A directory context as one layer, and its key: for FROM, COPY --from and RUN --mount from=. */
  const dirBases = new Map<string, Promise<{ layer: LayerRef; key: string }>>();
  const dirBase = (dir: string): Promise<{ layer: LayerRef; key: string }> => {
    let p = dirBases.get(dir);
    if (!p) {
      p = (async () => {
        const tree = await namedTree(dir);
        const root = (await tree.stat(''))!;
        const digest = await contextDigest(tree, [{ file: root, target: '/' }], []);
        const key = cacheKey('', { directory: digest });
        const hit = await cache.get(key);
        const entries = hit ? [] : await copyEntries(tree, [{ file: root, target: '/' }], [], { fromContext: true, existing: async () => undefined, exclude: [], now: now.getTime() });
        const layer = hit?.layer ?? (await layerWrites.run(() => writeEntries(entries)));
        if (!hit) await cache.put(key, layer);
        return { layer: layer!, key };
      })();
      dirBases.set(dir, p);
    }
    return p;
  };

  const imageLayers = (img: StoredImage): LayerRef[] =>
    img.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: img.config.rootfs.diff_ids[i]! }));

  const stage = (index: number): Promise<StageResult> => {
    let p = results.get(index);
    if (!p) {
      p = buildStage(index);
      results.set(index, p);
    }
    return p;
  };

  const stageLabel = (index: number) => plan.stages[index]!.name ?? `stage-${index}`;
  const noCacheStage = (index: number) => !!req.noCacheStages?.some((n) => n.toLowerCase() === (plan.stages[index]!.name ?? String(index)).toLowerCase());
  /** The layers a COPY --from or RUN --mount from= names: a stage (built first) or an image. */
  // An image a COPY --from or a mount names is the target platform's (BuildKit: the stage's platform).
  const sourceLayers = async (from: SourceRef, line: number, platform: Platform = targetPlatform): Promise<LayerRef[]> => {
    if ('stage' in from) return (await stage(from.stage)).layers;
    if (namedScratch(from.image)) return [];
    const dir = namedDir(from.image);
    if (dir) return [(await dirBase(dir)).layer];
    return imageLayers(await resolveImage(from.image, line, platform));
  };
  const describeSource = (from: SourceRef) => ('stage' in from ? `stage ${stageLabel(from.stage)}` : `image ${from.image}`);

  async function buildStage(index: number): Promise<StageResult> {
    const sp = plan.stages[index]!;
    const platform = stagePlatform(index);
    let layers: LayerRef[] = [];
    let keys: string[] = [];
    let key: string;
    let baseInput: Parameters<typeof dispatchStage>[2];
    let base: BaseImage | undefined;
    const fromId = ++vertex;
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
    } else if (fromRef !== undefined && namedDir(fromRef)) {
      // FROM <name of a directory context>: the directory is the base filesystem, as one layer.
      const d = await dirBase(namedDir(fromRef)!);
      key = d.key;
      layers = [d.layer];
      keys = [key];
      baseInput = { config: { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] } };
    } else if (fromRef !== undefined && namedScratch(fromRef)) {
      key = cacheKey('', { scratch: true, platform });
      baseInput = { config: { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] } };
    } else if (fromRef !== undefined) {
      req.progress.start(fromId, `[${req.platformLabel ? `${req.platformLabel} ` : ""}${stageLabel(index)} 1/${0}] FROM ${fromName}`.replace(' 1/0]', ']'));
      const img = await resolveImage(fromRef, sp.line, platform);
      req.progress.done(fromId);
      layers = imageLayers(img);
      key = cacheKey('', { image: img.manifestDescriptor.digest });
      base = { name: baseName(fromRef), digest: img.manifestDescriptor.digest };
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
    const total = program.steps.length + fromSteps;
    const emptyHistory = new Set<number>();
    // History times come from when each step first ran (its cache record), so a fully cached
    // rebuild gives the same image ID, as with BuildKit.
    let stageTime = req.sourceDateEpoch !== undefined ? now.toISOString() : baseInput.config?.created ?? new Date(0).toISOString();
    for (const [n, step] of program.steps.entries()) {
      checkAbort();
      const id = ++vertex;
      const name = `[${req.platformLabel ? `${req.platformLabel} ` : ''}${stageLabel(index)} ${n + 1 + fromSteps}/${total}] ${(step.title ?? step.instruction).replace(/\s+/g, ' ').trim()}`;
      const stepKey = await keyOf(step, key, layers, platform);
      if (step.kind === 'run') for (const m of step.mounts) if (m.type === 'cache') noteCacheMount(m);
      const hit = req.noCache || noCacheStage(index) ? undefined : await cache.get(stepKey, imageStages.has(index));
      if (hit) {
        req.progress.start(id, name);
        req.progress.cached(id);
        if (req.sourceDateEpoch === undefined && hit.created > stageTime) stageTime = hit.created;
        if (hit.layer) layers = [...layers, hit.layer];
        else emptyHistory.add(step.historyIndex);
      } else {
        const parentKey = key;
        const parentLayers = layers;
        const run = async () => {
          const layer = await limiter.run(async () => {
            checkAbort();
            req.progress.start(id, name);
            const next = program.steps[n + 1];
            if (step.kind === 'run' && next?.kind === 'copy') prepareAhead(next, parentLayers);
            try {
              const l = await execute(step, parentLayers, id);
              req.progress.done(id);
              return l;
            } catch (e) {
              req.progress.done(id, (e as Error).message.split('\n')[0]);
              throw e;
            }
          });
          return { layer, created: (await cache.put(stepKey, layer, parentKey)).created };
        };
        // Another platform's solve running the very same step (same key): its result is this one's.
        let running = req.sharedSteps?.get(stepKey);
        if (running) {
          req.progress.start(id, name);
          await running.catch(() => {});
          req.progress.cached(id);
        } else {
          running = run();
          req.sharedSteps?.set(stepKey, running);
        }
        const rec = await running;
        const layer = rec.layer;
        if (req.sourceDateEpoch === undefined && rec.created > stageTime) stageTime = rec.created;
        if (layer) layers = [...layers, layer];
        else emptyHistory.add(step.historyIndex);
      }
      key = stepKey;
      keys.push(stepKey);
    }
    const config = structuredClone(program.config);
    if (req.sourceDateEpoch === undefined && program.steps.length === 0 && stageTime === new Date(0).toISOString()) stageTime = now.toISOString();
    config.created = stageTime;
    config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
    config.history = (config.history ?? []).map((h, i) => {
      const out = { ...h };
      if (!out.created) out.created = stageTime;
      if (emptyHistory.has(i)) out.empty_layer = true;
      return out;
    });
    return { layers, config, program, key, keys, ...(base ? { base } : {}) };
  }

  /** The name a FROM reference resolves to, through --build-context aliases; a tag beside a digest wins. */
  function baseName(ref: string): string {
    let name = ref;
    const seen = new Set([name.toLowerCase()]);
    for (let alias = named.get(name.toLowerCase()); alias?.kind === 'image'; alias = named.get(name.toLowerCase())) {
      if (seen.has(alias.ref.toLowerCase())) break;
      name = alias.ref;
      seen.add(name.toLowerCase());
    }
    try {
      const parsed = parseNamed(name);
      return formatReference(parsed.tag ? { ...parsed, digest: undefined } : parsed);
    } catch {
      return name;
    }
  }

  /** The step's cache key: parent key + definition; for COPY, also the content of what it copies. */
  async function keyOf(step: Step, parent: string, layers: LayerRef[], platform: Platform): Promise<string> {
    if (step.kind === 'run') {
      // A RUN's result depends on the platform it runs for (BuildKit's exec op carries its platform
      // in its definition), also where its inputs do not show it (a directory context as base). The
      // host's adds nothing, so keys of host builds stay what they were.
      const foreign = samePlatform(platform, host) ? {} : { platform: formatPlatform(platform) };
      const mounts = step.mounts.map((m) => ({ ...m, from: m.from ? sourceKeySync(m.from) : undefined }));
      const fromKeys: string[] = [];
      for (const m of step.mounts) if (m.from && m.type === 'bind') fromKeys.push(await bindSourceKey(m.from, m.source, step.line));
      const ctx = await Promise.all(
        step.mounts.filter((m) => m.type === 'bind' && !m.from).map((m) => contextMountKey(m.source)),
      );
      return cacheKey(parent, { run: step.args, env: step.env, user: step.user, workdir: step.workdir, network: step.network, mounts, fromKeys, ctx, inline: step.inlineFiles, net: req.network, ...(step.hostname ? { hostname: step.hostname } : {}), ...(req.shmSize ? { shm: req.shmSize } : {}), ...(req.ulimits ? { ulimits: req.ulimits } : {}), ...foreign, ...(step.security === 'insecure' ? { security: step.security } : {}) });
    }
    if (step.kind === 'workdir') return cacheKey(parent, { workdir: step.path, user: step.user });
    void layers;
    return cacheKey(parent, { copy: await contentKeyOf(step), dest: step.destPath, chown: step.chown, chmod: step.chmod, exclude: step.exclude, parents: step.parents, add: step.add, heredocs: step.heredocs, unpack: step.unpack });
  }

  /** A COPY's sources as its key names them, computed once per step (prepareAhead starts it early). */
  function contentKeyOf(step: CopyStep): Promise<unknown> {
    let content = copyContentKeys.get(step);
    if (!content) copyContentKeys.set(step, (content = copyContentKey(step)));
    return content;
  }

  function sourceKeySync(src: { stage: number } | { image: string }): string {
    return 'stage' in src ? `stage:${src.stage}` : `image:${src.image}`;
  }

  async function sourceKey(src: { stage: number } | { image: string }, line: number): Promise<string> {
    if ('stage' in src) return (await stage(src.stage)).key;
    if (namedScratch(src.image)) return 'scratch';
    const dir = namedDir(src.image);
    if (dir) return (await dirBase(dir)).key;
    return (await resolveImage(src.image, line, targetPlatform)).manifestDescriptor.digest;
  }

  /**
   * A bind mount of a stage or an image: the key of the whole source, or, when it selects a path in
   * it, that path's content. BuildKit's exec op hashes a mount's selected path (llbsolver/ops/exec.go,
   * ComputeDigestFunc over the selector), so the RUN stays cached while that directory reads the same,
   * whatever else changed in the stage (testMountRWCache).
   */
  async function bindSourceKey(from: SourceRef, source: string, line: number): Promise<string> {
    const rel = source.split('/').filter((p) => p !== '' && p !== '.').join('/');
    if (rel === '') return sourceKey(from, line);
    const v = await snapshotter.view(await sourceLayers(from, line), 'bind-key');
    try {
      const tree = new DirTree(v.path);
      const f = await tree.stat(rel);
      if (!f) return `missing\0${await sourceKey(from, line)}`;
      return contextDigest(tree, [{ file: f, target: '/' }], [], req.signal);
    } finally {
      await v.release();
    }
  }

  async function contextMountKey(source: string): Promise<string> {
    const rel = source.replace(/^\/+/, '');
    const f = await req.context.stat(rel);
    if (!f) return 'missing';
    return contextDigest(req.context, [{ file: f, target: '/' }], [], req.signal);
  }

  async function copyContentKey(step: CopyStep): Promise<unknown> {
    const dirCtx = step.from && 'image' in step.from ? namedDir(step.from.image) : undefined;
    if (dirCtx) {
      const tree = await namedTree(dirCtx);
      const sel = await selectSources({ step: { ...step, heredocs: [] }, file, tree }, async () => true);
      return { named: await contextDigest(tree, sel, excludePatterns(step.exclude), req.signal) };
    }
    if (step.from) return { from: await sourceKey(step.from, step.line), sources: step.sources };
    const git = step.add ? step.sources.filter(isGitSource) : [];
    const remote = step.add ? step.sources.filter((s) => isUrl(s) && !git.includes(s)) : [];
    const local = step.sources.filter((s) => !remote.includes(s) && !git.includes(s));
    const parts: unknown[] = [];
    // A repository is keyed by the commit it resolves to, never by its clone's files (.git differs).
    for (const src of git) {
      const { commit, spec } = await gitSource(src, step);
      parts.push({ git: spec.url, commit, subdir: spec.subdir, keepGitDir: spec.keepGitDir });
    }
    if (local.length) {
      const sel = await selectSources({ step: { ...step, sources: local, heredocs: [] }, file, tree: req.context }, async () => true);
      parts.push(await contextDigest(req.context, sel, excludePatterns(step.exclude), req.signal));
    }
    for (const url of remote) {
      if (step.checksum) parts.push({ url, checksum: step.checksum });
      else {
        const dl = await downloadSource(url, step, file);
        try {
          const f = (await dl.tree.stat(dl.name))!;
          parts.push({ url, content: await contextDigest(dl.tree, [{ file: f, target: '/' }], []) });
        } finally {
          await dl.cleanup();
        }
      }
    }
    return parts;
  }

  /** A step's layer; one that changed nothing gets the empty layer, as BuildKit's do (empty-layer.ts). */
  async function execute(step: Step, layers: LayerRef[], id: number): Promise<LayerRef> {
    return (await changes(step, layers, id)) ?? (await emptyLayer(req.store));
  }

  async function changes(step: Step, layers: LayerRef[], id: number): Promise<LayerRef | undefined> {
    if (step.kind === 'run') return executeRun(step, layers, id);
    if (step.kind === 'workdir') return executeWorkdir(step, layers);
    const prepared = await preparedCopies.get(step);
    preparedCopies.delete(step);
    if (prepared && (await parentAgrees(step, prepared.reads, layers))) return prepared.layer;
    return executeCopy(step, layers);
  }

  /**
   * Starts a COPY that follows a RUN while the RUN runs, against the RUN's parent: the layer of a
   * COPY from the context depends on its parent image only through the few paths it reads there
   * (ParentReads), so once the RUN is done and those paths read the same in its result, the layer
   * is the one the COPY would have written. A `RUN npm ci` / `COPY . .` pair then takes the time of
   * the longer of the two instead of their sum. Only with a free --jobs slot; a preparation that
   * fails is forgotten and the COPY runs as usual, reporting its own errors.
   */
  function prepareAhead(step: CopyStep, layers: LayerRef[]): void {
    if (step.from || (step.add && step.sources.some((s) => isUrl(s) || isGitSource(s))) || req.signal.aborted) return;
    const started = limiter.tryRun(async (): Promise<PreparedCopy> => {
      const reads: ParentReads = { paths: new Map() };
      // The sources are hashed for the COPY's key once the copy is written, not alongside it: the
      // key is not needed before the RUN ends, and a third busy thread (the hashing one) on top of
      // the packing and the extraction slowed the RUN's own sandbox start and exit (S2: RUN sleep 3
      // took 3.5 s instead of 3.1). A cancelled build waits for the copy to stop and clean up, not
      // for the hashing, which only reads.
      const copying = executeCopy(step, layers, reads);
      const hashing = copying.then(
        () => contentKeyOf(step),
        () => contentKeyOf(step),
      );
      hashing.catch(() => {}); // awaited by the COPY's key, or by nobody once cancelled
      const cancelled = new Promise<never>((_, reject) => {
        if (req.signal.aborted) reject(new BuildCancelled('build cancelled'));
        req.signal.addEventListener('abort', () => reject(new BuildCancelled('build cancelled')), { once: true });
      });
      cancelled.catch(() => {});
      const [hashed, copied] = await Promise.allSettled([Promise.race([hashing, cancelled]), copying]);
      if (hashed.status === 'rejected') throw hashed.reason;
      if (copied.status === 'rejected') throw copied.reason;
      return { layer: copied.value, reads };
    });
    if (!started) return;
    const settled = started.catch(() => undefined);
    preparedCopies.set(step, settled);
    preparations.push(settled);
  }

  /** Whether the paths a prepared COPY read in its parent (and its --chown) read the same in `layers`. */
  async function parentAgrees(step: CopyStep, reads: ParentReads, layers: LayerRef[]): Promise<boolean> {
    if (reads.paths.size === 0 && !step.chown) return true;
    const view = await snapshotter.view(layers, 'copy-check');
    try {
      for (const [p, info] of reads.paths) if (!sameDestInfo(info, destInfo(await pathInfo(join(view.path, p))))) return false;
      if (!step.chown) return true;
      const owner = await resolveChown(view.path, step.chown).catch(() => undefined);
      return owner !== undefined && owner.uid === reads.owner?.uid && owner.gid === reads.owner.gid;
    } finally {
      await view.release();
    }
  }

  async function executeWorkdir(step: WorkdirStep, layers: LayerRef[]): Promise<LayerRef | undefined> {
    const snap = await snapshotter.prepare(layers, `workdir-${randomBytes(4).toString('hex')}`);
    try {
      const user = await userFor(snap.rootfs, step.user, step.line);
      await ensureWorkingDir(snap.rootfs, step.path, user, []);
      return await layerWrites.run(() => snap.commit({ exclude: [], sourceDateEpoch: req.sourceDateEpoch }));
    } finally {
      await snap.release();
    }
  }

  async function userFor(rootfs: string, spec: string, line: number) {
    try {
      return await resolveUser(rootfs, spec);
    } catch (e) {
      if (e instanceof UnknownUser || e instanceof InvalidUserSpec) throw new BuildStepError(file, line, e.message);
      throw e;
    }
  }

  async function executeRun(step: RunStep, layers: LayerRef[], id: number): Promise<LayerRef | undefined> {
    const runId = `kiln-${process.pid}-${randomBytes(6).toString('hex')}`;
    if (step.security === 'insecure' && !req.allowInsecure) throw new BuildStepError(file, step.line, insecureRefused);
    const snap = await snapshotter.prepare(layers, runId);
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const user = await userFor(snap.rootfs, step.user, step.line);
      const mounts: Mount[] = [];
      const secretEnv: string[] = [];
      for (const m of step.mounts) mounts.push(...(await runMount(m, step, cleanups, secretEnv)));
      if (step.inlineFiles.length) {
        const dir = await mkdtemp(join(req.store.root, 'tmp-inline-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        for (const [i, f] of step.inlineFiles.entries()) {
          const p = join(dir, String(i));
          await writeFile(p, f.content);
          await chmod(p, f.mode);
          mounts.push({ destination: f.path, type: 'bind', source: p, options: ['rbind', 'ro'] });
        }
      }
      const tail: string[] = [];
      const sink = (stream: 'stdout' | 'stderr') =>
        new Writable({
          write(chunk: Buffer, _e, cb) {
            const text = chunk.toString();
            req.progress.log(id, stream, text);
            tail.push(...text.split('\n'));
            if (tail.length > 40) tail.splice(0, tail.length - 40);
            cb();
          },
        });
      const network = step.network !== 'default' ? step.network : req.network;
      const sandbox: RunFailure['sandbox'] = {
        id: runId,
        rootfs: snap.rootfs,
        process: { args: step.args, env: [...step.env, ...step.proxyEnv, ...secretEnv], cwd: step.workdir || '/', user },
        network,
        hostname: step.hostname ?? runId.slice(0, 12),
        mounts,
        ...(req.shmSize ? { shmSize: req.shmSize } : {}),
        ...(req.ulimits ? { rlimits: req.ulimits } : {}),
        ...(step.security === 'insecure' ? { security: step.security } : {}),
      };
      const result = await req.executor.run({ ...sandbox, stdout: sink('stdout'), stderr: sink('stderr'), signal: req.signal });
      if (result.exitCode !== 0) {
        if (req.onRunFailure && !req.signal.aborted) await req.onRunFailure({ file, line: step.line, exitCode: result.exitCode, sandbox });
        const out = tail.filter((l) => l.length).slice(-10).join('\n');
        // BuildKit's wording: the argv joined by spaces, quoted (`process "/bin/sh -c x" did not complete successfully`).
        throw new BuildStepError(file, step.line, `RUN failed: process ${JSON.stringify(step.args.join(' '))} did not complete successfully: exit code: ${result.exitCode}${out ? '\n' + out : ''}`);
      }
      const exclude = [...result.createdMountpoints];
      return await layerWrites.run(() => snap.commit({ exclude, sourceDateEpoch: req.sourceDateEpoch }));
    } catch (e) {
      if (req.signal.aborted) throw new BuildCancelled('build cancelled');
      throw e;
    } finally {
      await snap.release();
      for (const c of cleanups.reverse()) await c().catch(() => {});
    }
  }

  /** RUN --mount: cache dirs live in the store, secrets in a private temp dir, binds are read-only views. */
  async function runMount(m: RunStep['mounts'][number], step: RunStep, cleanups: (() => Promise<void>)[], secretEnv: string[]): Promise<Mount[]> {
    const fail = (msg: string): never => {
      throw new BuildStepError(file, step.line, msg);
    };
    switch (m.type) {
      case 'tmpfs':
        return [{ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(m.sizeLimit ? [`size=${m.sizeLimit}`] : [])] }];
      case 'cache': {
        let seed: string | undefined;
        if (m.from) {
          // from= and source=: a new cache starts with that directory of a stage or an image.
          const v = await snapshotter.view(await sourceLayers(m.from, step.line), 'cache-from');
          cleanups.push(() => v.release());
          seed = join(v.path, m.source);
          if ((await pathInfo(seed))?.type !== 'directory') fail(`cache mount source "${m.source}" is not a directory in ${describeSource(m.from)}`);
        }
        const { cacheId, dir } = noteCacheMount(m);
        // --no-cache starts each cache mount empty, once per build (BuildKit testCacheMountModeNoCache).
        if (req.noCache && !emptied.has(cacheId)) {
          emptied.add(cacheId);
          await emptyCacheMount(req.store.root, cacheId);
        }
        const opened = await openCacheMount(req.store.root, { id: cacheId, sharing: m.sharing ?? 'shared', uid: m.uid, gid: m.gid, mode: m.mode }, seed);
        cleanups.push(opened.release);
        // --cache-from with saved cache mounts fills the shared directory when it is still empty.
        await restoreCacheMount(cacheId, dir);
        let source = opened.dir;
        if (!m.from && m.source.split('/').some((c) => c !== '' && c !== '.')) {
          // source= without from= is a directory inside the cache (BuildKit's SourcePath on the cache
          // mount), its links followed without leaving the cache: a link to /etc names the cache's etc.
          const rel = await new DirTree(opened.dir).resolve(m.source);
          const inside = rel === undefined ? undefined : join(opened.dir, rel);
          if (!inside || (await pathInfo(inside))?.type !== 'directory') fail(`cache mount source "${m.source}" is not a directory in cache "${cacheId}"`);
          source = inside!;
        }
        return [{ destination: m.target, type: 'bind', source, options: ['rbind', m.readOnly ? 'ro' : 'rw'] }];
      }
      case 'secret': {
        const value = req.secrets.get(m.id ?? '');
        if (!value) {
          if (m.required) fail(`secret "${m.id}" is required but was not given (use --secret id=${m.id},src=FILE)`);
          return [];
        }
        // env=: the value is in the process environment only while the step runs, never in the config.
        if (m.env) secretEnv.push(`${m.env}=${value.toString('utf8')}`);
        if (!m.target) return [];
        // Secrets go to memory-backed /dev/shm, never into the store, and are removed after the step.
        const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'kiln-secret-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        const p = join(dir, 'secret');
        await writeFile(p, value, { mode: m.mode ?? 0o400 });
        await chmod(p, m.mode ?? 0o400);
        // uid= and gid= own the file for a step that runs as another user (BuildKit: default 0:0).
        await chown(p, m.uid ?? 0, m.gid ?? 0);
        return [{ destination: m.target, type: 'bind', source: p, options: ['rbind', 'ro'] }];
      }
      case 'ssh': {
        const agent = req.ssh?.get(m.id ?? 'default');
        if (!agent) {
          // BuildKit solver/llbsolver/mounts/mount.go:163-169: optional and not given, no socket.
          if (m.required) fail(`no SSH key ${JSON.stringify(m.id)} forwarded from the client (use --ssh ${m.id}[=SOCKET|KEY])`);
          return [];
        }
        // BuildKit client/llb/exec.go:710-714, convert_ssh.go:36-49: mode 0600, owner 0:0 by default.
        const socket = await forwardAgent(agent, { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 });
        cleanups.push(socket.close);
        return [{ destination: m.target, type: 'bind', source: socket.path, options: ['rbind'] }];
      }
      case 'bind': {
        let root: string;
        if (!m.from) root = req.context.root;
        else if (m.readOnly) {
          const v = await snapshotter.view(await sourceLayers(m.from, step.line), 'bind');
          cleanups.push(() => v.release());
          root = v.path;
        } else {
          // rw: the step writes into a snapshot of its own, thrown away afterwards.
          const s = await snapshotter.prepare(await sourceLayers(m.from, step.line), 'bind-rw');
          cleanups.push(() => s.release());
          root = s.rootfs;
        }
        let source = join(root, m.source);
        if (!(await pathInfo(source))) fail(`bind mount source "${m.source}" not found`);
        if (!m.readOnly && !m.from) {
          // rw from the context: a scratch copy, so the step's writes never reach the user's files.
          const scratch = await mkdtemp(join(tmpdir(), 'kiln-bind-'));
          cleanups.push(() => rm(scratch, { recursive: true, force: true }));
          await copyPath(source, join(scratch, 'src'));
          source = join(scratch, 'src');
        }
        return [{ destination: m.target, type: 'bind', source, options: ['rbind', m.readOnly ? 'ro' : 'rw'] }];
      }
      default:
        return fail(`RUN --mount=type=${m.type} is not supported`);
    }
  }

  /** Repositories ADD names, cloned once per build (for the key and the copy), removed when it ends. */
  const gitClones = new Map<string, Promise<{ dir: string; commit: string; spec: GitSourceSpec; cleanup: () => Promise<void> }>>();
  function gitSource(src: string, step: CopyStep) {
    const keepGitDir = step.keepGitDir || parseGitSource(src).keepGitDir === true;
    const id = `${keepGitDir}\0${src}`;
    let p = gitClones.get(id);
    if (!p) {
      p = (async () => {
        const spec = { ...parseGitSource(src), keepGitDir };
        const clone = await cloneGitContext(spec, { keepGitDir }).catch((e: Error) => {
          throw new BuildStepError(file, step.line, `ADD failed: ${/not found|couldn't find remote ref|did not match any/i.test(e.message) ? `repository does not contain ref ${spec.ref}: ` : ''}${e.message}`);
        });
        // --checksum (and ?commit=) name the commit the ref must be: in full or a prefix of it.
        // A refused clone is removed here: the build's final cleanup sees only clones that resolved.
        for (const want of [step.checksum, spec.commit]) {
          if (want === undefined) continue;
          const refusal = !/^[0-9a-f]+$/.test(want)
            ? `invalid checksum ${JSON.stringify(want)}: expected hex commit hash`
            : !clone.commit.startsWith(want) ? `expected checksum to match ${want}, got ${clone.commit}` : undefined;
          if (refusal === undefined) continue;
          await clone.cleanup();
          throw new BuildStepError(file, step.line, `ADD failed: ${refusal}`);
        }
        return { ...clone, spec };
      })();
      gitClones.set(id, p);
    }
    return p;
  }

  /** Cache mounts this build started empty (--no-cache). */
  const emptied = new Set<string>();

  /** Where a cache mount lives in the store; noted for --cache-to mounts=true (cached steps' too). */
  function noteCacheMount(m: RunStep['mounts'][number]): { cacheId: string; dir: string } {
    const cacheId = m.id ?? m.target;
    const dir = cacheMountDir(req.store.root, cacheId);
    cacheMounts.set(cacheId, dir);
    return { cacheId, dir };
  }

  /** --cache-from with saved cache mounts: fill a cache directory that is empty, once per build. */
  function restoreCacheMount(cacheId: string, dir: string): Promise<void> {
    let p = restoring.get(cacheId);
    if (!p) {
      p = (async () => {
        const saved = cache.mountSource(cacheId);
        if (!saved || (await readdir(dir)).length > 0) return;
        await saved.restore(req.store, dir);
      })();
      restoring.set(cacheId, p);
    }
    return p;
  }

  async function executeCopy(step: CopyStep, layers: LayerRef[], reads?: ParentReads): Promise<LayerRef | undefined> {
    const cleanups: (() => Promise<void>)[] = [];
    const fail = (msg: string): never => {
      throw new BuildStepError(file, step.line, msg);
    };
    try {
      const parentView = await snapshotter.view(layers, 'copy-parent');
      cleanups.push(() => parentView.release());
      // COPY --link without --chmod copies onto an empty tree that is merged over the parent
      // (BuildKit convert_copy.go: llb.Merge with llb.Scratch().File(copy)): the destination is not
      // resolved through the parent's symlinks or directories, and the parents it creates replace
      // the image's in the merged result. With --chmod BuildKit falls back to a plain copy.
      const onEmptyTree = step.link && !step.chmod;
      const existing = async (p: string): Promise<DestInfo | undefined> => {
        if (onEmptyTree) return undefined;
        const info = destInfo(await pathInfo(join(parentView.path, p)));
        reads?.paths.set(p, info);
        return info;
      };
      const destIsDir = async (p: string) => (await existing(p))?.type === 'directory';
      let tree: SourceTree = req.context;
      const dirCtx = step.from && 'image' in step.from ? namedDir(step.from.image) : undefined;
      if (dirCtx) tree = await namedTree(dirCtx);
      else if (step.from) {
        const srcLayers = await sourceLayers(step.from, step.line);
        const v = await snapshotter.view(srcLayers, 'copy-from');
        cleanups.push(() => v.release());
        tree = new DirTree(v.path);
      }
      const chmod = chmodOf(step.chmod, fail);
      let owner: { uid: number; gid: number } | undefined;
      if (step.chown) owner = await resolveChown(parentView.path, step.chown).catch((e: Error) => fail(e.message));
      if (reads) reads.owner = owner;
      const git = step.add && !step.from ? step.sources.filter(isGitSource) : [];
      const remote = step.add && !step.from ? step.sources.filter((s) => isUrl(s) && !git.includes(s)) : [];
      const local = step.sources.filter((s) => !remote.includes(s) && !git.includes(s));
      const selections: { tree: SourceTree; sel: Selection[] }[] = [];
      // ADD of a repository copies its files (and .git with --keep-git-dir) into the destination directory.
      for (const src of git) {
        const tree = new DirTree((await gitSource(src, step)).dir);
        selections.push({ tree, sel: [{ file: (await tree.stat(''))!, target: step.destPath.replace(/\/+$/, '') || '/' }] });
      }
      const count = step.sources.length + step.heredocs.length;
      const dirDest = step.destPath.endsWith('/') || count > 1;
      if (local.length) {
        const sel = await selectSources({ step: { ...step, sources: local }, file, tree }, destIsDir);
        // ADD unpacks local tar archives into the destination directory.
        const plain: Selection[] = [];
        for (const s of sel) {
          const kind = step.add && step.unpack !== false && s.file.type === 'file' ? await archiveKind(s.file.abs) : undefined;
          if (kind) {
            const u = await unpackArchive(s.file.abs, kind).catch((e: Error) => fail(`ADD failed: cannot unpack ${s.file.rel}: ${e.message}`));
            cleanups.push(u.cleanup);
            const root = (await u.tree.stat(''))!;
            const target = step.destPath.endsWith('/') || dirDest || (await destIsDir(step.destPath)) ? step.destPath.replace(/\/+$/, '') || '/' : step.destPath;
            selections.push({ tree: u.tree, sel: [{ file: root, target }] });
          } else plain.push(s);
        }
        if (plain.length) selections.push({ tree, sel: plain });
      }
      for (const url of remote) {
        const dl = await downloadSource(url, step, file);
        cleanups.push(dl.cleanup);
        const f = (await dl.tree.stat(dl.name))!;
        // A download is unpacked only when asked (ADD --unpack=true), as BuildKit does.
        const kind = step.unpack === true ? await archiveKind(f.abs) : undefined;
        if (kind) {
          const u = await unpackArchive(f.abs, kind).catch((e: Error) => fail(`ADD failed: cannot unpack ${url}: ${e.message}`));
          cleanups.push(u.cleanup);
          selections.push({ tree: u.tree, sel: [{ file: (await u.tree.stat(''))!, target: step.destPath.replace(/\/+$/, '') || '/' }] });
          continue;
        }
        const target = dirDest || (await destIsDir(step.destPath)) ? posix.join(step.destPath, dl.name) : step.destPath;
        selections.push({ tree: dl.tree, sel: [{ file: f, target }] });
      }
      const heredocs = step.heredocs.map((h) => ({ target: dirDest || step.destPath.endsWith('/') ? posix.join(step.destPath, h.name) : step.destPath, content: h.content }));
      const all = [];
      const nowMs = now.getTime();
      for (const [i, s] of selections.entries()) {
        all.push(...(await copyEntries(s.tree, s.sel, i === 0 ? heredocs : [], { owner, chmod, fromContext: s.tree instanceof BuildContext, existing, exclude: excludePatterns(step.exclude), now: nowMs })));
      }
      if (selections.length === 0 && heredocs.length) all.push(...(await copyEntries(req.context, [], heredocs, { owner, chmod, fromContext: true, existing, exclude: [], now: nowMs })));
      const merged = new Map(all.map((e) => [e.path, e]));
      const entries = [...merged.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      if (entries.length === 0) return undefined;
      return await layerWrites.run(() => writeEntries(entries));
    } finally {
      for (const c of cleanups.reverse()) await c().catch(() => {});
    }
  }

  /**
   * Write a COPY's entries as a layer blob; meanwhile the snapshotter extracts the same layer (a
   * small one from the very tar being written, a big one on a thread of its own from the entries),
   * so the next step's root filesystem does not decompress and extract the blob all over again.
   */
  async function writeEntries(entries: LayerEntry[]): Promise<LayerRef> {
    checkAbort();
    let stored: { digest: string; size: number } | undefined;
    const packOpts = { sourceDateEpoch: req.sourceDateEpoch };
    // Layer code is loaded by the first step that writes a layer (see createSnapshotter).
    const { packEntries, writeLayer } = await import('../archive/index.js');
    const tar = packEntries(entries, packOpts);
    let extracted: Promise<string | undefined> = Promise.resolve(undefined);
    let layerTar: Readable = tar;
    const bytes = entries.reduce((n, e) => n + (e.size ?? (typeof e.content === 'string' ? Buffer.byteLength(e.content) : (e.content?.length ?? 0))), 0);
    let written: (diffId: string | undefined) => void = () => {};
    if (snapshotter.extractEntries && (bytes >= 16 << 20 || entries.length >= 1000)) {
      // Big: extracted on a thread of its own; a small one is not worth a thread's start-up (~30 ms).
      extracted = snapshotter.extractEntries(entries, packOpts, new Promise((resolve) => (written = resolve)));
    } else if (snapshotter.extractWhileWriting) {
      // Two readers of one tar: pipe() waits for the slower, and unpipes a reader that fails.
      const forLayer = new PassThrough({ highWaterMark: 1 << 20 });
      const forSnapshot = new PassThrough({ highWaterMark: 1 << 20 });
      tar.on('error', (e) => {
        forLayer.destroy(e);
        forSnapshot.destroy(e);
      });
      tar.pipe(forLayer);
      tar.pipe(forSnapshot);
      extracted = snapshotter.extractWhileWriting(forSnapshot);
      layerTar = forLayer;
    }
    let d: LayerDigests | undefined;
    // Ctrl-C stops a big COPY where it is (the extraction thread stops with it, told by `written`).
    const cancel = () => tar.destroy(new BuildCancelled('build cancelled'));
    req.signal.addEventListener('abort', cancel, { once: true });
    try {
      d = await writeLayer(layerTar, async (blob) => {
        stored = await req.store.content.put(blob);
      }, 'gzip');
    } finally {
      req.signal.removeEventListener('abort', cancel);
      written(d?.diffId);
      await extracted;
    }
    await req.store.setLayerInfo(stored!.digest, { diffId: d.diffId, size: d.uncompressedSize });
    return { digest: d.digest, size: d.size, diffId: d.diffId, mediaType: MediaType.OciLayerGzip };
  }

  try {
    const used = plan.stages.filter((s) => s.used).map((s) => s.index);
    // Every FROM image is resolved first (pulled, and admitted by the trust policy), as BuildKit's
    // frontend resolves each base's config before solving: a refused or missing base fails the
    // build before a step of another stage runs.
    await Promise.all(
      plan.stages.flatMap((sp) => (sp.used && sp.base.kind === 'image' && !namedDir(sp.base.ref) && !namedScratch(sp.base.ref) ? [resolveImage(sp.base.ref, sp.line, stagePlatform(sp.index))] : [])),
    );
    // Start every needed stage now; each waits only for what it depends on.
    const all = used.map((i) => stage(i));
    const settled = await Promise.allSettled(all);
    await Promise.allSettled(preparations);
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
    for (const t of namedTrees.values()) await (await t).save();
    const result = await stage(plan.target);
    await cache.ensure(result.layers);
    const allKeys = [...new Set((await Promise.all(used.map((i) => stage(i)))).flatMap((r) => r.keys))];
    // BuildKit's linter.Error names the rules: "lint violation found for rules: FromAsCasing".
    const violated = [...new Set(warnings.map((w) => w.rule))].sort().join(', ');
    if (plan.failOnWarnings && warnings.length) throw new KilnError(`${file}: lint violation found for rules: ${violated} (# check=error=true): ${warnings.map((w) => w.message ?? String(w)).join('; ')}`);
    return { ...result, warnings, plan, allKeys, cacheMounts, cache };
  } finally {
    for (const c of gitClones.values()) await (await c.catch(() => undefined))?.cleanup();
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

function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}
