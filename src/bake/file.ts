// The hierarchy file (kiln-bake.yaml): the images of a hierarchy as targets, in the shape of
// docker buildx bake's JSON file (`{"target": {NAME: {...}}, "group": {NAME: {"targets": [...]}}}`),
// written as YAML or JSON. Which target is built on which is not written here: kiln reads it from
// each target's Dockerfile (graph.ts).

import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Node } from 'yaml';
import { normalize } from '../reference/reference.js';
import { parseCacheFrom, parseCacheTo, type CacheTo } from '../build/cache-transfer.js';
import { multiPlatformRefusal, parseOutput, type Output } from '../build/export.js';
import { parseNamedContext, parsePlatforms, parseSecret, type NamedContextSpec, type SecretSpec } from '../build/inputs.js';
import type { Platform } from '../oci/types.js';
import { BakeFileInvalid } from './errors.js';
import { evaluateHcl, type HclDocument } from './hcl/bake.js';
import { HclError } from './hcl/syntax.js';
import { applyOverrides } from './overrides.js';

export interface BakeTarget {
  name: string;
  /** Absolute path of the build context. */
  context: string;
  /** Absolute path of the Dockerfile. */
  dockerfile: string;
  /** Tags as written; the first one names the target's image in the store. */
  tags: string[];
  args: Record<string, string>;
  /** The Dockerfile stage to build (buildx's `target`). */
  stage?: string;
  labels: Record<string, string>;
  noCache: boolean;
  /** container-structure-test configurations (absolute paths) the image must pass before it is tagged. */
  tests: string[];
  /** 1-based line of the target in the file, for messages. */
  line?: number;
  /** buildx's `platforms`: none is the host's; several make an image index. */
  platforms: Platform[];
  /** buildx's `output` (at most one): where the image goes besides the store; `push` for type=registry. */
  output: Output;
  cacheFrom: string[];
  cacheTo: CacheTo[];
  /** Secrets by id; a relative src is read from the file's directory. */
  secrets: SecretSpec[];
  /** SSH agents, as `kiln build --ssh` takes them. */
  ssh: string[];
  /** Named contexts (buildx --build-context); a relative directory is the file's directory's. */
  contexts: NamedContextSpec[];
  /** `attest`: type=sbom and type=provenance. */
  sbom: boolean;
  provenance: boolean;
}

export interface BakeFile {
  /** The path as the user gave it, for messages (several files: their paths, comma-separated). */
  path: string;
  /** The absolute directory of the (first) file: relative paths of the file are taken from it. */
  dir: string;
  targets: Map<string, BakeTarget>;
  groups: Map<string, string[]>;
}

const targetFields = ['context', 'dockerfile', 'tags', 'args', 'target', 'labels', 'no-cache', 'test', 'platforms', 'output', 'cache-from', 'cache-to', 'secret', 'ssh', 'contexts', 'attest', 'inherits'];
/** buildx fields kiln does not implement: rejected by name rather than silently ignored. */
const unsupported = ['pull', 'dockerfile-inline', 'network', 'no-cache-filter', 'shm-size', 'ulimits', 'annotations', 'call', 'description', 'entitlements'];

/** One file's document before validation, and where its keys were written ("file:line[:col]"). */
interface Source {
  top: Record<string, unknown>;
  locate: (keys: string[]) => string | undefined;
}

export async function readBakeFile(path: string): Promise<BakeFile> {
  return readBakeFiles([path]);
}

/**
 * Read several bake files as one, as buildx does with repeated -f: later files override earlier
 * ones attribute by attribute (a target's `tags` in docker-bake.override.hcl replaces the tags of
 * docker-bake.hcl; fields it does not set stay). HCL files are evaluated together, so a variable
 * of one is seen by the others (buildx merges their bodies).
 */
