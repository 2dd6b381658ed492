// docker-bake.hcl evaluated as buildx's bake/hclparser does it, to the plain document the YAML and
// JSON forms give ({target: {NAME: {...}}, group: {NAME: {targets}}}), so that one validation reads
// all three. Several HCL files are one body, later files overriding: a variable's default, a
// top-level attribute, and a target's or group's attributes one by one (hclparser_test
// TestHCLMultiFileAttrs, TestHCLMultiFileGlobalAttrs).

import { arch, platform } from 'node:process';
import { asBool, asObject, asString, evaluate, typeName, withLocals, type HclFunction, type Scope } from './eval.js';
import { stdlib } from './functions.js';
import { parseHcl } from './parser.js';
import { HclError, type Attribute, type Block, type Expr, type Pos, type Value } from './syntax.js';

export interface HclSource {
  path: string;
  text: string;
}

/** The evaluated document, and where each key path was written, for the validation's messages. */
export interface HclDocument {
  doc: { target: Record<string, Record<string, Value>>; group: Record<string, Record<string, Value>> };
  /** 'target.NAME' / 'target.NAME.FIELD' / 'group.NAME…' → file:line:col. */
  places: Map<string, Pos>;
}

interface Variable {
  block: Block;
  attrs: Map<string, Attribute>;
  validations: Block[];
}

/** Attributes of a block merged over its earlier definitions: a later one wins, attribute by attribute. */
interface Merged {
  pos: Pos;
  attrs: Map<string, Attribute>;
}

const variableFields = ['default', 'type', 'description', 'sensitive'];
const functionFields = ['params', 'variadic_params', 'result'];

