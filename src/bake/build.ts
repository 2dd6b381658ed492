// Building one target of a hierarchy: the build entry point of `kiln build` (build/entry.ts), with
// each FROM that names a parent target pinned to the exact digest the parent just produced. The pin
// is a named context (buildx --build-context REF=docker-image://REF@DIGEST), so the Dockerfile is
// built as written and the image records the parent's tag and digest as its base. The target's
// platforms, output, caches, secrets, SSH agents, named contexts and SBOM are kiln build's.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalize } from '../reference/reference.js';
import type { NamedContext } from '../build/solver.js';
import { BuildContext } from '../build/context.js';
import { build, type Built } from '../build/entry.js';
import { fetchNamedContext } from '../build/named.js';
import type { ProgressSink } from '../build/progress.js';
import { openSshAgents } from '../build/ssh.js';
import { loadDockerignore } from '../dockerfile/index.js';
import type { Platform } from '../oci/types.js';
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
  /** The target's secrets, read before the bake started. */
  secrets: Map<string, Buffer>;
  /** The trust policy (policy.yaml) for the images the bake takes from outside. */
  trust?: BuildTrust;
}

/**
 * policy.yaml as a build applies it: to the FROM images it pulls (checked before a layer is
 * fetched) and to those the store already has. A bake's own parent targets are not asked: the bake
 * built them, from FROM lines that were.
 */
export interface BuildTrust {
  admitPull(reference: string): Promise<((digests: string[]) => Promise<void>) | undefined>;
  admitStored?: (image: StoredImage, reference: string) => Promise<void>;
}

/**
 * Build `target` into the store, untagged: the caller tags it once its tests pass, so a failure never
 * leaves a tag on a half-checked image. `pins` gives each parent target's digest (an image's
 * manifest, or an index for a parent built for several platforms).
 */
export async function buildTarget(target: BakeTarget, bases: BaseUse[], pins: Map<string, string>, b: TargetBuild): Promise<Built> {
  const namedContexts = new Map<string, NamedContext>();
  const cleanups: (() => Promise<void>)[] = [];
  const ssh = await openSshAgents(target.ssh);
  cleanups.push(() => ssh.close());
  try {
    for (const c of target.contexts) {
      if ('context' in c) namedContexts.set(c.name, c.context);
      else {
        const fetched = await fetchNamedContext(c.url);
        cleanups.push(fetched.cleanup);
        namedContexts.set(c.name, fetched.context);
      }
    }
    const pinned = new Set<string>();
    for (const u of bases) {
      if (!u.parent) continue;
      // Tagged and pinned (NAME:TAG@DIGEST): the digest picks the image, the tag is what base.name records.
      const ref = `${normalize(u.ref)}@${pins.get(u.parent)!}`;
      namedContexts.set(u.ref.toLowerCase(), { kind: 'image', ref });
      pinned.add(ref);
    }
    const admitStored = b.trust?.admitStored;
    const text = await readFile(target.dockerfile, 'utf8');
    const ignore = await loadDockerignore(target.context, target.dockerfile).catch(() => [] as string[]);
    const context = await BuildContext.open(target.context, ignore, join(b.store.root, 'contexts'));
    return await build({
      request: {
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
        secrets: b.secrets,
        ssh: ssh.sockets,
        pullPolicy: 'missing',
        resolveMissingImage: async (ref: string, platform?: Platform) => {
          const admit = await b.trust?.admitPull(ref);
          return pullImage(b.store, ref, { ...(platform ? { platform, keepIndex: true } : {}), ...(admit ? { admit } : {}) });
        },
        ...(admitStored ? { admitStoredImage: (image: StoredImage, ref: string) => (pinned.has(ref) ? Promise.resolve() : admitStored(image, ref)) } : {}),
        namedContexts,
      },
      platforms: target.platforms,
      tags: [],
      // The store's names are given once the tests pass (bake/run.ts); file outputs carry the
      // target's tags as their names, as buildx's do.
      output: target.output.type === 'image' ? { type: 'image' } : target.output.type === 'oci' || target.output.type === 'docker' ? { ...target.output, names: [...target.tags, ...(target.output.names ?? [])] } : target.output,
      cacheFrom: target.cacheFrom,
      cacheTo: target.cacheTo,
      sbom: target.sbom,
    });
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}
