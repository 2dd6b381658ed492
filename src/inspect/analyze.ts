// Layer sizes and waste, computed the way dive computes them (wagoodman/dive, filetree/efficiency.go):
// every leaf of every layer's tree is a node of its path, a deleted file a node of size 0; per path,
// the cumulative size over all its nodes and the smallest of them.
//   efficiency   = Σ smallest size per path ÷ Σ cumulative size per path (1 when nothing at all)
//   wasted bytes = Σ cumulative size of the paths that have more than one node
// So a file written in one layer and deleted (or rewritten) in a later one is waste: its bytes still
// ship in the lower layer.

import type { StoredImage, Store } from '../store/store.js';
import { isWithin, walkLayers, type LayerEntry } from './layers.js';
import { parseBytes } from '../ui/format.js';
import { byCodeUnits } from '../order.js';
import { applyLayerEntries, type LayerChange, type StackedPath } from './layer-changes.js';

export type { LayerChange };

export { parseBytes };

export interface LayerReport {
  index: number;
  digest: string;
  /** The history entry that made the layer (`RUN …`, `COPY …`), when recorded. */
  createdBy: string;
  /** Bytes of file content in the layer. */
  size: number;
  /** Bytes of the blob as stored (compressed). */
  compressedSize: number;
  added: number;
  changed: number;
  removed: number;
  /** What the layer does to each path, when asked for (the explorer shows it). */
  changes?: LayerChange[];
}

export interface WastedPath {
  path: string;
  /** Layers that carry the path (additions, rewrites and deletions). */
  count: number;
  wastedBytes: number;
}

export interface ImageAnalysis {
  image: string;
  id: string;
  /** Σ layer sizes. */
  totalSize: number;
  /** Σ sizes of the layers above the first (what the image adds to its base, as dive counts it). */
  userSize: number;
  efficiency: number;
  wastedBytes: number;
  /** wastedBytes ÷ userSize (0 when the image is a single layer). */
  userWastedPercent: number;
  layers: LayerReport[];
  /** Paths that waste bytes, largest first. */
  inefficiencies: WastedPath[];
}

export async function analyzeImage(store: Store, img: StoredImage, name: string, opts: { changes?: boolean } = {}): Promise<ImageAnalysis> {
  const history = (img.config.history ?? []).filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
  const layers = img.manifest.layers;
  const perLayer: LayerEntry[][] = layers.map(() => []);
  await walkLayers(store, layers, (i, e) => {
    perLayer[i]!.push(e);
  });

  const stacked = new Map<string, StackedPath>();
  const efficiency = new Map<string, { cumulative: number; min: number; count: number }>();
  const reports: LayerReport[] = [];

  for (const [i, entries] of perLayer.entries()) {
    // Leaves of this layer's tree: entries no other entry of the layer lives under.
    const parents = new Set<string>();
    for (const e of entries) for (let p = parentOf(e.path); p !== undefined; p = parentOf(p)) parents.add(p);
    for (const e of entries) {
      if (e.whiteout === 'opaque') continue;
      if (e.type === 'directory' && !e.whiteout && parents.has(e.path)) continue;
      if (e.whiteout === 'file' && stacked.get(e.path)?.dir) {
        // dive gives a deleted directory one node holding the size of all it hid, which never counts
        // as waste (that path has no other node). kiln counts the deletion of each file below it, so
        // files removed with their directory are waste like files removed one by one.
        for (const [p, s] of stacked) if (p !== e.path && !s.dir && isWithin(p, e.path)) addNode(efficiency, p, 0);
        continue;
      }
      // A deleted file is a node of size 0: its path keeps the bytes of the layer that added it.
      addNode(efficiency, e.path, e.whiteout === 'file' ? 0 : e.size);
    }

    // Apply the layer: count what it adds, changes and removes.
    const { added, changed, removed, size, changes } = applyLayerEntries(stacked, entries, i);
    const report: LayerReport = { index: i, digest: layers[i]!.digest, createdBy: history[i] ?? '', size, compressedSize: layers[i]!.size, added, changed, removed };
    if (opts.changes) report.changes = changes;
    reports.push(report);
  }

  let minimum = 0;
  let discovered = 0;
  const inefficiencies: WastedPath[] = [];
  for (const [path, d] of efficiency) {
    minimum += d.min;
    discovered += d.cumulative;
    if (d.count > 1 && d.cumulative > 0) inefficiencies.push({ path, count: d.count, wastedBytes: d.cumulative });
  }
  inefficiencies.sort((a, b) => b.wastedBytes - a.wastedBytes || byCodeUnits(a.path, b.path));
  const wastedBytes = inefficiencies.reduce((n, w) => n + w.wastedBytes, 0);
  const totalSize = reports.reduce((n, r) => n + r.size, 0);
  const userSize = totalSize - (reports[0]?.size ?? 0);
  return {
    image: name,
    id: img.id,
    totalSize,
    userSize,
    efficiency: discovered === 0 ? 1 : minimum / discovered,
    wastedBytes,
    userWastedPercent: userSize === 0 ? 0 : wastedBytes / userSize,
    layers: reports,
    inefficiencies,
  };
}

