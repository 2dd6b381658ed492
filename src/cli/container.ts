import type { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { admitStoredImage, collect, openStore, out, platformFlag, writeToStdout, type GlobalOptions } from './context.js';
import { renderTemplate } from './images.js';
import { UsageError } from '../errors.js';
import { tempPathFor } from '../store/atomic.js';
import { renderTable } from '../ui/table.js';
import { humanDuration, timeAgo, truncate } from '../ui/format.js';
import type { NetworkMode } from '../sandbox/executor.js';
import {
  commandLine,
  commitContainer,
  copyFromContainer,
  copyToContainer,
  createFromImage,
  exportContainer,
  formatChange,
  inspectContainer,
  killContainer,
  listContainers,
  parseEnvFile,
  readLog,
  readState,
  removeContainer,
  resolveContainer,
  runAttached,
  startDetached,
  stopContainer,
  supervise,
  superviseCommand,
  changesOf,
  type Container,
  type CreateOptions,
} from '../container/index.js';

// Working containers: run, create, start, stop, kill, rm, ps, logs, diff, commit, cp, and under
// `kiln container` also export and inspect. run and create parse their own flags, docker's way:
// everything after the image name belongs to the container's command, even what looks like a flag.

interface FlagSpec {
  /** Long name without dashes, the key in the result. */
  name: string;
  short?: string;
  /** Takes a value; repeatable ones collect into an array. */
  value?: 'one' | 'many';
}

const runFlags: FlagSpec[] = [
  { name: 'name', value: 'one' },
  { name: 'rm' },
  { name: 'interactive', short: 'i' },
  { name: 'tty', short: 't' },
  { name: 'detach', short: 'd' },
  { name: 'env', short: 'e', value: 'many' },
  { name: 'env-file', value: 'many' },
  { name: 'entrypoint', value: 'one' },
  { name: 'workdir', short: 'w', value: 'one' },
  { name: 'user', short: 'u', value: 'one' },
  { name: 'network', value: 'one' },
  { name: 'net', value: 'one' },
  { name: 'volume', short: 'v', value: 'many' },
  { name: 'read-only' },
  { name: 'init' },
  { name: 'runtime', value: 'one' },
  { name: 'platform', value: 'one' },
  { name: 'help', short: 'h' },
];

type Parsed = { flags: Record<string, string | string[] | true>; rest: string[] };

/** docker's flag parsing for run: --flag v, --flag=v, -f v, -fv, -it, and the first non-flag ends it. */
export function parseRunFlags(args: string[], specs: FlagSpec[] = runFlags): Parsed {
  const flags: Parsed['flags'] = {};
  const set = (spec: FlagSpec, v: string | true) => {
    if (spec.value === 'many') flags[spec.name] = [...((flags[spec.name] as string[] | undefined) ?? []), v as string];
    else flags[spec.name] = v;
  };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = specs.find((s) => s.name === key);
      if (!spec) throw new UsageError(`unknown flag: --${key}`);
      if (!spec.value) {
        if (eq >= 0 && !['true', 'false'].includes(a.slice(eq + 1))) throw new UsageError(`invalid boolean value for --${key}`);
        if (eq < 0 || a.slice(eq + 1) === 'true') set(spec, true);
        continue;
      }
      if (eq >= 0) set(spec, a.slice(eq + 1));
      else if (i + 1 < args.length) set(spec, args[++i]!);
      else throw new UsageError(`flag needs an argument: --${key}`);
      continue;
    }
    // A group of short flags: -it, -dit, -eKEY=V, -e KEY=V.
    for (let j = 1; j < a.length; j++) {
      const spec = specs.find((s) => s.short === a[j]);
      if (!spec) throw new UsageError(`unknown shorthand flag: '${a[j]}' in ${a}`);
      if (!spec.value) {
        set(spec, true);
        continue;
      }
      let v = a.slice(j + 1);
      if (v.startsWith('=')) v = v.slice(1);
      if (v === '') {
        if (i + 1 >= args.length) throw new UsageError(`flag needs an argument: '${a[j]}' in -${a[j]}`);
        v = args[++i]!;
      }
      set(spec, v);
      break;
    }
  }
  return { flags, rest: args.slice(i) };
}

