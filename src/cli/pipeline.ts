import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { familiarName } from '../store/describe.js';
import { normalize } from '../reference/reference.js';
import { collect, openStore, out, platformFlag, type GlobalOptions } from './context.js';
import { createExecutor, defaultExecutor, type Executor } from '../sandbox/index.js';
import { createSnapshotter } from '../snapshot/index.js';
import {
  analyzeImage,
  auditImage,
  auditSeverities,
  formatAudit,
  type AuditSeverity,
  checkCi,
  defaultCiRules,
  formatAnalysis,
  formatReport,
  openImage,
  parseBytes,
  parseCiRules,
  readStructureConfig,
  reportFormats,
  runStructureTests,
  StructureConfigInvalid,
  type StructureConfig,
  type UnreadableConfig,
  type CiRules,
  type ReportFormat,
} from '../inspect/index.js';
import { parse as parseYaml } from 'yaml';
import { existsSync } from 'node:fs';
import { ImageUnknown, UsageError } from '../errors.js';
import { promoteRemote } from '../registry/client/index.js';
import { exploreImage } from '../ui/explorer.js';
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
  registerAnalyze(program, globals);
  registerAudit(program, globals);
  registerPromote(program, globals);
}

function registerPromote(program: Command, globals: () => GlobalOptions): void {
  program
    .command('promote')
    .description('Tag exactly the image SRC names now (resolved to its digest first) as DEST, in the store or in a registry')
    .argument('<src>', 'image to promote (name, name@digest or ID)')
    .argument('<dest>', 'new name, e.g. app:prod')
    .option('--remote', 'SRC and DEST are registry references: promote in the registry, whatever the store holds')
    .action(async (src: string, dest: string, o: { remote?: boolean }) => {
      normalize(dest);
      if (!o.remote) {
        const store = await openStore(globals());
        let img;
        try {
          img = await store.resolveImage(src);
        } catch (e) {
          // Not in the store, but naming a registry host (docker's rule: a first component with a
          // dot or a port, or localhost): promote in that registry.
          if (!(e instanceof ImageUnknown) || !namesRegistry(src)) throw e;
        }
        if (img) {
          // Resolve first, then tag the digest: if SRC moves meanwhile, DEST still gets what was resolved.
          await store.addImage(img.manifestDescriptor, [dest]);
          out(`${familiarName(normalize(dest))} -> ${img.manifestDescriptor.digest}`);
          return;
        }
      }
      const r = await promoteRemote(src, dest);
      out(`${familiarName(r.destination)} -> ${r.digest}`);
    });
}

/** Does the reference name its registry explicitly (localhost:5000/app, registry.example.com/app)? */
function namesRegistry(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first === 'localhost' || /[.:]/.test(first);
}

