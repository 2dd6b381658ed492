// Building one target of a hierarchy: the same solver and exporter as `kiln build`, with each FROM
// that names a parent target pinned to the exact manifest digest the parent just produced. The pin is
// a named context (buildx --build-context REF=docker-image://REF@DIGEST), so the Dockerfile is built
// as written and the image records the parent's tag and digest as its base.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalize } from '../reference/reference.js';
import { solve, type NamedContext } from '../build/solver.js';
import { BuildContext } from '../build/context.js';
import { exportResult } from '../build/export.js';
import type { ProgressSink } from '../build/progress.js';
import { loadDockerignore } from '../dockerfile/index.js';
import { pullImage } from '../registry/client/index.js';
import type { Executor } from '../sandbox/executor.js';
import type { Store, StoredImage } from '../store/store.js';
import { shown, type BakeTarget } from './file.js';
import type { BaseUse } from './graph.js';

export interface TargetBuild {
  store: Store;
  executor: Executor;
  progress: ProgressSink;
  signal: AbortSignal;
  /** Steps run at once within the build. */
  jobs: number;
}

/**
 * Build `target` into the store, untagged: the caller tags it once its tests pass, so a failure never
 * leaves a tag on a half-checked image. `pins` gives each parent target's manifest digest.
 */
export async function buildTarget(target: BakeTarget, bases: BaseUse[], pins: Map<string, string>, b: TargetBuild): Promise<StoredImage> {
  const namedContexts = new Map<string, NamedContext>();
  for (const u of bases) {
    if (!u.parent) continue;
    // Tagged and pinned (NAME:TAG@DIGEST): the digest picks the image, the tag is what base.name records.
    namedContexts.set(u.ref.toLowerCase(), { kind: 'image', ref: `${normalize(u.ref)}@${pins.get(u.parent)!}` });
  }
  const text = await readFile(target.dockerfile, 'utf8');
  const ignore = await loadDockerignore(target.context, target.dockerfile).catch(() => [] as string[]);
  const context = await BuildContext.open(target.context, ignore, join(b.store.root, 'contexts'));
  const result = await solve({
    store: b.store,
    context,
    dockerfile: { text, name: shown(target.dockerfile) },
    buildArgs: target.args,
    target: target.stage,
    noCache: target.noCache,
    labels: target.labels,
    network: 'default',
    jobs: b.jobs,
    executor: b.executor,
    progress: b.progress,
    signal: b.signal,
    secrets: new Map(),
    pullPolicy: 'missing',
    resolveMissingImage: (ref) => pullImage(b.store, ref),
    namedContexts,
  });
  for (const w of result.warnings) b.progress.warn(`${w.rule}: ${w.message}${w.line ? ` (line ${w.line})` : ''}`);
  return exportResult(b.store, result, [], { type: 'image' });
}
