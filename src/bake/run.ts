// Running a hierarchy: targets in topological order, independent branches at once (bounded), each
// child only once its parents are built, tested, tagged (and pushed); a failure stops its branch
// and leaves the targets below it stale while the other branches go on.

import type { KeyObject } from 'node:crypto';
import type { ProgressSink } from '../build/progress.js';
import { ImageUnknown } from '../errors.js';
import { layersOf } from '../inspect/image.js';
import { runStructureTests, type StructureConfig } from '../inspect/index.js';
import { pullImage, pushImage, type PushOptions } from '../registry/client/index.js';
import type { Executor } from '../sandbox/executor.js';
import { createSnapshotter } from '../snapshot/index.js';
import type { Store, StoredImage } from '../store/store.js';
import { familiarName } from '../store/describe.js';
import { normalize } from '../reference/reference.js';
import { buildTarget, type BuildTrust } from './build.js';
import type { Built } from '../build/entry.js';
import { formatPlatform } from '../store/store.js';
import { Limiter } from '../build/solver.js';
import { BakeFailed, BaseRefused, BaseUnknown } from './errors.js';
import { PolicyRefused } from '../sign/errors.js';
import type { Hierarchy } from './graph.js';
import type { BakeTarget } from './file.js';

export interface BakeOptions {
  store: Store;
  executor: Executor;
  /** Targets built at once. */
  parallel: number;
  /** Steps run at once within one build. */
  jobs: number;
  /** container-structure-test configurations per target, already read. */
  tests: Map<string, StructureConfig[]>;
  /** Each target's secrets, read before anything builds. */
  secrets: Map<string, Map<string, Buffer>>;
  /** Signs the provenance and SBOM attestations (kiln build --attest-key). */
  attestKey?: KeyObject;
  /** policy.yaml for the images the targets take from outside the bake. */
  trust?: BuildTrust;
  push: boolean;
  pushOptions?: PushOptions;
  progress: (target: string) => ProgressSink;
  /** One line of the bake's own report (stderr). */
  log: (line: string) => void;
  signal: AbortSignal;
}

export type TargetOutcome =
  /** `digest`: the image's manifest, or the index of a target built for several platforms. */
  | { status: 'built'; image: StoredImage; digest: string }
  | { status: 'failed'; error: Error; image?: StoredImage }
  | { status: 'stale'; below: string };

/**
 * The manifest digest each selected target's parents that are not rebuilt stand at now: a child is
 * rebuilt on the image its parent's first tag names in the store.
 */
export async function currentParents(h: Hierarchy, selected: Set<string>, store: Store): Promise<Map<string, string>> {
  const pins = new Map<string, string>();
  for (const name of selected) {
    for (const p of h.parents.get(name)!) {
      if (selected.has(p) || pins.has(p)) continue;
      const tag = h.file.targets.get(p)!.tags[0]!;
      try {
        pins.set(p, (await store.resolveImage(tag)).manifestDescriptor.digest);
      } catch (e) {
        if (!(e instanceof ImageUnknown)) throw e;
        throw new BaseUnknown(`${h.file.path}: target "${name}" is built on target "${p}", which is not rebuilt and has no image ${familiarName(normalize(tag))} in the store (bake "${p}" first)`);
      }
    }
  }
  return pins;
}

/**
 * Every external base image (not a target's tag) of the selected targets is in the store or is
 * pulled now, before anything builds; one that is neither is an error naming the file, the target
 * and the Dockerfile line, and so is one the trust policy refuses (stored or pulled).
 */
export async function resolveExternalBases(h: Hierarchy, selected: Set<string>, store: Store, pull = true, trust?: BuildTrust): Promise<void> {
  const seen = new Map<string, Promise<{ error: Error; refused?: boolean } | undefined>>();
  const refusal = (e: unknown) => ({ error: e as Error, refused: e instanceof PolicyRefused });
  const check = (ref: string) =>
    (async () => {
      try {
        const stored = await store.resolveImage(ref);
        await trust?.admitStored?.(stored, ref);
        return undefined;
      } catch (e) {
        if (!(e instanceof ImageUnknown)) return refusal(e);
      }
      if (!pull) return { error: new Error('not in the store') };
      try {
        const admit = await trust?.admitPull(ref);
        await pullImage(store, ref, admit ? { admit } : {});
        return undefined;
      } catch (e) {
        return refusal(e);
      }
    })();
  for (const name of h.order) {
    if (!selected.has(name)) continue;
    for (const u of h.bases.get(name)!) {
      if (u.parent) continue;
      if (!seen.has(u.ref)) seen.set(u.ref, check(u.ref));
      const failed = await seen.get(u.ref)!;
      if (failed?.refused) throw new BaseRefused(`${h.file.path}: target "${name}": ${u.where}: base image "${u.ref}": ${failed.error.message.split('\n')[0]}`);
      if (failed) {
        throw new BaseUnknown(`${h.file.path}: target "${name}": ${u.where}: "${u.ref}" names nothing known: no target has this tag, it is not in the store, and it could not be pulled (${failed.error.message.split('\n')[0]})`);
      }
    }
  }
}

