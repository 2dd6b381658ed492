// dispatchStage: walks one stage's instructions (after its base image's ONBUILD triggers) and returns
// what must be executed (steps) and the stage's final image config with history, following BuildKit's
// dockerfile2llb dispatch* functions. Pure: it reads nothing and runs nothing.

import { posix as path } from 'node:path';
import type { ContainerConfig, HealthConfig, History, ImageConfig } from '../oci/types.js';
import { DockerfileExpansionError, DockerfileStageError, DockerfileSyntaxError, UnlocatedError } from './errors.js';
import { InvalidChmod, parseChmod } from './chmod.js';
import { goDuration, goQuote, goSliceQ, goSliceV, suggest } from './gocompat.js';
import { parseTrigger, type CopyInstruction, type StageInstruction } from './instructions.js';
import { WarningSink, looksSecret, type Warning } from './lint.js';
import { parseMountSpec, type MountSharing, type MountType } from './mounts.js';
import { chompHeredocContent, mustParseHeredocWord } from './parser.js';
import type { BuildPlan, SourceRef } from './plan.js';
import { resolveCopyFrom } from './plan.js';
import { parsePorts, validateSignal } from './ports.js';
import { EnvList, ShellLex } from './shell.js';
import { createIgnoreMatcher, type IgnoreMatcher } from './dockerignore.js';

export const historyComment = 'buildkit.dockerfile.v0';
const defaultPathEnv = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Args BuildKit never puts into a RUN environment. */
const nonEnvArgs = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

export interface RunMount {
  type: MountType;
  /** Absolute path in the container (relative targets resolved against the working directory). */
  target: string;
  /** Path inside the source (context, stage or image root), cleaned and absolute; "/" = the root. */
  source: string;
  /** Source of bind and cache mounts: a stage or an image; undefined = the build context (bind) or empty (cache). */
  from?: SourceRef;
  /** Cache id (default: the target as written, cleaned), secret id or ssh id ("default"). */
  id?: string;
  /** Cache sharing; "shared" when not given. */
  sharing?: MountSharing;
  readOnly: boolean;
  /** Secrets and ssh: fail when missing (otherwise optional). */
  required: boolean;
  /** Secret exposed as this environment variable (then no file unless a target was given). */
  env?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** tmpfs size limit in bytes; 0 = none. */
  sizeLimit?: number;
}

/** A file BuildKit creates for the command, e.g. a heredoc script with a #! line. */
export interface RunInlineFile {
  /** Absolute path where it is mounted read-only. */
  path: string;
  content: string;
  mode: number;
}

interface StepBase {
  /** 1-based line of the instruction (for ONBUILD triggers: the stage's FROM line). */
  line: number;
  /** History created_by exactly as BuildKit writes it. */
  createdBy: string;
  /** Index of this step's entry in config.history (a layer-producing entry). */
  historyIndex: number;
  /** The instruction came from the base image's ONBUILD triggers. */
  onbuild: boolean;
  /** The instruction's source text. */
  instruction: string;
  /**
   * How progress names the step when that differs from the source text: RUN, COPY and ADD with
   * variables expanded and a secret's env= variable shown as ****, as BuildKit names the vertex
   * (dockerfile2llb processCmdEnv, withSecretEnvMask).
   */
  title?: string;
}

export interface RunStep extends StepBase {
  kind: 'run';
  /** Final argv: shell form → [...shell, cmdline]; exec form as written; heredocs as BuildKit does. */
  args: string[];
  /** The process environment: image Env, ARGs in scope (in order of last assignment). */
  env: string[];
  /** Proxy build args, appended to `env` when the step runs but kept out of its cache key, as BuildKit's llb.ProxyEnv is. */
  proxyEnv: string[];
  /** The sandbox's hostname when --build-arg BUILDKIT_SANDBOX_HOSTNAME sets one (BuildKit dockerui: keyHostnameArg). */
  hostname?: string;
  /** Unresolved "name[:group]" or "". */
  user: string;
  workdir: string;
  network: 'default' | 'none' | 'host';
  security: 'sandbox' | 'insecure';
  mounts: RunMount[];
  inlineFiles: RunInlineFile[];
  /** --device values as written. */
  devices: string[];
}

export interface CopyStep extends StepBase {
  kind: 'copy';
  add: boolean;
  /** Sources after expansion, as written: relative to the context or source stage root, or URLs/git refs for ADD. */
  sources: string[];
  /** Heredoc sources: files named `name` with `content` (mode 0644 unless --chmod). */
  heredocs: { name: string; content: string }[];
  /** Destination after expansion, not resolved. */
  dest: string;
  /** Destination resolved against `workdir` as BuildKit does (trailing slash kept). */
  destPath: string;
  workdir: string;
  from?: SourceRef;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  checksum?: string;
  keepGitDir: boolean;
  /** ADD --unpack as given; when undefined ADD unpacks local archives and not remote ones. */
  unpack?: boolean;
  /** The image user (BuildKit does not apply it to copied files; --chown does). */
  user: string;
}