export function evaluateHcl(sources: HclSource[], env: Record<string, string | undefined> = process.env): HclDocument {
  const variables = new Map<string, Variable>();
  const globals = new Map<string, Attribute>();
  const functions = new Map<string, Block>();
  const targets = new Map<string, Merged>();
  const groups = new Map<string, Merged>();
  const merge = (into: Map<string, Merged>, b: Block) => {
    const m = into.get(b.labels[0]!) ?? { pos: b.pos, attrs: new Map() };
    for (const a of b.body.attributes) m.attrs.set(a.name, a);
    into.set(b.labels[0]!, m);
  };
  for (const src of sources) {
    const body = parseHcl(src.text, src.path);
    for (const a of body.attributes) globals.set(a.name, a);
    for (const b of body.blocks) {
      const kinds = ['variable', 'function', 'target', 'group'];
      if (!kinds.includes(b.type)) throw new HclError(b.pos, `unknown block type "${b.type}" (known: ${kinds.join(', ')})`);
      if (b.labels.length !== 1) throw new HclError(b.pos, `a ${b.type} block takes one label, its name; got ${b.labels.length}`);
      const name = b.labels[0]!;
      if (b.type === 'target' || b.type === 'group') {
        const nested = b.body.blocks[0];
        if (nested) throw new HclError(nested.pos, `unexpected block "${nested.type}" in ${b.type} "${name}"`);
        merge(b.type === 'target' ? targets : groups, b);
        continue;
      }
      const fields = b.type === 'variable' ? variableFields : functionFields;
      for (const a of b.body.attributes) if (!fields.includes(a.name)) throw new HclError(a.pos, `unknown attribute "${a.name}" in ${b.type} "${name}" (known: ${fields.join(', ')})`);
      if (b.type === 'function') {
        functions.set(name, b);
        continue;
      }
      const validations = b.body.blocks.filter((v) => v.type === 'validation');
      const other = b.body.blocks.find((v) => v.type !== 'validation');
      if (other) throw new HclError(other.pos, `unexpected block "${other.type}" in variable "${name}" (only validation)`);
      // A later variable block overrides the default of an earlier one.
      const prev = variables.get(name);
      const attrs = new Map(prev?.attrs ?? []);
      for (const a of b.body.attributes) attrs.set(a.name, a);
      variables.set(name, { block: b, attrs, validations: [...(prev?.validations ?? []), ...validations] });
    }
  }

  const values = new Map<string, Value>();
  const resolving = new Set<string>();
  const lib = stdlib();
  const userFns = new Map<string, HclFunction>();
  const calling = new Set<string>();
  const builtins: Record<string, string> = { BAKE_LOCAL_PLATFORM: `${platform}/${arch === 'x64' ? 'amd64' : arch}` };

  const global: Scope = {
    variable: (name, pos) => {
      if (values.has(name)) return values.get(name)!;
      if (Object.hasOwn(builtins, name)) return builtins[name]!;
      if (!variables.has(name) && !globals.has(name)) return undefined;
      if (resolving.has(name)) throw new HclError(pos, `variable cycle not allowed for ${name}`);
      resolving.add(name);
      try {
        // A top-level attribute of a variable's name is its default (buildx resolveValue reads p.attrs
        // first; TestHCLMultiFileAttrs), still overridden from the environment.
        const v = variables.has(name) ? variableValue(name, variables.get(name)!, env, global, globals.get(name)) : evaluate(globals.get(name)!.expr, global);
        values.set(name, v);
        return v;
      } finally {
        resolving.delete(name);
      }
    },
    fn: (name) => userFns.get(name) ?? lib.get(name),
    targetField: (name, field, pos) => targetField(name, field, pos),
  };

  for (const [name, b] of functions) {
    const attr = (n: string) => b.body.attributes.find((a) => a.name === n);
    const result = attr('result');
    if (!result) throw new HclError(b.pos, `empty result not allowed for ${name}`);
    const paramsAttr = attr('params');
    if (!paramsAttr) throw new HclError(b.pos, `empty params not allowed for ${name}`);
    const names = (e: Expr, what: string): string[] => {
      if (e.k !== 'tuple') throw new HclError(e.pos, `${what} of function "${name}": expected a list of names`);
      return e.items.map((x) => {
        if (x.k !== 'var') throw new HclError(x.pos, `${what} of function "${name}": expected a name`);
        return x.name;
      });
    };
    const params = names(paramsAttr.expr, 'params');
    const variadic = attr('variadic_params');
    if (variadic && variadic.expr.k !== 'var') throw new HclError(variadic.pos, `variadic_params of function "${name}": expected a name`);
    const rest = variadic?.expr.k === 'var' ? variadic.expr.name : undefined;
    userFns.set(name, (args, pos) => {
      if (args.length < params.length || (!rest && args.length > params.length)) {
        throw new HclError(pos, `function "${name}" takes ${rest ? 'at least ' : ''}${params.length} argument${params.length === 1 ? '' : 's'}, got ${args.length}`);
      }
      if (calling.has(name)) throw new HclError(pos, `function cycle not allowed for ${name}`);
      calling.add(name);
      try {
        const locals: Record<string, Value> = Object.fromEntries(params.map((p, i) => [p, args[i]!]));
        if (rest) locals[rest] = args.slice(params.length);
        return evaluate(result.expr, withLocals(global, locals));
      } finally {
        calling.delete(name);
      }
    });
  }

  const fieldValues = new Map<string, Value>();
  const fieldsResolving = new Set<string>();
  const targetField = (name: string, field: string, pos: Pos): Value => {
    const key = `${name}.${field}`;
    if (fieldValues.has(key)) return fieldValues.get(key)!;
    const t = targets.get(name);
    if (!t) throw new HclError(pos, `target.${name}: no target "${name}"`);
    if (t.attrs.has('matrix')) throw new HclError(pos, `target.${name}.${field}: "${name}" is a matrix target`);
    const a = t.attrs.get(field);
    if (!a) throw new HclError(pos, `target.${name}.${field}: target "${name}" has no attribute "${field}"`);
    if (fieldsResolving.has(key)) throw new HclError(pos, `reference cycle not allowed for target.${name}.${field}`);
    fieldsResolving.add(key);
    try {
      const v = evaluate(a.expr, global);
      fieldValues.set(key, v);
      return v;
    } finally {
      fieldsResolving.delete(key);
    }
  };

  // buildx evaluates every variable, used or not: a bad default or validation fails the file.
  for (const name of variables.keys()) global.variable(name, variables.get(name)!.block.pos);

  const places = new Map<string, Pos>();
  const doc: HclDocument['doc'] = { target: {}, group: {} };
  const expansions = new Map<string, string[]>();
  const evalBlock = (m: Merged, scope: Scope, key: string, skip: string[]) => {
    const out: Record<string, Value> = {};
    places.set(key, m.pos);
    for (const [field, a] of m.attrs) {
      if (skip.includes(field)) continue;
      places.set(`${key}.${field}`, a.pos);
      const v = evaluate(a.expr, scope);
      // buildx: a null attribute is an unset one (`dockerfile = X != "" ? X : null`).
      if (v !== null) out[field] = v;
    }
    return out;
  };
  for (const [name, m] of targets) {
    const matrix = m.attrs.get('matrix');
    const nameAttr = m.attrs.get('name');
    if (!matrix) {
      if (nameAttr) throw new HclError(nameAttr.pos, `target "${name}": name requires matrix`);
      doc.target[name] = evalBlock(m, global, `target.${name}`, []);
      continue;
    }
    if (!nameAttr) throw new HclError(matrix.pos, `target "${name}": a matrix needs a name (e.g. name = "${name}-\${item}") to tell its targets apart`);
    const axes = Object.entries(asObject(evaluate(matrix.expr, global), matrix.pos, `target "${name}": matrix`)).map(([k, v]) => {
      if (!Array.isArray(v)) throw new HclError(matrix.pos, `target "${name}": matrix values must be lists; "${k}" is a ${typeName(v)}`);
      return [k, v] as const;
    });
    let combos: Record<string, Value>[] = [{}];
    for (const [k, vs] of axes) combos = combos.flatMap((c) => vs.map((v) => ({ ...c, [k]: v })));
    const names: string[] = [];
    for (const combo of combos) {
      const scope = withLocals(global, combo);
      const n = asString(evaluate(nameAttr.expr, scope), nameAttr.pos, `target "${name}": name`);
      if (doc.target[n] || names.includes(n) || (n !== name && targets.has(n))) throw new HclError(nameAttr.pos, `target "${name}": duplicate name "${n}"`);
      names.push(n);
      doc.target[n] = evalBlock(m, scope, `target.${n}`, ['matrix', 'name']);
    }
    expansions.set(name, names);
  }
  for (const [name, m] of groups) {
    const matrix = m.attrs.get('matrix');
    if (matrix) throw new HclError(matrix.pos, `group "${name}": matrix is not supported for groups`);
    doc.group[name] = evalBlock(m, global, `group.${name}`, []);
  }
  // A matrix target's own name stands for all its targets, in groups and on the command line.
  for (const [name, names] of expansions) {
    if (doc.group[name] && !(names.length === 1 && names[0] === name)) throw new HclError(targets.get(name)!.pos, `"${name}" is both a matrix target and a group`);
    if (!names.includes(name)) {
      doc.group[name] = { targets: names };
      places.set(`group.${name}`, targets.get(name)!.pos);
    }
  }
  return { doc, places };
}

