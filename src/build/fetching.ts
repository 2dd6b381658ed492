import type { Snapshotter } from '../snapshot/snapshotter.js';
import type { BuildCache } from './cache.js';

/** A snapshotter that first fetches the blobs of imported cache hits among the layers it is given. */
export function fetchingLayers(inner: Snapshotter, cache: BuildCache): Snapshotter {
  const wrapped: Snapshotter = {
    name: inner.name,
    prepare: async (layers, id) => (await cache.ensure(layers), inner.prepare(layers, id)),
    view: async (layers, id) => (await cache.ensure(layers), inner.view(layers, id)),
    lookup: async (layers, path) => (await cache.ensure(layers), inner.lookup(layers, path)),
  };
  // Passed through, or every COPY layer would be extracted a second time, from its gzip blob, by the next step.
  if (inner.extractWhileWriting) wrapped.extractWhileWriting = (tar) => inner.extractWhileWriting!(tar);
  if (inner.extractEntries) wrapped.extractEntries = (entries, opts, diffId) => inner.extractEntries!(entries, opts, diffId);
  return wrapped;
}
