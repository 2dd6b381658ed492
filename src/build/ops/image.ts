// Image sources: a FROM or COPY --from reference resolved to a stored image (through --build-context
// aliases and OCI layouts, pulled when missing as the pull policy allows), its layers, its key; and
// the empty image, scratch.

import { formatPlatform } from '../../dockerfile/platform.js';
import { ImageUnknown } from '../../errors.js';
import type { Platform } from '../../oci/types.js';
import { formatReference, parseNamed } from '../../reference/reference.js';
import type { LayerRef } from '../../snapshot/snapshotter.js';
import { PlatformUnknown, type StoredImage } from '../../store/store.js';
import { cacheKey } from '../cache.js';
import { BuildStepError } from '../errors.js';
import { loadOciLayout } from '../named.js';
import type { BuildRequest, NamedContext } from '../solver.js';
import { samePlatform } from '../../oci/platform.js';
import type { ProgressSink } from '../progress.js';
import { emptyConfig, type BaseState, type Source } from './op.js';

export interface ImageSources {
  resolve(ref: string, line: number, platform?: Platform): Promise<StoredImage>;
  /** The name a FROM reference resolves to, through --build-context aliases; a tag beside a digest wins. */
  baseName(ref: string): string;
}

/** The key of a state that is an image: its manifest digest names all of it. */
export function imageKey(img: StoredImage): string {
  return cacheKey('', { image: img.manifestDescriptor.digest });
}

export function imageLayers(img: StoredImage): LayerRef[] {
  return img.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: img.config.rootfs.diff_ids[i]! }));
}

/** The key of scratch, the empty state, for a platform. */
export function scratchKey(platform: Platform): string {
  return cacheKey('', { scratch: true, platform });
}

/**
 * FROM scratch: no layers and no config (the stage's instructions start from none); FROM a name that
 * --build-context gives as docker-image://scratch: no layers and the empty image's config.
 */
export function scratchSource(platform: Platform, o: { named: boolean }): Source {
  const state: BaseState = { key: scratchKey(platform), layers: [], keys: [], config: o.named ? emptyConfig(platform) : undefined };
  return { kind: 'source', state };
}

/**
 * FROM <image>: the image resolved for the stage's platform, with its config and the base it
 * records. `progress` reports the resolution as the stage's FROM step (vertex `id`, titled `title`).
 */
export function imageSource(images: ImageSources, ref: string, line: number, platform: Platform, progress: { sink: ProgressSink; id: number; title: string }): Source {
  return {
    kind: 'source',
    inputs: [],
    async resolve(): Promise<BaseState> {
      progress.sink.start(progress.id, progress.title);
      const img = await images.resolve(ref, line, platform);
      progress.sink.done(progress.id);
      return { key: imageKey(img), layers: imageLayers(img), keys: [], config: img.config, base: { name: images.baseName(ref), digest: img.manifestDescriptor.digest } };
    },
  };
}

/** Images resolved once per build, by reference and platform. */
export function createImageSources(req: BuildRequest, named: ReadonlyMap<string, NamedContext>, host: Platform, targetPlatform: Platform): ImageSources {
  const file = req.dockerfile.name;
  const images = new Map<string, Promise<StoredImage>>();

  // `via`: the names an alias chain went through. An alias naming itself or an earlier name
  // (busybox=docker-image://busybox) is the image of that name, as BuildKit resolves a
  // docker-image:// context without looking at the named contexts again.
  // `platform`: the image's entry for it. The host's is what an index resolves to anyway, so an image
  // without platform information (or of another platform) stays usable for a host build, as before.
  const resolveImage = (ref: string, line: number, platform: Platform = targetPlatform, via: ReadonlySet<string> = new Set()): Promise<StoredImage> => {
    const wanted = samePlatform(platform, host) ? undefined : platform;
    const memo = `${wanted ? formatPlatform(wanted) : ''}\0${ref}`;
    let p = images.get(memo);
    if (!p) {
      p = (async () => {
        const alias = named.get(ref.toLowerCase());
        const seen = new Set([...via, ref.toLowerCase()]);
        if (alias?.kind === 'image' && !seen.has(alias.ref.toLowerCase())) return resolveImage(alias.ref, line, platform, seen);
        if (alias?.kind === 'oci-layout') return loadOciLayout(req.store, alias.path, alias.ref).catch((e: Error) => {
          throw new BuildStepError(file, line, `build context "${ref}": ${e.message}`);
        });
        if (req.pullPolicy !== 'always') {
          try {
            const stored = await req.store.resolveImage(ref, wanted);
            if (req.admitStoredImage) await req.admitStoredImage(stored, ref).catch((e: Error) => Promise.reject(new BuildStepError(file, line, `base image "${ref}": ${e.message}`)));
            return stored;
          } catch (e) {
            if (e instanceof PlatformUnknown && (req.pullPolicy === 'never' || !req.resolveMissingImage)) throw new BuildStepError(file, line, `base image: ${e.message}`);
            if (!(e instanceof ImageUnknown)) throw e;
          }
        }
        if (req.pullPolicy !== 'never' && req.resolveMissingImage) {
          try {
            return await req.resolveMissingImage(ref, wanted);
          } catch (e) {
            throw new BuildStepError(file, line, `base image "${ref}" is not in the store and could not be pulled: ${(e as Error).message}`);
          }
        }
        throw new BuildStepError(file, line, `base image "${ref}" not found in the store (load it with kiln load or pull it)`);
      })();
      images.set(memo, p);
    }
    return p;
  };

  function baseName(ref: string): string {
    let name = ref;
    const seen = new Set([name.toLowerCase()]);
    for (let alias = named.get(name.toLowerCase()); alias?.kind === 'image'; alias = named.get(name.toLowerCase())) {
      if (seen.has(alias.ref.toLowerCase())) break;
      name = alias.ref;
      seen.add(name.toLowerCase());
    }
    try {
      const parsed = parseNamed(name);
      return formatReference(parsed.tag ? { ...parsed, digest: undefined } : parsed);
    } catch {
      return name;
    }
  }

  return { resolve: (ref, line, platform) => resolveImage(ref, line, platform), baseName };
}
