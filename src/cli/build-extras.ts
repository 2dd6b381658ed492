import type { Command } from 'commander';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve as resolvePath } from 'node:path';
import { KilnError, UsageError } from '../errors.js';
import { parseReference, repositoryOf } from '../reference/reference.js';
import type { Store } from '../store/store.js';
import { collect, openStore, type GlobalOptions } from './context.js';

// kiln build: --check (lint first), --annotation, --metadata, --tag-scheme, --version. The build
// command is kiln build's own (cli/build.ts); these options wrap it: before the build they add tags
// and labels and run the linter, after it they write the manifest annotations.

interface BuildExtras {
  tag: string[];
  label: string[];
  file?: string;
  iidfile?: string;
  check?: boolean;
  annotation: string[];
  metadata?: boolean;
  tagScheme?: string;
  imageVersion?: string;
  buildArg: string[];
}

/**
 * `--version` after `build` is the image's version, but the root command's `--version` (kiln's own)
 * would take it wherever it stands; it is renamed before commander reads the command line.
 */
function renameBuildVersion(argv: string[]): void {
  const sub = argv.findIndex((a, i) => i >= 2 && !a.startsWith('-'));
  if (sub < 0 || argv[sub] !== 'build') return;
  for (let i = sub + 1; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === '--version') argv[i] = '--image-version';
    else if (argv[i]!.startsWith('--version=')) argv[i] = '--image-version=' + argv[i]!.slice('--version='.length);
  }
}

export function extendBuild(program: Command, globals: () => GlobalOptions): void {
  const build = program.commands.find((c) => c.name() === 'build');
  if (!build) return;
  renameBuildVersion(process.argv);
  let pending: { annotations: Record<string, string>; iidfile?: string } | undefined;
  build
    .option('--check', 'lint the Dockerfile first; stop on findings at or above the lint failure threshold')
    .option('--annotation <k=v>', 'manifest annotation (repeatable)', collect, [])
    .option('--metadata', 'add OCI annotations and label-schema labels: created, revision and source (from git), version')
    .option('--tag-scheme <scheme>', 'build-id (YYYYMMDD-HHMMSS-<git sha>) or semver (with --version: V, MAJOR.MINOR, MAJOR, latest)')
    .option('--image-version <version>', 'the image version (also accepted as --version after build)')
    .hook('preAction', async (_cmd, action) => {
      const o = action.opts<BuildExtras>();
      const contextDir = resolvePath(String(action.args[0] ?? '.'));
      if (o.check) await checkDockerfile(o.file && o.file !== '-' ? resolvePath(o.file) : join(contextDir, 'Dockerfile'));
      const annotations: Record<string, string> = {};
      for (const a of o.annotation) {
        const i = a.indexOf('=');
        if (i <= 0) throw new UsageError(`--annotation "${a}": expected KEY=VALUE`);
        annotations[a.slice(0, i)] = a.slice(i + 1);
      }
      // git runs only for the options that use what it says: two processes less on every build.
      const git = o.metadata || o.tagScheme !== undefined ? await gitInfo(contextDir) : {};
      if (o.metadata) {
        const epoch = o.buildArg.find((b) => b.startsWith('SOURCE_DATE_EPOCH='))?.slice('SOURCE_DATE_EPOCH='.length) ?? process.env.SOURCE_DATE_EPOCH;
        const created = (epoch ? new Date(Number(epoch) * 1000) : new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const meta = metadataFor({ created, revision: git.revision, source: git.source, version: o.imageVersion });
        Object.assign(annotations, meta.annotations, { ...annotations });
        o.label.push(...Object.entries(meta.labels).map(([k, v]) => `${k}=${v}`));
      }
      if (o.tagScheme !== undefined) {
        const store = await openStore(globals());
        o.tag = await schemeTags(store, o.tag, o.tagScheme, o.imageVersion, git.revision);
      }
      if (Object.keys(annotations).length) {
        pending = { annotations };
        if (!o.iidfile) {
          pending.iidfile = join(tmpdir(), `kiln-iid-${process.pid}-${Date.now()}`);
          o.iidfile = pending.iidfile;
        }
      }
    })
    .hook('postAction', async (_cmd, action) => {
      if (!pending) return;
      const o = action.opts<BuildExtras>();
      const store = await openStore(globals());
      const id = (await readFile(o.iidfile!, 'utf8')).trim();
      if (pending.iidfile) await rm(pending.iidfile, { force: true });
      const img = o.tag.length ? await store.resolveImage(o.tag[0]!) : await store.resolveImage(id);
      // The same config and layers under a manifest that carries the annotations: the image ID stays.
      const annotated = await store.writeImage(img.config, img.manifest.layers, img.names, { ...img.manifest.annotations, ...pending.annotations });
      // --sbom stored its SBOM as a referrer of the manifest before this one: it follows the image.
      const { carryReferrers } = await import('../registry/client/push.js');
      await carryReferrers(store, img.manifestDescriptor.digest, annotated.manifestDescriptor);
    });
}

async function checkDockerfile(path: string): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new UsageError(`--check: cannot read Dockerfile ${path}`);
  });
  // The linter (a shell parser among it) is loaded only when --check asks for it.
  const { findShellcheck, formatFindings, lintDockerfile, loadLintConfig, reachesThreshold } = await import('../lint/index.js');
  const config = await loadLintConfig({ cwd: process.cwd() });
  const name = relative(process.cwd(), path) || path;
  const findings = await lintDockerfile(text, { file: name, config, shellcheck: findShellcheck() });
  const failing = findings.filter((f) => f.code === 'DL1000' || reachesThreshold(f, config.failureThreshold));
  if (findings.length) process.stderr.write(formatFindings(findings, 'tty', { color: process.stderr.isTTY === true, sources: new Map([[name, text]]), files: [name] }));
  if (failing.length && !config.noFail) throw new LintFailed(`build stopped by --check: ${failing.length} lint finding${failing.length === 1 ? '' : 's'} at or above ${config.failureThreshold}`);
}

