// `kiln import`: a flat filesystem tarball becomes a one-layer image, as `docker import` makes it.
// The tar passes through unchanged (so its diffID is the digest of the bytes given, as docker's
// is), checked entry by entry on the way, and is stored gzip-compressed. Nothing is extracted.

import { Readable } from 'node:stream';
import { UnsafeArchiveEntry, ArchiveInvalid, KilnError, UsageError } from '../errors.js';
import { decompress, readTar, writeLayer, type TarHeader } from '../archive/index.js';
import { dispatchStage, parseChanges, planBuild } from '../dockerfile/index.js';
import { MediaType } from '../oci/mediatypes.js';
import type { ContainerConfig, ImageConfig, Platform } from '../oci/types.js';
import { normalize, parseReference } from '../reference/reference.js';
import { hostPlatform, type Store, type StoredImage } from './store.js';

export interface ImportOptions {
  /** What the tarball came from, for the history comment "Imported from <source>" (a path, a URL or "-"). */
  source: string;
  /** Dockerfile instructions applied to the config, as `docker import --change`. */
  changes?: string[];
  /** Replaces the history comment, as `docker import --message` does. */
  message?: string;
  /** Name to tag the image with; none leaves it dangling, as docker does. */
  name?: string;
  platform?: Platform;
}

/** The instructions `docker import -c` (and `docker commit -c`) accept, lower-case. */
const changeKinds = new Set(['cmd', 'entrypoint', 'env', 'expose', 'label', 'user', 'volume', 'workdir', 'stopsignal']);

/**
 * Check everything that does not need the tarball (name, changes) before opening it, so that a
 * mistake on the command line fails at once (and fetches nothing); then stream the tarball into a
 * layer and record the image.
 */
export async function importTarball(store: Store, open: () => Promise<Readable>, opts: ImportOptions): Promise<StoredImage> {
  const platform = opts.platform ?? hostPlatform();
  const name = opts.name === undefined ? undefined : importName(opts.name);
  const runtime = applyChanges(opts.changes ?? [], platform);

  const input = await open();
  const layer = await writeLayer(
    Readable.from(checkedTar(decompress(input), opts.source), { objectMode: false }),
    async (blob) => {
      await store.content.put(blob);
    },
    'gzip',
  );
  await store.setLayerInfo(layer.digest, { diffId: layer.diffId, size: layer.uncompressedSize });

  // docker: the comment is the message when given, else "Imported from <src>"; created is now.
  const created = new Date().toISOString();
  const config: ImageConfig = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: runtime,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: '', comment: opts.message || `Imported from ${opts.source}` }],
  };
  const img = await store.writeImage(config, [{ mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size }], name ? [name] : []);
  await store.content.releaseLease();
  return img;
}

function importName(name: string): string {
  const ref = parseReference(name);
  if (ref.digest) throw new UsageError(`cannot import to "${name}": a digest names existing content, use a tag`);
  return normalize(name);
}

/**
 * The config `docker import -c` produces: the changes dispatched by the Dockerfile frontend onto an
 * empty config. Docker's BuildFromConfig starts from an empty container config, so unlike a build
 * FROM scratch there is no default PATH and no WorkingDir, and CMD/ENTRYPOINT leave ArgsEscaped
 * false on Linux; those are undone here. Anything but the instructions docker accepts is refused.
 */
export function applyChanges(changes: string[], platform: Platform): ContainerConfig {
  if (changes.length === 0) return {};
  const { dockerfile: df, explain } = parseChanges(changes, changeKinds);
  return explain(() => {
    const plan = planBuild(df, { buildArgs: {}, platform });
    // "PATH=" keeps the frontend from adding its default PATH and makes $PATH expand to "", as in docker.
    const empty: ImageConfig = { architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH='] } };
    const out = dispatchStage(plan, 0, { config: empty }, { buildArgs: {} }).config.config ?? {};
    const setsPath = df.instructions.some((i) => i.kind === 'env' && i.pairs.some((p) => p.key === 'PATH'));
    if (!setsPath && out.Env) {
      out.Env = out.Env.filter((e) => e !== 'PATH=');
      if (out.Env.length === 0) delete out.Env;
    }
    delete out.ArgsEscaped;
    return out;
  });
}

/**
 * The bytes of a tar, passed on unchanged once the entries they belong to have been checked: entries
 * outside the root (absolute names, "..", hardlinks pointing outside) fail the import with
 * UnsafeArchiveEntry, a malformed or truncated tar with ArchiveInvalid. Symlink targets are data, not
 * paths to follow here, and pass as they are (the applier confines them).
 */
async function* checkedTar(plain: AsyncIterable<Buffer>, source: string): AsyncGenerator<Buffer> {
  const seen: Buffer[] = [];
  let bytes = 0;
  const tap = (async function* () {
    for await (const c of plain) {
      bytes += c.length;
      seen.push(c);
      yield c;
    }
  })();
  try {
    for await (const { header, body } of readTar(tap)) {
      checkEntry(header);
      while (seen.length) yield seen.shift()!;
      for await (const _ of body) while (seen.length) yield seen.shift()!;
    }
    while (seen.length) yield seen.shift()!;
  } catch (err) {
    // Messages may quote bytes of the input: keep them to one printable line.
    if (err instanceof KilnError) err.message = `${source}: ${err.message.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}`;
    throw err;
  }
  if (bytes === 0) throw new ArchiveInvalid(`${source}: empty input, not a tar archive`);
}

function checkEntry(h: TarHeader): void {
  const outside = (p: string) => p.startsWith('/') || p.split('/').includes('..');
  if (outside(h.path)) throw new UnsafeArchiveEntry(`archive entry "${h.path}" is outside the root (absolute or "..")`);
  if (h.type === 'hardlink' && outside(h.linkname)) throw new UnsafeArchiveEntry(`archive entry "${h.path}": hardlink target "${h.linkname}" is outside the root`);
  if (h.path.includes('\0') || h.linkname.includes('\0')) throw new ArchiveInvalid(`archive entry "${h.path}": NUL in a name`);
}