export interface WorkdirStep extends StepBase {
  kind: 'workdir';
  /** Absolute directory to create with parents, mode 0755 (BuildKit commits this as a layer). */
  path: string;
  /** The directory is created as this user (the image's USER at that point), "" = root. */
  user: string;
}

export type Step = RunStep | CopyStep | WorkdirStep;

/** What a stage based on this one inherits besides the image config (BuildKit carries its build state). */
export interface StageBuildState {
  /** The build-time environment: image Env plus ARG values, in order. */
  env: [string, string][];
  /** ARGs declared so far (they prefix RUN history as |N k=v). */
  args: { key: string; value?: string }[];
  /** A WORKDIR was set in this Dockerfile (for the WorkdirRelativePath check). */
  workdirSet: boolean;
}

export interface StageProgram {
  steps: Step[];
  config: ImageConfig;
  warnings: Warning[];
  buildState: StageBuildState;
}

export interface StageBaseInput {
  /** The base image's config; undefined for scratch. For FROM <stage>: that stage's StageProgram.config. */
  config: ImageConfig | undefined;
  /** For FROM <stage>: that stage's program (found automatically when `config` is its config object). */
  program?: StageProgram;
}

export interface DispatchOptions {
  buildArgs: Record<string, string>;
  /** Labels added to the final config (docker build --label), without history. */
  labels?: Record<string, string>;
  /** The build's .dockerignore patterns, for the CopyIgnoredFile check. */
  dockerignore?: readonly string[];
}

const programs = new WeakMap<ImageConfig, StageBuildState>();

interface Image {
  base: ImageConfig;
  config: ContainerConfig;
  history: History[];
  author?: string;
}

function cloneConfig(c: ContainerConfig | undefined): ContainerConfig {
  return structuredClone(c ?? {});
}

function addEnv(env: string[] | undefined, k: string, v: string): string[] {
  const out = [...(env ?? [])];
  const i = out.findIndex((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) === k);
  if (i >= 0) out[i] = `${k}=${v}`;
  else out.push(`${k}=${v}`);
  return out;
}

function isAbs(p: string): boolean {
  return p.startsWith('/');
}

/** BuildKit's system.NormalizePath for Linux: absolute paths are kept as written, relative ones joined. */
function normalizePath(parent: string, newPath: string, keepSlash: boolean): string {
  const orig = newPath;
  if (parent === '') parent = '/';
  if (!isAbs(parent)) parent = path.join('/', parent);
  if (newPath === '') newPath = parent;
  if (!isAbs(newPath)) newPath = path.join(parent, newPath);
  if (keepSlash) {
    if (orig.endsWith('/') && !newPath.endsWith('/')) newPath += '/';
    else if (orig.endsWith('/.')) {
      if (newPath !== '/') newPath += '/';
      newPath += '.';
    }
  }
  return newPath;
}

function pathRelativeToWorkingDir(dir: string, p: string): string {
  if (isAbs(p)) return normalizePath('/', p, true);
  if (p === '.' || p === '') p = './';
  return normalizePath(dir, p, true);
}

function isHTTPSource(src: string): boolean {
  return (src.startsWith('http://') || src.startsWith('https://')) && !isGitSource(src);
}

/** A simplified dfgitutil.ParseGitRef: git@host:, git://, ssh://, or an http(s) URL of a .git repository. */
export function isGitSource(src: string): boolean {
  if (/^(git@[^:]+:|git:\/\/|ssh:\/\/)/.test(src)) return true;
  if (/^https?:\/\//.test(src)) {
    const noFragment = src.split('#')[0]!.replace(/\?.*$/, '');
    return noFragment.endsWith('.git') || /^https?:\/\/github\.com\/[^/]+\/[^/]+\/?$/.test(noFragment);
  }
  return false;
}

/** Hex digits of each digest algorithm ADD --checksum verifies (go-digest's registered ones). */
const checksumAlgorithms: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** Why an HTTP source's --checksum is refused, in go-digest's words (digest.Parse → Validate), or undefined. */
function httpChecksumError(checksum: string): string | undefined {
  const i = checksum.indexOf(':');
  if (i <= 0 || i + 1 === checksum.length) return 'invalid checksum digest format';
  const [algorithm, encoded] = [checksum.slice(0, i), checksum.slice(i + 1)];
  const length = checksumAlgorithms[algorithm];
  if (length === undefined) return /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(checksum) ? 'unsupported digest algorithm' : 'invalid checksum digest format';
  if (encoded.length !== length) return 'invalid checksum digest length';
  return /^[a-f0-9]+$/.test(encoded) ? undefined : 'invalid checksum digest format';
}

