// Evaluation of HCL expressions to plain values, with cty's conversions where bake files rely on
// them: numbers and booleans become strings in templates, "1" is a number to arithmetic and
// "true" a boolean to conditions (go-cty convert's primitive conversions).

import { HclError, type Expr, type Pos, type TemplatePart, type Value } from './syntax.js';

export type HclFunction = (args: Value[], pos: Pos) => Value;

/** What names mean where an expression is evaluated. */
export interface Scope {
  /** A variable's value, or undefined when the name is not one. */
  variable(name: string, pos: Pos): Value | undefined;
  fn(name: string): HclFunction | undefined;
  /** `target.NAME.FIELD`, as buildx lets a target read another's attribute. */
  targetField?(name: string, field: string, pos: Pos): Value;
}

/** A scope with some names bound on top of another (for expressions, function parameters, matrix values). */
export function withLocals(parent: Scope, locals: Record<string, Value>): Scope {
  return {
    variable: (name, pos) => (Object.hasOwn(locals, name) ? locals[name] : parent.variable(name, pos)),
    fn: (name) => parent.fn(name),
    targetField: parent.targetField?.bind(parent),
  };
}

export function typeName(v: Value): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'tuple';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

export function asString(v: Value, pos: Pos, what = 'value'): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return String(v);
  throw new HclError(pos, `${what}: expected a string, got ${typeName(v)}`);
}

export function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(15)));
}

export function asNumber(v: Value, pos: Pos, what = 'value'): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw new HclError(pos, `${what}: expected a number, got ${typeName(v)}${typeof v === 'string' ? ` ${JSON.stringify(v)}` : ''}`);
}

export function asBool(v: Value, pos: Pos, what = 'value'): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new HclError(pos, `${what}: expected a bool, got ${typeName(v)}${typeof v === 'string' ? ` ${JSON.stringify(v)}` : ''}`);
}

export function asList(v: Value, pos: Pos, what = 'value'): Value[] {
  if (Array.isArray(v)) return v;
  throw new HclError(pos, `${what}: expected a list, got ${typeName(v)}`);
}

export function asObject(v: Value, pos: Pos, what = 'value'): Record<string, Value> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  throw new HclError(pos, `${what}: expected an object, got ${typeName(v)}`);
}

export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]!));
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k]!, b[k]!));
  }
  return false;
}

export function evaluate(e: Expr, scope: Scope): Value {
  switch (e.k) {
    case 'lit':
      return e.v;
    case 'tpl':
      return template(e.parts, scope, e.pos);
    case 'var': {
      const v = scope.variable(e.name, e.pos);
      if (v === undefined) throw new HclError(e.pos, `unknown variable "${e.name}"${e.name === 'target' ? ' (target.NAME.FIELD reads another target\'s field)' : ''}`);
      return v;
    }
    case 'tuple':
      return e.items.map((x) => evaluate(x, scope));
    case 'object': {
      const out: Record<string, Value> = {};
      for (const { key, value } of e.items) out[asString(evaluate(key, scope), key.pos, 'object key')] = evaluate(value, scope);
      return out;
    }
    case 'call': {
      const f = scope.fn(e.name);
      if (!f) throw new HclError(e.pos, `call to unknown function "${e.name}"`);
      let args = e.args.map((a) => evaluate(a, scope));
      if (e.expand) args = [...args.slice(0, -1), ...asList(args[args.length - 1]!, e.args[e.args.length - 1]!.pos, 'the argument expanded with "..."')];
      try {
        return f(args, e.pos);
      } catch (err) {
        if (err instanceof HclError) throw err;
        throw new HclError(e.pos, `${e.name}(): ${(err as Error).message}`);
      }
    }
    case 'cond':
      // Only the branch taken is evaluated, as in HCL.
      return asBool(evaluate(e.cond, scope), e.cond.pos, 'condition') ? evaluate(e.then, scope) : evaluate(e.else, scope);
    case 'unary': {
      const v = evaluate(e.e, scope);
      return e.op === '!' ? !asBool(v, e.pos, 'operand of "!"') : -asNumber(v, e.pos, 'operand of "-"');
    }
    case 'binary':
      return binary(e.op, e.l, e.r, scope, e.pos);
    case 'index': {
      const v = evaluate(e.e, scope);
      const i = evaluate(e.i, scope);
      if (Array.isArray(v)) {
        const n = asNumber(i, e.i.pos, 'index');
        if (!Number.isInteger(n) || n < 0 || n >= v.length) throw new HclError(e.pos, `index ${formatNumber(n)} is out of range for a list of ${v.length}`);
        return v[n]!;
      }
      if (v !== null && typeof v === 'object') {
        const k = asString(i, e.i.pos, 'key');
        if (!Object.hasOwn(v, k)) throw new HclError(e.pos, `the object has no element "${k}"`);
        return v[k]!;
      }
      throw new HclError(e.pos, `cannot index a ${typeName(v)}`);
    }
    case 'attr': {
      if (e.e.k === 'attr' && e.e.e.k === 'var' && e.e.e.name === 'target' && scope.targetField && scope.variable('target', e.pos) === undefined) {
        return scope.targetField(e.e.name, e.name, e.e.e.pos);
      }
      const v = evaluate(e.e, scope);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HclError(e.pos, `cannot read attribute "${e.name}" of a ${typeName(v)}`);
      if (!Object.hasOwn(v, e.name)) throw new HclError(e.pos, `the object has no attribute "${e.name}"`);
      return v[e.name]!;
    }
    case 'splat': {
      const v = evaluate(e.e, scope);
      const list = v === null ? [] : Array.isArray(v) ? v : [v];
      return list.map((x) => e.names.reduce<Value>((o, n) => asObject(o, e.pos)[n] ?? null, x));
    }
    case 'for':
      return forExpr(e, scope);
  }
}