class LintFailed extends KilnError {}

async function gitInfo(dir: string): Promise<{ revision?: string; source?: string }> {
  const git = (args: string[]) =>
    new Promise<string | undefined>((done) => execFile('git', ['-C', dir, ...args], (err, stdout) => done(err ? undefined : stdout.trim() || undefined)));
  const revision = await git(['rev-parse', 'HEAD']);
  if (!revision) return {};
  const source = await git(['remote', 'get-url', 'origin']);
  return source ? { revision, source: source.replace(/\/\/[^@/]+@/, '//') } : { revision };
}

/** OCI annotations (annotations.md) and the seed's label-schema labels for one build. */
export function metadataFor(m: { created: string; revision?: string; source?: string; version?: string }): { annotations: Record<string, string>; labels: Record<string, string> } {
  const annotations: Record<string, string> = { 'org.opencontainers.image.created': m.created };
  const labels: Record<string, string> = { 'org.label-schema.schema-version': '1.0', 'org.label-schema.build-date': m.created };
  if (m.revision) {
    annotations['org.opencontainers.image.revision'] = m.revision;
    labels['org.label-schema.vcs-ref'] = m.revision;
  }
  if (m.source) {
    annotations['org.opencontainers.image.source'] = m.source;
    labels['org.label-schema.vcs-url'] = m.source;
  }
  if (m.version) {
    annotations['org.opencontainers.image.version'] = m.version;
    labels['org.label-schema.version'] = m.version;
  }
  // The same keys as OCI labels too, so `kiln inspect` shows them with the config.
  return { annotations, labels: { ...labels, ...annotations } };
}

const semverRe = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** The tags a scheme gives each repository named with -t. */
async function schemeTags(store: Store, tags: string[], scheme: string, version: string | undefined, revision: string | undefined): Promise<string[]> {
  if (tags.length === 0) throw new UsageError('--tag-scheme: name the repository with -t REPO');
  const repos = [...new Set(tags.map((t) => repositoryOf(parseReference(t))))];
  const explicit = tags.filter((t) => parseReference(t).tag !== undefined);
  const out = [...explicit];
  if (scheme === 'build-id') {
    // The seed's BUILD_ID: build time (UTC) and the commit it was built from.
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${stamp}-${revision ? revision.slice(0, 7) : 'nogit'}`;
    for (const r of repos) out.push(`${r}:${id}`);
    return out;
  }
  if (scheme !== 'semver') throw new UsageError(`--tag-scheme: "${scheme}" is not build-id or semver`);
  if (!version) throw new UsageError('--tag-scheme semver needs --version X.Y.Z');
  const m = semverRe.exec(version);
  if (!m) throw new UsageError(`--version: "${version}" is not a semantic version (X.Y.Z)`);
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const prerelease = m[4] !== undefined;
  const images = await store.listImages();
  for (const r of repos) {
    out.push(`${r}:${version}`);
    // A prerelease gets only its own tag; so does a version below one the repository already has.
    if (prerelease) continue;
    const existing = images.flatMap((i) => i.names).filter((n) => n.startsWith(r + ':')).map((n) => semverRe.exec(n.slice(r.length + 1))).filter((x): x is RegExpExecArray => x !== null && x[4] === undefined).map((x) => [Number(x[1]), Number(x[2]), Number(x[3])] as const);
    const higher = (pred: (v: readonly [number, number, number]) => boolean) => existing.some((v) => pred(v) && compareVersions(v, [major, minor, patch]) > 0);
    if (!higher((v) => v[0] === major && v[1] === minor)) out.push(`${r}:${major}.${minor}`);
    if (!higher((v) => v[0] === major)) out.push(`${r}:${major}`);
    if (!higher(() => true)) out.push(`${r}:latest`);
  }
  return [...new Set(out)];
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