const runUsage = `Usage: kiln run [OPTIONS] IMAGE [COMMAND] [ARG...]

Create and run a new container from an image (kiln create: create it only)

Options:
      --name NAME          name the container
      --rm                 remove the container when it exits
  -i, --interactive        keep stdin open
  -t, --tty                allocate a terminal
  -d, --detach             run in the background and print the container ID
  -e, --env K=V            set an environment variable (repeatable)
      --env-file FILE      read environment variables from a file (repeatable)
      --entrypoint CMD     override the image's ENTRYPOINT
  -w, --workdir DIR        working directory inside the container
  -u, --user USER[:GROUP]  user to run as
      --network MODE       default, none or host
  -v, --volume SPEC        HOST:CONTAINER[:ro] bind mount, or CONTAINER for an anonymous volume (repeatable)
      --read-only          mount the container's root filesystem read-only
      --init               run an init as PID 1 that forwards signals and reaps zombies
      --runtime NAME       runc, crun, bwrap or the path of an OCI runtime
      --platform OS/ARCH   an image index's entry for this platform (default: the host's; a foreign one runs under QEMU)
`;

async function createOptions(args: string[]): Promise<(CreateOptions & { detach: boolean }) | undefined> {
  const { flags, rest } = parseRunFlags(args);
  if (flags.help) {
    process.stdout.write(runUsage);
    return undefined;
  }
  if (rest.length === 0) throw new UsageError(`"kiln run" requires at least 1 argument.\n\n${runUsage}`);
  const str = (k: string) => flags[k] as string | undefined;
  const list = (k: string) => (flags[k] as string[] | undefined) ?? [];
  const network = (str('network') ?? str('net') ?? 'default') as NetworkMode;
  if (!['default', 'none', 'host', 'bridge'].includes(network)) throw new UsageError(`--network: "${network}" is not default, none or host`);
  const env: string[] = [];
  for (const file of list('env-file')) {
    const text = await readFile(file, 'utf8').catch(() => {
      throw new UsageError(`open ${file}: no such file or directory`);
    });
    env.push(...parseEnvFile(text, file));
  }
  env.push(...list('env'));
  return {
    image: rest[0]!,
    command: rest.slice(1),
    ...(str('name') !== undefined ? { name: str('name') } : {}),
    ...(str('entrypoint') !== undefined ? { entrypoint: str('entrypoint') } : {}),
    ...(str('workdir') !== undefined ? { workdir: str('workdir') } : {}),
    ...(str('user') !== undefined ? { user: str('user') } : {}),
    ...(str('runtime') !== undefined ? { runtime: str('runtime') } : {}),
    ...(str('platform') !== undefined ? { platform: platformFlag(str('platform')) } : {}),
    env,
    tty: flags.tty === true,
    interactive: flags.interactive === true,
    volumes: list('volume'),
    network: network === ('bridge' as NetworkMode) ? 'default' : network,
    autoRemove: flags.rm === true,
    init: flags.init === true,
    readOnly: flags['read-only'] === true,
    detach: flags.detach === true,
  };
}

/** `docker ps` STATUS: Created, Up 5 minutes, Exited (0) 3 seconds ago. */
function statusText(c: Container): string {
  const s = c.state;
  if (s.status === 'running') return `Up ${humanDuration(Date.now() - Date.parse(s.startedAt ?? c.record.created))}`;
  if (s.status === 'exited') return `Exited (${s.exitCode ?? 0}) ${timeAgo(s.finishedAt)}`;
  return 'Created';
}

/** Run `fn` for each reference, printing errors as docker does and failing at the end if any failed. */
async function eachContainer(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (e) {
      failed = true;
      process.stderr.write(`Error: ${(e as Error).message}\n`);
    }
  }
  if (failed) process.exitCode = 1;
}

/** `C:PATH` → container and path; anything else is a host path. */
function splitCopyArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.') || arg === '-') return { path: arg };
  const colon = arg.indexOf(':');
  if (colon <= 0) return { path: arg };
  return { container: arg.slice(0, colon), path: arg.slice(colon + 1) };
}


export function registerContainerCommands(program: Command, globals: () => GlobalOptions): void {
  const group = program.command('container').description('Manage working containers (run, commit, export, cp …), without a daemon');
  for (const parent of [program, group]) defineCommands(parent, globals, parent === group);

  program
    .command(superviseCommand, { hidden: true })
    .argument('<id>')
    .action(async (id: string) => {
      const store = await openStore(globals());
      process.exitCode = await supervise(store, await resolveContainer(store, id));
    });
}