export async function bake(h: Hierarchy, selected: Set<string>, pins: Map<string, string>, o: BakeOptions): Promise<Map<string, TargetOutcome>> {
  const outcomes = new Map<string, TargetOutcome>();
  const running = new Map<string, Promise<TargetOutcome>>();
  const slots = new Limiter(Math.max(1, o.parallel));
  const digests = new Map(pins);

  const run = async (name: string): Promise<TargetOutcome> => {
    for (const p of h.parents.get(name)!) {
      if (!selected.has(p)) continue;
      const parent = await running.get(p)!;
      if (parent.status !== 'built') return { status: 'stale', below: parent.status === 'stale' ? parent.below : p };
    }
    return slots.run(() => make(name));
  };

  const make = async (name: string): Promise<TargetOutcome> => {
    const t = h.file.targets.get(name)!;
    const progress = o.progress(name);
    let image: StoredImage | undefined;
    const startedOn = new Date().toISOString();
    try {
      o.log(`[${name}] building ${shown(t.tags)}${t.platforms.length ? ` for ${t.platforms.map(formatPlatform).join(', ')}` : ''}`);
      const built = await buildTarget(t, h.bases.get(name)!, digests, { store: o.store, executor: o.executor, progress, signal: o.signal, jobs: o.jobs, secrets: o.secrets.get(name) ?? new Map(), ...(o.trust ? { trust: o.trust } : {}) });
      image = built.images[0]!.image;
      progress.close();
      for (const s of built.sboms) o.log(`[${name}] SBOM ${s.digest}${s.platform && t.platforms.length > 1 ? ` (${formatPlatform(s.platform)})` : ''}: ${s.packages} packages`);
      for (const n of built.notes) o.log(`[${name}] ${n}`);
      const configs = o.tests.get(name) ?? [];
      // Every platform's image passes the tests (a foreign one's commands run emulated).
      for (const { platform, image: img } of configs.length ? built.images : []) {
        const report = await runStructureTests(
          { config: img.config, layers: layersOf(img), snapshotter: await createSnapshotter(o.store), executor: () => o.executor },
          configs,
        );
        const failed = report.Results.filter((r) => !r.Pass);
        const of = platform && built.images.length > 1 ? ` for ${formatPlatform(platform)}` : '';
        if (failed.length || report.Total === 0) {
          throw new Error(`structure tests failed${of}: ${failed.length} of ${report.Total} (${failed.map((r) => `${r.Test}: ${(r.Errors ?? []).join('; ').replace(/\n/g, '\\n')}`).join(', ')}); not tagged`);
        }
        o.log(`[${name}] tests passed${of}: ${report.Pass} of ${report.Total}`);
      }
      // Tagged only now: built, and tested when the file names tests.
      // type=image,name=REF names it too (and pushes there with push=true), as kiln build's --output.
      const names = t.output.type === 'image' && t.output.name ? [...t.tags, t.output.name] : t.tags;
      await o.store.addImage(built.descriptor, names);
      digests.set(name, built.descriptor.digest);
      o.log(`[${name}] built ${built.descriptor.digest}${built.images.length > 1 ? ` (index of ${built.images.length} images)` : ` (image ${image.id.slice(7, 19)})`}`);
      if (t.provenance || (t.sbom && o.attestKey)) {
        for (const line of await attest(o.store, t, built, startedOn, o.attestKey)) o.log(`[${name}] ${line}`);
      }
      if (o.push || (t.output.type === 'image' && t.output.push)) {
        for (const tag of names) {
          const r = await pushImage(o.store, tag, undefined, o.pushOptions);
          o.log(`[${name}] pushed ${r.repository}:${r.reference}@${r.digest}`);
        }
      }
      return { status: 'built', image, digest: built.descriptor.digest };
    } catch (e) {
      progress.close();
      const error = e as Error;
      o.log(`[${name}] FAILED: ${error.message}`);
      return image ? { status: 'failed', error, image } : { status: 'failed', error };
    }
  };

  for (const name of h.order) if (selected.has(name)) running.set(name, run(name));
  for (const [name, p] of running) outcomes.set(name, await p);
  return outcomes;
}

/** The error for a bake with failures: which targets failed and which descendants were left stale. */
export function failureOf(h: Hierarchy, outcomes: Map<string, TargetOutcome>): BakeFailed | undefined {
  const failed = [...outcomes].filter(([, o]) => o.status === 'failed').map(([n, o]) => `"${n}" (${(o as { error: Error }).error.message.split('\n')[0]})`);
  if (failed.length === 0) return undefined;
  const stale = [...outcomes].filter(([, o]) => o.status === 'stale').map(([n]) => n);
  return new BakeFailed(
    `${h.file.path}: ${failed.length} target${failed.length === 1 ? '' : 's'} failed: ${failed.join(', ')}; ` +
      (stale.length ? `left stale (not rebuilt): ${stale.join(', ')}` : 'no descendants were left stale'),
  );
}

/**
 * `attest: [type=provenance]` (and type=sbom with a key): the attestations kiln build --provenance
 * writes, for each platform's image, as the digests kiln push sends.
 */
async function attest(store: Store, t: BakeTarget, built: Built, startedOn: string, key: KeyObject | undefined): Promise<string[]> {
  const [{ attach, provenance, ProvenanceType, SpdxType, storedSpdx }, { distributableImage }] = await Promise.all([import('../sign/provenance.js'), import('../registry/client/push.js')]);
  const lines: string[] = [];
  for (const { image: img } of built.images) {
    const image = await distributableImage(store, img);
    if (t.provenance) {
      const predicate = await provenance(store, {
        contextDir: t.context,
        dockerfile: t.dockerfile,
        buildArgs: t.args,
        ...(t.stage ? { target: t.stage } : {}),
        ...(t.platforms.length ? { platform: t.platforms.map(formatPlatform).join(',') } : {}),
        startedOn,
      });
      lines.push(await attach(store, image, ProvenanceType, predicate, key));
    }
    const spdx = t.sbom && key ? await storedSpdx(store, image) : undefined;
    if (spdx) lines.push(await attach(store, image, SpdxType, spdx, key));
  }
  return lines;
}

function shown(tags: string[]): string {
  return tags.map((t) => familiarName(normalize(t))).join(', ');
}