function validateChmod(chmod: string): void {
  try {
    parseChmod(chmod);
  } catch (e) {
    if (e instanceof InvalidChmod) throw new UnlocatedError(e.message);
    throw e;
  }
}

function healthHistory(h: HealthConfig): string {
  return `HEALTHCHECK {Test:${goSliceV(h.Test)} Interval:${goDuration(h.Interval ?? 0)} Timeout:${goDuration(h.Timeout ?? 0)} StartPeriod:${goDuration(h.StartPeriod ?? 0)} StartInterval:${goDuration(h.StartInterval ?? 0)} Retries:${h.Retries ?? 0}}`;
}

/** Proxy build args: usable in RUN without ARG, never in history (BuildKit's llb.ProxyEnv). */
function proxyEnv(buildArgs: Record<string, string>): string[] {
  const found: Record<string, string> = {};
  for (const k of Object.keys(buildArgs).sort()) {
    const lower = k.toLowerCase();
    if (['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy'].includes(lower)) found[lower] = buildArgs[k]!;
  }
  const out: string[] = [];
  for (const name of ['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy']) {
    const v = found[name];
    if (v) out.push(`${name.toUpperCase()}=${v}`, `${name}=${v}`);
  }
  return out;
}

/**
 * Dispatches one stage of a plan. `base.config` is the base image's config (undefined for scratch);
 * for FROM <stage> it is the config dispatchStage returned for that stage.
 */
