// The hierarchy of a bake file: which target is built on which, read from each target's Dockerfile
// through the frontend (parse and plan with the target's args and stage), never written by hand. A
// FROM, COPY --from or RUN --mount from= image that is another target's tag makes that target a
// parent; any other image is external (the store or a registry must have it).

import { readFile, stat } from 'node:fs/promises';
import { parseDockerfile, planBuild } from '../dockerfile/index.js';
import { hostPlatform } from '../store/store.js';
import { normalize } from '../reference/reference.js';
import type { BakeFile, BakeTarget } from './file.js';
import { shown } from './file.js';
import { HierarchyCycle, TargetInvalid } from './errors.js';

/** One image a target's Dockerfile builds on. */
export interface BaseUse {
  /** The reference as the Dockerfile writes it, after ARG expansion. */
  ref: string;
  /** Where: the Dockerfile (as shown to the user) and the line of the instruction. */
  where: string;
  /** The target whose tag it names, when it is one. */
  parent?: string;
}

export interface Hierarchy {
  file: BakeFile;
  /** Target names, every parent before its children (file order among independent targets). */
  order: string[];
  bases: Map<string, BaseUse[]>;
  parents: Map<string, string[]>;
  children: Map<string, string[]>;
}

export async function deriveHierarchy(file: BakeFile): Promise<Hierarchy> {
  const byTag = new Map<string, string>();
  for (const t of file.targets.values()) for (const tag of t.tags) byTag.set(normalize(tag), t.name);
  const bases = new Map<string, BaseUse[]>();
  for (const t of file.targets.values()) {
    const uses = await imagesUsed(file, t);
    for (const u of uses) {
      const parent = byTag.get(safeNormalize(u.ref) ?? '');
      if (parent) u.parent = parent;
    }
    bases.set(t.name, uses);
  }
  const parents = new Map<string, string[]>();
  const children = new Map<string, string[]>([...file.targets.keys()].map((n) => [n, []]));
  for (const [name, uses] of bases) {
    const ps = [...new Set(uses.flatMap((u) => (u.parent ? [u.parent] : [])))];
    parents.set(name, ps);
    for (const p of ps) children.get(p)!.push(name);
  }
  checkAcyclic(file, parents, bases);
  return { file, order: topological([...file.targets.keys()], parents), bases, parents, children };
}

/** Every target below `names`, with them, in build order. */
export function withDescendants(h: Hierarchy, names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const visit = (n: string) => {
    if (out.has(n)) return;
    out.add(n);
    for (const c of h.children.get(n)!) visit(c);
  };
  for (const n of names) visit(n);
  return new Set(h.order.filter((n) => out.has(n)));
}

async function imagesUsed(file: BakeFile, t: BakeTarget): Promise<BaseUse[]> {
  const at = `${file.path}: target "${t.name}"`;
  const name = shown(t.dockerfile);
  if (!(await stat(t.context).catch(() => undefined))?.isDirectory()) throw new TargetInvalid(`${at}: context ${shown(t.context)} is not a directory`);
  let text: string;
  try {
    text = await readFile(t.dockerfile, 'utf8');
  } catch (e) {
    throw new TargetInvalid(`${at}: cannot read Dockerfile ${name}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let plan;
  try {
    plan = planBuild(parseDockerfile(text, { file: name }), { buildArgs: t.args, target: t.stage, platform: hostPlatform(), namedContexts: new Set(t.contexts.map((c) => c.name)) });
  } catch (e) {
    throw new TargetInvalid(`${at}: ${(e as Error).message}`);
  }
  // A name the target's `contexts` give is that context: a docker-image:// alias is the image it
  // names (another target's tag makes that target a parent), anything else is no image at all.
  const named = new Map(t.contexts.map((c) => [c.name, c]));
  const through = (ref: string, seen = new Set<string>()): string | undefined => {
    const c = named.get(ref.toLowerCase());
    if (!c || seen.has(ref.toLowerCase())) return ref;
    if ('url' in c || c.context.kind !== 'image') return undefined;
    return through(c.context.ref, new Set([...seen, ref.toLowerCase()]));
  };
  const uses: BaseUse[] = [];
  const use = (ref: string, line: number) => {
    const image = through(ref);
    if (image !== undefined && image !== 'scratch') uses.push({ ref: image, where: `${name}:${line}` });
  };
  for (const st of plan.stages) {
    if (!st.used) continue;
    if (st.base.kind === 'image') use(st.base.ref, st.line);
    for (const image of st.images) use(image, st.line);
  }
  return uses;
}

function safeNormalize(ref: string): string | undefined {
  try {
    return normalize(ref);
  } catch {
    return undefined;
  }
}

function checkAcyclic(file: BakeFile, parents: Map<string, string[]>, bases: Map<string, BaseUse[]>): void {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      const loop = [...path.slice(path.indexOf(n)), n];
      const steps = loop.slice(1).map((p, i) => {
        const use = bases.get(loop[i]!)!.find((u) => u.parent === p)!;
        return `"${loop[i]}" is built on "${p}" (${use.where}: ${use.ref})`;
      });
      const line = file.targets.get(n)!.line;
      throw new HierarchyCycle(`${file.path}${line ? `:${line}` : ''}: target "${n}" is part of a cycle: ${steps.join(', ')}`);
    }
    state.set(n, 'open');
    path.push(n);
    for (const p of parents.get(n)!) visit(p);
    path.pop();
    state.set(n, 'done');
  };
  for (const n of parents.keys()) visit(n);
}

/** Kahn's algorithm, taking ready targets in file order so the plan reads like the file. */
function topological(names: string[], parents: Map<string, string[]>): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  while (order.length < names.length) {
    const next = names.find((n) => !done.has(n) && parents.get(n)!.every((p) => done.has(p)))!;
    done.add(next);
    order.push(next);
  }
  return order;
}
