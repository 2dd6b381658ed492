// The operations of a build graph, as BuildKit's LLB has them (source, exec, file, merge): the
// Dockerfile frontend (build/frontend.ts) emits them, the scheduler (build/scheduler.ts) solves them.
// An op owns its cache key and its execution; the scheduler owns the order, the cache and progress.

import type { ImageConfig, Platform } from '../../oci/types.js';
import type { LayerRef, Snapshotter } from '../../snapshot/snapshotter.js';
import type { SourceRef, StageProgram } from '../../dockerfile/index.js';
import type { BuildCache } from '../cache.js';
import type { BuildContext } from '../context.js';
import type { Limiter } from '../scheduler.js';
import type { BuildRequest } from '../solver.js';
import { resolveUser } from '../../sandbox/user.js';
import { InvalidUserSpec, UnknownUser } from '../../sandbox/errors.js';
import { BuildStepError } from '../errors.js';

/** A filesystem state: its layers (base first) and the cache key that names its content. */
export interface State {
  key: string;
  layers: LayerRef[];
  /** Cache keys of the steps whose layers make up `layers`, in order. */
  keys: string[];
  /** The files of an http or git source (ops/http.ts, ops/git.ts), which have no layers. */
  files?: FetchedFiles;
}

/**
 * Files a COPY/ADD reads from outside the build (a download, a repository's checkout): fetched once
 * per build however many steps read them, removed when it ends.
 */
export interface FetchedFiles {
  /** What names them in the key of a step that copies them. */
  readonly keyPart: unknown;
  /** Their directory and the entry in it to copy ('' for all of it), fetched on first use. */
  open(): Promise<{ dir: string; name: string }>;
}

/**
 * A step that changes a state (RUN, COPY/ADD, WORKDIR): one layer on top of its parent's. Its key
 * is derived from its parent's key and its own definition, reading the states of `inputs` (the
 * stages a COPY --from or a RUN --mount from= names), which the scheduler solves first.
 */
export interface Op {
  readonly kind: 'op';
  /** Progress title: `[stage 2/3] RUN make`. */
  readonly name: string;
  readonly parent: Node;
  readonly inputs: readonly Node[];
  /** The platform it runs for (its stage's). */
  readonly platform: Platform;
  /** Never served from the cache (--no-cache, --no-cache-filter). */
  readonly noCache?: boolean;
  /** Its layer ends up in the image: a cache hit starts fetching the next recorded layer (BuildCache.get). */
  readonly lookAhead?: boolean;
  key(parent: State, inputs: readonly State[]): Promise<string>;
  /** Execute: the layer of its changes (undefined when there are none). */
  run(parent: State, inputs: readonly State[], vertex: number): Promise<LayerRef | undefined>;
}

/**
 * A state that is not a step's result (an image, a directory, scratch, another stage), keyed by
 * itself: either known already (`state`), or resolved from its inputs' states.
 */
export type Source = { readonly kind: 'source'; readonly state: State } | { readonly kind: 'source'; readonly inputs: readonly Node[]; resolve(inputs: readonly State[]): Promise<State> };

/**
 * States laid one over the other, as BuildKit's MergeOp does for COPY --link (ops/merge.ts): the
 * layers of each input in order, with no work done and no layer of its own. Its key derives from
 * its inputs' keys alone, so an input solved under any other state keeps its own key and layer.
 */
export interface Merge {
  readonly kind: 'merge';
  readonly inputs: readonly [Node, ...Node[]];
}

export type Node = Op | Source | Merge;

/**
 * The state a stage starts from (its FROM): an image, a directory, scratch, or another stage, with
 * the config that comes with it (undefined for scratch) for the stage's instructions to start from.
 */
export interface BaseState extends State {
  config: ImageConfig | undefined;
  /** FROM <stage>: that stage's program, whose build state (ARGs, ONBUILD) the stage inherits. */
  program?: StageProgram;
  /** The image it comes from, through FROM <stage> chains; none for scratch or a directory. */
  base?: BaseImage;
}

/** A base image as the image-spec's base.name / base.digest annotations record it. */
export interface BaseImage {
  /** The FROM reference, normalised (docker.io/library/busybox:latest). */
  name: string;
  /** Manifest digest of the image actually used. */
  digest: string;
}

/** The config of an empty image for `platform`: a directory context's, docker-image://scratch's. */
export function emptyConfig(platform: Platform): ImageConfig {
  return { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

/** What a step's key or execution may use of the build: its request and the services every op shares. */
export interface OpContext {
  readonly req: BuildRequest;
  /** The Dockerfile's name, for errors (`Dockerfile:3: …`). */
  readonly file: string;
  /** The build's time (SOURCE_DATE_EPOCH when given): mtimes of files a COPY writes from heredocs. */
  readonly now: Date;
  readonly host: Platform;
  readonly targetPlatform: Platform;
  readonly cache: BuildCache;
  readonly snapshotter: Snapshotter;
  /** --jobs: work started ahead (a prepared COPY) takes a free slot or does not start. */
  readonly limiter: Limiter;
  /** At most one layer written per core at once. */
  readonly layerWrites: Limiter;
  /** Work begun ahead of its step: the build waits for all of it before it returns or fails. */
  readonly preparations: Promise<unknown>[];
  checkAbort(): void;
  /** The layers a COPY --from or RUN --mount from= names: a stage (built first), an image, a directory. */
  sourceLayers(from: SourceRef, line: number, platform?: Platform): Promise<LayerRef[]>;
  /** The key that names such a source's content. */
  sourceKey(from: SourceRef, line: number): Promise<string>;
  describeSource(from: SourceRef): string;
  /** A named directory context (--build-context NAME=DIR) of that name, if any. */
  namedDir(ref: string): string | undefined;
  /** A directory context opened as a tree, filtered by its own .dockerignore; once per build. */
  namedTree(path: string): Promise<BuildContext>;
}

/** A step's USER in its root filesystem; a user it does not know fails the step at its line. */
export async function stepUser(ctx: OpContext, rootfs: string, spec: string, line: number) {
  try {
    return await resolveUser(rootfs, spec);
  } catch (e) {
    if (e instanceof UnknownUser || e instanceof InvalidUserSpec) throw new BuildStepError(ctx.file, line, e.message);
    throw e;
  }
}
