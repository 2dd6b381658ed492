// `kiln bake --set PATTERN.KEY=VALUE`, as buildx's (bake.go newOverrides, Target.AddOverrides):
// applied to the targets once their inherits are resolved, before the fields are checked, so a
// bad value gets the same message a bad field of the file does. PATTERN is a target or group name
// with * and ? globs (path.Match); list keys given several times collect their values, and
// `KEY+=VALUE` appends to the file's list instead of replacing it.

import { BakeFileInvalid } from './errors.js';

/** --set keys whose value is a list, by buildx's name, and the file's field each sets. */
const listKeys: Record<string, string> = { tags: 'tags', platform: 'platforms', output: 'output', 'cache-from': 'cache-from', 'cache-to': 'cache-to', secrets: 'secret', ssh: 'ssh', attest: 'attest' };
const stringKeys = ['context', 'dockerfile', 'target'];
const mapKeys = ['args', 'labels', 'contexts'];

type Targets = Record<string, Record<string, unknown>>;

export function applyOverrides(targets: Targets, groups: Record<string, Record<string, unknown>>, sets: string[], env: Record<string, string | undefined>): void {
  /** Per target and file field: the values collected from list keys, and whether they append. */
  const lists = new Map<string, Map<string, { values: string[]; append: boolean }>>();
  for (const set of sets) {
    const eq = set.indexOf('=');
    const lhs = eq < 0 ? set : set.slice(0, eq);
    const value = eq < 0 ? undefined : set.slice(eq + 1);
    const append = lhs.endsWith('+');
    const keys = (append ? lhs.slice(0, -1) : lhs).split('.');
    const bad = (why: string): never => {
      throw new BakeFileInvalid(`--set ${set}: ${why}`);
    };
    if (keys.length < 2) bad('expected TARGET.KEY=VALUE');
    const [pattern, key] = keys as [string, string];
    const sub = keys.slice(2).join('.');
    if (value === undefined && key !== 'args') bad('expected TARGET.KEY=VALUE');
    if (append && !(key in listKeys)) bad(`"${key}" is not a list: += appends to ${Object.keys(listKeys).join(', ')}`);
    const names = expand(pattern, targets, groups);
    if (names.length === 0) bad(`could not find any target matching "${pattern}"`);
    for (const name of names) {
      const t = targets[name]!;
      if (key in listKeys) {
        if (sub) bad(`"${key}" takes no subkey`);
        const field = listKeys[key]!;
        const per = lists.get(name) ?? new Map();
        lists.set(name, per);
        const l = per.get(field) ?? { values: [], append };
        l.values.push(value!);
        per.set(field, l);
      } else if (mapKeys.includes(key)) {
        if (!sub) bad(`${key} requires a name: ${pattern}.${key}.NAME=VALUE`);
        // buildx: args.NAME with no value takes the environment variable NAME, when it is set.
        const v = value ?? env[sub];
        if (v === undefined) continue;
        const m = t[key];
        t[key] = { ...(m !== null && typeof m === 'object' && !Array.isArray(m) ? m : {}), [sub]: v };
      } else if (stringKeys.includes(key)) {
        if (sub) bad(`"${key}" takes no subkey`);
        t[key] = value;
      } else if (key === 'no-cache') {
        // strconv.ParseBool's spellings, as buildx reads boolean keys
        if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value!)) t['no-cache'] = true;
        else if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value!)) t['no-cache'] = false;
        else bad(`invalid value ${value} for boolean key no-cache`);
      } else bad(`unknown key "${key}" (known: ${[...Object.keys(listKeys), ...mapKeys, ...stringKeys, 'no-cache'].join(', ')})`);
    }
  }
  for (const [name, per] of lists) {
    for (const [field, { values, append }] of per) {
      const had = targets[name]![field];
      targets[name]![field] = append && Array.isArray(had) ? [...had, ...values] : values;
    }
  }
}

/** The targets a pattern names: targets and groups (their targets, recursively) whose name matches. */
function expand(pattern: string, targets: Targets, groups: Record<string, Record<string, unknown>>): string[] {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  const out = new Set<string>();
  const seen = new Set<string>();
  const add = (n: string) => {
    if (Object.hasOwn(targets, n)) out.add(n);
    else if (Object.hasOwn(groups, n) && !seen.has(n)) {
      seen.add(n);
      const members = groups[n]!.targets;
      if (Array.isArray(members)) for (const m of members) if (typeof m === 'string') add(m);
    }
  };
  for (const n of [...Object.keys(targets), ...Object.keys(groups)]) if (re.test(n)) add(n);
  return [...out];
}
