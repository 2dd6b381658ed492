import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { RefNameAnnotation } from '../../src/oci/types.js';
import { tempDir } from '../support/env.js';

// Writing what the store already holds changes nothing on disk: a fully cached rebuild under the
// same tags rewrites no blob and no index.json (so takes no lock). Anything that is a change still
// goes through the locked update.

async function image(t: Parameters<typeof tempDir>[0]) {
  const root = await tempDir(t);
  const store = await Store.open(root);
  const layer = await store.content.put('a layer\n');
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [layer.digest] } };
  const layers = [{ mediaType: MediaType.OciLayer, digest: layer.digest, size: layer.size }];
  return { root, store, config, layers };
}

const stamp = (p: string) => {
  const st = statSync(p);
  return `${st.ino}:${st.mtimeMs}`;
};

test('the same image under the same tags again: no blob, index or lock is written', async (t) => {
  const { root, store, config, layers } = await image(t);
  const first = await store.writeImage(config, layers, ['app:1', 'app:latest']);
  const index = join(root, 'index.json');
  const before = { index: stamp(index), config: stamp(store.content.blobPath(first.id)), manifest: stamp(store.content.blobPath(first.manifestDescriptor.digest)) };
  const again = await store.writeImage(config, layers, ['app:1', 'app:latest']);
  assert.equal(again.id, first.id);
  assert.deepEqual({ index: stamp(index), config: stamp(store.content.blobPath(first.id)), manifest: stamp(store.content.blobPath(first.manifestDescriptor.digest)) }, before);
});

test('a new tag, a moved tag or an untagged copy of the image still updates the index', async (t) => {
  const { root, store, config, layers } = await image(t);
  const first = await store.writeImage(config, layers, ['app:1']);
  const names = () => (JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] }).manifests.map((m) => `${m.annotations?.[RefNameAnnotation] ?? '<none>'}=${m.digest.slice(7, 19)}`).sort();
  const d = first.manifestDescriptor.digest.slice(7, 19);

  await store.writeImage(config, layers, ['app:1', 'app:2']);
  assert.deepEqual(names(), [`docker.io/library/app:1=${d}`, `docker.io/library/app:2=${d}`]);

  const other = await store.writeImage({ ...config, os: 'linux', architecture: 'arm64' }, layers, ['app:2']);
  const o = other.manifestDescriptor.digest.slice(7, 19);
  assert.deepEqual(names(), [`docker.io/library/app:1=${d}`, `docker.io/library/app:2=${o}`]);

  // An untagged entry of the image beside its tag is replaced when the tag is written again.
  await store.updateIndex((index) => void index.manifests.push({ ...first.manifestDescriptor }));
  assert.deepEqual(names(), [`<none>=${d}`, `docker.io/library/app:1=${d}`, `docker.io/library/app:2=${o}`]);
  await store.writeImage(config, layers, ['app:1']);
  assert.deepEqual(names(), [`docker.io/library/app:1=${d}`, `docker.io/library/app:2=${o}`]);
});
