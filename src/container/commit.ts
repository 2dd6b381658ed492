import { directoryEntries, packEntries, writeLayer } from '../archive/index.js';
import { dispatchStage, parseChanges, planBuild } from '../dockerfile/index.js';
import { UsageError } from '../errors.js';
import { MediaType } from '../oci/mediatypes.js';
import type { ContainerConfig, Descriptor, History, ImageConfig } from '../oci/types.js';
import { normalize, parseReference } from '../reference/reference.js';
import { upperOf, viewImage } from '../snapshot/container.js';
import type { LayerRef } from '../snapshot/snapshotter.js';
import type { Store, StoredImage } from '../store/store.js';
import { hasPlaceholders, placeholderFilter } from './placeholders.js';
import { freeze } from './process.js';
import { readState, type Container, layerOf } from './record.js';

// `docker commit`: a new image made of the container's image, one more layer holding the container's
// changes (its overlay upper directory, whiteouts turned into OCI whiteouts), and a config carrying the
// container's Config with the --change instructions applied (moby daemon/commit.go and
// image.NewChildImage: the history entry records author, comment and the container's command).

export interface CommitOptions {
  author?: string;
  message?: string;
  /** Dockerfile instructions, as `docker commit --change`. */
  changes: string[];
  /** Stop the container's processes while its changes are read (docker's default). */
  pause: boolean;
  /** NAME[:TAG] for the new image; none leaves it dangling. */
  name?: string;
}

/** The instructions `docker commit --change` accepts (moby builder/dockerfile validCommitCommands). */
const changeKinds = new Set(['cmd', 'entrypoint', 'env', 'expose', 'healthcheck', 'label', 'onbuild', 'stopsignal', 'user', 'volume', 'workdir']);

/**
 * `config` with the --change instructions applied by the Dockerfile frontend, as docker's
 * BuildFromConfig does: the instructions run against the container's Config (so ENV sees its
 * variables and ENTRYPOINT clears its CMD), with none of a build's additions (no default PATH,
 * no ArgsEscaped on Linux) and without running the Config's own ONBUILD triggers.
 */
export function applyChanges(base: ImageConfig, config: ContainerConfig, changes: string[]): ContainerConfig {
  if (changes.length === 0) return config;
  const { dockerfile: df, explain } = parseChanges(changes, changeKinds);
  return explain(() => {
    const plan = planBuild(df, { buildArgs: {}, platform: { os: base.os, architecture: base.architecture, ...(base.variant ? { variant: base.variant } : {}) } });
    const start = structuredClone(config);
    const triggers = start.OnBuild ?? [];
    delete start.OnBuild;
    const hadPath = (start.Env ?? []).some((e) => e.startsWith('PATH='));
    const out = dispatchStage(plan, 0, { config: { ...base, config: start } }, { buildArgs: {} }).config.config ?? {};
    const setsPath = df.instructions.some((i) => i.kind === 'env' && i.pairs.some((p) => p.key === 'PATH'));
    if (!hadPath && !setsPath && out.Env) {
      out.Env = out.Env.filter((e) => !e.startsWith('PATH='));
      if (out.Env.length === 0) delete out.Env;
    }
    const touchesCommand = df.instructions.some((i) => i.kind === 'cmd' || i.kind === 'entrypoint');
    if (touchesCommand || !config.ArgsEscaped) delete out.ArgsEscaped;
    const onbuild = [...triggers, ...(out.OnBuild ?? [])];
    if (onbuild.length > 0) out.OnBuild = onbuild;
    else delete out.OnBuild;
    return out;
  });
}

function imageName(name: string): string {
  const ref = parseReference(name);
  if (ref.digest) throw new UsageError(`invalid reference "${name}": commit to a tag, not a digest`);
  return normalize(name);
}

/** The container's changes as a layer in the store; undefined when it changed nothing. */
async function changesLayer(store: Store, c: Container, placeholders: readonly string[] | undefined): Promise<LayerRef | undefined> {
  const upper = upperOf(layerOf(c));
  // While the container runs, its upper directory holds the sandbox's mount points; compared with
  // the image to tell a directory copied up for them from one the container changed.
  const image = hasPlaceholders(upper, placeholders) ? await viewImage(store, layerOf(c)) : undefined;
  try {
    return await packChanges(store, upper, placeholderFilter(upper, placeholders, image?.path));
  } finally {
    await image?.release();
  }
}

async function packChanges(store: Store, upper: string, exclude: (rel: string) => boolean): Promise<LayerRef | undefined> {
  const opts = { overlayWhiteouts: true, exclude };
  let any = false;
  for await (const _ of directoryEntries(upper, opts)) {
    any = true;
    break;
  }
  if (!any) return undefined;
  let stored: { digest: string; size: number } | undefined;
  const layer = await writeLayer(
    packEntries(directoryEntries(upper, opts)),
    async (blob) => {
      stored = await store.content.put(blob);
    },
    'gzip',
  );
  await store.setLayerInfo(stored!.digest, { diffId: layer.diffId, size: layer.uncompressedSize });
  return { digest: layer.digest, size: layer.size, diffId: layer.diffId, mediaType: MediaType.OciLayerGzip };
}

/** Write the new image and return it. The container is not changed. */
export async function commitContainer(store: Store, c: Container, opts: CommitOptions): Promise<StoredImage> {
  // Everything that can be refused is checked before any layer is written.
  const name = opts.name === undefined ? undefined : imageName(opts.name);
  const base = c.record.imageConfig;
  const runtime = applyChanges(base, c.record.config, opts.changes);

  const state = await readState(c.dir);
  const thaw = state.status === 'running' && opts.pause ? freeze(state) : () => {};
  let layer: LayerRef | undefined;
  try {
    layer = await changesLayer(store, c, state.placeholders);
  } finally {
    thaw();
  }

  const created = new Date().toISOString();
  const entry: History = { created };
  if (opts.author) entry.author = opts.author;
  entry.created_by = (c.record.config.Cmd ?? []).join(' ');
  if (opts.message) entry.comment = opts.message;
  if (!layer) entry.empty_layer = true;
  const config: ImageConfig = {
    ...structuredClone(base),
    created,
    config: runtime,
    rootfs: { type: 'layers', diff_ids: [...base.rootfs.diff_ids, ...(layer ? [layer.diffId] : [])] },
    history: [...(base.history ?? []), entry],
  };
  if (opts.author) config.author = opts.author;
  else delete config.author;
  const layers: Descriptor[] = [...c.record.layers, ...(layer ? [layer] : [])].map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  const image = await store.writeImage(config, layers, name ? [name] : []);
  await store.content.releaseLease();
  return image;
}