function addNode(efficiency: Map<string, { cumulative: number; min: number; count: number }>, path: string, size: number): void {
  const d = efficiency.get(path) ?? { cumulative: 0, min: -1, count: 0 };
  d.cumulative += size;
  if (d.min < 0 || size < d.min) d.min = size;
  d.count++;
  efficiency.set(path, d);
}

function parentOf(p: string): string | undefined {
  if (p === '/') return undefined;
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

// ---------------------------------------------------------------------------------------------
// CI rules, as dive's .dive-ci file has them.

export interface CiRules {
  lowestEfficiency?: number;
  highestWastedBytes?: number;
  highestUserWastedPercent?: number;
}

export interface CiResult {
  rule: keyof CiRules;
  limit: number;
  actual: number;
  pass: boolean;
}

/** dive's defaults when --ci is given without a rule file. */
export const defaultCiRules: CiRules = { lowestEfficiency: 0.9, highestUserWastedPercent: 0.1 };

export function checkCi(a: ImageAnalysis, rules: CiRules): CiResult[] {
  const out: CiResult[] = [];
  if (rules.lowestEfficiency !== undefined) out.push({ rule: 'lowestEfficiency', limit: rules.lowestEfficiency, actual: a.efficiency, pass: a.efficiency >= rules.lowestEfficiency });
  if (rules.highestWastedBytes !== undefined) out.push({ rule: 'highestWastedBytes', limit: rules.highestWastedBytes, actual: a.wastedBytes, pass: a.wastedBytes <= rules.highestWastedBytes });
  if (rules.highestUserWastedPercent !== undefined) {
    out.push({ rule: 'highestUserWastedPercent', limit: rules.highestUserWastedPercent, actual: a.userWastedPercent, pass: a.userWastedPercent <= rules.highestUserWastedPercent });
  }
  return out;
}

export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** The history's created_by as one line, without the `/bin/sh -c #(nop)` docker puts before metadata instructions. */
export function layerInstruction(createdBy: string): string {
  return createdBy.replace(/\s+/g, ' ').replace(/^\/bin\/sh -c #\(nop\) /, '').trim();
}

export function formatAnalysis(a: ImageAnalysis, top = 10): string {
  let out = `Image: ${a.image} (${a.id.slice(7, 19)})\n\n`;
  out += 'Layers\n';
  out += `  ${'#'.padEnd(3)} ${'size'.padStart(10)} ${'added'.padStart(6)} ${'changed'.padStart(8)} ${'removed'.padStart(8)}  created by\n`;
  for (const l of a.layers) {
    const by = layerInstruction(l.createdBy).slice(0, 70);
    out += `  ${String(l.index).padEnd(3)} ${humanBytes(l.size).padStart(10)} ${String(l.added).padStart(6)} ${String(l.changed).padStart(8)} ${String(l.removed).padStart(8)}  ${by}\n`;
  }
  out += `\nTotal image size:    ${humanBytes(a.totalSize)}\n`;
  out += `Potential wasted:    ${humanBytes(a.wastedBytes)}\n`;
  out += `Image efficiency:    ${(a.efficiency * 100).toFixed(4)} %\n`;
  out += `User wasted percent: ${(a.userWastedPercent * 100).toFixed(4)} %\n`;
  if (a.inefficiencies.length) {
    out += `\nLargest wasted paths\n  ${'count'.padStart(5)} ${'wasted'.padStart(10)}  path\n`;
    for (const w of a.inefficiencies.slice(0, top)) out += `  ${String(w.count).padStart(5)} ${humanBytes(w.wastedBytes).padStart(10)}  ${w.path}\n`;
  }
  return out;
}

/** A `.dive-ci` file: `rules:` with lowestEfficiency, highestWastedBytes, highestUserWastedPercent ("disabled" turns one off). */
export function parseCiRules(doc: unknown, source: string, fail: (msg: string) => never): CiRules {
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) fail(`${source}: expected a mapping with a rules: key`);
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) if (k !== 'rules') fail(`${source}: ${k}: unknown key (expected rules)`);
  const rules = top.rules;
  if (rules === undefined || rules === null) return {};
  if (typeof rules !== 'object' || Array.isArray(rules)) fail(`${source}: rules: expected a mapping`);
  const out: CiRules = {};
  for (const [k, v] of Object.entries(rules as Record<string, unknown>)) {
    if (v === 'disabled') continue;
    const text = String(v);
    if (k === 'highestWastedBytes') {
      const n = parseBytes(text);
      if (n === undefined) fail(`${source}: rules.${k}: "${text}" is not a size such as 20MB or "disabled"`);
      out.highestWastedBytes = n;
    } else if (k === 'lowestEfficiency' || k === 'highestUserWastedPercent') {
      const n = Number(text);
      if (!Number.isFinite(n) || n < 0 || n > 1) fail(`${source}: rules.${k}: "${text}" is not a ratio between 0 and 1 or "disabled"`);
      out[k] = n;
    } else {
      fail(`${source}: rules.${k}: unknown rule (lowestEfficiency, highestWastedBytes, highestUserWastedPercent)`);
    }
  }
  return out;
}
