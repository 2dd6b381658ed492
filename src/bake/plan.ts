// What a bake will do, before it does it: which targets a change selects, and the plan as a tree
// (`kiln bake --dry-run`).

import { familiarName } from '../store/describe.js';
import { normalize } from '../reference/reference.js';
import { renderTree } from '../ui/tree.js';
import type { Hierarchy } from './graph.js';

/**
 * The plan as a tree: each target to build under its parents, with the parents that are not rebuilt
 * shown (as unchanged, with the digest their children are built on) to place the branch.
 */
export function formatPlan(h: Hierarchy, selected: Set<string>, pins: Map<string, string>): string {
  const shownTargets = new Set<string>(selected);
  for (const name of selected) for (const p of h.parents.get(name)!) shownTargets.add(p);
  const roots = h.order.filter((n) => shownTargets.has(n) && !h.parents.get(n)!.some((p) => shownTargets.has(p)));
  const label = (n: string) => {
    const t = h.file.targets.get(n)!;
    const tags = t.tags.map((x) => familiarName(normalize(x))).join(', ');
    if (!selected.has(n)) return `${n}  ${tags}  (unchanged: ${pins.get(n) ?? 'not built'})`;
    const external = h.bases.get(n)!.filter((u) => !u.parent).map((u) => u.ref);
    const also = h.parents.get(n)!.length > 1 ? `  (built on ${h.parents.get(n)!.join(', ')})` : '';
    return `${n}  ${tags}${external.length ? `  FROM ${[...new Set(external)].join(', ')}` : ''}${also}`;
  };
  const tree = renderTree(roots, (n) => h.children.get(n)!.filter((c) => shownTargets.has(c)), label);
  const order = h.order.filter((n) => selected.has(n));
  return `${h.file.path}: ${order.length} target${order.length === 1 ? '' : 's'} to build\n${tree}build order: ${order.join(', ')}\n`;
}
