import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { fetchingLayers } from '../../src/build/fetching.js';
import type { BuildCache } from '../../src/build/cache.js';
import { exportResult } from '../../src/build/export.js';
import type { StageResult } from '../../src/build/solver.js';
import { Store } from '../../src/store/store.js';
import type { LayerRef, Snapshotter } from '../../src/snapshot/snapshotter.js';

// The solver's snapshotter fetches imported cache layers before use; it must add that and take
// nothing away: a COPY layer extracted while it is written is one the next RUN need not extract.
// And what a build hands over to the store (exportResult) must not take other builds' leases away.

const layer: LayerRef = { digest: 'sha256:' + 'a'.repeat(64), diffId: 'sha256:' + 'b'.repeat(64), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 1 };

function fakes() {
  const calls: string[] = [];
  const cache = { ensure: async (layers: readonly LayerRef[]) => void calls.push(`ensure ${layers.length}`) } as unknown as BuildCache;
  const inner: Snapshotter = {
    name: 'fake',
    prepare: async () => (calls.push('prepare'), { rootfs: '/x', commit: async () => undefined, release: async () => {} }),
    view: async () => (calls.push('view'), { path: '/x', release: async () => {} }),
    lookup: async () => (calls.push('lookup'), undefined),
  };
  return { calls, cache, inner };
}

test('layers are fetched before every prepare, view and lookup', async () => {
  const { calls, cache, inner } = fakes();
  const s = fetchingLayers(inner, cache);
  await s.prepare([layer], 'p');
  await s.view([layer, layer], 'v');
  await s.lookup([], '/etc');
  assert.deepEqual(calls, ['ensure 1', 'prepare', 'ensure 2', 'view', 'ensure 0', 'lookup']);
});

test('extractWhileWriting and extractEntries are passed through, and absent when the inner snapshotter has none', async () => {
  const { cache, inner } = fakes();
  const bare = fetchingLayers(inner, cache);
  assert.equal(bare.extractWhileWriting, undefined);
  assert.equal(bare.extractEntries, undefined);
  const seen: unknown[] = [];
  inner.extractWhileWriting = async (tar) => {
    for await (const c of tar) seen.push(String(c));
    return layer.diffId;
  };
  inner.extractEntries = async (entries, opts, diffId) => (seen.push(entries.length, opts, await diffId), layer.diffId);
  const s = fetchingLayers(inner, cache);
  assert.equal(await s.extractWhileWriting!(Readable.from([Buffer.from('tar bytes')])), layer.diffId);
  assert.equal(await s.extractEntries!([{ path: 'a', type: 'file' }], { sourceDateEpoch: 7 }, Promise.resolve(layer.diffId)), layer.diffId);
  assert.deepEqual(seen, ['tar bytes', 1, { sourceDateEpoch: 7 }, layer.diffId]);
});

test("exporting one image keeps the process's lease on blobs another build wrote and has not recorded yet", async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-export-lease-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const store = await Store.open(root);
  // What a parallel build (kiln bake) has written and not yet recorded in index.json.
  const pending = await store.content.put('a layer of a build still running');
  const config = await store.putJSON({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }, 'application/vnd.oci.image.config.v1+json');
  const result = { layers: [], config: await store.content.readJSON(config.digest), key: 'k', keys: [] } as unknown as StageResult;
  await exportResult(store, result, ['done:1'], { type: 'image' });
  assert.ok((await store.content.leasedDigests()).has(pending.digest), 'the lease went with the first export');
  assert.deepEqual((await store.gc()).removed, 0);
  assert.ok(await store.content.has(pending.digest));
});
