// Lint configuration as hadolint reads it, so that a repository's .hadolint.yaml keeps working:
// the file (found where hadolint looks, or given with -c), then environment variables, then flags.
// Scalars: the later source wins. Lists (ignored, override, trustedRegistries, label-schema): merged.

import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KilnError } from '../errors.js';
import { severities, type Level, type Severity } from './rule.js';

export const outputFormats = ['tty', 'json', 'sarif', 'checkstyle', 'junit', 'gnu'] as const;
export type OutputFormat = (typeof outputFormats)[number];

/** hadolint's label-schema value types. */
export const labelTypes = ['text', 'url', 'semver', 'hash', 'rfc3339', 'spdx', 'email'] as const;
export type LabelType = (typeof labelTypes)[number];

export type Threshold = Level | 'none';

export interface LintConfig {
  ignored: string[];
  override: Record<Severity, string[]>;
  trustedRegistries: string[];
  labelSchema: Record<string, LabelType>;
  strictLabels: boolean;
  failureThreshold: Threshold;
  noFail: boolean;
  format: OutputFormat;
  disableIgnorePragma: boolean;
  noColor: boolean;
  /** kiln's own key: treat every linted file as production (rule KL1004). */
  production: boolean;
}

export type PartialConfig = Partial<Omit<LintConfig, 'override'>> & { override?: Partial<Record<Severity, string[]>> };

/** The configuration file is unreadable or has a key with a wrong value. */
export class LintConfigInvalid extends KilnError {
  override exitCode = 2;
}

export function defaultConfig(): LintConfig {
  return {
    ignored: [],
    override: { error: [], warning: [], info: [], style: [] },
    trustedRegistries: [],
    labelSchema: {},
    strictLabels: false,
    failureThreshold: 'info',
    noFail: false,
    format: 'tty',
    disableIgnorePragma: false,
    noColor: false,
    production: false,
  };
}

/** Later sources win for scalars; lists are merged. */
export function mergeConfig(...parts: PartialConfig[]): LintConfig {
  const c = defaultConfig();
  for (const p of parts) {
    if (p.ignored) c.ignored.push(...p.ignored);
    for (const s of severities) if (p.override?.[s]) c.override[s].push(...p.override[s]!);
    if (p.trustedRegistries) c.trustedRegistries.push(...p.trustedRegistries);
    if (p.labelSchema) Object.assign(c.labelSchema, p.labelSchema);
    for (const k of ['strictLabels', 'failureThreshold', 'noFail', 'format', 'disableIgnorePragma', 'noColor', 'production'] as const) {
      if (p[k] !== undefined) (c as unknown as Record<string, unknown>)[k] = p[k];
    }
  }
  return c;
}

/** The severity a rule reports at: its default unless ignored or overridden. */
export function levelOf(code: string, defaultLevel: Level, config: LintConfig): Level {
  if (config.ignored.includes(code)) return 'ignore';
  // hadolint applies overrides from the most severe list down; a code in several lists takes the first.
  for (const s of severities) if (config.override[s].includes(code)) return s;
  return defaultLevel;
}

/** Where hadolint looks for its configuration when -c is not given, first found wins. */
export function configCandidates(cwd: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME ?? homedir();
  const xdg = env.XDG_CONFIG_HOME || join(home, '.config');
  const both = (base: string) => [`${base}.yaml`, `${base}.yml`];
  return [
    ...both(join(cwd, '.hadolint')),
    ...both(join(xdg, 'hadolint')),
    ...both(join(home, '.config', 'hadolint')),
    ...both(join(home, '.hadolint', 'hadolint')),
    ...both(join(home, 'hadolint', 'config')),
    ...both(join(home, '.hadolint')),
  ];
}

export function findConfigFile(cwd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return configCandidates(cwd, env).find((p) => existsSync(p));
}

export async function readConfigFile(path: string): Promise<PartialConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new LintConfigInvalid(`${path}: cannot read the configuration: ${(e as Error).message}`);
  }
  return parseConfig(text, path);
}

const knownKeys = [
  'ignored', 'override', 'trustedRegistries', 'label-schema', 'strict-labels', 'failure-threshold', 'no-fail',
  'format', 'disable-ignore-pragma', 'no-color', 'production',
];

