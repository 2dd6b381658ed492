import type { Command } from 'commander';
import { join } from 'node:path';
import { checkNamedContext, readSecrets } from '../build/inputs.js';
import { existsSync } from 'node:fs';
import { collect, openStore, out, policyAdmission, storedAdmission, type GlobalOptions } from './context.js';
import { UsageError } from '../errors.js';
import { readBakeFiles, selectNamed } from '../bake/file.js';
import { deriveHierarchy, withDescendants } from '../bake/graph.js';
import { bake, currentParents, failureOf, resolveExternalBases } from '../bake/run.js';
import { formatPlan } from '../bake/plan.js';
import { formatStale, staleTargets, targetsBuiltOn } from '../bake/lineage.js';
import { readStructureConfig, type StructureConfig } from '../inspect/index.js';
import { plainProgress } from '../ui/progress.js';
import { prefixedLines } from '../ui/prefix.js';
import { silentProgress } from '../build/progress.js';
import { createExecutor, defaultExecutor } from '../sandbox/index.js';
import { reexecInUserNamespace } from '../sandbox/userns.js';

interface BakeFlags {
  file: string[];
  set: string[];
  changed: string[];
  sinceDigest?: string;
  dryRun?: boolean;
  stale?: boolean;
  push?: boolean;
  cache: boolean;
  parallel: string;
  jobs?: string;
  progress: string;
  runtime?: string;
  sbom?: boolean;
  provenance?: boolean;
  attestKey?: string;
}

/** kiln's own file, the first of these found, is read alone. */
const kilnFiles = ['kiln-bake.yaml', 'kiln-bake.yml', 'kiln-bake.json'];
/** Else every one of buildx's defaults found, read as one (buildx bake.go defaultFilenames, its compose files left out; docker-bake.yaml is kiln's). */
const buildxFiles = ['docker-bake.json', 'docker-bake.yaml', 'docker-bake.hcl', 'docker-bake.override.json', 'docker-bake.override.hcl'];

function bakeFiles(given: string[]): string[] {
  if (given.length) return given;
  const own = kilnFiles.find((f) => existsSync(f));
  if (own) return [own];
  const found = buildxFiles.filter((f) => existsSync(f));
  if (found.length) return found;
  throw new UsageError(`no bake file: none of ${[...kilnFiles, ...buildxFiles].join(', ')} is here (give one with -f)`);
}


