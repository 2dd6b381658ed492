// The one way into a build, for `kiln build` and `kiln bake` alike: a Dockerfile solved for one
// platform or several (then an OCI image index over one image per platform, as buildx makes it),
// with cache import and export, SBOMs, and the result stored (tagged or not) and exported. The
// commands parse their options into a BuildSpec, call build(), then print, test, tag or push.

import { availableParallelism } from 'node:os';
import type { Descriptor, Platform } from '../oci/types.js';
import type { StoredImage } from '../store/store.js';
import { formatPlatform } from '../store/store.js';
import { UsageError } from '../errors.js';
import { BuildCancelled } from './errors.js';
import { exportIndex, exportResult, multiPlatformRefusal, type Output } from './export.js';
import { createSnapshotter } from '../snapshot/index.js';
import { checkEmulatorsFor, Limiter, solve, type BuildRequest, type BuildResult, type RunFailure } from './solver.js';
import { addInlineCache, exportCache, importCaches, type CacheTo } from './cache-transfer.js';

export interface BuildSpec {
  /** Everything the solver needs but the per-platform parts (the entry sets those). */
  request: Omit<BuildRequest, 'platform' | 'sharedSteps' | 'vertexBase' | 'platformLabel' | 'cacheSources' | 'onRunFailure' | 'snapshotter' | 'layerWrites'>;
  /** Target platforms: none is the host's, a plain image; one is an image of it; several, an index. */
  platforms: Platform[];
  /** Names the stored result gets (an index's, for several platforms); none leaves it untagged. */
  tags: string[];
  output: Output;
  /** --cache-from references, imported before the build; --cache-to, exported after it. */
  cacheFrom: string[];
  cacheTo: CacheTo[];
  /** Store an SBOM beside each platform's image (its referrer). */
  sbom: boolean;
  /**
   * --on-error=shell: called with a failed RUN's sandbox before it is thrown away. With several
   * platforms, the other platforms' solves are cancelled first, and only the first failure opens it.
   */
  onRunFailure?: (failure: RunFailure & { platform?: Platform }) => Promise<void>;
}

export interface Built {
  /** The image ID (a plain image) or the index's digest: what --iidfile and -q print. */
  id: string;
  /** The stored result: the image's manifest or the index. */
  descriptor: Descriptor;
  /** Each platform's image (one, for a plain image); `platform` unset for a host build without --platform. */
  images: { platform?: Platform; image: StoredImage }[];
  sboms: { platform?: Platform; digest: string; packages: number }[];
  /** Lines for the user about what was exported (the registry cache). */
  notes: string[];
}

/** What the BuildKit texts of some warnings do not say: what to do instead. */
const warningHints: Record<string, string> = {
  SecretsUsedInArgOrEnv: ': pass secrets with --secret id=ID,src=FILE and RUN --mount=type=secret,id=ID, which never stores them',
};