export function dispatchStage(plan: BuildPlan, stageIndex: number, base: StageBaseInput, opts: DispatchOptions): StageProgram {
  const df = plan.dockerfile;
  const file = df.file;
  const stage = plan.stages[stageIndex];
  if (!stage) throw new DockerfileStageError(file, undefined, `no stage ${stageIndex}`);
  const sink = new WarningSink(file, df.check);
  const lex = new ShellLex({ escapeToken: df.escapeChar });
  const rawLex = new ShellLex({ escapeToken: '\\', skipProcessQuotes: true });
  const titleLex = lex.with({ rawQuotes: true, skipUnsetEnv: true });
  const buildArgValues = opts.buildArgs;
  const globalArgs = new EnvList(plan.globalArgList);
  const byName = new Map<string, number>();
  for (const s of plan.stages) if (s.name !== undefined) byName.set(s.name, s.index);

  // The base: scratch is BuildKit's emptyImage for the target platform.
  if (stage.base.kind !== 'scratch' && !base.config) {
    throw new DockerfileStageError(file, stage.line, `stage ${stageIndex} needs the config of its base ${stage.base.kind === 'stage' ? `stage ${stage.base.index}` : stage.base.kind === 'context' ? `context ${stage.base.name}` : stage.base.ref}`);
  }
  let baseConfig: ImageConfig;
  if (base.config) {
    baseConfig = structuredClone(base.config);
  } else {
    const p = plan.targetPlatform;
    // BuildKit's emptyImage: WorkingDir "/" and a default PATH (left to the OS on Windows)
    const config: ContainerConfig = p.os === 'windows' ? { WorkingDir: '/' } : { WorkingDir: '/', Env: [`PATH=${defaultPathEnv}`] };
    baseConfig = { architecture: p.architecture, os: p.os, rootfs: { type: 'layers', diff_ids: [] }, config };
    if (p.variant) baseConfig.variant = p.variant;
  }
  delete baseConfig.created;
  const img: Image = { base: baseConfig, config: cloneConfig(baseConfig.config), history: [...(baseConfig.history ?? [])] };
  if (baseConfig.author !== undefined) img.author = baseConfig.author;

  const inherited = stage.base.kind === 'stage' ? (base.program?.buildState ?? (base.config ? programs.get(base.config) : undefined)) : undefined;
  const env = new EnvList(inherited?.env ?? []);
  const buildArgs: { key: string; value?: string }[] = [...(inherited?.args ?? [])];
  let workdirSet = inherited?.workdirSet ?? false;

  // ONBUILD triggers of the base run first, right after FROM; the new image starts with none.
  const triggers = img.config.OnBuild ?? [];
  const commands: { instr: StageInstruction; onbuild: boolean }[] = [];
  if (triggers.length > 0) {
    for (const t of triggers) commands.push({ instr: parseTrigger(t, file, stage.line), onbuild: true });
    delete img.config.OnBuild;
  }
  for (const instr of stage.instructions) commands.push({ instr, onbuild: false });

  // Every stage gets a PATH (except on Windows), and the build environment starts from the image's.
  if (baseConfig.os !== 'windows' && !EnvList.fromStrings(img.config.Env).has('PATH')) {
    img.config.Env = [...(img.config.Env ?? []), `PATH=${defaultPathEnv}`];
  }
  for (const e of img.config.Env ?? []) {
    const eq = e.indexOf('=');
    env.set(eq < 0 ? e : e.slice(0, eq), eq < 0 ? '' : e.slice(eq + 1));
  }
  let dir = '/';
  if (img.config.WorkingDir) {
    img.config.WorkingDir = normalizePath(img.config.WorkingDir, '', false);
    dir = img.config.WorkingDir;
  }
  let user = img.config.User ?? '';

  const ignoredCheck = copyIgnoredCheck(opts.dockerignore);
  const steps: Step[] = [];
  const trackers: Record<'cmd' | 'entrypoint' | 'healthcheck', number | undefined> = { cmd: undefined, entrypoint: undefined, healthcheck: undefined };
  const commit = (msg: string, withLayer: boolean, isFileOp: boolean): number => {
    const h: History = { created_by: isFileOp ? msg + ' # buildkit' : msg, comment: historyComment };
    if (!withLayer) h.empty_layer = true;
    img.history.push(h);
    return img.history.length - 1;
  };
  const shellFor = (args: string[]): string[] => {
    const shell = img.config.Shell && img.config.Shell.length > 0 ? [...img.config.Shell] : baseConfig.os === 'windows' ? ['cmd', '/S', '/C'] : ['/bin/sh', '-c'];
    return [...shell, args.join(' ')];
  };
  const usedOnce = (kind: 'cmd' | 'entrypoint' | 'healthcheck', keyword: string, line: number) => {
    const prev = trackers[kind];
    if (prev !== undefined) {
      sink.warn('MultipleInstructionsDisallowed', `Multiple ${keyword} instructions should not be used in the same stage because only the last one will be used`, prev);
    }
    trackers[kind] = line;
  };

  for (const { instr, onbuild } of commands) {
    const line = onbuild ? stage.line : instr.line;
    const unmatchedSeen = new Set<string>();
    const located = <T>(fn: () => T, wrap = (m: string) => m): T => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof UnlocatedError) throw new DockerfileExpansionError(file, line, wrap(err.message));
        throw err;
      }
    };
    const reportUnmatched = (unmatched: Set<string>) => {
      for (const name of unmatched) {
        if (buildArgs.some((a) => a.key === name) || nonEnvArgs.has(name) || unmatchedSeen.has(name)) continue;
        unmatchedSeen.add(name);
        const s = suggest(name, env.keys(), true);
        sink.warn('UndefinedVar', `Usage of undefined variable '$${name}'${s ? ` (did you mean $${s}?)` : ''}`, line);
      }
    };
    const expand = (word: string): string =>
      located(() => {
        const r = lex.processWord(word, env);
        reportUnmatched(r.unmatched);
        return r.result;
      });
    const stepBase = (createdBy: string, historyIndex: number): StepBase => ({ line, createdBy, historyIndex, onbuild, instruction: instr.original });
    /** BuildKit's processCmdEnv: quotes kept, unset variables left as written, the text as it is on an error. */
    const titled = (masked: string[] = []): { title?: string } => {
      const lookup = masked.length === 0 ? env : { get: (k: string) => (masked.includes(k) ? '****' : env.get(k)), keys: () => [...new Set([...env.keys(), ...masked])] };
      try {
        const title = titleLex.processWord(instr.original, lookup).result;
        return title === instr.original ? {} : { title };
      } catch {
        return {};
      }
    };

    switch (instr.kind) {
      case 'env': {
        const pairs = instr.pairs.map((p) => ({ key: expand(p.key), value: expand(p.value), legacy: p.legacy }));
        let msg = 'ENV';
        for (const p of pairs) {
          if (p.legacy) sink.warn('LegacyKeyValueFormat', `"${instr.keyword} key=value" should be used instead of legacy "${instr.keyword} key value" format`, line);
          if (looksSecret(p.key)) sink.warn('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (ENV ${goQuote(p.key)})`, line);
          msg += ` ${p.key}=${p.value}`;
          env.set(p.key, p.value);
          img.config.Env = addEnv(img.config.Env, p.key, p.value);
        }
        commit(msg, false, false);
        break;
      }
      case 'label': {
        const pairs = instr.pairs.map((p) => ({ key: expand(p.key), value: expand(p.value), legacy: p.legacy }));
        let msg = 'LABEL';
        img.config.Labels ??= {};
        for (const p of pairs) {
          if (p.legacy) sink.warn('LegacyKeyValueFormat', `"${instr.keyword} key=value" should be used instead of legacy "${instr.keyword} key value" format`, line);
          img.config.Labels[p.key] = p.value;
          msg += ` ${p.key}=${p.value}`;
        }
        commit(msg, false, false);
        break;
      }
      case 'maintainer':
        img.author = instr.maintainer;
        commit(`MAINTAINER ${instr.maintainer}`, false, false);
        break;
      case 'arg': {
        const parts: string[] = [];
        for (const a of instr.args) {
          if (looksSecret(a.key)) sink.warn('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (ARG ${goQuote(a.key)})`, line);
          const hasValue = Object.hasOwn(buildArgValues, a.key);
          let value = a.value;
          if (value === undefined && !hasValue) {
            // Re-declared without a default: takes the global value (meta ARG or predefined).
            const g = globalArgs.get(a.key);
            if (g !== undefined) value = g;
          } else if (hasValue) {
            value = buildArgValues[a.key];
          } else if (value !== undefined) {
            value = expand(value);
          }
          if (value !== undefined && !nonEnvArgs.has(a.key)) env.set(a.key, value);
          buildArgs.push(value === undefined ? { key: a.key } : { key: a.key, value });
          parts.push(value === undefined ? a.key : `${a.key}=${value}`);
        }
        commit('ARG ' + parts.join(' '), false, false);
        break;
      }
      case 'workdir': {
        const p = expand(instr.path);
        if (!workdirSet && !isAbs(p)) {
          sink.warn('WorkdirRelativePath', `Relative workdir ${goQuote(p)} can have unexpected results if the base image changes`, line);
        }
        workdirSet = true;
        const wd = normalizePath(img.config.WorkingDir ?? '', p, false);
        img.config.WorkingDir = wd;
        dir = wd;
        // BuildKit creates the directory (mkdir -p, 0755, as the image user) and commits it as a layer,
        // unless it is the root.
        const withLayer = wd !== '/';
        const idx = commit('WORKDIR ' + wd, withLayer, false);
        if (withLayer) steps.push({ ...stepBase('WORKDIR ' + wd, idx), kind: 'workdir', path: wd, user });
        break;
      }
      case 'user':
        user = expand(instr.user);
        img.config.User = user;
        commit(`USER ${user}`, false, false);
        break;
      case 'volume': {
        const vols = instr.volumes.map(expand);
        img.config.Volumes ??= {};
        for (const v of vols) {
          if (v === '') throw new DockerfileExpansionError(file, line, 'VOLUME specified can not be an empty string');
          img.config.Volumes[v] = {};
        }
        commit(`VOLUME ${goSliceV(vols)}`, false, false);
        break;
      }
      case 'stopsignal': {
        const sig = expand(instr.signal);
        located(() => validateSignal(sig));
        img.config.StopSignal = sig;
        commit(`STOPSIGNAL ${sig}`, false, false);
        break;
      }
      case 'expose': {
        const specs = instr.ports.flatMap((p) => located(() => lex.processWords(p, env)));
        const parsed = located(() => parsePorts(specs));
        for (const raw of parsed.protoCasing) sink.warn('ExposeProtoCasing', `Defined protocol '${raw}' in EXPOSE instruction should be lowercase`, line);
        for (const raw of parsed.invalidFormat) {
          sink.warn('ExposeInvalidFormat', `EXPOSE instruction should not define an IP address or host-port mapping, found '${raw}'`, line);
        }
        img.config.ExposedPorts ??= {};
        for (const p of parsed.ports) img.config.ExposedPorts[p] = {};
        commit(`EXPOSE ${goSliceV(parsed.ports)}`, false, false);
        break;
      }
      case 'shell':
        img.config.Shell = [...instr.shell];
        commit(`SHELL ${goSliceV(instr.shell)}`, false, false);
        break;
      case 'onbuild':
        img.config.OnBuild = [...(img.config.OnBuild ?? []), instr.expression];
        break;
      case 'cmd': {
        usedOnce('cmd', instr.keyword, line);
        let args = instr.cmdLine;
        if (instr.prependShell) {
          if (!img.config.Shell || img.config.Shell.length === 0) {
            sink.warn('JSONArgsRecommended', `JSON arguments recommended for ${instr.keyword} to prevent unintended behavior related to OS signals`, line);
          }
          args = shellFor(args);
        }
        img.config.Cmd = args;
        img.config.ArgsEscaped = true;
        commit(`CMD ${goSliceQ(args)}`, false, false);
        break;
      }
      case 'entrypoint': {
        usedOnce('entrypoint', instr.keyword, line);
        let args = instr.cmdLine;
        if (instr.prependShell) {
          if (!img.config.Shell || img.config.Shell.length === 0) {
            sink.warn('JSONArgsRecommended', `JSON arguments recommended for ${instr.keyword} to prevent unintended behavior related to OS signals`, line);
          }
          args = shellFor(args ?? []);
        }
        img.config.Entrypoint = args;
        // An ENTRYPOINT resets a CMD inherited from the base, not one set earlier in this stage.
        if (trackers.cmd === undefined) img.config.Cmd = null;
        commit(`ENTRYPOINT ${goSliceQ(args)}`, false, false);
        break;
      }
      case 'healthcheck': {
        usedOnce('healthcheck', instr.keyword, line);
        const h: HealthConfig = { Test: [...instr.test] };
        if (instr.interval) h.Interval = instr.interval;
        if (instr.timeout) h.Timeout = instr.timeout;
        if (instr.startPeriod) h.StartPeriod = instr.startPeriod;
        if (instr.startInterval) h.StartInterval = instr.startInterval;
        if (instr.retries) h.Retries = instr.retries;
        img.config.Healthcheck = h;
        commit(healthHistory(h), false, false);
        break;
      }
      case 'run': {
        const mounts = instr.mounts.map((m) => located(() => parseMountSpec(m, (w) => lex.processWord(w, env).result)));
        let args = instr.cmdLine;
        const inlineFiles: RunInlineFile[] = [];
        if (instr.files.length > 0) {
          if (args.length !== 1 || !instr.prependShell) {
            throw new DockerfileSyntaxError(file, line, `parsing produced an invalid run command: ${goSliceV(args)}`);
          }
          if (mustParseHeredocWord(args[0]!)) {
            const first = instr.files[0]!;
            const data = first.chomp ? chompHeredocContent(first.data) : first.data;
            if (baseConfig.os !== 'windows' && data.startsWith('#!')) {
              // A single heredoc with a shebang becomes an executable file the shell runs.
              const p = path.join('/dev/pipes/', first.name);
              inlineFiles.push({ path: p, content: data, mode: 0o755 });
              args = [p];
            } else {
              args = [data];
            }
          } else {
            let b = args[0]!;
            for (const f of instr.files) b += '\n' + f.data + f.name;
            args = [b];
          }
        }
        if (instr.prependShell) args = shellFor(args);
        const runMounts = mounts.map((m) => resolveMount(m, dir, byName, (msg) => new DockerfileExpansionError(file, line, msg)));
        // ssh sockets default to /run/buildkit/ssh_agent.N, and the first is SSH_AUTH_SOCK unless the
        // environment has one (BuildKit client/llb/exec.go:155-163).
        const sshMounts = runMounts.filter((m) => m.type === 'ssh');
        sshMounts.forEach((m, i) => (m.target ||= `/run/buildkit/ssh_agent.${i}`));
        const runEnv = env.toStrings();
        if (sshMounts.length > 0 && env.get('SSH_AUTH_SOCK') === undefined) runEnv.push(`SSH_AUTH_SOCK=${sshMounts[0]!.target}`);
        // RUN history lists the stage's ARGs (|N k=v) in front of the command.
        const seen = new Map<string, number>();
        const argEnv: string[] = [];
        for (const a of buildArgs) {
          const v = env.get(a.key) ?? a.value ?? '';
          const i = seen.get(a.key);
          if (i !== undefined) argEnv[i] = `${a.key}=${v}`;
          else {
            seen.set(a.key, argEnv.length);
            argEnv.push(`${a.key}=${v}`);
          }
        }
        const prefix = argEnv.length > 0 ? [`|${argEnv.length}`, ...argEnv] : [];
        const createdBy = 'RUN ' + [...prefix, ...args].join(' ') + ' # buildkit';
        const idx = commit('RUN ' + [...prefix, ...args].join(' '), true, true);
        steps.push({
          ...stepBase(createdBy, idx),
          ...titled(runMounts.flatMap((m) => (m.type === 'secret' && m.env !== undefined ? [m.env] : []))),
          kind: 'run',
          args,
          env: runEnv,
          proxyEnv: proxyEnv(buildArgValues),
          ...(buildArgValues.BUILDKIT_SANDBOX_HOSTNAME ? { hostname: buildArgValues.BUILDKIT_SANDBOX_HOSTNAME } : {}),
          user,
          workdir: dir,
          network: instr.network,
          security: instr.security,
          mounts: runMounts,
          inlineFiles,
          devices: instr.devices,
        });
        break;
      }
      case 'copy':
      case 'add': {
        const step = dispatchCopy(instr, {
          expand,
          rawExpand: (w) => located(() => {
            const r = rawLex.processWord(w, env);
            reportUnmatched(r.unmatched);
            return r.result;
          }),
          located,
          dir,
          user,
          lex,
          byName,
          count: plan.stages.length,
          fail: (msg) => new DockerfileExpansionError(file, line, msg),
          ignored: instr.kind === 'add' || instr.from === undefined ? ignoredCheck : undefined,
          warnIgnored: (src) => sink.warn('CopyIgnoredFile', `Attempting to ${instr.kind === 'add' ? 'Add' : 'Copy'} file ${goQuote(src)} that is excluded by .dockerignore`, line),
        });
        const idx = commit(step.createdByNoSuffix, true, true);
        const { createdByNoSuffix, ...rest } = step;
        void createdByNoSuffix;
        steps.push({ ...rest, ...stepBase(step.createdByNoSuffix + ' # buildkit', idx), ...titled() });
        break;
      }
    }
  }

  if (opts.labels && Object.keys(opts.labels).length > 0) img.config.Labels = { ...(img.config.Labels ?? {}), ...opts.labels };

  const config = finalConfig(img);
  const buildState: StageBuildState = { env: env.keys().map((k) => [k, env.get(k)!]), args: buildArgs, workdirSet };
  programs.set(config, buildState);
  return { steps, config, warnings: sink.warnings, buildState };
}

