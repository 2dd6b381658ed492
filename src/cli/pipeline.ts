import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { openStore, out, type GlobalOptions } from './context.js';
import { createExecutor, defaultExecutor, type Executor } from '../sandbox/index.js';
import { createSnapshotter } from '../snapshot/index.js';
import { formatReport, openImage, readStructureConfig, reportFormats, runStructureTests, type ReportFormat } from '../inspect/index.js';
import { UsageError } from '../errors.js';
import {
  findShellcheck,
  formatFindings,
  lintDockerfile,
  loadLintConfig,
  outputFormats,
  parseRequiredLabels,
  reachesThreshold,
  type Finding,
  type OutputFormat,
  type PartialConfig,
} from '../lint/index.js';

// The commands around a build: lint the Dockerfile, test and inspect the image.

const collect = (v: string, prev: string[]) => [...prev, v];

interface LintFlags {
  config?: string;
  format?: string;
  failureThreshold?: string;
  ignore: string[];
  error: string[];
  warning: string[];
  info: string[];
  style: string[];
  trustedRegistry: string[];
  requireLabel: string[];
  strictLabels?: boolean;
  disableIgnorePragma?: boolean;
  fail: boolean;
  color: boolean;
  production?: boolean;
  shellcheck: boolean;
}

export function registerPipelineCommands(program: Command, globals: () => GlobalOptions): void {
  registerLint(program);
  registerTest(program, globals);
}

interface TestFlags {
  image: string;
  config: string[];
  output: string;
  testReport?: string;
  runtime?: string;
}

function registerTest(program: Command, globals: () => GlobalOptions): void {
  program
    .command('test')
    .description('Run container-structure-test configurations against an image, without a daemon')
    .requiredOption('--image <image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .option('--config <file>', 'container-structure-test configuration, YAML or JSON (repeatable)', collect, [])
    .option('-o, --output <format>', `report format: ${reportFormats.join(', ')}`, 'text')
    .option('--test-report <file>', 'also write the report to this file')
    .option('--runtime <runtime>', 'sandbox for command tests: runc, crun, bwrap or a path')
    .action(async (o: TestFlags) => {
      if (!(reportFormats as readonly string[]).includes(o.output)) throw new UsageError(`--output: "${o.output}" is not one of ${reportFormats.join(', ')}`);
      if (o.config.length === 0) throw new UsageError('--config: give at least one test configuration');
      // Configurations are checked before the image is touched: a typo fails fast.
      const configs = [];
      for (const c of o.config) configs.push(await readStructureConfig(c));
      const opened = await openImage(() => openStore(globals()), o.image);
      try {
        let executor: Executor | undefined;
        const report = await runStructureTests(
          {
            config: opened.image.config,
            layers: opened.layers,
            snapshotter: await createSnapshotter(opened.store),
            executor: () => (executor ??= o.runtime ? createExecutor(o.runtime) : defaultExecutor()),
          },
          configs,
        );
        const text = formatReport(report, o.output as ReportFormat);
        process.stdout.write(text);
        if (o.testReport) await writeFile(o.testReport, text);
        if (report.Fail > 0 || report.Total === 0) process.exitCode = 1;
      } finally {
        await opened.close();
      }
    });
}

function registerLint(program: Command): void {
  program
    .command('lint')
    .description('Lint Dockerfiles with hadolint\'s rules, ShellCheck and kiln\'s own (KL…)')
    .argument('[files...]', 'Dockerfiles (default: ./Dockerfile; - reads stdin)')
    .option('-c, --config <file>', 'configuration file (default: .hadolint.yaml here, then hadolint\'s user locations)')
    .option('--format <format>', `output: ${outputFormats.join(', ')} (default tty)`)
    .option('-t, --failure-threshold <level>', 'exit 1 on findings at or above: error, warning, info, style, ignore or none (default info)')
    .option('--ignore <rule>', 'ignore a rule (repeatable)', collect, [])
    .option('--error <rule>', 'report a rule as an error (repeatable)', collect, [])
    .option('--warning <rule>', 'report a rule as a warning (repeatable)', collect, [])
    .option('--info <rule>', 'report a rule as info (repeatable)', collect, [])
    .option('--style <rule>', 'report a rule as style (repeatable)', collect, [])
    .option('--trusted-registry <glob>', 'registry FROM may use (DL3026, repeatable)', collect, [])
    .option('--require-label <label:type>', 'required label and its type (repeatable)', collect, [])
    .option('--strict-labels', 'labels outside the schema are findings (DL3050)')
    .option('--disable-ignore-pragma', 'ignore `# hadolint ignore=` pragmas')
    .option('--no-fail', 'exit 0 whatever is found')
    .option('--no-color', 'no colours in tty output')
    .option('--production', 'treat the files as production Dockerfiles (KL1004)')
    .option('--no-shellcheck', 'do not run ShellCheck over RUN')
    .action(async (files: string[], o: LintFlags) => {
      const flags: PartialConfig = {};
      if (o.format !== undefined) {
        if (!(outputFormats as readonly string[]).includes(o.format)) throw new UsageError(`--format: "${o.format}" is not one of ${outputFormats.join(', ')}`);
        flags.format = o.format as OutputFormat;
      }
      if (o.failureThreshold !== undefined) {
        const allowed = ['error', 'warning', 'info', 'style', 'ignore', 'none'];
        if (!allowed.includes(o.failureThreshold)) throw new UsageError(`--failure-threshold: "${o.failureThreshold}" is not one of ${allowed.join(', ')}`);
        flags.failureThreshold = o.failureThreshold as PartialConfig['failureThreshold'];
      }
      if (o.ignore.length) flags.ignored = o.ignore;
      flags.override = { error: o.error, warning: o.warning, info: o.info, style: o.style };
      if (o.trustedRegistry.length) flags.trustedRegistries = o.trustedRegistry;
      if (o.requireLabel.length) flags.labelSchema = parseRequiredLabels(o.requireLabel, '--require-label');
      if (o.strictLabels) flags.strictLabels = true;
      if (o.disableIgnorePragma) flags.disableIgnorePragma = true;
      if (!o.fail) flags.noFail = true;
      if (!o.color) flags.noColor = true;
      if (o.production) flags.production = true;
      const config = await loadLintConfig({ configPath: o.config, cwd: process.cwd(), flags });

      const shellcheck = o.shellcheck ? findShellcheck() : undefined;
      if (o.shellcheck && !shellcheck) process.stderr.write('info: shellcheck is not installed, so SC rules were not checked (apt-get install shellcheck)\n');

      const names = files.length ? files : ['Dockerfile'];
      const sources = new Map<string, string>();
      const findings: Finding[] = [];
      for (const name of names) {
        const display = name === '-' ? '-' : relative(process.cwd(), name) || name;
        let text: string;
        try {
          text = name === '-' ? await readStdin() : await readFile(name, 'utf8');
        } catch (e) {
          throw new UsageError(`cannot read ${name}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
        }
        sources.set(display, text);
        findings.push(...(await lintDockerfile(text, { file: display, config, shellcheck })));
      }
      const color = config.format === 'tty' && !config.noColor && process.stdout.isTTY === true;
      const text = formatFindings(findings, config.format, { color, sources, files: [...sources.keys()] });
      if (text) process.stdout.write(text);
      const failed = findings.some((f) => f.code === 'DL1000' || reachesThreshold(f, config.failureThreshold));
      if (failed && !config.noFail) process.exitCode = 1;
    });
  void out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
