// COPY and ADD as a copy op: files of the context, another stage, an image, or of the http and git
// sources it reads (ops/http.ts, ops/git.ts: fetched by them, only copied here), written as a layer
// over the parent; keyed by the content it copies, never by when it was copied.

import { join, posix } from 'node:path';
import { isGitSource } from '../../dockerfile/dispatch.js';
import type { CopyStep } from '../../dockerfile/index.js';
import { resolveChown } from '../../sandbox/user.js';
import { pathInfo, type LayerRef } from '../../snapshot/snapshotter.js';
import { cacheKey } from '../cache.js';
import { BuildContext } from '../context.js';
import { archiveKind, chmodOf, contextDigest, copyEntries, destInfo, excludePatterns, sameDestInfo, selectSources, unpackArchive, type DestInfo, type Selection } from '../copy.js';
import { BuildCancelled, BuildStepError } from '../errors.js';
import { DirTree, type SourceTree } from '../tree.js';
import { writeEntries } from './layer.js';
import { isUrl } from './http.js';
import type { FetchedFiles, OpContext } from './op.js';

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

/** The files of the http and git sources a step reads, by the source as the step names it. */
export type Fetched = ReadonlyMap<string, FetchedFiles>;

/** COPY/ADD's key and execution, with what a build's COPYs share: content keys, prepared copies. */
export interface Copy {
  key(step: CopyStep, parent: string, fetched: Fetched): Promise<string>;
  run(step: CopyStep, layers: LayerRef[], fetched: Fetched): Promise<LayerRef | undefined>;
  /** Start `step` while the RUN before it runs on `layers` (the RUN's parent), when a --jobs slot is free. */
  prepareAhead(step: CopyStep, layers: LayerRef[]): void;
}

/** The sources of an ADD that the http and git sources fetch: repositories, and the other URLs. */
export function fetchedSources(step: CopyStep): { git: string[]; remote: string[] } {
  const git = step.add && !step.from ? step.sources.filter(isGitSource) : [];
  return { git, remote: step.add && !step.from ? step.sources.filter((s) => isUrl(s) && !git.includes(s)) : [] };
}