interface CopyContext {
  expand: (w: string) => string;
  rawExpand: (w: string) => string;
  located: <T>(fn: () => T) => T;
  dir: string;
  user: string;
  lex: ShellLex;
  byName: Map<string, number>;
  count: number;
  fail: (msg: string) => Error;
  /** Whether a context source is excluded by .dockerignore (undefined: no check). */
  ignored?: (src: string) => boolean;
  warnIgnored: (src: string) => void;
}

/**
 * BuildKit's validateCopySourcePath: warn about copying a context path .dockerignore excludes. Not
 * checked when the patterns have exceptions (too hard to decide statically), as in BuildKit.
 */
function copyIgnoredCheck(patterns: readonly string[] | undefined): ((src: string) => boolean) | undefined {
  if (!patterns || patterns.length === 0) return undefined;
  let matcher: IgnoreMatcher;
  try {
    matcher = createIgnoreMatcher(patterns);
  } catch {
    return undefined;
  }
  if (matcher.hasExceptions) return undefined;
  const rootIgnored = matcher.patterns.some((p) => p === '*' || p === '**' || p === '**/*');
  return (src) => {
    const clean = path.normalize(src).replace(/(.)\/$/, '$1');
    if (clean === '.' || clean === '/' || clean === './') return rootIgnored;
    return matcher.ignores(clean);
  };
}

