// Named build contexts (buildx --build-context NAME=…) as sources: a directory is a tree for COPY
// --from and a one-layer base for FROM, docker-image://scratch the empty image.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDockerignore } from '../../dockerfile/index.js';
import type { LayerRef } from '../../snapshot/snapshotter.js';
import { cacheKey } from '../cache.js';
import { BuildContext } from '../context.js';
import { contextDigest, copyEntries } from '../copy.js';
import type { NamedContext } from '../solver.js';
import { writeEntries } from './layer.js';
import type { Platform } from '../../oci/types.js';
import { emptyConfig, type BaseState, type OpContext, type Source } from './op.js';

export interface NamedContexts {
  /** The directory a name stands for, if it names a directory context. */
  dir(ref: string): string | undefined;
  /** docker-image://scratch is the empty image (BuildKit dockerui/namedcontext.go:80). */
  scratch(ref: string): boolean;
  /** A directory context opened as a tree, once per build. */
  tree(path: string): Promise<BuildContext>;
  /** A directory context as one layer, and its key: for FROM, COPY --from and RUN --mount from=. */
  base(dir: string): Promise<{ layer: LayerRef; key: string }>;
  /** Record the file hashes of every tree opened, for the next build. */
  save(): Promise<void>;
}

/** FROM <name of a directory context>: the directory is the base filesystem, as one layer, with the empty image's config. */
export function directorySource(contexts: NamedContexts, dir: string, platform: Platform): Source {
  return {
    kind: 'source',
    inputs: [],
    async resolve(): Promise<BaseState> {
      const d = await contexts.base(dir);
      return { key: d.key, layers: [d.layer], keys: [d.key], config: emptyConfig(platform) };
    },
  };
}

export function createNamedContexts(ctx: OpContext, named: ReadonlyMap<string, NamedContext>): NamedContexts {
  const trees = new Map<string, Promise<BuildContext>>();
  const bases = new Map<string, Promise<{ layer: LayerRef; key: string }>>();
  const readDockerignore = (dir: string): Promise<string[]> => readFile(join(dir, '.dockerignore'), 'utf8').then(parseDockerignore, () => []);

  const tree = (path: string): Promise<BuildContext> => {
    let t = trees.get(path);
    // A directory context is filtered by its own .dockerignore (BuildKit dockerui/namedcontext.go:253).
    if (!t) trees.set(path, (t = readDockerignore(path).then((ignore) => BuildContext.open(path, ignore, join(ctx.req.store.root, 'contexts')))));
    return t;
  };

  const base = (dir: string): Promise<{ layer: LayerRef; key: string }> => {
    let p = bases.get(dir);
    if (!p) {
      p = (async () => {
        const t = await tree(dir);
        const root = (await t.stat(''))!;
        const digest = await contextDigest(t, [{ file: root, target: '/' }], []);
        const key = cacheKey('', { directory: digest });
        const hit = await ctx.cache.get(key);
        const entries = hit ? [] : await copyEntries(t, [{ file: root, target: '/' }], [], { fromContext: true, existing: async () => undefined, exclude: [], now: ctx.now.getTime() });
        const layer = hit?.layer ?? (await ctx.layerWrites.run(() => writeEntries(ctx, entries)));
        if (!hit) await ctx.cache.put(key, layer);
        return { layer: layer!, key };
      })();
      bases.set(dir, p);
    }
    return p;
  };

  return {
    dir(ref) {
      const c = named.get(ref.toLowerCase());
      return c?.kind === 'dir' ? c.path : undefined;
    },
    scratch(ref) {
      const c = named.get(ref.toLowerCase());
      return c?.kind === 'image' && c.ref === 'scratch';
    },
    tree,
    base,
    async save() {
      for (const t of trees.values()) await (await t).save();
    },
  };
}
