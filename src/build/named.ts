import { spawn } from 'node:child_process';
import type { Store, StoredImage } from '../store/store.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageUnknown } from '../errors.js';
import { cloneGitContext, isGitContext, parseGitContext } from './gitcontext.js';
import { HTTPContextFailed } from './httpcontext.js';
import type { NamedContext } from './solver.js';

/**
 * `--build-context name=URL`: a git repository is cloned; any other http(s) URL is downloaded, as
 * it is, as the file `context` (BuildKit dockerui/namedcontext.go:143-161: llb.HTTP with
 * Filename("context"), no unpacking). The URL stays with the directory: SOURCE_DATE_EPOCH=name
 * dates the build by it.
 */
export async function fetchNamedContext(url: string): Promise<{ context: NamedContext; cleanup: () => Promise<void> }> {
  if (isGitContext(url)) {
    const clone = await cloneGitContext(parseGitContext(url));
    return { context: { kind: 'dir', path: clone.dir, source: url }, cleanup: clone.cleanup };
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-named-context-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => {
      throw new HTTPContextFailed(`build context ${url}: ${e.message}`);
    });
    if (!res.ok || !res.body) throw new HTTPContextFailed(`build context ${url}: HTTP ${res.status}`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(join(dir, 'context')));
    return { context: { kind: 'dir', path: dir, source: url }, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

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
