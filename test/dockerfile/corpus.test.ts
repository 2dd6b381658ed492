// Runs every case of test/dockerfile/corpus as its own test. A case is a folder with:
//   Dockerfile   the input (or the file named by args.json "file")
//   args.json    optional: { buildArgs, target, platform, file, labels, baseConfig, baseConfigs, dockerignore }
//   expect.json  the expected result, matched partially (see README.md in the corpus), or
//   error.txt    the expected error message (first line), e.g. `Dockerfile:7: unknown flag --x for COPY`
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { dispatchStage, parseDockerfile, planBuild, type StageProgram } from '../../src/dockerfile/index.js';
import type { ImageConfig } from '../../src/oci/types.js';

const corpus = fileURLToPath(new URL('../../../test/dockerfile/corpus', import.meta.url));

interface CaseArgs {
  file?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: { os: string; architecture: string; variant?: string };
  labels?: Record<string, string>;
  /** Config of every image base (default: a minimal linux config with PATH). */
  baseConfig?: ImageConfig;
  /** Configs by image reference as written after expansion. */
  baseConfigs?: Record<string, ImageConfig>;
  /** .dockerignore patterns given to dispatchStage. */
  dockerignore?: string[];
}

function defaultImageConfig(): ImageConfig {
  return {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [] },
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
  };
}

/** Everything a case can make expectations about. */
function runCase(dir: string): Record<string, unknown> {
  const args: CaseArgs = existsSync(join(dir, 'args.json')) ? JSON.parse(readFileSync(join(dir, 'args.json'), 'utf8')) : {};
  const file = args.file ?? 'Dockerfile';
  const text = readFileSync(join(dir, file), 'utf8');
  const df = parseDockerfile(text, { file });
  const buildArgs = args.buildArgs ?? {};
  const plan = planBuild(df, {
    buildArgs,
    target: args.target,
    platform: args.platform ?? { os: 'linux', architecture: 'amd64' },
    buildPlatform: { os: 'linux', architecture: 'amd64' },
  });
  const programs: Record<number, StageProgram> = {};
  for (const stage of plan.stages) {
    if (!stage.used) continue;
    let config: ImageConfig | undefined;
    let program: StageProgram | undefined;
    if (stage.base.kind === 'stage') {
      program = programs[stage.base.index];
      config = program!.config;
    } else if (stage.base.kind === 'image') {
      config = structuredClone(args.baseConfigs?.[stage.base.ref] ?? args.baseConfig ?? defaultImageConfig());
    }
    const labels = stage.index === plan.target ? args.labels : undefined;
    programs[stage.index] = dispatchStage(plan, stage.index, { config, program }, { buildArgs, labels, dockerignore: args.dockerignore });
  }
  const target = programs[plan.target]!;
  const warnings = [...plan.warnings, ...Object.values(programs).flatMap((p) => p.warnings)];
  return {
    parse: { directives: df.directives, escapeChar: df.escapeChar, instructions: df.instructions, metaArgs: df.metaArgs },
    plan: {
      target: plan.target,
      failOnWarnings: plan.failOnWarnings,
      globalArgs: plan.globalArgs,
      stages: plan.stages.map(({ instructions: _i, ...s }) => s),
    },
    program: target,
    config: target.config.config,
    history: (target.config.history ?? []).map((h) => h.created_by + (h.empty_layer ? '' : ' [layer]')),
    steps: target.steps,
    programs,
    warnings,
    warningRules: warnings.map((w) => w.rule).sort(),
  };
}

/** Partial deep match: every key in `expected` must match; arrays match element by element and length. */
function mismatches(actual: unknown, expected: unknown, path: string, out: string[]): void {
  if (expected === '$absent') {
    if (actual !== undefined) out.push(`${path}: expected absent, got ${JSON.stringify(actual)}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) {
      out.push(`${path}: expected array, got ${JSON.stringify(actual)}`);
      return;
    }
    if (actual.length !== expected.length) out.push(`${path}: expected ${expected.length} items, got ${actual.length}: ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => mismatches(actual[i], e, `${path}[${i}]`, out));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') {
      out.push(`${path}: expected object, got ${JSON.stringify(actual)}`);
      return;
    }
    for (const [k, v] of Object.entries(expected)) mismatches((actual as Record<string, unknown>)[k], v, `${path}.${k}`, out);
    return;
  }
  if (actual !== expected) out.push(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

const cases = readdirSync(corpus, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

test('the corpus has at least 200 cases', () => {
  assert.ok(cases.length >= 200, `only ${cases.length} cases`);
});

for (const name of cases) {
  const dir = join(corpus, name);
  test(`corpus: ${name}`, () => {
    const errorFile = join(dir, 'error.txt');
    if (existsSync(errorFile)) {
      const expected = readFileSync(errorFile, 'utf8').split('\n')[0]!.trimEnd();
      assert.throws(() => runCase(dir), (err: Error) => {
        assert.equal(err.message, expected);
        return true;
      });
      return;
    }
    const result = runCase(dir);
    const expected = JSON.parse(readFileSync(join(dir, 'expect.json'), 'utf8'));
    const out: string[] = [];
    mismatches(result, expected, '$', out);
    assert.deepEqual(out, []);
  });
}