function dispatchCopy(instr: CopyInstruction, ctx: CopyContext): Omit<CopyStep, keyof StepBase> & { createdByNoSuffix: string } {
  const add = instr.kind === 'add';
  const chown = instr.chown !== undefined ? ctx.expand(instr.chown) : '';
  const chmod = instr.chmod !== undefined ? ctx.expand(instr.chmod) : '';
  const checksum = instr.checksum !== undefined ? ctx.expand(instr.checksum) : '';
  const sources = instr.sources.map(ctx.expand);
  const dest = ctx.expand(instr.dest);
  const heredocs = instr.heredocSources.map((h) => ({ name: h.path, content: h.expand ? ctx.rawExpand(h.data) : h.data }));
  const destPath = pathRelativeToWorkingDir(ctx.dir, dest);
  if (chmod !== '') ctx.located(() => validateChmod(chmod));
  if (checksum !== '') {
    if (!add) throw ctx.fail("checksum can't be specified for COPY");
    if (sources.length !== 1) throw ctx.fail("checksum can't be specified for multiple sources");
    if (!isHTTPSource(sources[0]!) && !isGitSource(sources[0]!)) throw ctx.fail('checksum requires HTTP(S) or Git sources');
    if (isHTTPSource(sources[0]!)) {
      const invalid = httpChecksumError(checksum);
      if (invalid) throw ctx.fail(invalid);
    }
  }
  let msg = add ? 'ADD' : 'COPY';
  if (instr.parents) msg += ' --parents';
  if (chown !== '') msg += ' --chown=' + chown;
  if (chmod !== '') msg += ' --chmod=' + chmod;
  for (const src of sources) {
    msg += ' ' + src;
    if (isGitSource(src) && !add) throw ctx.fail("source can't be a git ref for COPY");
    if (isHTTPSource(src) && !add) throw ctx.fail("source can't be a URL for COPY");
    if (ctx.ignored && !isHTTPSource(src) && !isGitSource(src)) {
      const clean = path.normalize(src).replace(/(.)\/$/, '$1');
      if (ctx.ignored(src)) ctx.warnIgnored(clean);
    }
  }
  for (const h of heredocs) msg += ' <<' + h.name;
  msg += ' ' + dest;

  const step: Omit<CopyStep, keyof StepBase> & { createdByNoSuffix: string } = {
    kind: 'copy',
    add,
    sources,
    heredocs,
    dest,
    destPath,
    workdir: ctx.dir,
    link: instr.link,
    parents: instr.parents,
    exclude: [...instr.exclude],
    keepGitDir: instr.keepGitDir ?? false,
    user: ctx.user,
    createdByNoSuffix: msg,
  };
  if (instr.from !== undefined) step.from = resolveCopyFrom(instr.from, ctx.lex, ctx.byName, ctx.count, ctx.fail);
  if (chown !== '') step.chown = chown;
  if (chmod !== '') step.chmod = chmod;
  if (checksum !== '') step.checksum = checksum;
  if (instr.unpack !== undefined) step.unpack = instr.unpack;
  return step;
}