function registerAudit(program: Command, globals: () => GlobalOptions): void {
  program
    .command('audit')
    .description('Hardening audit: SUID/SGID files, root user, world-writable files, unpinned base, secrets (deleted ones too), caches, HEALTHCHECK')
    .argument('<image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .option('--format <format>', 'text or json', 'text')
    .option('-f, --file <dockerfile>', 'the Dockerfile the image was built from (judges its FROM lines)')
    .option('--fail-on <severity>', `exit 1 on findings at or above: ${auditSeverities.join(', ')}`)
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .action(async (ref: string, o: { format: string; file?: string; failOn?: string; platform?: string }) => {
      if (o.format !== 'text' && o.format !== 'json') throw new UsageError(`--format: "${o.format}" is not text or json`);
      if (o.failOn !== undefined && !(auditSeverities as readonly string[]).includes(o.failOn)) {
        throw new UsageError(`--fail-on: "${o.failOn}" is not one of ${auditSeverities.join(', ')}`);
      }
      let dockerfile: { text: string; name: string } | undefined;
      if (o.file) {
        const text = await readFile(o.file, 'utf8').catch(() => {
          throw new UsageError(`cannot read Dockerfile ${o.file}`);
        });
        dockerfile = { text, name: o.file };
      }
      const opened = await openImage(() => openStore(globals()), ref, platformFlag(o.platform));
      try {
        const findings = await auditImage(opened.store, opened.image, dockerfile ? { dockerfile } : {});
        if (o.format === 'json') out(JSON.stringify(findings));
        else process.stdout.write(formatAudit(findings));
        if (o.failOn !== undefined) {
          const limit = auditSeverities.indexOf(o.failOn as AuditSeverity);
          if (findings.some((f) => auditSeverities.indexOf(f.severity) <= limit)) process.exitCode = 1;
        }
      } finally {
        await opened.close();
      }
    });
}

interface AnalyzeFlags {
  format: string;
  platform?: string;
  ci?: boolean;
  ciConfig?: string;
  lowestEfficiency?: string;
  highestWastedBytes?: string;
  highestUserWastedPercent?: string;
}

function registerAnalyze(program: Command, globals: () => GlobalOptions): void {
  program
    .command('analyze')
    .description('Layer sizes and wasted space, computed as dive computes them; CI thresholds fail the command; on a terminal (without --ci or --format) an interactive layer explorer')
    .argument('<image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .option('--format <format>', 'text or json', 'text')
    .option('--ci', 'check thresholds (from .dive-ci, flags, or dive\'s defaults) and exit 1 when one is missed')
    .option('--ci-config <file>', 'dive CI rules file (default: .dive-ci in the working directory)')
    .option('--lowest-efficiency <ratio>', 'fail below this efficiency (0..1)')
    .option('--highest-wasted-bytes <size>', 'fail above this many wasted bytes (e.g. 20MB)')
    .option('--highest-user-wasted-percent <ratio>', 'fail above this share of wasted bytes in the layers above the base (0..1)')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .action(async (ref: string, o: AnalyzeFlags, cmd: Command) => {
      if (o.format !== 'text' && o.format !== 'json') throw new UsageError(`--format: "${o.format}" is not text or json`);
      const flagRules: CiRules = {};
      const ratio = (v: string, flag: string) => {
        const n = Number(v);
        if (v === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`${flag}: "${v}" is not a ratio between 0 and 1`);
        return n;
      };
      if (o.lowestEfficiency !== undefined) flagRules.lowestEfficiency = ratio(o.lowestEfficiency, '--lowest-efficiency');
      if (o.highestUserWastedPercent !== undefined) flagRules.highestUserWastedPercent = ratio(o.highestUserWastedPercent, '--highest-user-wasted-percent');
      if (o.highestWastedBytes !== undefined) {
        const n = parseBytes(o.highestWastedBytes);
        if (n === undefined) throw new UsageError(`--highest-wasted-bytes: "${o.highestWastedBytes}" is not a size such as 20MB`);
        flagRules.highestWastedBytes = n;
      }
      const ci = o.ci || o.ciConfig !== undefined || Object.keys(flagRules).length > 0;
      let rules: CiRules | undefined;
      if (ci) {
        const file = o.ciConfig ?? (existsSync('.dive-ci') ? '.dive-ci' : undefined);
        let fromFile: CiRules | undefined;
        if (file) {
          const fail = (msg: string): never => {
            throw new UsageError(msg);
          };
          let doc: unknown;
          try {
            doc = parseYaml(await readFile(file, 'utf8'));
          } catch (e) {
            fail(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid YAML: ${(e as Error).message.split('\n')[0]}`}`);
          }
          fromFile = parseCiRules(doc, file, fail);
        }
        rules = { ...(fromFile ?? (Object.keys(flagRules).length ? {} : defaultCiRules)), ...flagRules };
      }
      // On a terminal, without CI rules or an asked-for format, the explorer (as dive does).
      const interactive = !ci && cmd.getOptionValueSource('format') === 'default' && process.stdout.isTTY === true && process.stdin.isTTY === true;
      const opened = await openImage(() => openStore(globals()), ref, platformFlag(o.platform));
      try {
        const analysis = await analyzeImage(opened.store, opened.image, ref, { changes: interactive });
        if (interactive) return await exploreImage(analysis);
        const results = rules ? checkCi(analysis, rules) : undefined;
        if (o.format === 'json') {
          out(JSON.stringify(results ? { ...analysis, ci: { pass: results.every((r) => r.pass), rules: results } } : analysis));
        } else {
          let text = formatAnalysis(analysis);
          if (results) {
            text += '\nCI rules\n';
            for (const r of results) text += `  ${r.pass ? 'PASS' : 'FAIL'}: ${r.rule} (limit ${r.limit}, actual ${Number.isInteger(r.actual) ? r.actual : r.actual.toFixed(4)})\n`;
            text += results.every((r) => r.pass) ? 'Result: PASS\n' : 'Result: FAIL\n';
          }
          process.stdout.write(text);
        }
        if (results?.some((r) => !r.pass)) process.exitCode = 1;
      } finally {
        await opened.close();
      }
    });
}

interface TestFlags {
  image?: string;
  platform?: string;
  imageFromOciLayout?: string;
  driver: string;
  config: string[];
  output: string;
  json?: boolean;
  quiet?: boolean;
  junitSuiteName?: string;
  testReport?: string;
  runtime?: string;
}

function registerTest(program: Command, globals: () => GlobalOptions): void {
  program
    .command('test')
    .description('Run container-structure-test configurations against an image, without a daemon')
    .option('-i, --image <image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .option('--image-from-oci-layout <dir>', 'an OCI layout with one image (the same as --image <dir>)')
    .option('--default-image-tag <tag>', 'accepted for container-structure-test: kiln loads nothing into a daemon, so needs no tag')
    .option('--ignore-ref-annotation', 'accepted for container-structure-test (see --default-image-tag)')
    .option('-d, --driver <driver>', 'docker (commands run in kiln\'s sandbox) or tar (no command tests), as container-structure-test\'s drivers', 'docker')
    .option('-c, --config <file>', 'container-structure-test configuration, YAML or JSON (repeatable)', collect, [])
    .option('-o, --output <format>', `report format: ${reportFormats.join(', ')}`, 'text')
    .option('-j, --json', 'the same as --output json (deprecated there too)')
    .option('--junit-suite-name <name>', 'name of the junit test suite (default container-structure-test.test)')
    .option('--test-report <file>', 'write the report to this file instead of standard output (json when --output is text)')
    .option('-q, --quiet', 'print no report')
    .option('--no-color', 'accepted for container-structure-test; kiln prints no colours here')
    .option('--runtime <runtime>', 'sandbox for command tests: runc, crun, bwrap or a path')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .action(async (o: TestFlags) => {
      if (o.json) o.output = 'json';
      if (o.image !== undefined && o.imageFromOciLayout !== undefined) throw new UsageError('--image and --image-from-oci-layout: give one of them');
      const image = o.image ?? o.imageFromOciLayout;
      if (image === undefined) throw new UsageError('--image: give the image to test (or --image-from-oci-layout)');
      if (o.driver === 'host') throw new UsageError('--driver host runs the tests on this machine itself; kiln runs them on the image: use docker or tar');
      if (o.driver !== 'docker' && o.driver !== 'tar') throw new UsageError(`--driver: "${o.driver}" is not docker or tar`);
      if (!(reportFormats as readonly string[]).includes(o.output)) throw new UsageError(`--output: "${o.output}" is not one of ${reportFormats.join(', ')}`);
      if (o.config.length === 0) throw new UsageError('--config: give at least one test configuration');
      // As container-structure-test: a file that cannot be read is one failed result; the others run.
      const configs: (StructureConfig | UnreadableConfig)[] = [];
      for (const c of o.config) {
        try {
          configs.push(await readStructureConfig(c));
        } catch (e) {
          if (!(e instanceof StructureConfigInvalid)) throw e;
          configs.push({ file: c, error: e.message });
        }
      }
      const opened = await openImage(() => openStore(globals()), image, platformFlag(o.platform));
      try {
        let executor: Executor | undefined;
        const report = await runStructureTests(
          {
            config: opened.image.config,
            layers: opened.layers,
            snapshotter: await createSnapshotter(opened.store),
            executor:
              o.driver === 'tar'
                ? undefined
                : () => {
                    const stateDir = join(opened.store.root, 'sandbox');
                    return (executor ??= o.runtime ? createExecutor(o.runtime, { stateDir }) : defaultExecutor({ stateDir }));
                  },
          },
          configs,
        );
        // container-structure-test writes a --test-report file instead of standard output, in json for text.
        const format = (o.testReport && o.output === 'text' ? 'json' : o.output) as ReportFormat;
        const text = formatReport(report, format, { junitSuiteName: o.junitSuiteName });
        if (o.testReport) await writeFile(o.testReport, text);
        else if (!o.quiet) process.stdout.write(text);
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