/** Parses and checks a configuration document; errors name the key and what is wrong with it. */
export function parseConfig(text: string, source: string): PartialConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new LintConfigInvalid(`${source}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new LintConfigInvalid(`${source}: the configuration must be a mapping of keys to values`);
  const bad = (key: string, why: string): never => {
    throw new LintConfigInvalid(`${source}: ${key}: ${why}`);
  };
  const out: PartialConfig = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    switch (key) {
      case 'ignored':
        out.ignored = codeList(value, key, bad);
        break;
      case 'override': {
        if (value === null) break;
        if (typeof value !== 'object' || Array.isArray(value)) bad(key, 'expected a mapping with error, warning, info and style lists');
        out.override = {};
        for (const [s, list] of Object.entries(value as Record<string, unknown>)) {
          if (!(severities as readonly string[]).includes(s)) bad(`${key}.${s}`, `unknown severity (use ${severities.join(', ')})`);
          out.override[s as Severity] = codeList(list, `${key}.${s}`, bad);
        }
        break;
      }
      case 'trustedRegistries':
        if (typeof value === 'string') out.trustedRegistries = [value];
        else out.trustedRegistries = stringList(value, key, bad);
        break;
      case 'label-schema': {
        if (value === null) break;
        if (typeof value !== 'object' || Array.isArray(value)) bad(key, 'expected a mapping of label names to types');
        out.labelSchema = {};
        for (const [label, type] of Object.entries(value as Record<string, unknown>)) {
          if (typeof type !== 'string' || !(labelTypes as readonly string[]).includes(type)) {
            bad(`${key}.${label}`, `${JSON.stringify(type)} is not a label type (use ${labelTypes.join(', ')})`);
          }
          out.labelSchema[label] = type as LabelType;
        }
        break;
      }
      case 'strict-labels':
        out.strictLabels = bool(value, key, bad);
        break;
      case 'no-fail':
        out.noFail = bool(value, key, bad);
        break;
      case 'disable-ignore-pragma':
        out.disableIgnorePragma = bool(value, key, bad);
        break;
      case 'no-color':
        out.noColor = bool(value, key, bad);
        break;
      case 'production':
        out.production = bool(value, key, bad);
        break;
      case 'failure-threshold':
        out.failureThreshold = threshold(value, key, bad);
        break;
      case 'format':
        out.format = format(value, key, bad);
        break;
      default: {
        const near = knownKeys.find((k) => k.replace(/[-_]/g, '').toLowerCase().startsWith(key.replace(/[-_]/g, '').toLowerCase().slice(0, 5)));
        bad(key, `unknown key${near ? ` (did you mean ${near}?)` : ''}; known keys: ${knownKeys.join(', ')}`);
      }
    }
  }
  return out;
}

type Bad = (key: string, why: string) => never;

function stringList(value: unknown, key: string, bad: Bad): string[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) bad(key, `expected a list, got ${describe(value)}`);
  return (value as unknown[]).map((v, i) => (typeof v === 'string' ? v : bad(`${key}[${i}]`, `expected a string, got ${describe(v)}`)));
}

function codeList(value: unknown, key: string, bad: Bad): string[] {
  const list = stringList(value, key, bad);
  list.forEach((c, i) => {
    if (!/^[A-Z]{2}\d{4}$/.test(c)) bad(`${key}[${i}]`, `"${c}" is not a rule code such as DL3008, SC2086 or KL1001`);
  });
  return list;
}

function bool(value: unknown, key: string, bad: Bad): boolean {
  if (typeof value !== 'boolean') bad(key, `expected true or false, got ${describe(value)}`);
  return value as boolean;
}

export function threshold(value: unknown, key: string, bad: Bad): Threshold {
  const allowed = [...severities, 'ignore', 'none'];
  if (typeof value !== 'string' || !allowed.includes(value)) bad(key, `${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  return value as Threshold;
}

export function format(value: unknown, key: string, bad: Bad): OutputFormat {
  if (typeof value !== 'string' || !(outputFormats as readonly string[]).includes(value)) {
    bad(key, `${JSON.stringify(value)} is not a supported format (${outputFormats.join(', ')})`);
  }
  return value as OutputFormat;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * hadolint's HADOLINT_* variables under kiln's prefix, KILN_LINT_* (HADOLINT_* are read too, so a CI
 * set up for hadolint keeps its settings; KILN_LINT_* wins).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): PartialConfig {
  const get = (name: string): string | undefined => env[`KILN_LINT_${name}`] ?? env[`HADOLINT_${name}`];
  const source = (name: string) => (env[`KILN_LINT_${name}`] !== undefined ? `KILN_LINT_${name}` : `HADOLINT_${name}`);
  const bad = (key: string, why: string): never => {
    throw new LintConfigInvalid(`environment variable ${key}: ${why}`);
  };
  const list = (name: string) => (get(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const flag = (name: string): boolean | undefined => {
    const v = get(name);
    if (v === undefined || v === '') return undefined;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    return bad(source(name), `"${v}" is not true or false`);
  };
  const out: PartialConfig = {};
  const set = <K extends keyof PartialConfig>(k: K, v: PartialConfig[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('noFail', flag('NOFAIL'));
  set('strictLabels', flag('STRICT_LABELS'));
  set('disableIgnorePragma', flag('DISABLE_IGNORE_PRAGMA'));
  set('noColor', flag('NOCOLOR') ?? (env.NO_COLOR ? true : undefined));
  set('production', flag('PRODUCTION'));
  if (get('FORMAT')) out.format = format(get('FORMAT'), source('FORMAT'), bad);
  if (get('FAILURE_THRESHOLD')) out.failureThreshold = threshold(get('FAILURE_THRESHOLD'), source('FAILURE_THRESHOLD'), bad);
  if (get('IGNORE')) out.ignored = list('IGNORE');
  if (get('TRUSTED_REGISTRIES')) out.trustedRegistries = list('TRUSTED_REGISTRIES');
  for (const s of severities) {
    const name = `OVERRIDE_${s.toUpperCase()}`;
    if (get(name)) (out.override ??= {})[s] = list(name);
  }
  if (get('REQUIRE_LABELS')) out.labelSchema = parseRequiredLabels(list('REQUIRE_LABELS'), source('REQUIRE_LABELS'));
  return out;
}

/** `--require-label NAME:TYPE` values (hadolint's flag), as a label schema. */
export function parseRequiredLabels(specs: string[], source: string): Record<string, LabelType> {
  const out: Record<string, LabelType> = {};
  for (const spec of specs) {
    const i = spec.lastIndexOf(':');
    const name = i < 0 ? spec : spec.slice(0, i);
    const type = i < 0 ? 'text' : spec.slice(i + 1);
    if (!(labelTypes as readonly string[]).includes(type)) {
      throw new LintConfigInvalid(`${source}: "${spec}": ${JSON.stringify(type)} is not a label type (use ${labelTypes.join(', ')})`);
    }
    out[name] = type as LabelType;
  }
  return out;
}