function binary(op: string, le: Expr, re: Expr, scope: Scope, pos: Pos): Value {
  // && and || evaluate both sides in HCL; kept so that an error on either side is reported.
  const l = evaluate(le, scope);
  const r = evaluate(re, scope);
  switch (op) {
    case '==':
      return equal(l, r);
    case '!=':
      return !equal(l, r);
    case '&&':
      return asBool(l, le.pos, 'operand of "&&"') && asBool(r, re.pos, 'operand of "&&"');
    case '||':
      return asBool(l, le.pos, 'operand of "||"') || asBool(r, re.pos, 'operand of "||"');
  }
  const a = asNumber(l, le.pos, `operand of "${op}"`);
  const b = asNumber(r, re.pos, `operand of "${op}"`);
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      if (b === 0) throw new HclError(pos, 'division by zero');
      return a / b;
    case '%':
      if (b === 0) throw new HclError(pos, 'modulo by zero');
      return a % b;
    case '<':
      return a < b;
    case '>':
      return a > b;
    case '<=':
      return a <= b;
    default:
      return a >= b;
  }
}

/** The pairs a for expression or %{for} walks: index and element of a list, key and value of an object. */
function entries(v: Value, pos: Pos): [Value, Value][] {
  if (Array.isArray(v)) return v.map((x, i) => [i, x]);
  if (v !== null && typeof v === 'object') return Object.keys(v).sort().map((k) => [k, v[k]!]);
  throw new HclError(pos, `cannot iterate over a ${typeName(v)}`);
}

function forExpr(e: Extract<Expr, { k: 'for' }>, scope: Scope): Value {
  const pairs = entries(evaluate(e.coll, scope), e.coll.pos);
  const bind = (k: Value, v: Value) => withLocals(scope, e.keyVar ? { [e.keyVar]: k, [e.valVar]: v } : { [e.valVar]: v });
  if (!e.keyExpr) {
    const out: Value[] = [];
    for (const [k, v] of pairs) {
      const s = bind(k, v);
      if (e.cond && !asBool(evaluate(e.cond, s), e.cond.pos, 'for condition')) continue;
      out.push(evaluate(e.valExpr, s));
    }
    return out;
  }
  const out: Record<string, Value> = {};
  for (const [k, v] of pairs) {
    const s = bind(k, v);
    if (e.cond && !asBool(evaluate(e.cond, s), e.cond.pos, 'for condition')) continue;
    const key = asString(evaluate(e.keyExpr, s), e.keyExpr.pos, 'for key');
    const val = evaluate(e.valExpr, s);
    if (e.group) ((out[key] ??= []) as Value[]).push(val);
    else if (Object.hasOwn(out, key)) throw new HclError(e.keyExpr.pos, `duplicate key "${key}" in the for expression (use "..." to group)`);
    else out[key] = val;
  }
  return out;
}

function template(parts: TemplatePart[], scope: Scope, pos: Pos): Value {
  // A template of a single interpolation is the value itself, not its string ("${[1]}" is a tuple).
  if (parts.length === 1 && typeof parts[0] !== 'string' && parts[0]!.k !== 'tif' && parts[0]!.k !== 'tfor') return evaluate(parts[0] as Expr, scope);
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') out += p;
    else if (p.k === 'tif') out += asString(template(asBool(evaluate(p.cond, scope), p.cond.pos, '%{if} condition') ? p.then : p.else, scope, pos), pos);
    else if (p.k === 'tfor') {
      for (const [k, v] of entries(evaluate(p.coll, scope), p.coll.pos)) {
        out += asString(template(p.body, withLocals(scope, p.keyVar ? { [p.keyVar]: k, [p.valVar]: v } : { [p.valVar]: v }), pos), pos);
      }
    } else {
      const v = evaluate(p, scope);
      if (v === null) throw new HclError(p.pos, 'cannot interpolate null into a template');
      out += asString(v, p.pos, 'interpolation');
    }
  }
  return out;
}
