// Warnings: BuildKit's build checks (frontend/dockerfile/linter) that the frontend raises while parsing
// and converting, plus the classic builder's "build-args were not consumed". They are collected, never
// printed here; `# check=skip=…` silences rules and `# check=error=true` asks the caller to fail.

import { UnlocatedError } from './errors.js';
import { parseGoBool } from './gocompat.js';

export interface Warning {
  /** BuildKit's rule name, e.g. "JSONArgsRecommended". */
  rule: string;
  message: string;
  file: string;
  /** 1-based line the warning is about, when it is about one. */
  line?: number;
}

export interface CheckConfig {
  skipAll: boolean;
  skip: Set<string>;
  /** `error=true`: the build should fail when any warning was raised. */
  error: boolean;
  experimental: Set<string>;
  experimentalAll: boolean;
  /**
   * Rules skipped for one instruction by a `# check=skip=…` comment right before it, by the line the
   * instruction starts on (BuildKit's linter WithMergedConfigFromComments).
   */
  byLine?: Map<number, { skipAll: boolean; skip: Set<string> }>;
}

/** BuildKit's linter.ParseLintOptions for the `# check=` directive. */
export function parseCheckDirective(value: string | undefined): CheckConfig {
  const cfg: CheckConfig = { skipAll: false, skip: new Set(), error: false, experimental: new Set(), experimentalAll: false };
  const s = (value ?? '').trim();
  if (s === '') return cfg;
  const parts = s.split(';');
  if (parts.length > 3) parts.splice(2, parts.length - 2, parts.slice(2).join(';'));
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq < 0) throw new UnlocatedError(`failed to parse check options: invalid check option "${p}"`);
    const k = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    switch (k) {
      case 'skip':
        if (v === 'all') cfg.skipAll = true;
        else for (const r of v.split(',')) cfg.skip.add(r.trim());
        break;
      case 'experimental':
        if (v === 'all') cfg.experimentalAll = true;
        else for (const r of v.split(',')) cfg.experimental.add(r.trim());
        break;
      case 'error': {
        const b = parseGoBool(v);
        if (b === undefined) throw new UnlocatedError(`failed to parse check options: failed to parse check option "${p}"`);
        cfg.error = b;
        break;
      }
      default:
        throw new UnlocatedError(`failed to parse check options: invalid check option "${k}"`);
    }
  }
  return cfg;
}

/** Rules that run only when `# check=experimental=…` names them (or all), whatever skip= says (BuildKit linter.go:60-66). */
const experimentalRules = new Set(['InvalidDefinitionDescription']);

/** Collects warnings, dropping those the check directive skips. */
export class WarningSink {
  readonly warnings: Warning[] = [];
  constructor(
    readonly file: string,
    private readonly config: CheckConfig,
  ) {}
  warn(rule: string, message: string, line?: number): void {
    if (experimentalRules.has(rule)) {
      if (!this.config.experimentalAll && !this.config.experimental.has(rule)) return;
    } else if (this.config.skipAll || this.config.skip.has(rule)) return;
    const local = line === undefined ? undefined : this.config.byLine?.get(line);
    if (local && (local.skipAll || local.skip.has(rule))) return;
    const w: Warning = { rule, message, file: this.file };
    if (line !== undefined) w.line = line;
    this.warnings.push(w);
  }
}

/** The secret-looking names BuildKit warns about in ARG and ENV (SecretsUsedInArgOrEnv). */
export function looksSecret(key: string): boolean {
  const deny = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
  const allow = /(?:_|^)(?:public|file|version)(?:_|$)/i;
  return deny.test(key) && !allow.test(key);
}

/**
 * The `# check=` comment among an instruction's comments, as BuildKit reads it: the first comment
 * that is a check directive, its value up to the first space (so `skip=Rule // why` works); one that
 * does not parse is ignored.
 */
export function instructionCheck(comments: readonly string[]): { skipAll: boolean; skip: Set<string> } | undefined {
  for (const c of comments) {
    const m = /^check\s*=\s*(.*)$/i.exec(c);
    if (!m) continue;
    try {
      const cfg = parseCheckDirective(m[1]!.split(' ')[0]);
      return { skipAll: cfg.skipAll, skip: cfg.skip };
    } catch {
      return undefined;
    }
  }
  return undefined;
}