/** A variable's value: the environment variable of its name over its default, typed as buildx types it. */
function variableValue(name: string, v: Variable, env: Record<string, string | undefined>, scope: Scope, attr?: Attribute): Value {
  const def = attr ?? v.attrs.get('default');
  const typeAttr = v.attrs.get('type');
  const type = typeAttr ? typeOf(typeAttr.expr) : undefined;
  let value: Value = def ? evaluate(def.expr, scope) : type ? null : '';
  const raw = env[name];
  const where = def?.pos ?? v.block.pos;
  if (raw !== undefined) {
    const kind = type?.kind ?? (value === null ? 'string' : typeof value === 'string' ? 'string' : typeof value === 'number' ? 'number' : typeof value === 'boolean' ? 'bool' : typeName(value));
    const elem = type?.elem ?? 'string';
    const parse = (s: string, k: string): Value => {
      if (k === 'bool') {
        // strconv.ParseBool's spellings
        if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
        if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
        throw new HclError(where, `failed to parse ${name} as bool: "${s}" (from the environment)`);
      }
      if (k === 'number') {
        const n = Number(s);
        if (s.trim() === '' || !Number.isFinite(n)) throw new HclError(where, `failed to parse ${name} as number: "${s}" (from the environment)`);
        return n;
      }
      return s;
    };
    if (kind === 'string' || kind === 'bool' || kind === 'number') value = parse(raw, kind);
    else if (type && (kind === 'list' || kind === 'set') && raw.trim().startsWith('[')) value = jsonValue(raw, name, where);
    else if (type && (kind === 'list' || kind === 'set')) value = raw === '' ? [] : raw.split(',').map((s) => parse(s.trim(), elem));
    else if (type) value = jsonValue(raw, name, where);
    else throw new HclError(where, `unsupported type ${kind} for variable ${name} (set from the environment)`);
  }
  if (type && value !== null) checkType(value, type, name, where);
  for (const val of v.validations) {
    const cond = val.body.attributes.find((a) => a.name === 'condition');
    const msg = val.body.attributes.find((a) => a.name === 'error_message');
    if (!cond) throw new HclError(val.pos, `validation of variable "${name}": condition is required`);
    const s = withLocals(scope, { [name]: value });
    if (!asBool(evaluate(cond.expr, s), cond.pos, 'validation condition')) {
      throw new HclError(cond.pos, msg ? asString(evaluate(msg.expr, s), msg.pos, 'error_message') : `invalid value for variable "${name}"`);
    }
  }
  return value;
}

