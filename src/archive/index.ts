// Everything kiln does with the tar streams of image layers: writing them deterministically,
// compressing them, computing their digests, listing them and applying them safely.

export { compress, decompress, detectCompression, type CompressOptions } from './compress.js';
export { packDirectory, packEntries, directoryEntries, layerPath, type LayerEntry, type PackOptions, type PackEntriesOptions } from './pack.js';
export { writeLayer, listLayer, type LayerDigests } from './layer.js';
export { applyLayer, type ApplyOptions, type AppliedLayer } from './apply.js';
export { readTar, encodeHeader, tarHeader, type TarHeader, type TarEntry, type EntryType } from './tar.js';
export { OPAQUE_WHITEOUT, WHITEOUT_PREFIX, classifyWhiteout, whiteoutName, type Whiteout } from './whiteout.js';