function resolveMount(
  m: ReturnType<typeof parseMountSpec>,
  dir: string,
  byName: Map<string, number>,
  fail: (msg: string) => Error,
): RunMount {
  const out: RunMount = { type: m.type, target: '', source: '/', readOnly: m.readOnly, required: m.required };
  if (m.type === 'secret') {
    let id = m.source !== '' ? m.source : m.id;
    if (id === '') {
      if (m.target === '') throw fail('one of source, target required');
      id = path.basename(m.target);
    }
    out.id = id;
    out.source = '';
    if (m.target !== '') out.target = m.target;
    if (m.env === undefined) out.target = m.target !== '' ? m.target : '/run/secrets/' + path.basename(id);
    else out.env = m.env;
  } else if (m.type === 'ssh') {
    if (m.source !== '') throw fail('ssh does not support source');
    out.id = m.id !== '' ? m.id : 'default';
    out.source = '';
    out.target = m.target;
  } else {
    let target = m.target;
    if (!isAbs(path.normalize(target === '' ? '.' : target))) target = path.join('/', dir, target);
    if (target === '/') throw fail(`invalid mount target ${goQuote(target)}`);
    out.target = target;
    out.source = path.join('/', m.source);
    if (m.from !== '') {
      const idx = byName.get(m.from.toLowerCase());
      out.from = idx !== undefined ? { stage: idx } : { image: m.from };
    }
    if (m.type === 'cache') {
      out.id = m.id !== '' ? m.id : path.normalize(m.target === '' ? '.' : m.target).replace(/(.)\/$/, '$1');
      out.sharing = m.sharing === '' ? 'shared' : m.sharing;
    }
    if (m.type === 'tmpfs') out.sizeLimit = m.sizeLimit;
  }
  if (m.mode !== undefined) out.mode = m.mode;
  if (m.uid !== undefined) out.uid = m.uid;
  if (m.gid !== undefined) out.gid = m.gid;
  return out;
}