function defineCommands(parent: Command, globals: () => GlobalOptions, grouped: boolean): void {
  for (const name of ['run', 'create']) {
    parent
      .command(name)
      .description(name === 'run' ? 'Create and run a new container from an image' : 'Create a new container from an image without starting it')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .helpOption(false)
      .allowUnknownOption()
      .argument('[args...]')
      .action(async (args: string[]) => {
        const opts = await createOptions(args);
        if (!opts) return;
        if (name === 'run' && opts.tty && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY');
        const store = await openStore(globals());
        await admitStoredImage(globals(), store, opts.image);
        const c = await createFromImage(store, opts);
        if (name === 'create') return out(c.record.id);
        if (opts.detach) {
          await startDetached(store, c);
          return out(c.record.id);
        }
        const stdin = opts.interactive && !opts.tty ? process.stdin : undefined;
        try {
          process.exitCode = await runAttached(store, c, { stdin, stdout: process.stdout, stderr: process.stderr, terminal: opts.tty });
        } finally {
          if (stdin) stdin.destroy();
        }
      });
  }

  parent
    .command(grouped ? 'ls' : 'ps')
    .alias(grouped ? 'ps' : 'container-ls')
    .description('List containers (running ones unless -a)')
    .option('-a, --all', 'show all containers')
    .option('-q, --quiet', 'only show IDs')
    .option('--no-trunc', 'do not truncate output')
    .option('--format <format>', '"json" for one JSON object per line')
    .action(async (o: { all?: boolean; quiet?: boolean; trunc: boolean; format?: string }) => {
      const store = await openStore(globals());
      const shown = (await listContainers(store)).filter((c) => o.all || c.state.status === 'running');
      const id = (c: Container) => (o.trunc ? c.record.id.slice(0, 12) : c.record.id);
      if (o.quiet) {
        if (shown.length) out(shown.map(id).join('\n'));
        return;
      }
      const rows = shown.map((c) => {
        const cmd = commandLine(c.record.config);
        return { ID: id(c), Image: c.record.image, Command: `"${o.trunc ? truncate(cmd, 20) : cmd}"`, CreatedAt: c.record.created, RunningFor: timeAgo(c.record.created), Status: statusText(c), State: c.state.status, Names: c.record.name };
      });
      if (o.format === 'json') {
        for (const r of rows) out(JSON.stringify(r));
        return;
      }
      if (o.format && o.format !== 'table') throw new UsageError(`unknown --format "${o.format}": use "json" or "table"`);
      process.stdout.write(renderTable(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Names])));
    });

  parent
    .command('rm')
    .description('Remove containers')
    .option('-f, --force', 'kill a running container first')
    .option('-v, --volumes', "remove the container's anonymous volumes (kiln always does: they live in the container's directory)")
    .argument('<container...>')
    .action(async (refs: string[], o: { force?: boolean }) => {
      const store = await openStore(globals());
      await eachContainer(refs, async (ref) => {
        await removeContainer(store, await resolveContainer(store, ref), { force: o.force === true });
        out(ref);
      });
    });

  parent
    .command('start')
    .description('Start stopped containers again, on their own filesystem')
    .option('-a, --attach', 'run in the foreground with output attached, and exit with its exit code')
    .option('-i, --interactive', "attach stdin (with -a)")
    .argument('<container...>')
    .action(async (refs: string[], o: { attach?: boolean; interactive?: boolean }) => {
      const store = await openStore(globals());
      if (o.attach || o.interactive) {
        if (refs.length > 1) throw new UsageError('you cannot start and attach multiple containers at once');
        const c = await resolveContainer(store, refs[0]!);
        if (c.record.host.tty && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY');
        const stdin = o.interactive && !c.record.host.tty ? process.stdin : undefined;
        try {
          process.exitCode = await runAttached(store, c, { stdin, stdout: process.stdout, stderr: process.stderr, terminal: c.record.host.tty });
        } finally {
          if (stdin) stdin.destroy();
        }
        return;
      }
      await eachContainer(refs, async (ref) => {
        const c = await resolveContainer(store, ref);
        if ((await readState(c.dir)).status !== 'running') await startDetached(store, c);
        out(ref);
      });
    });

  parent
    .command('stop')
    .description("Stop running containers: the image's STOPSIGNAL (default SIGTERM), then SIGKILL after a grace period")
    .option('-t, --time <seconds>', 'seconds to wait before killing', '10')
    .option('-s, --signal <signal>', 'signal to send first')
    .argument('<container...>')
    .action(async (refs: string[], o: { time: string; signal?: string }) => {
      const timeout = Number(o.time);
      if (!Number.isFinite(timeout) || timeout < 0) throw new UsageError(`--time: "${o.time}" is not a number of seconds`);
      const store = await openStore(globals());
      await eachContainer(refs, async (ref) => {
        await stopContainer(await resolveContainer(store, ref), { timeoutSeconds: timeout, signal: o.signal });
        out(ref);
      });
    });

  parent
    .command('kill')
    .description('Send a signal (default SIGKILL) to running containers')
    .option('-s, --signal <signal>', 'signal to send', 'KILL')
    .argument('<container...>')
    .action(async (refs: string[], o: { signal: string }) => {
      const store = await openStore(globals());
      await eachContainer(refs, async (ref) => {
        await killContainer(await resolveContainer(store, ref), o.signal);
        out(ref);
      });
    });

  parent
    .command('logs')
    .description("Show a container's output")
    .option('-f, --follow', 'keep following while the container runs')
    .option('-t, --timestamps', 'show timestamps')
    .option('-n, --tail <lines>', 'only the last N lines', 'all')
    .argument('<container>')
    .action(async (ref: string, o: { follow?: boolean; timestamps?: boolean; tail: string }) => {
      // `kiln logs C | head`: a reader that goes away ends the command, quietly.
      for (const s of [process.stdout, process.stderr]) s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' ? process.exit(0) : undefined));
      const store = await openStore(globals());
      const c = await resolveContainer(store, ref);
      let { entries, offset } = await readLog(c.dir);
      if (o.tail !== 'all') {
        const n = Number(o.tail);
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--tail: "${o.tail}" is not a number of lines`);
        entries = n === 0 ? [] : entries.slice(-n);
      }
      const show = (list: typeof entries) => {
        for (const e of list) (e.stream === 'stderr' ? process.stderr : process.stdout).write(o.timestamps ? `${e.time} ${e.log}` : e.log);
      };
      show(entries);
      while (o.follow) {
        const running = (await readState(c.dir)).status === 'running';
        const next = await readLog(c.dir, offset);
        show(next.entries);
        offset = next.offset;
        if (!running) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    });

  parent
    .command('diff')
    .description("Show the changes to a container's filesystem: A added, C changed, D deleted")
    .argument('<container>')
    .action(async (ref: string) => {
      const store = await openStore(globals());
      const changes = await changesOf(store, await resolveContainer(store, ref));
      if (changes.length) out(changes.map(formatChange).join('\n'));
    });

  parent
    .command('commit')
    .description("Create a new image from a container's changes")
    .option('-a, --author <author>', 'author (e.g. "Jane Doe <jane@example.com>")')
    .option('-m, --message <message>', 'commit message')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable', collect, [])
    .option('-p, --pause [bool]', 'pause the container during the commit (default true)', 'true')
    .option('--no-pause', 'do not pause the container')
    .argument('<container>')
    .argument('[name]', 'REPOSITORY[:TAG] for the new image')
    .action(async (ref: string, name: string | undefined, o: { author?: string; message?: string; change: string[]; pause: string | boolean }) => {
      const pause = o.pause !== false && o.pause !== 'false';
      const store = await openStore(globals());
      const c = await resolveContainer(store, ref);
      const image = await commitContainer(store, c, { author: o.author, message: o.message, changes: o.change, pause, name });
      out(image.id);
    });

  parent
    .command('cp')
    .description('Copy files between a container and the host: cp CONTAINER:SRC DEST | cp SRC CONTAINER:DEST (- for a tar on stdin/stdout)')
    .option('-a, --archive', 'keep owners (uid:gid) when copying into the container')
    .option('-L, --follow-link', 'follow a symlink named as the source')
    .argument('<src>')
    .argument('<dest>')
    .action(async (src: string, dest: string, o: { archive?: boolean; followLink?: boolean }) => {
      const from = splitCopyArg(src);
      const to = splitCopyArg(dest);
      if (from.container && to.container) throw new UsageError('copying between containers is not supported');
      if (!from.container && !to.container) throw new UsageError('must specify at least one container source (CONTAINER:PATH)');
      const store = await openStore(globals());
      if (from.container) {
        if (to.path === '-' && process.stdout.isTTY) throw new UsageError('cowardly refusing to write a tar archive to a terminal');
        await copyFromContainer(store, await resolveContainer(store, from.container), from.path, to.path, process.stdout, { followLink: o.followLink === true });
      } else {
        await copyToContainer(store, await resolveContainer(store, to.container!), from.path, to.path, process.stdin, { archive: o.archive === true });
      }
    });

  if (!grouped) return;

  parent
    .command('export')
    .description("Write a container's filesystem as a tar archive (stdout by default)")
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .argument('<container>')
    .action(async (ref: string, o: { output?: string }) => {
      const store = await openStore(globals());
      const c = await resolveContainer(store, ref);
      if (!o.output || o.output === '-') {
        await writeToStdout('tar archive', (stdout) => exportContainer(store, c, stdout));
        return;
      }
      const tmp = tempPathFor(o.output);
      try {
        await exportContainer(store, c, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
        await rename(tmp, o.output);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    });

  parent
    .command('inspect')
    .description('Show low-level information on containers, as docker container inspect')
    .option('-f, --format <template>', 'a Go-template-like path such as {{.State.ExitCode}} or {{json .Config}}')
    .argument('<container...>')
    .action(async (refs: string[], o: { format?: string }) => {
      const store = await openStore(globals());
      const docs = [];
      for (const ref of refs) docs.push(await inspectContainer(await resolveContainer(store, ref)));
      if (o.format) for (const d of docs) out(renderTemplate(o.format, d));
      else out(JSON.stringify(docs, null, 4));
    });
}