export async function readBakeFiles(paths: string[], env: Record<string, string | undefined> = process.env, sets: string[] = []): Promise<BakeFile> {
  const texts: { path: string; text: string }[] = [];
  for (const path of paths) {
    try {
      texts.push({ path, text: await readFile(path, 'utf8') });
    } catch (e) {
      throw new BakeFileInvalid(`${path}: cannot read the bake file: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }
  return parseBakeFiles(texts, env, sets);
}

/** Parse a bake file; relative paths are taken from the file's directory. */
export function parseBakeFile(text: string, path: string, env: Record<string, string | undefined> = process.env): BakeFile {
  return parseBakeFiles([{ path, text }], env);
}

/** Parse bake files as one; `sets` are --set overrides (overrides.ts). */
export function parseBakeFiles(files: { path: string; text: string }[], env: Record<string, string | undefined> = process.env, sets: string[] = []): BakeFile {
  if (files.length === 0) throw new BakeFileInvalid('no bake file');
  // The format by extension, as buildx (bake/hcl.go): .hcl is HCL (kiln also takes JSON written
  // there); anything else is YAML or JSON, and HCL when it is neither.
  const isJson = (t: string) => {
    try {
      return typeof JSON.parse(t) === 'object';
    } catch {
      return false;
    }
  };
  const hcl = files.filter((f) => (f.path.endsWith('.hcl') && !isJson(f.text)) || (!/\.(ya?ml|json|hcl)$/.test(f.path) && !isJson(f.text) && looksHcl(f.text)));
  const sources: Source[] = [];
  let hclAt = -1;
  for (const f of files) {
    if (hcl.includes(f)) {
      if (hclAt < 0) hclAt = sources.length;
      continue;
    }
    sources.push(yamlSource(f.text, f.path));
  }
  if (hcl.length) {
    let evaluated: HclDocument;
    try {
      evaluated = evaluateHcl(hcl, env);
    } catch (e) {
      if (e instanceof HclError) throw new BakeFileInvalid(e.message);
      throw e;
    }
    const { doc, places } = evaluated;
    const locate = (keys: string[]) => {
      for (let n = keys.length; n > 0; n--) {
        const p = places.get(keys.slice(0, n).join('.'));
        if (p) return `${p.file}:${p.line}:${p.col}`;
      }
      return hcl[0]!.path;
    };
    sources.splice(hclAt, 0, { top: doc as Record<string, unknown>, locate });
  }
  return validate(mergeSources(sources), files[0]!.path, files.map((f) => f.path).join(', '), (targets, groups) => applyOverrides(targets, groups, sets, env));
}

/** A bare `name = ` or `target "x" {` line: HCL rather than YAML, for a file of another extension. */
function looksHcl(text: string): boolean {
  return /^\s*(target|group|variable|function)\s+"[^"]*"\s*\{/m.test(text);
}

function yamlSource(text: string, path: string): Source {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines }); // YAML is a superset of JSON: both forms are read here
  if (doc.errors.length) {
    const err = doc.errors[0]!;
    throw new BakeFileInvalid(`${path}:${err.linePos?.[0].line ?? 1}: not valid YAML or JSON: ${err.message.split('\n')[0]}`);
  }
  /** The line of a field's key; for a missing field, of the nearest field around it. */
  const locate = (keys: string[]): string => {
    for (let n = keys.length; n > 0; n--) {
      const parent = n > 1 ? doc.getIn(keys.slice(0, n - 1), true) : doc.contents;
      const key = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === keys[n - 1])?.key : undefined;
      const node = (key ?? doc.getIn(keys.slice(0, n), true)) as Node | undefined;
      if (node?.range) return `${path}:${lines.linePos(node.range[0]).line}`;
    }
    return path;
  };
  if (!isMap(doc.contents)) throw new BakeFileInvalid(`${path}: expected a mapping with "target" (and optionally "group")`);
  const top = doc.toJS() as Record<string, unknown>;
  const fail = (keys: string[], why: string): never => {
    throw new BakeFileInvalid(`${locate(keys)}: ${keys.join('.')}: ${why}`);
  };
  for (const k of Object.keys(top)) if (k !== 'target' && k !== 'group' && k !== 'variable') fail([k], 'unknown field (known: target, group)');
  if (top.variable !== undefined) fail(['variable'], 'variables are read from HCL bake files only (docker-bake.hcl)');
  for (const [name, t] of Object.entries(isRecord(top.target) ? top.target : {})) {
    for (const k of ['matrix', 'name']) if (isRecord(t) && k in t) fail(['target', name, k], `${k} is read from HCL bake files only (docker-bake.hcl)`);
  }
  return { top, locate };
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The merged document, and for each key path the source that wrote it last. */
interface Merged {
  top: { target: Record<string, Record<string, unknown>>; group: Record<string, Record<string, unknown>> };
  locate: (keys: string[]) => string | undefined;
}

function mergeSources(sources: Source[]): Merged {
  if (sources.length === 1) {
    const only = sources[0]!;
    return { top: only.top as Merged['top'], locate: only.locate };
  }
  const top: Merged['top'] = { target: {}, group: {} };
  const owner = new Map<string, Source>();
  for (const src of sources) {
    for (const kind of ['target', 'group'] as const) {
      const section = src.top[kind];
      if (section === undefined || section === null) continue;
      if (!isRecord(section)) throw new BakeFileInvalid(`${src.locate([kind])}: ${kind}: expected a mapping`);
      for (const [name, fields] of Object.entries(section)) {
        if (!isRecord(fields)) throw new BakeFileInvalid(`${src.locate([kind, name])}: ${kind}.${name}: expected a mapping`);
        const into = (top[kind][name] ??= {});
        if (!owner.has(`${kind}.${name}`)) owner.set(`${kind}.${name}`, src);
        for (const [k, v] of Object.entries(fields)) {
          into[k] = v;
          owner.set(`${kind}.${name}.${k}`, src);
        }
      }
    }
  }
  const locate = (keys: string[]) => {
    for (let n = keys.length; n > 0; n--) {
      const src = owner.get(keys.slice(0, n).join('.'));
      if (src) return src.locate(keys);
    }
    return sources[0]?.locate(keys);
  };
  return { top, locate };
}

/**
 * buildx's `inherits` (bake.go Target.Merge): the parents in order, then the target itself; args,
 * labels and contexts merge key by key (a null value keeps the parent's), cache-from, secret, ssh
 * and attest append, and every other field of a later one replaces the earlier one's.
 */
/** Resolves every target's `inherits` in place; returns each parent's direct children. */
function resolveInherits(targets: Record<string, Record<string, unknown>>, fail: Fail): Map<string, string[]> {
  const done = new Map<string, Record<string, unknown>>();
  const resolving: string[] = [];
  const children = new Map<string, string[]>();
  const resolve = (name: string): Record<string, unknown> => {
    if (done.has(name)) return done.get(name)!;
    const t = targets[name]!;
    const parents = t.inherits === undefined || t.inherits === null ? [] : strings(typeof t.inherits === 'string' ? [t.inherits] : t.inherits, ['target', name, 'inherits'], fail);
    for (const p of parents) children.set(p, [...(children.get(p) ?? []), name]);
    resolving.push(name);
    const out: Record<string, unknown> = {};
    for (const p of parents) {
      if (p === name) fail(['target', name, 'inherits'], `target ${name} cannot link to itself`);
      if (!Object.hasOwn(targets, p)) fail(['target', name, 'inherits'], `"${p}" is not a target of the file`);
      if (resolving.includes(p)) fail(['target', name, 'inherits'], `infinite loop from ${name} to ${p} (${[...resolving.slice(resolving.indexOf(p)), p].join(' -> ')})`);
      mergeTarget(out, resolve(p));
    }
    resolving.pop();
    mergeTarget(out, t);
    delete out.inherits;
    done.set(name, out);
    return out;
  };
  for (const name of Object.keys(targets)) if (isRecord(targets[name])) resolve(name);
  for (const [name, t] of done) targets[name] = t;
  return children;
}

/** A list field with its empty strings left out (anything else is left for the field's own check). */
function withoutEmpties(v: unknown): unknown {
  return Array.isArray(v) ? v.filter((x) => x !== '') : v;
}

function mergeTarget(into: Record<string, unknown>, t: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(t)) {
    if (v === undefined || v === null) continue;
    if ((k === 'args' || k === 'labels' || k === 'contexts') && isRecord(v) && isRecord(into[k])) {
      const m: Record<string, unknown> = { ...(into[k] as Record<string, unknown>) };
      for (const [mk, mv] of Object.entries(v)) if (mv !== null) m[mk] = mv;
      into[k] = m;
    } else if (['cache-from', 'secret', 'ssh', 'attest'].includes(k) && Array.isArray(v) && Array.isArray(into[k])) {
      const seen = (into[k] as unknown[]).map((x) => JSON.stringify(x));
      into[k] = [...(into[k] as unknown[]), ...v.filter((x) => !seen.includes(JSON.stringify(x)))];
    } else into[k] = v;
  }
}

function validate(merged: Merged, path: string, shownPath: string, override: (targets: Record<string, Record<string, unknown>>, groups: Record<string, Record<string, unknown>>) => void): BakeFile {
  const { top, locate } = merged;
  const fail = (keys: string[], why: string): never => {
    throw new BakeFileInvalid(`${locate(keys) ?? path}: ${keys.join('.')}: ${why}`);
  };
  const lineOf = (keys: string[]): number | undefined => {
    const m = /:(\d+)(?::\d+)?$/.exec(locate(keys) ?? '');
    return m ? Number(m[1]) : undefined;
  };
  const targetsDoc = object(top.target, ['target'], fail);
  if (Object.keys(targetsDoc).length === 0) fail(['target'], 'no targets');
  for (const [name, raw] of Object.entries(targetsDoc)) object(raw, ['target', name], fail);
  // A target others inherit from is a template when it has no tags, or only tags that a target
  // inheriting it has too (buildx files write `_common`; docker/metadata-action's bake file gives
  // `docker-metadata-action` the tags its children take): it lends its fields and is never built
  // itself. buildx builds only the targets asked for, so it never meets the question.
  const children = resolveInherits(targetsDoc as Record<string, Record<string, unknown>>, fail);
  const tagsOf = (name: string): string[] => {
    const v = withoutEmpties((targetsDoc[name] as Record<string, unknown>).tags);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  };
  const isTemplate = (name: string): boolean => {
    const kids = children.get(name);
    if (!kids) return false;
    const inKids = new Set(kids.flatMap(tagsOf));
    return tagsOf(name).every((t) => inKids.has(t));
  };
  override(targetsDoc as Record<string, Record<string, unknown>>, (isRecord(top.group) ? top.group : {}) as Record<string, Record<string, unknown>>);
  const base = dirname(resolve(path));
  const targets = new Map<string, BakeTarget>();
  const owners = new Map<string, string>();
  const templates = new Set<string>();
  for (const [name, raw] of Object.entries(targetsDoc)) {
    const at = ['target', name];
    if (isTemplate(name)) {
      templates.add(name);
      continue;
    }
    if (!/^[A-Za-z0-9_-]+$/.test(name)) fail(at, 'a target name is letters, digits, "_" and "-"');
    const t = object(raw, at, fail);
    for (const k of Object.keys(t)) {
      if (unsupported.includes(k)) fail([...at, k], 'not supported by kiln bake');
      if (!targetFields.includes(k)) fail([...at, k], `unknown field (known: ${targetFields.join(', ')})`);
    }
    const context = resolve(base, optString(t.context, [...at, 'context'], fail) ?? '.');
    const dockerfile = optString(t.dockerfile, [...at, 'dockerfile'], fail) ?? 'Dockerfile';
    // buildx drops empty and repeated tags (bake.go removeDupesStr): `cond ? "x" : ""` writes no tag.
    const tags = [...new Set(strings(withoutEmpties(t.tags), [...at, 'tags'], fail))];
    if (tags.length === 0) fail([...at, 'tags'], 'a target needs at least one tag: its children name it in FROM');
    for (const [i, tag] of tags.entries()) {
      let full: string;
      try {
        full = normalize(tag);
      } catch (e) {
        return fail([...at, 'tags', String(i)], (e as Error).message);
      }
      if (owners.has(full) && owners.get(full) !== name) fail([...at, 'tags', String(i)], `"${tag}" is also a tag of target "${owners.get(full)}"`);
      owners.set(full, name);
    }
    const tests = t.test === undefined || t.test === null ? [] : typeof t.test === 'string' ? [t.test] : strings(t.test, [...at, 'test'], fail);
    targets.set(name, {
      name,
      context,
      // buildx: a relative dockerfile is relative to the context.
      dockerfile: isAbsolute(dockerfile) ? dockerfile : join(context, dockerfile),
      tags,
      args: stringMap(t.args, [...at, 'args'], fail),
      stage: optString(t.target, [...at, 'target'], fail),
      labels: stringMap(t.labels, [...at, 'labels'], fail),
      noCache: t['no-cache'] === undefined ? false : t['no-cache'] === true || (t['no-cache'] !== false && fail([...at, 'no-cache'], 'expected true or false')),
      tests: tests.map((p) => resolve(base, p)),
      line: lineOf(at),
      ...buildFields(t, at, base, fail),
    });
  }
  const groups = new Map<string, string[]>();
  for (const [name, raw] of Object.entries(object(top.group ?? {}, ['group'], fail))) {
    const g = object(raw, ['group', name], fail);
    for (const k of Object.keys(g)) if (k !== 'targets' && k !== 'description') fail(['group', name, k], 'unknown field (known: targets)');
    groups.set(name, strings(g.targets, ['group', name, 'targets'], fail));
  }
  for (const [name, members] of groups) {
    for (const m of members) {
      if (templates.has(m)) fail(['group', name, 'targets'], `target "${m}" is a template: others inherit it and it has no tags of its own, so kiln bake cannot build it (it names every image it builds by its tags); give it tags, or build the targets that inherit it`);
      if (!targets.has(m) && !groups.has(m)) fail(['group', name, 'targets'], `"${m}" is neither a target nor a group`);
    }
  }
  return { path: shownPath, dir: base, targets, groups };
}

/** Where a path of the file shows in messages: relative to the working directory when inside it. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

/** The targets named on the command line (targets or groups, recursively); all when none is named. */
export function selectNamed(file: BakeFile, names: string[]): Set<string> {
  if (names.length === 0) names = file.groups.has('default') ? ['default'] : [...file.targets.keys()];
  const out = new Set<string>();
  const seen = new Set<string>();
  const add = (n: string) => {
    if (file.targets.has(n)) out.add(n);
    else if (file.groups.has(n)) {
      if (seen.has(n)) return;
      seen.add(n);
      for (const m of file.groups.get(n)!) add(m);
    } else throw new BakeFileInvalid(`${file.path}: "${n}" is neither a target nor a group of the file`);
  };
  for (const n of names) add(n);
  return out;
}

type Fail = (keys: string[], why: string) => never;

/**
 * The fields a target shares with `kiln build`'s flags, read by the same parsers; a field's error
 * names its place in the file. cache-from, cache-to, secret, attest and output take buildx's
 * strings (`type=registry,ref=…`) or the same as mappings ({type: registry, ref: …}).
 */
function buildFields(t: Record<string, unknown>, at: string[], base: string, fail: Fail): Pick<BakeTarget, 'platforms' | 'output' | 'cacheFrom' | 'cacheTo' | 'secrets' | 'ssh' | 'contexts' | 'sbom' | 'provenance'> {
  const each = <T>(field: string, parse: (spec: string) => T): T[] =>
    specs(t[field], [...at, field], fail).map((spec, i) => {
      try {
        return parse(spec);
      } catch (e) {
        return fail([...at, field, String(i)], (e as Error).message);
      }
    });
  const where = (field: string) => `${[...at, field].join('.')}:`;
  let platforms: Platform[] = [];
  try {
    platforms = parsePlatforms(strings(t.platforms, [...at, 'platforms'], fail), 'platform');
  } catch (e) {
    fail([...at, 'platforms'], (e as Error).message);
  }
  const outputs = each('output', (spec) => {
    const o = parseOutput(bakeOutput(spec));
    return 'dest' in o ? { ...o, dest: resolve(base, o.dest) } : o;
  });
  if (outputs.length > 1) fail([...at, 'output'], 'only one output is supported');
  const output = outputs[0] ?? { type: 'image' as const };
  const refusal = multiPlatformRefusal(output, platforms.length);
  if (refusal) fail([...at, 'output'], refusal);
  const attest = each('attest', parseAttest);
  const contexts: NamedContextSpec[] = [];
  for (const [name, value] of Object.entries(stringMap(t.contexts, [...at, 'contexts'], fail))) {
    try {
      contexts.push(parseNamedContext(name, value, where('contexts'), base));
    } catch (e) {
      fail([...at, 'contexts', name], (e as Error).message);
    }
  }
  return {
    platforms,
    output,
    cacheFrom: each('cache-from', parseCacheFrom),
    cacheTo: each('cache-to', parseCacheTo),
    secrets: each('secret', (spec) => parseSecret(spec, 'secret')),
    ssh: strings(t.ssh, [...at, 'ssh'], fail),
    contexts,
    sbom: attest.includes('sbom'),
    provenance: attest.includes('provenance'),
  };
}

/**
 * buildx bake's outputs in kiln build's terms: type=registry without a name pushes to the target's
 * tags (type=image,push=true), and type=docker without a dest loads the image into the image store,
 * which for kiln is its own store (type=image).
 */
function bakeOutput(spec: string): string {
  const fields = spec.split(',').map((f) => f.trim());
  if (fields.some((f) => f.startsWith('name=') || f.startsWith('dest='))) return spec;
  return fields.map((f) => (f === 'type=registry' ? 'type=image,push=true' : f === 'type=docker' ? 'type=image' : f)).join(',');
}

/** An `attest` entry: type=sbom or type=provenance (mode=min|max, as buildx; disabled=true leaves it out). */
function parseAttest(spec: string): 'sbom' | 'provenance' | 'none' {
  const kv = Object.fromEntries(spec.split(',').map((f) => [f.slice(0, f.indexOf('=') < 0 ? f.length : f.indexOf('=')).trim(), f.slice(f.indexOf('=') + 1).trim()]));
  const type = kv.type;
  if (type !== 'sbom' && type !== 'provenance') throw new Error(`"${spec}": type must be sbom or provenance`);
  for (const k of Object.keys(kv)) if (!['type', 'disabled', ...(type === 'provenance' ? ['mode'] : [])].includes(k)) throw new Error(`"${spec}": unknown field "${k}" for type=${type}`);
  if (kv.mode !== undefined && kv.mode !== 'min' && kv.mode !== 'max') throw new Error(`"${spec}": mode must be min or max`);
  if (kv.disabled !== undefined && kv.disabled !== 'true' && kv.disabled !== 'false') throw new Error(`"${spec}": disabled must be true or false`);
  return kv.disabled === 'true' ? 'none' : type;
}

/** A list of buildx specs: strings, or mappings of their fields (written back as k=v,k=v). */
function specs(v: unknown, keys: string[], fail: Fail): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(keys, `expected a list, got ${describe(v)}`);
  return v.map((x, i) => {
    if (typeof x === 'string' && x !== '') return x;
    if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
      return Object.entries(stringMap(x, [...keys, String(i)], fail)).map(([k, y]) => `${k}=${y}`).join(',');
    }
    return fail([...keys, String(i)], `expected a string or a mapping, got ${describe(x)}`);
  });
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;
}

function object(v: unknown, keys: string[], fail: Fail): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(keys, `expected a mapping, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

function optString(v: unknown, keys: string[], fail: Fail): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') return fail(keys, `expected a non-empty string, got ${describe(v)}`);
  return v;
}

function strings(v: unknown, keys: string[], fail: Fail): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(keys, `expected a list of strings, got ${describe(v)}`);
  return v.map((x, i) => (typeof x === 'string' && x !== '' ? x : fail([...keys, String(i)], `expected a non-empty string, got ${describe(x)}`)));
}

/** buildx's args and labels: string values (numbers and booleans as written); null leaves the key out. */
function stringMap(v: unknown, keys: string[], fail: Fail): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = object(v, keys, fail);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o)) {
    if (x === null) continue;
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
    else fail([...keys, k], `expected a string, got ${describe(x)}`);
  }
  return out;
}