/** The config as BuildKit serialises it: Go's omitempty drops empty lists and maps. */
function finalConfig(img: Image): ImageConfig {
  const c = img.config;
  const out: ContainerConfig = {};
  if (c.User) out.User = c.User;
  if (c.ExposedPorts && Object.keys(c.ExposedPorts).length > 0) out.ExposedPorts = sortedKeys(c.ExposedPorts);
  if (c.Env && c.Env.length > 0) out.Env = c.Env;
  if (c.Entrypoint && c.Entrypoint.length > 0) out.Entrypoint = c.Entrypoint;
  if (c.Cmd && c.Cmd.length > 0) out.Cmd = c.Cmd;
  if (c.Volumes && Object.keys(c.Volumes).length > 0) out.Volumes = sortedKeys(c.Volumes);
  if (c.WorkingDir) out.WorkingDir = c.WorkingDir;
  if (c.Labels && Object.keys(c.Labels).length > 0) out.Labels = sortedKeys(c.Labels);
  if (c.StopSignal) out.StopSignal = c.StopSignal;
  if (c.ArgsEscaped) out.ArgsEscaped = true;
  if (c.Healthcheck) out.Healthcheck = c.Healthcheck;
  if (c.OnBuild && c.OnBuild.length > 0) out.OnBuild = c.OnBuild;
  if (c.Shell && c.Shell.length > 0) out.Shell = c.Shell;
  // keep fields kiln does not model (they pass through from the base untouched)
  for (const [k, v] of Object.entries(c)) if (!(k in out) && !knownConfigKeys.has(k)) (out as Record<string, unknown>)[k] = v;
  const config: ImageConfig = { ...img.base, config: out, history: img.history };
  delete config.created;
  if (img.author !== undefined) config.author = img.author;
  else delete config.author;
  return config;
}

/** Go's encoding/json writes map keys sorted bytewise; keeping that order keeps config digests equal. */
function sortedKeys<T>(m: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(m).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) out[k] = m[k]!;
  return out;
}

const knownConfigKeys = new Set([
  'User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell',
]);
