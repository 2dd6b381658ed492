import { spawn } from 'node:child_process';
import type { Store, StoredImage } from '../store/store.js';
import { ImageUnknown } from '../errors.js';

/**
 * `--build-context name=oci-layout://PATH[:TAG|@DIGEST]`: take an image from an OCI layout
 * directory by streaming the layout through the archive loader (same checks as `kiln load`).
 */
export async function loadOciLayout(store: Store, path: string, ref?: string): Promise<StoredImage> {
  const tar = spawn('tar', ['-c', '-C', path, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // Loaded here: the archive reader (tar-stream) is start-up time every other build can skip.
  const { loadArchive } = await import('../store/load.js');
  const loaded = await loadArchive(store, tar.stdout, `oci-layout://${path}`).catch((e: Error) => {
    throw new Error(stderr.trim() || e.message);
  });
  const pick = ref?.startsWith('sha256:')
    ? loaded.find((l) => l.manifest.digest === ref)
    : ref
      ? loaded.find((l) => l.manifest.annotations?.['org.opencontainers.image.ref.name'] === ref)
      : loaded[0];
  if (!pick) throw new ImageUnknown(`no image ${ref ?? ''} in the OCI layout at ${path}`);
  return store.loadImage(pick.manifest, pick.names);
}