export function createCopy(ctx: OpContext): Copy {
  const { req, file, snapshotter } = ctx;
  // COPYs prepared while the RUN before them runs (see prepareAhead).
  const preparedCopies = new Map<CopyStep, Promise<PreparedCopy | undefined>>();
  const copyContentKeys = new Map<CopyStep, Promise<unknown>>();
  const none: Fetched = new Map();

  /** The step's cache key: parent key + definition + the content of what it copies. */
  async function key(step: CopyStep, parent: string, fetched: Fetched): Promise<string> {
    return cacheKey(parent, { copy: await contentKeyOf(step, fetched), dest: step.destPath, chown: step.chown, chmod: step.chmod, exclude: step.exclude, parents: step.parents, add: step.add, heredocs: step.heredocs, unpack: step.unpack });
  }

  async function run(step: CopyStep, layers: LayerRef[], fetched: Fetched): Promise<LayerRef | undefined> {
    const prepared = await preparedCopies.get(step);
    preparedCopies.delete(step);
    if (prepared && (await parentAgrees(step, prepared.reads, layers))) return prepared.layer;
    return executeCopy(step, layers, fetched);
  }

  /** A COPY's sources as its key names them, computed once per step (prepareAhead starts it early). */
  function contentKeyOf(step: CopyStep, fetched: Fetched): Promise<unknown> {
    let content = copyContentKeys.get(step);
    if (!content) copyContentKeys.set(step, (content = copyContentKey(step, fetched)));
    return content;
  }

  async function copyContentKey(step: CopyStep, fetched: Fetched): Promise<unknown> {
    const dirCtx = step.from && 'image' in step.from ? ctx.namedDir(step.from.image) : undefined;
    if (dirCtx) {
      const tree = await ctx.namedTree(dirCtx);
      const sel = await selectSources({ step: { ...step, heredocs: [] }, file, tree }, async () => true);
      return { named: await contextDigest(tree, sel, excludePatterns(step.exclude), req.signal) };
    }
    if (step.from) return { from: await ctx.sourceKey(step.from, step.line), sources: step.sources };
    const { git, remote } = fetchedSources(step);
    const local = step.sources.filter((s) => !remote.includes(s) && !git.includes(s));
    // The sources' own keys: a repository's commit (never its clone's files), a URL's checksum or content.
    const parts: unknown[] = git.map((src) => fetchedFiles(fetched, src).keyPart);
    if (local.length) {
      const sel = await selectSources({ step: { ...step, sources: local, heredocs: [] }, file, tree: req.context }, async () => true);
      parts.push(await contextDigest(req.context, sel, excludePatterns(step.exclude), req.signal));
    }
    for (const url of remote) parts.push(fetchedFiles(fetched, url).keyPart);
    return parts;
  }

  async function executeCopy(step: CopyStep, layers: LayerRef[], fetched: Fetched, reads?: ParentReads): Promise<LayerRef | undefined> {
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
      const dirCtx = step.from && 'image' in step.from ? ctx.namedDir(step.from.image) : undefined;
      if (dirCtx) tree = await ctx.namedTree(dirCtx);
      else if (step.from) {
        const srcLayers = await ctx.sourceLayers(step.from, step.line);
        const v = await snapshotter.view(srcLayers, 'copy-from');
        cleanups.push(() => v.release());
        tree = new DirTree(v.path);
      }
      const chmod = chmodOf(step.chmod, fail);
      let owner: { uid: number; gid: number } | undefined;
      if (step.chown) owner = await resolveChown(parentView.path, step.chown).catch((e: Error) => fail(e.message));
      if (reads) reads.owner = owner;
      const { git, remote } = fetchedSources(step);
      const local = step.sources.filter((s) => !remote.includes(s) && !git.includes(s));
      const selections: { tree: SourceTree; sel: Selection[] }[] = [];
      // ADD of a repository copies its files (and .git with --keep-git-dir) into the destination directory.
      for (const src of git) {
        const tree = new DirTree((await fetchedFiles(fetched, src).open()).dir);
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
        const dl = await fetchedFiles(fetched, url).open();
        const dlTree = new DirTree(dl.dir);
        const f = (await dlTree.stat(dl.name))!;
        // A download is unpacked only when asked (ADD --unpack=true), as BuildKit does.
        const kind = step.unpack === true ? await archiveKind(f.abs) : undefined;
        if (kind) {
          const u = await unpackArchive(f.abs, kind).catch((e: Error) => fail(`ADD failed: cannot unpack ${url}: ${e.message}`));
          cleanups.push(u.cleanup);
          selections.push({ tree: u.tree, sel: [{ file: (await u.tree.stat(''))!, target: step.destPath.replace(/\/+$/, '') || '/' }] });
          continue;
        }
        const target = dirDest || (await destIsDir(step.destPath)) ? posix.join(step.destPath, dl.name) : step.destPath;
        selections.push({ tree: dlTree, sel: [{ file: f, target }] });
      }
      const heredocs = step.heredocs.map((h) => ({ target: dirDest || step.destPath.endsWith('/') ? posix.join(step.destPath, h.name) : step.destPath, content: h.content }));
      const all = [];
      const nowMs = ctx.now.getTime();
      for (const [i, s] of selections.entries()) {
        all.push(...(await copyEntries(s.tree, s.sel, i === 0 ? heredocs : [], { owner, chmod, fromContext: s.tree instanceof BuildContext, existing, exclude: excludePatterns(step.exclude), now: nowMs })));
      }
      if (selections.length === 0 && heredocs.length) all.push(...(await copyEntries(req.context, [], heredocs, { owner, chmod, fromContext: true, existing, exclude: [], now: nowMs })));
      const merged = new Map(all.map((e) => [e.path, e]));
      const entries = [...merged.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      if (entries.length === 0) return undefined;
      return await ctx.layerWrites.run(() => writeEntries(ctx, entries));
    } finally {
      for (const c of cleanups.reverse()) await c().catch(() => {});
    }
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
    const started = ctx.limiter.tryRun(async (): Promise<PreparedCopy> => {
      const reads: ParentReads = { paths: new Map() };
      // The sources are hashed for the COPY's key once the copy is written, not alongside it: the
      // key is not needed before the RUN ends, and a third busy thread (the hashing one) on top of
      // the packing and the extraction slowed the RUN's own sandbox start and exit (S2: RUN sleep 3
      // took 3.5 s instead of 3.1). A cancelled build waits for the copy to stop and clean up, not
      // for the hashing, which only reads.
      // (A step that reads http or git sources is not prepared: it has no fetched files here.)
      const copying = executeCopy(step, layers, none, reads);
      const hashing = copying.then(
        () => contentKeyOf(step, none),
        () => contentKeyOf(step, none),
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
    ctx.preparations.push(settled);
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

  return { key, run, prepareAhead };
}

/** The files the frontend gave a step for one of its sources (it makes an input of each). */
function fetchedFiles(fetched: Fetched, src: string): FetchedFiles {
  const f = fetched.get(src);
  if (!f) throw new Error(`internal error: no http or git source for ${src}`);
  return f;
}
