import { Option, type Command } from 'commander';
import { readFile, writeFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { collect, openStore, out, policyAdmission, storedAdmission, type GlobalOptions } from './context.js';
import type { NamedContext } from '../build/solver.js';
import { build, type BuildSpec } from '../build/entry.js';
import { checkNamedContext, parseNamedContext, parsePlatforms, parseSecret, readSecrets } from '../build/inputs.js';
import { parseCacheFrom, parseCacheTo } from '../build/cache-transfer.js';
import { BuildContext } from '../build/context.js';
import { cloneGitContext, isGitContext, parseGitContext } from '../build/gitcontext.js';
import { fetchHTTPContext, isHTTPContext, newestMtime } from '../build/httpcontext.js';
import { multiPlatformRefusal, parseOutput } from '../build/export.js';
import type { Platform } from '../oci/types.js';
import { plainProgress, ttyProgress } from '../ui/progress.js';
import { silentProgress } from '../build/progress.js';
import { loadDockerignore } from '../dockerfile/index.js';
import { fetchNamedContext } from '../build/named.js';
import { createExecutor, defaultExecutor } from '../sandbox/index.js';
import { hostPlatform, formatPlatform } from '../store/store.js';
import { UsageError } from '../errors.js';
import { BuildCancelled } from '../build/errors.js';
import type { NetworkMode } from '../sandbox/executor.js';
import { familiarName } from '../store/describe.js';
import { normalize } from '../reference/reference.js';
import { openSshAgents, type SshAgents } from '../build/ssh.js';
import { InvalidUlimit, parseUlimit } from '../sandbox/ulimit.js';
import { ramInBytes } from '../dockerfile/gocompat.js';

/**
 * The registry client, the SBOM cataloguers and the debug shell are loaded when a build uses them:
 * together they were most of kiln build's start-up, paid by every local build.
 */
const registryClient = () => import('../registry/client/index.js');

interface BuildFlags {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  cache: boolean;
  /** --no-cache-filter values (commander names the attribute without its "no-"). */
  cacheFilter: string[];
  pull: string;
  quiet?: boolean;
  label: string[];
  network: string;
  output: string[];
  iidfile?: string;
  progress: string;
  platform?: string;
  runtime?: string;
  jobs?: string;
  secret: string[];
  ssh: string[];
  shmSize?: string;
  ulimit: string[];
  allow: string[];
  buildContext: string[];
  onError: string;
  sbom?: boolean;
  push?: boolean;
  cacheTo: string[];
  cacheFrom: string[];
}


/** buildx's --no-cache-filter: commander would read any --no-… flag as a negated boolean. */
function noCacheFilterOption(): Option {
  const o = new Option('--no-cache-filter <stage>', 'do not use the build cache for this stage (repeatable)').argParser(collect).default([]);
  o.negate = false;
  return o;
}

export function registerBuildCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('build')
    .description('Build an image from a Dockerfile, without a daemon')
    .argument('<context>', 'context directory, or - for a tar on stdin')
    .option('-t, --tag <name>', 'name and optionally a tag (repeatable)', collect, [])
    .option('-f, --file <path>', 'Dockerfile (default: CONTEXT/Dockerfile; - for stdin)')
    .option('--build-arg <k=v>', 'build-time variable; K alone takes the value from the environment', collect, [])
    .option('--target <stage>', 'build this stage and what it needs')
    .option('--no-cache', 'do not use the build cache')
    .addOption(noCacheFilterOption())
    .option('--pull <policy>', 'always, missing or never', 'missing')
    .option('-q, --quiet', 'print only the image ID')
    .option('--label <k=v>', 'set metadata on the image', collect, [])
    .option('--network <mode>', 'network for RUN: default, none or host', 'default')
    .option('-o, --output <spec>', 'type=image (default), type=registry,name=REF, type=oci|docker|tar,dest=FILE, type=oci,tar=false,dest=DIR (an OCI layout), "name=A,B" (names in index.json), type=local,dest=DIR', collect, [])
    .option('--iidfile <file>', 'write the image ID to this file')
    .option('--progress <mode>', 'auto, plain, tty or quiet', 'auto')
    .option('--platform <platforms>', `target platforms, comma-separated (default: this machine's, ${formatPlatform(hostPlatform())}); several make an image index; foreign RUNs are emulated with QEMU`)
    .option('--runtime <runtime>', 'runc, crun, bwrap or a path to an OCI runtime')
    .option('--jobs <n>', 'steps run in parallel at most (default: no limit, as BuildKit; layers are written at most one per core)')
    .option('--secret <spec>', 'id=ID,src=PATH or id=ID,env=VAR (repeatable)', collect, [])
    .option('--ssh <spec>', 'SSH agent for RUN --mount=type=ssh: default|ID[=SOCKET|KEY[,KEY…]] (no path: $SSH_AUTH_SOCK; repeatable)', collect, [])
    .option('--shm-size <bytes>', 'size of /dev/shm in RUN: bytes, or with a unit (128m, 1g); default 64m')
    .option('--ulimit <name=soft[:hard]>', 'resource limit of RUN processes, as docker: nofile=1024:2048 (repeatable)', collect, [])
    .option('--allow <entitlement>', 'security.insecure lets RUN --security=insecure run with every capability; network.host is accepted (kiln needs no grant for it)', collect, [])
    .option('--build-context <name=value>', 'extra named context: a directory, docker-image://REF or oci-layout://PATH[:TAG]', collect, [])
    .option('--push', 'push the image to the registry of each -t name once it is stored')
    .option('--cache-to <spec>', 'type=registry,ref=REF[,mode=min|max][,mounts=true][,mounts-max-size=SIZE] or type=inline', collect, [])
    .option('--cache-from <spec>', 'type=registry,ref=REF, or an image REF with an inline cache (repeatable)', collect, [])
    .option('--on-error <mode>', "when a RUN fails: fail, or shell to first open a shell in the failed step's sandbox", 'fail')
    .option('--sbom', 'catalogue the image\'s packages and store the SBOM beside it (kiln sbom and kiln push use it)')
    .action(async (contextArg: string, o: BuildFlags) => {
      const store = await openStore(globals());
      const pull = o.pull === 'true' ? 'always' : o.pull === 'false' ? 'missing' : o.pull;
      if (pull !== 'always' && pull !== 'missing' && pull !== 'never') throw new UsageError(`--pull: "${o.pull}" is not always, missing or never`);
      if (!['default', 'none', 'host'].includes(o.network)) throw new UsageError(`--network: "${o.network}" is not default, none or host`);
      const platforms = parsePlatforms(o.platform?.split(',') ?? [], '--platform');
      const outputs = o.output.map(parseOutput);
      if (outputs.length > 1) throw new UsageError('only one --output is supported');
      const output = outputs[0] ?? { type: 'image' as const };
      const refusal = multiPlatformRefusal(output, platforms.length);
      if (refusal) throw new UsageError(`--output ${refusal}`);
      for (const t of o.tag) normalize(t);
      const pushNames = output.type === 'image' && (output.push || o.push) ? [...(output.name ? [output.name] : []), ...o.tag] : [];
      if (o.push && output.type !== 'image') throw new UsageError(`--push cannot be used with --output type=${output.type}`);
      if ((o.push || (output.type === 'image' && output.push)) && pushNames.length === 0) throw new UsageError('--push needs a name to push to: give -t REGISTRY/REPOSITORY[:TAG]');
      const cacheTo = o.cacheTo.map(parseCacheTo);
      const cacheFrom = o.cacheFrom.map(parseCacheFrom);
      const buildArgs: Record<string, string> = {};
      for (const a of o.buildArg) {
        const i = a.indexOf('=');
        if (i < 0) {
          if (process.env[a] !== undefined) buildArgs[a] = process.env[a]!;
        } else buildArgs[a.slice(0, i)] = a.slice(i + 1);
      }
      const labels: Record<string, string> = {};
      for (const l of o.label) {
        const i = l.indexOf('=');
        labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
      }
      const secrets = await readSecrets(o.secret.map((s) => parseSecret(s, '--secret')), '--secret');
      const shmSize = o.shmSize === undefined ? undefined : ramInBytes(o.shmSize);
      if (shmSize === undefined && o.shmSize !== undefined) throw new UsageError(`--shm-size: invalid size: '${o.shmSize}'`);
      const ulimits = o.ulimit.map((u) => {
        try {
          return parseUlimit(u);
        } catch (e) {
          if (e instanceof InvalidUlimit) throw new UsageError(`--ulimit: ${e.message}`);
          throw e;
        }
      });
      // buildx's entitlements (BuildKit util/entitlements/entitlements.go:110 for the error).
      for (const e of o.allow) if (e !== 'security.insecure' && e !== 'network.host') throw new UsageError(`--allow: unknown entitlement ${e}`);
      const namedContexts = new Map<string, NamedContext>();
      const remoteNamed: { name: string; url: string }[] = [];
      for (const spec of o.buildContext) {
        const i = spec.indexOf('=');
        if (i <= 0) throw new UsageError(`--build-context ${spec}: expected name=value`);
        const named = parseNamedContext(spec.slice(0, i), spec.slice(i + 1), '--build-context');
        await checkNamedContext(named, spec.slice(i + 1), '--build-context');
        if ('url' in named) remoteNamed.push(named);
        else namedContexts.set(named.name, named.context);
      }
      const epochText = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
      // "context" dates a local context by nothing: the epoch stays unset (BuildKit
      // dockerfile2llb/epoch.go:62, resolveSourceDateEpochState with no client-side metadata).
      let sourceDateEpoch = epochText !== undefined && epochText !== '' && epochText !== 'context' ? Number(epochText) : undefined;
      if (sourceDateEpoch !== undefined && !Number.isInteger(sourceDateEpoch)) throw new UsageError(`invalid SOURCE_DATE_EPOCH: ${epochText} (not an integer)`);

      let mode = o.quiet ? 'quiet' : o.progress === 'auto' ? (process.stderr.isTTY ? 'tty' : 'plain') : o.progress;
      if (!['plain', 'tty', 'quiet'].includes(mode)) throw new UsageError(`--progress: "${o.progress}" is not auto, plain, tty or quiet`);
      if (o.onError !== 'fail' && o.onError !== 'shell') throw new UsageError(`--on-error: "${o.onError}" is not fail or shell`);

      // The context: a directory, a tar on stdin unpacked into a temporary one, or a git repository
      // cloned into one. A temporary context is removed whatever happens after it is made.
      let contextDir = resolve(contextArg);
      let removeContext = async () => {};
      let dockerfileText: string | undefined;
      if (o.file === '-') dockerfileText = await readStdin();
      const remote = isGitContext(contextArg);
      if (contextArg === '-') {
        if (o.file === '-') throw new UsageError('the context and the Dockerfile cannot both come from stdin');
        const tempContext = await mkdtemp(join(tmpdir(), 'kiln-context-'));
        removeContext = () => rm(tempContext, { recursive: true, force: true });
        const { applyLayer } = await import('../archive/index.js'); // a tar context only
        await applyLayer(process.stdin, tempContext, { whiteouts: 'delete', sameOwner: false }).catch(async (e: unknown) => {
          await removeContext();
          throw e;
        });
        contextDir = tempContext;
      } else if (remote) {
        const clone = await cloneGitContext(parseGitContext(contextArg));
        contextDir = clone.dir;
        removeContext = clone.cleanup;
        // SOURCE_DATE_EPOCH=context dates a git context by its commit (BuildKit dockerfile2llb/epoch.go:62, :327-336; testSourceDateEpochContextGit).
        if (epochText === 'context') sourceDateEpoch = clone.committed;
      } else if (isHTTPContext(contextArg)) {
        const fetched = await fetchHTTPContext(contextArg);
        contextDir = fetched.dir;
        removeContext = fetched.cleanup;
        // A URL that is the Dockerfile itself: -f names nothing then.
        if (fetched.dockerfile !== undefined) dockerfileText ??= fetched.dockerfile;
        // SOURCE_DATE_EPOCH=context dates an HTTP context by its Last-Modified, else by the newest
        // entry of its archive (BuildKit dockerfile2llb/epoch.go:62, resolveSourceDateEpochFromState;
        // testSourceDateEpochContextHTTPLastModified, testSourceDateEpochContextHTTPArchive).
        if (epochText === 'context') sourceDateEpoch = fetched.lastModified ?? (fetched.dockerfile === undefined ? await newestMtime(contextDir) : undefined);
      } else if (!(await stat(contextDir).catch(() => undefined))?.isDirectory()) {
        throw new UsageError(`build context "${contextArg}" is not a directory`);
      }
      // The build arg holds the resolved epoch, "" when unset (BuildKit convert.go:310, setBuildArgValue).
      if (epochText === 'context' && buildArgs.SOURCE_DATE_EPOCH !== undefined) buildArgs.SOURCE_DATE_EPOCH = sourceDateEpoch === undefined ? '' : String(sourceDateEpoch);
      // With a repository or a downloaded archive as context, -f names a file in it, as docker reads it.
      let dockerfilePath = o.file && o.file !== '-' ? (remote || isHTTPContext(contextArg) ? join(contextDir, o.file) : resolve(o.file)) : join(contextDir, 'Dockerfile');
      // A file named Dockerfile that is missing may be spelled dockerfile (BuildKit dockerui: the
      // lowercase name is tried next, testDockerfileLowercase).
      if (dockerfileText === undefined && basename(dockerfilePath) === 'Dockerfile' && !(await stat(dockerfilePath).catch(() => undefined))) {
        const lower = join(dirname(dockerfilePath), 'dockerfile');
        if (await stat(lower).catch(() => undefined)) dockerfilePath = lower;
      }
      let context: BuildContext;
      try {
        if (dockerfileText === undefined) {
          dockerfileText = await readFile(dockerfilePath, 'utf8').catch(() => {
            throw new UsageError(`cannot read Dockerfile ${o.file ?? dockerfilePath}`);
          });
        }
        const ignore = await loadDockerignore(contextDir, dockerfilePath).catch(() => [] as string[]);
        context = await BuildContext.open(contextDir, ignore, join(store.root, 'contexts'));
      } catch (e) {
        await removeContext();
        throw e;
      }

      // The debugging shell needs the terminal: no redrawn progress display around it.
      if (o.onError === 'shell' && mode === 'tty') mode = 'plain';
      const progress = mode === 'quiet' ? silentProgress : mode === 'tty' ? ttyProgress() : plainProgress();
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let ssh: SshAgents | undefined;
      const namedCleanups: (() => Promise<void>)[] = [];
      try {
        ssh = await openSshAgents(o.ssh);
        for (const r of remoteNamed) {
          const fetched = await fetchNamedContext(r.url);
          namedCleanups.push(fetched.cleanup);
          namedContexts.set(r.name, fetched.context);
        }
        // Sandbox state beside the store: a rootless user cannot share root's directory in /tmp.
        const stateDir = join(store.root, 'sandbox');
        const executor = o.runtime ? createExecutor(o.runtime, { stateDir }) : defaultExecutor({ stateDir });
        const request: BuildSpec['request'] = {
          store,
          context,
          dockerfile: { text: dockerfileText, name: o.file === '-' ? 'Dockerfile' : basename(dockerfilePath) },
          buildArgs,
          target: o.target,
          noCache: !o.cache,
          ...(o.cacheFilter.length ? { noCacheStages: o.cacheFilter } : {}),
          labels,
          network: o.network as NetworkMode,
          // No limit by default, as BuildKit: independent stages are mostly waiting (on processes,
          // the network, the disk), so four stages that each RUN sleep 2 take 2 s on two cores; the
          // solver bounds the CPU-heavy part (writing layers) by the cores itself.
          jobs: o.jobs === undefined ? Infinity : parseJobs(o.jobs),
          executor,
          progress,
          signal: controller.signal,
          secrets,
          ssh: ssh.sockets,
          ...(shmSize ? { shmSize } : {}),
          ...(ulimits.length ? { ulimits } : {}),
          ...(o.allow.includes('security.insecure') ? { allowInsecure: true } : {}),
          sourceDateEpoch,
          pullPolicy: pull,
          resolveMissingImage: async (ref: string, platform?: Platform) =>
            (await registryClient()).pullImage(store, ref, { ...(platform ? { platform, keepIndex: true } : {}), admit: await policyAdmission(globals(), ref) }),
          admitStoredImage: await storedAdmission(globals(), store),
          namedContexts,
        };
        const built = await build({
          request,
          platforms,
          tags: o.tag,
          output,
          cacheFrom,
          cacheTo,
          sbom: o.sbom === true,
          ...(o.onError === 'shell' ? { onRunFailure: async (failure) => (await import('../container/debug.js')).debugShell(executor, { ...failure, platform: platforms.length > 1 && failure.platform ? formatPlatform(failure.platform) : undefined }) } : {}),
        });
        progress.close();
        if (mode !== 'quiet') {
          for (const s of built.sboms) process.stderr.write(`writing SBOM ${s.digest} (${s.platform && platforms.length > 1 ? `${formatPlatform(s.platform)}, ` : ''}${s.packages} packages) done\n`);
          if (platforms.length > 1) process.stderr.write(`writing image index ${built.id} (${platforms.map(formatPlatform).join(', ')}) done\n`);
          else process.stderr.write(`writing image ${built.id} done\n`);
          for (const t of o.tag) process.stderr.write(`naming to ${familiarName(normalize(t))} done\n`);
          for (const n of built.notes) process.stderr.write(n + '\n');
        }
        if (o.iidfile) await writeFile(o.iidfile, built.id);
        if (mode === 'quiet') out(built.id);
        for (const name of pushNames) {
          const pushed = await (await registryClient()).pushImage(store, platforms.length > 1 ? name : built.id, name);
          if (mode !== 'quiet') process.stderr.write(`pushing ${familiarName(normalize(name))}: ${pushed.reference}: digest: ${pushed.digest} size: ${pushed.size}\n`);
        }
      } catch (e) {
        progress.close();
        if (controller.signal.aborted) throw new BuildCancelled('build cancelled: nothing was tagged');
        throw e;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await ssh?.close();
        for (const c of namedCleanups) await c();
        await removeContext();
        // Blobs of cache imports, cache exports and pushes were held for this process only.
        await store.content.releaseLease();
      }
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJobs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--jobs: "${value}" is not a positive whole number`);
  return n;
}