export function registerBakeCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('bake')
    .description('Build a hierarchy of images in order, each child on the digest its parent just produced')
    .argument('[targets...]', 'targets or groups to build (default: the "default" group, else every target)')
    .option('-f, --file <file>', `bake file: YAML, buildx JSON or HCL (.hcl); repeat to read several as one, later ones overriding (default: the first of ${kilnFiles.join(', ')}, else all of ${buildxFiles.join(', ')} found)`, collect, [])
    .option('--set <override>', 'override a field of the matching targets, as buildx: PATTERN.KEY=VALUE (args.NAME, labels.NAME, contexts.NAME, tags, platform, output, cache-from, cache-to, secrets, ssh, attest, context, dockerfile, target, no-cache; KEY+=VALUE appends to a list; repeatable)', collect, [])
    .option('--changed <target>', 'rebuild this target and every target built on it, nothing else (repeatable)', collect, [])
    .option('--since-digest <digest>', 'rebuild the targets built on this base image digest, and their descendants')
    .option('--dry-run', 'print the plan as a tree; build nothing')
    .option('--stale', 'list the targets whose base has a newer digest than the one they were built on')
    .option('--no-cache', 'do not use the build cache for any target')
    .option('--push', 'push each image once its tests pass; a failure stops its branch')
    .option('--parallel <n>', 'targets built at once', '2')
    .option('--jobs <n>', 'steps run in parallel within each build (default: no limit, as BuildKit)')
    .option('--progress <mode>', 'plain (build steps, prefixed by target) or quiet', 'plain')
    .option('--runtime <runtime>', 'runc, crun, bwrap or a path to an OCI runtime')
    .option('--sbom', 'every target as with attest: [type=sbom]')
    .option('--provenance', 'every target as with attest: [type=provenance]')
    .option('--attest-key <file>', 'sign the provenance and SBOM attestations with this key (as kiln build --attest-key)')
    .action(async (names: string[], o: BakeFlags) => {
      if (o.progress !== 'plain' && o.progress !== 'quiet') throw new UsageError(`--progress: "${o.progress}" is not plain or quiet`);
      const parallel = Number(o.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) throw new UsageError(`--parallel: "${o.parallel}" is not a positive integer`);
      if (o.sinceDigest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(o.sinceDigest)) throw new UsageError(`--since-digest: "${o.sinceDigest}" is not a sha256 digest`);
      const selectors = [o.changed.length > 0, o.sinceDigest !== undefined, names.length > 0].filter(Boolean).length;
      if (selectors > 1) throw new UsageError('give targets, --changed or --since-digest, not several of them');
      if (!o.dryRun && !o.stale) {
        // Not root: bake as root of a user namespace of our own (rootless mode), as kiln build does.
        const code = await reexecInUserNamespace();
        if (code !== undefined) {
          process.exitCode = code;
          return;
        }
      }
      const file = await readBakeFiles(bakeFiles(o.file), process.env, o.set);
      for (const t of file.targets.values()) {
        if (!o.cache) t.noCache = true;
        if (o.sbom) t.sbom = true;
        if (o.provenance) t.provenance = true;
      }
      const h = await deriveHierarchy(file);
      const store = await openStore(globals());
      if (o.stale) {
        process.stdout.write(formatStale(await staleTargets(h, store)));
        return;
      }

      let selected: Set<string>;
      if (o.changed.length) {
        for (const c of o.changed) if (!file.targets.has(c)) throw new UsageError(`--changed: "${c}" is not a target of ${file.path}`);
        selected = withDescendants(h, o.changed);
      } else if (o.sinceDigest) {
        selected = withDescendants(h, await targetsBuiltOn(h, store, o.sinceDigest));
      } else {
        const named = selectNamed(file, names);
        selected = new Set(h.order.filter((n) => named.has(n)));
      }
      if (selected.size === 0) {
        out(`${file.path}: nothing to build`);
        return;
      }

      // Everything that can be checked is checked before the first build starts.
      const pins = await currentParents(h, selected, store);
      const trust = { admitPull: (ref: string) => policyAdmission(globals(), ref), ...(await storedAdmission(globals(), store).then((f) => (f ? { admitStored: f } : {}))) };
      await resolveExternalBases(h, selected, store, true, trust);
      const tests = new Map<string, StructureConfig[]>();
      for (const name of selected) {
        const paths = file.targets.get(name)!.tests;
        if (paths.length) tests.set(name, await Promise.all(paths.map(readStructureConfig)));
      }
      const secrets = new Map<string, Map<string, Buffer>>();
      for (const name of selected) {
        const t = file.targets.get(name)!;
        const where = `${file.path}: target "${name}": secret`;
        secrets.set(name, await readSecrets(t.secrets, where, file.dir));
        for (const c of t.contexts) await checkNamedContext(c, 'context' in c && c.context.kind === 'dir' ? c.context.path : c.name, `${file.path}: target "${name}": contexts`);
      }
      if (o.attestKey && ![...selected].some((n) => file.targets.get(n)!.provenance || file.targets.get(n)!.sbom)) throw new UsageError('--attest-key signs the attestations of attest: type=provenance or type=sbom: no selected target has one');
      const attestKey = o.attestKey ? await (await import('./build-attest.js')).attestKey(o.attestKey) : undefined;
      if (o.dryRun) {
        process.stdout.write(formatPlan(h, selected, pins));
        return;
      }

      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const stateDir = join(store.root, 'sandbox');
        const executor = o.runtime ? createExecutor(o.runtime, { stateDir }) : defaultExecutor({ stateDir });
        const outcomes = await bake(h, selected, pins, {
          store,
          executor,
          parallel,
          jobs: o.jobs ? Math.max(1, Number(o.jobs)) : Infinity,
          tests,
          secrets,
          ...(attestKey ? { attestKey } : {}),
          trust,
          push: o.push === true,
          progress: (target) => (o.progress === 'quiet' ? silentProgress : plainProgress(prefixedLines(`[${target}] `, process.stderr))),
          log: (line) => process.stderr.write(line + '\n'),
          signal: controller.signal,
        });
        for (const [name, r] of outcomes) {
          const tags = file.targets.get(name)!.tags.join(',');
          if (r.status === 'built') out(`${name}\t${tags}\t${r.digest}`);
          else if (r.status === 'failed') out(`${name}\t${tags}\tFAILED`);
          else out(`${name}\t${tags}\tSTALE (below ${r.below})`);
        }
        const failure = failureOf(h, outcomes);
        if (failure) throw failure;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