export async function build(spec: BuildSpec): Promise<Built> {
  const { request, platforms, output } = spec;
  const { store } = request;
  const refusal = multiPlatformRefusal(output, platforms.length);
  if (refusal) throw new UsageError(`output ${refusal}`);
  const warn = (m: string) => request.progress.warn(m);
  const cacheSources = await importCaches(spec.cacheFrom, warn);
  const solved = platforms.length > 1 ? await solveEach(spec, cacheSources) : [{ ...(platforms[0] ? { platform: platforms[0] } : {}), result: await solveOne(spec, cacheSources) }];
  if (request.signal.aborted) throw new BuildCancelled('build cancelled');
  for (const { result } of solved) for (const w of result.warnings) warn(`${w.rule}: ${w.message}${w.line ? ` (line ${w.line})` : ''}${warningHints[w.rule] ?? ''}`);
  if (spec.cacheTo.some((c) => c.type === 'inline')) for (const { result } of solved) await addInlineCache(store, result);

  let built: Built;
  if (platforms.length > 1) {
    const descriptor = await exportIndex(store, solved.map((s) => ({ platform: s.platform!, result: s.result })), spec.tags, output);
    const images = [];
    for (const p of platforms) images.push({ platform: p, image: await store.loadImage(descriptor, [], p) });
    built = { id: descriptor.digest, descriptor, images, sboms: [], notes: [] };
  } else {
    const names = output.type === 'image' && output.name ? [output.name, ...spec.tags] : spec.tags;
    const image = await exportResult(store, solved[0]!.result, names, output);
    built = { id: image.id, descriptor: image.manifestDescriptor, images: [{ ...(platforms[0] ? { platform: platforms[0] } : {}), image }], sboms: [], notes: [] };
  }
  if (spec.sbom) {
    const { storeSbom } = await import('../sbom/index.js'); // the cataloguers, only for --sbom
    for (const { platform, image } of built.images) {
      const s = await storeSbom(store, image);
      built.sboms.push({ ...(platform ? { platform } : {}), digest: s.descriptor.digest, packages: s.catalog.packages.length });
    }
  }
  // The result is stored (and tagged) before anything goes to a registry: a failed export keeps it.
  const results = solved.map((s) => s.result);
  for (const c of spec.cacheTo) if (c.type === 'registry') built.notes.push(await exportCache(store, c, results.length === 1 ? results[0]! : results, warn));
  return built;
}

function solveOne(spec: BuildSpec, cacheSources: BuildRequest['cacheSources']): Promise<BuildResult> {
  const platform = spec.platforms[0];
  return solve({
    ...spec.request,
    cacheSources,
    ...(platform ? { platform } : {}),
    ...(spec.onRunFailure ? { onRunFailure: (f: RunFailure) => spec.onRunFailure!({ ...f, ...(platform ? { platform } : {}) }) } : {}),
  });
}

/**
 * One solve per platform, in parallel, sharing steps of equal keys (the build platform's stages run
 * once); BuildKit likewise solves one result per platform ref. Each solve has a signal of its own so
 * that a failure with --on-error=shell can stop the others while the shell is open.
 */
async function solveEach(spec: BuildSpec, cacheSources: BuildRequest['cacheSources']): Promise<{ platform: Platform; result: BuildResult }[]> {
  const { request, platforms } = spec;
  for (const platform of platforms) await checkEmulatorsFor({ ...request, platform });
  const sharedSteps: NonNullable<BuildRequest['sharedSteps']> = new Map();
  // One snapshotter and one layer-write bound for all the solves: a base layer two platforms'
  // stages use (the build platform's, under FROM --platform=$BUILDPLATFORM) is extracted once.
  const snapshotter = await createSnapshotter(request.store);
  const layerWrites = new Limiter(availableParallelism());
  const stops = platforms.map(() => new AbortController());
  let shellTaken = false;
  const results = await Promise.allSettled(
    platforms.map((platform, i) =>
      solve({
        ...request,
        cacheSources,
        platform,
        sharedSteps,
        snapshotter,
        layerWrites,
        signal: AbortSignal.any([request.signal, stops[i]!.signal]),
        vertexBase: i * 1_000_000,
        platformLabel: formatPlatform(platform),
        ...(spec.onRunFailure
          ? {
              onRunFailure: async (f: RunFailure) => {
                if (shellTaken) return;
                shellTaken = true;
                for (const [j, s] of stops.entries()) if (j !== i) s.abort();
                await spec.onRunFailure!({ ...f, platform });
              },
            }
          : {}),
      }),
    ),
  );
  // The error to report is the failure, not what the solves stopped because of it ended with.
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [{ error: r.reason as unknown, stopped: stops[i]!.signal.aborted }] : []));
  if (failures.length) throw (failures.find((f) => !f.stopped && !(f.error instanceof BuildCancelled)) ?? failures.find((f) => !f.stopped) ?? failures[0]!).error;
  return results.map((r, i) => ({ platform: platforms[i]!, result: (r as PromiseFulfilledResult<BuildResult>).value }));
}
