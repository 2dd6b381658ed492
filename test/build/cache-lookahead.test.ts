import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { BuildCache, cacheKey, type CacheRecord, type CacheSource } from '../../src/build/cache.js';
import type { LayerRef } from '../../src/snapshot/snapshotter.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../support/env.js';

// Records imported with --cache-from name the step before them: a hit on one step starts the
// download of the next step's layer while that step's key is still being computed, only for
// steps whose layers end up in the image, and a download that fails there is tried again when
// the layer is needed.

function layerOf(content: string): { layer: LayerRef; content: string } {
  const digest = 'sha256:' + createHash('sha256').update(content).digest('hex');
  return { layer: { digest, size: Buffer.byteLength(content), diffId: digest, mediaType: 'application/vnd.oci.image.layer.v1.tar' }, content };
}

/** A cache source of a chain of three steps, whose downloads are counted and can be made to fail once. */
function chain() {
  const k1 = cacheKey('base', { step: 1 });
  const k2 = cacheKey(k1, { step: 2 });
  const k3 = cacheKey(k2, { step: 3 });
  const l2 = layerOf('layer two');
  const l3 = layerOf('layer three');
  const records = new Map<string, CacheRecord>([
    [k1, { layer: null, created: '2026-01-01T00:00:00Z', parent: 'base' }],
    [k2, { layer: l2.layer, created: '2026-01-01T00:00:00Z', parent: k1 }],
    [k3, { layer: l3.layer, created: '2026-01-01T00:00:00Z', parent: k2 }],
  ]);
  const fetched: string[] = [];
  let failNext = false;
  const source: CacheSource = {
    name: 'test',
    records,
    async fetchLayer(s, layer) {
      fetched.push(layer.digest);
      if (failNext) {
        failNext = false;
        throw new Error('connection reset');
      }
      const content = layer.digest === l2.layer.digest ? l2.content : l3.content;
      await s.content.put(content, { digest: layer.digest, size: layer.size });
    },
  };
  return { k1, k2, k3, l2: l2.layer, l3: l3.layer, source, fetched, failOnce: () => (failNext = true) };
}

test('a hit starts the download of the layer recorded after it; a miss after it fetches nothing more', async (t) => {
  const store = await Store.open(await tempDir(t));
  const c = chain();
  const cache = new BuildCache(store, [c.source]);
  assert.ok(await cache.get(c.k1, true));
  // The layer of step 2 is on its way before step 2's key is even asked for.
  assert.deepEqual(c.fetched, [c.l2.digest]);
  // Step 2 hits and its layer is needed: the download under way is the one waited for, not a second.
  assert.ok(await cache.get(c.k2, true));
  await cache.ensure([c.l2]);
  assert.ok(await store.content.has(c.l2.digest));
  // Step 2's hit started step 3's layer; step 3's key then differs, and nothing more is fetched.
  assert.equal(await cache.get(cacheKey(c.k2, { step: 'changed' }), true), undefined);
  assert.deepEqual(c.fetched, [c.l2.digest, c.l3.digest]);
});

test('without lookAhead (a stage the image does not contain) nothing is fetched before it is needed', async (t) => {
  const store = await Store.open(await tempDir(t));
  const c = chain();
  const cache = new BuildCache(store, [c.source]);
  assert.ok(await cache.get(c.k1));
  assert.ok(await cache.get(c.k2));
  assert.deepEqual(c.fetched, []);
  await cache.ensure([c.l2]);
  assert.deepEqual(c.fetched, [c.l2.digest]);
});

test('a download ahead that fails is tried again when the layer is needed', async (t) => {
  const store = await Store.open(await tempDir(t));
  const c = chain();
  const cache = new BuildCache(store, [c.source]);
  c.failOnce();
  await cache.get(c.k1, true);
  await cache.get(c.k2, true);
  await cache.ensure([c.l2]);
  assert.ok(await store.content.has(c.l2.digest));
  assert.equal(c.fetched.filter((d) => d === c.l2.digest).length, 2);
});

test('a hit waits until the download ahead is under way, not until it is done, nor when it fails first', async (t) => {
  const store = await Store.open(await tempDir(t));
  const c = chain();
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const events: string[] = [];
  // Started at once, finished only when the test says so.
  const slow: CacheSource = {
    ...c.source,
    async fetchLayer(s, layer, started) {
      await new Promise((r) => setImmediate(r)); // a turn of the event loop before the transfer starts
      events.push('started');
      started?.();
      await done;
      await s.content.put('layer two', { digest: layer.digest, size: layer.size });
      events.push('finished');
    },
  };
  const cache = new BuildCache(store, [slow]);
  assert.ok(await cache.get(c.k1, true));
  events.push('hit returned');
  assert.deepEqual(events, ['started', 'hit returned']);
  finish();
  assert.ok(await cache.get(c.k2));
  await cache.ensure([c.l2]);
  assert.deepEqual(events, ['started', 'hit returned', 'finished']);

  // A source that fails before it could start does not hold the hit up.
  const failing: CacheSource = {
    ...c.source,
    async fetchLayer() {
      await new Promise((r) => setImmediate(r));
      throw new Error('registry unreachable');
    },
  };
  assert.ok(await new BuildCache(await Store.open(await tempDir(t)), [failing]).get(c.k1, true));
});
