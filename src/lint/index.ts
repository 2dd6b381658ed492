// kiln lint: hadolint's rules (same ids, severities, configuration and pragmas) over the Dockerfile
// frontend's model, with RUN's shell parsed by a real shell parser, plus ShellCheck and kiln's own rules.

import { configFromEnv, findConfigFile, mergeConfig, readConfigFile, type LintConfig, type PartialConfig } from './config.js';

export { lintDockerfile, reachesThreshold, type LintOptions } from './lint.js';
export { formatFindings, type FormatOptions } from './format.js';
export { findShellcheck } from './shellcheck.js';
export { rules } from './rules/index.js';
export type { Finding, Level, Severity } from './rule.js';
export {
  LintConfigInvalid,
  configFromEnv,
  defaultConfig,
  findConfigFile,
  mergeConfig,
  outputFormats,
  parseConfig,
  parseRequiredLabels,
  readConfigFile,
  type LintConfig,
  type OutputFormat,
  type PartialConfig,
} from './config.js';

/**
 * The configuration in effect, as hadolint builds it: the file (`configPath`, or the first of
 * hadolint's locations that exists), then KILN_LINT_* / HADOLINT_* variables, then command-line flags.
 */
export async function loadLintConfig(opts: { configPath?: string; cwd: string; env?: NodeJS.ProcessEnv; flags?: PartialConfig }): Promise<LintConfig & { source?: string }> {
  const env = opts.env ?? process.env;
  const path = opts.configPath ?? env.KILN_LINT_CONFIG ?? findConfigFile(opts.cwd, env);
  const fromFile = path ? await readConfigFile(path) : {};
  const config: LintConfig & { source?: string } = mergeConfig(fromFile, configFromEnv(env), opts.flags ?? {});
  if (path) config.source = path;
  return config;
}