function jsonValue(raw: string, name: string, pos: Pos): Value {
  try {
    return JSON.parse(raw) as Value;
  } catch {
    throw new HclError(pos, `failed to convert variable ${name} from JSON`);
  }
}

interface VarType {
  kind: string;
  elem?: string;
}

/** The type expressions bake files use: string, number, bool, any, list(T)/set(T)/map(T) of a primitive, object/tuple as JSON. */
function typeOf(e: Expr): VarType | undefined {
  if (e.k === 'var' && ['string', 'number', 'bool'].includes(e.name)) return { kind: e.name };
  if (e.k === 'var' && e.name === 'any') return undefined;
  if (e.k === 'call' && ['list', 'set', 'map', 'object', 'tuple'].includes(e.name)) {
    const inner = e.args[0];
    return { kind: e.name, elem: inner?.k === 'var' ? inner.name : 'any' };
  }
  throw new HclError(e.pos, 'unsupported type expression (kiln reads string, number, bool, any, list(T), set(T), map(T), object(...), tuple(...))');
}

function checkType(v: Value, t: VarType, name: string, pos: Pos): void {
  const ok = (x: Value, k: string): boolean => k === 'any' || (k === 'string' ? ['string', 'number', 'boolean'].includes(typeof x) : k === 'number' ? typeof x === 'number' : k === 'bool' ? typeof x === 'boolean' : true);
  const good =
    t.kind === 'list' || t.kind === 'set' || t.kind === 'tuple'
      ? Array.isArray(v) && (t.kind === 'tuple' || v.every((x) => ok(x, t.elem ?? 'any')))
      : t.kind === 'map' || t.kind === 'object'
        ? v !== null && typeof v === 'object' && !Array.isArray(v) && (t.kind === 'object' || Object.values(v).every((x) => ok(x, t.elem ?? 'any')))
        : ok(v, t.kind);
  if (!good) throw new HclError(pos, `invalid type ${typeName(v)} for variable ${name}: expected ${t.kind}${t.elem ? `(${t.elem})` : ''}`);
}
