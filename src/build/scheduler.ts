// The scheduler: runs a graph of build operations (ops/op.ts) as BuildKit's solver walks its vertices.
// Each op is solved once: after the state it changes and the states it reads, its key is computed
// from theirs and its own definition; a key in the cache reuses the recorded layer, a missing one
// runs the op (at most --jobs at once), records it, and hands the layer to the ops that follow.
// It never parses a Dockerfile and never touches a file itself: ops do, with the snapshotter and
// executor the build was given.

import type { LayerRef } from '../snapshot/snapshotter.js';
import type { BuildCache } from './cache.js';
import { BuildCancelled } from './errors.js';
import type { ProgressSink } from './progress.js';
import { mergeState } from './ops/merge.js';
import type { Merge, Node, Op, State } from './ops/op.js';

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

/** What an op left: the state after it, and what the image's history says of it. */
export interface OpResult extends State {
  /** When the op first ran (its cache record's time). */
  created: string;
  /** The op's record has no layer (a step cached before empty layers were written): history says empty_layer. */
  empty: boolean;
  /** Served from the cache (or by another platform's build of the same key). */
  cached: boolean;
}

/** A step's record shared by the per-platform builds of one multi-platform build (BuildRequest.sharedSteps). */
export type SharedSteps = Map<string, Promise<{ layer: LayerRef | undefined; created: string }>>;

export interface SchedulerOptions {
  cache: BuildCache;
  /** Bounds the ops that execute at once (--jobs); cache hits take no slot. */
  limiter: Limiter;
  progress: ProgressSink;
  signal: AbortSignal;
  /** Vertex ids start above this. */
  vertexBase?: number;
  sharedSteps?: SharedSteps;
}

export class Scheduler {
  private vertex: number;
  private readonly solved = new Map<Node, Promise<State>>();
  /** States of the nodes solved so far: an op whose parent is among them starts without waiting a turn. */
  private readonly known = new Map<Node, State>();

  constructor(private readonly opts: SchedulerOptions) {
    this.vertex = opts.vertexBase ?? 0;
  }

  /** The next progress vertex id: ids number vertices in the order they start. */
  nextVertex(): number {
    return ++this.vertex;
  }

  /** Throws BuildCancelled once the build's signal is aborted. */
  checkAbort(): void {
    if (this.opts.signal.aborted) throw new BuildCancelled('build cancelled');
  }

  /** The state after `node`, solving what it needs first; each node is solved once per scheduler. */
  solve(node: Op | Merge): Promise<OpResult>;
  solve(node: Node): Promise<State>;
  solve(node: Node): Promise<State> {
    let p = this.solved.get(node);
    if (!p) {
      if (node.kind === 'source' && 'state' in node) {
        this.known.set(node, node.state);
        p = Promise.resolve(node.state);
      } else {
        p = node.kind === 'source' ? this.resolveSource(node) : node.kind === 'merge' ? this.solveMerge(node) : this.solveOp(node);
        p.then((s) => this.known.set(node, s), () => {});
      }
      this.solved.set(node, p);
    }
    return p;
  }

  /** The state of a node that needs no solving now: a known source, or a node solved already. */
  private stateNow(node: Node): State | undefined {
    return node.kind === 'source' && 'state' in node ? node.state : this.known.get(node);
  }

  private resolveSource(node: Extract<Node, { resolve: unknown }>): Promise<State> {
    // A source that reads nothing starts resolving at once: a FROM's progress line starts in the
    // turn its stage does, and a stage waiting on another's node resumes as soon as that one is done.
    if (node.inputs.length === 0) return node.resolve([]);
    return Promise.all(node.inputs.map((n) => this.solve(n))).then((states) => node.resolve(states));
  }

  /**
   * A merge does no work: its state is its inputs' layers in order. The inputs are solved one after
   * the other, so a merged COPY starts (and numbers its vertex) once the state before it is known,
   * as a plain COPY does. Its history is the last input's: the step the merge stands for.
   */
  private async solveMerge(node: Merge): Promise<OpResult> {
    const states: State[] = [];
    for (const n of node.inputs) states.push(this.stateNow(n) ?? (await this.solve(n)));
    const last: Partial<OpResult> = states.at(-1)!;
    return { ...mergeState(states as [State, ...State[]]), created: last.created ?? new Date(0).toISOString(), empty: last.empty ?? true, cached: last.cached ?? true };
  }

  private async solveOp(op: Op): Promise<OpResult> {
    const { cache, progress } = this.opts;
    // The states it reads are solved alongside the one it changes, not after it.
    const reading = op.inputs.length ? Promise.all(op.inputs.map((n) => this.solve(n))) : undefined;
    reading?.catch(() => {}); // awaited below, unless the parent fails first
    // Vertices are numbered in the order their ops start (their parent's state known), in the same
    // turn as that state arrives: stages that start together number their first steps in stage order.
    const parent = this.stateNow(op.parent) ?? (await this.solve(op.parent));
    this.checkAbort();
    const id = this.nextVertex();
    const inputs = reading ? await reading : [];
    const key = await op.key(parent, inputs);
    const hit = op.noCache ? undefined : await cache.get(key, op.lookAhead);
    if (hit) {
      progress.start(id, op.name);
      progress.cached(id);
      return this.after(parent, key, hit.layer ?? undefined, hit.created, true);
    }
    const run = async () => {
      const layer = await this.opts.limiter.run(async () => {
        this.checkAbort();
        progress.start(id, op.name);
        try {
          const l = await op.run(parent, inputs, id);
          progress.done(id);
          return l;
        } catch (e) {
          progress.done(id, (e as Error).message.split('\n')[0]);
          throw e;
        }
      });
      return { layer, created: (await cache.put(key, layer, parent.key)).created };
    };
    // Another platform's build running the very same step (same key): its result is this one's.
    const shared = this.opts.sharedSteps;
    let running = shared?.get(key);
    let cached = false;
    if (running) {
      progress.start(id, op.name);
      await running.catch(() => {});
      progress.cached(id);
      cached = true;
    } else {
      running = run();
      shared?.set(key, running);
    }
    const rec = await running;
    return this.after(parent, key, rec.layer, rec.created, cached);
  }

  private after(parent: State, key: string, layer: LayerRef | undefined, created: string, cached: boolean): OpResult {
    return { key, layers: layer ? [...parent.layers, layer] : parent.layers, keys: [...parent.keys, key], created, empty: !layer, cached };
  }
}
