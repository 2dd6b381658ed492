import type { Command } from 'commander';
import { Writable } from 'node:stream';
import { openStore, out, policyAdmission, type GlobalOptions } from './context.js';
import type { TransferEvent } from '../registry/client/index.js';
import { familiarName } from '../store/describe.js';
import { familiarRepository, familiarString, parseNamed } from '../reference/reference.js';
import { shortId } from '../oci/digest.js';
import { humanSize } from '../ui/format.js';
import { UsageError } from '../errors.js';
import type { Platform } from '../oci/types.js';

/** pull, push, login, logout: images to and from registries, with docker's output and credentials. */
export function registerDistributionCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('pull')
    .description('Download an image from a registry')
    .argument('<image>', 'NAME[:TAG|@DIGEST]')
    .option('-a, --all-tags', 'download every tagged image of the repository')
    .option('--platform <os/arch[/variant]>', 'choose this platform from an index (default: the host\'s)')
    .option('--all-platforms', 'download every platform\'s image of an index, and keep the index')
    .option('-q, --quiet', 'print only the image name')
    .option('--concurrency <n>', 'layers downloaded at once', positiveInt, 4)
    .action(async (image: string, o: { allTags?: boolean; platform?: string; allPlatforms?: boolean; quiet?: boolean; concurrency: number }) => {
      // Each command loads only its half of the client: pull has no use for push's compressor, and back.
      const [{ pull }, store] = await Promise.all([import('../registry/client/pull.js'), openStore(globals())]);
      const ref = parseNamed(image);
      const platform = o.platform ? parsePlatform(o.platform) : undefined;
      let refs = [image];
      if (o.allTags) {
        if (ref.digest || /:[^/]*$/.test(image)) throw new UsageError('tag can\'t be used with --all-tags/-a');
        const { listRemoteTags } = await import('../registry/client/pull.js');
        refs = (await listRemoteTags(image)).map((t) => familiarString({ ...ref, tag: t }));
        if (!o.quiet) out(`Pulling ${refs.length} tags of ${familiarRepository(ref)}`);
      }
      try {
        for (const r of refs) {
          const p = parseNamed(r);
          const view = o.quiet ? undefined : transferView('pull');
          if (!o.quiet) out(`${p.digest ?? p.tag}: Pulling from ${p.path}`);
          let result;
          try {
            const admit = await policyAdmission(globals(), r);
            result = await pull(store, r, { platform, concurrency: o.concurrency, onProgress: view?.event, admit, ...(o.allPlatforms ? { allPlatforms: true } : {}) });
          } finally {
            view?.close();
          }
          if (o.quiet) {
            out(result.name);
            continue;
          }
          out(`Digest: ${result.digest}`);
          out(`Status: ${result.downloaded > 0 ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarName(result.name)}`);
          out(result.name);
        }
      } finally {
        await store.content.releaseLease();
      }
    });

  program
    .command('push')
    .description('Upload an image to a registry')
    .argument('<image>', 'the image to push: a name (or an ID when DEST is given)')
    .argument('[dest]', 'push under this name instead of IMAGE')
    .option('-q, --quiet', 'print only the final digest line')
    .option('--concurrency <n>', 'layers uploaded at once', positiveInt, 4)
    .option('--chunk-size <bytes>', 'blobs larger than 4 chunks go up in chunks of this size (default 16 MiB)', positiveInt)
    .action(async (image: string, dest: string | undefined, o: { quiet?: boolean; concurrency: number; chunkSize?: number }) => {
      const [{ pushImage }, store] = await Promise.all([import('../registry/client/push.js'), openStore(globals())]);
      const target = parseNamed(dest ?? image);
      if (!o.quiet) out(`The push refers to repository [${familiarRepository(target)}]`);
      const view = o.quiet ? undefined : transferView('push');
      let result;
      try {
        result = await pushImage(store, image, dest, {
          concurrency: o.concurrency,
          onProgress: view?.event,
          ...(o.chunkSize ? { chunkSize: o.chunkSize, monolithicMax: o.chunkSize * 4 } : {}),
        });
      } finally {
        view?.close();
        await store.content.releaseLease();
      }
      if (!o.quiet) for (const r of result.referrers) out(`referrer: digest: ${r}`);
      out(`${result.reference}: digest: ${result.digest} size: ${result.size}`);
    });

  program
    .command('login')
    .description('Log in to a registry; credentials go where docker keeps them (~/.docker/config.json or its credential helper)')
    .argument('[server]', 'registry host[:port] (default: docker.io)')
    .option('-u, --username <user>')
    .option('-p, --password <password>', 'insecure: the password shows in the process list; use --password-stdin')
    .option('--password-stdin', 'read the password from standard input')
    .action(async (server: string | undefined, o: { username?: string; password?: string; passwordStdin?: boolean }) => {
      if (o.password !== undefined && o.passwordStdin) throw new UsageError('--password and --password-stdin are mutually exclusive');
      if (o.password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      let username = o.username;
      let password = o.password;
      if (o.passwordStdin) {
        if (!username) throw new UsageError('must provide --username with --password-stdin');
        password = (await readAll(process.stdin)).replace(/\r?\n$/, '');
      }
      if (username === undefined || password === undefined) {
        const { findCredential } = await import('../registry/client/credentials.js');
        const known = await findCredential(server ?? 'docker.io').catch(() => undefined);
        if (!process.stdin.isTTY) {
          if (known && username === undefined && password === undefined) {
            username = known.username;
            password = known.secret;
          } else throw new UsageError('cannot prompt for credentials: standard input is not a terminal (use -u USER --password-stdin)');
        } else {
          username ??= (await prompt(`Username${known ? ` (${known.username})` : ''}: `, false)) || known?.username;
          password ??= await prompt('Password: ', true);
        }
      }
      if (!username) throw new UsageError('username is empty');
      if (!password) throw new UsageError('password is empty');
      const { login } = await import('../registry/client/login.js');
      const r = await login(server, username, password);
      if (!r.savedTo.startsWith('docker-credential-')) {
        process.stderr.write(`WARNING! Your password will be stored unencrypted in ${r.savedTo}.\nConfigure a credential helper to remove this warning (credsStore in that file).\n\n`);
      }
      out('Login Succeeded');
    });

  program
    .command('logout')
    .description('Log out from a registry')
    .argument('[server]', 'registry host[:port] (default: docker.io)')
    .action(async (server: string | undefined) => {
      const { logout } = await import('../registry/client/login.js');
      const r = await logout(server);
      out(r.removed ? `Removing login credentials for ${r.registry}` : `Not logged in to ${r.registry}`);
    });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${v}" is not a positive whole number`);
  return n;
}

function parsePlatform(s: string): Platform {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw new UsageError(`invalid --platform "${s}": expected os/arch[/variant], e.g. linux/arm64`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Ask on the terminal; a hidden answer is not echoed. */
async function prompt(question: string, hidden: boolean): Promise<string> {
  const { createInterface } = await import('node:readline');
  let muted = false;
  const output = new Writable({
    write(chunk, _enc, cb) {
      if (!muted) process.stdout.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stdout.write('\n');
      resolve(answer.trim());
    });
    muted = hidden;
  });
}

interface LayerLine {
  id: string;
  status: string;
  current: number;
  total: number;
  started?: number;
  ended?: number;
  done: boolean;
}

/**
 * Docker-like per-layer progress. On a terminal, one line per layer redrawn in place with a bar,
 * bytes and rate; otherwise one line per layer when it finishes (with size and rate), so that CI
 * logs stay short. Config blobs are not shown, as docker does not show them.
 */
function transferView(mode: 'pull' | 'push'): { event: (e: TransferEvent) => void; close: () => void } {
  const tty = !!process.stdout.isTTY;
  const lines: LayerLine[] = [];
  const byDigest = new Map<string, LayerLine>();
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;

  const rate = (l: LayerLine) => {
    const secs = ((l.ended ?? Date.now()) - (l.started ?? Date.now())) / 1000;
    return secs > 0 ? `${humanSize(l.current / secs)}/s` : '';
  };
  const describe = (l: LayerLine): string => {
    if (!l.done && (l.status === 'Downloading' || l.status === 'Pushing') && l.total > 0) {
      const width = 40;
      const filled = Math.min(width, Math.floor((l.current / l.total) * width));
      const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(width - filled);
      return `${l.id}: ${l.status} [${bar}] ${humanSize(l.current)}/${humanSize(l.total)} ${rate(l)}`;
    }
    return `${l.id}: ${l.status}`;
  };
  const draw = () => {
    if (!tty) return;
    let s = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const l of lines) s += `\x1b[2K${describe(l)}\n`;
    drawn = lines.length;
    process.stdout.write(s);
  };
  const finish = (l: LayerLine, status: string) => {
    l.done = true;
    l.ended = Date.now();
    l.status = status;
    if (!tty) out(`${l.id}: ${status}`);
  };

  const event = (e: TransferEvent) => {
    if (e.type === 'warning') {
      process.stderr.write(`WARNING: ${e.message}\n`);
      return;
    }
    if (e.type === 'retry') {
      const l = e.digest ? byDigest.get(e.digest) : undefined;
      if (!tty || !l) out(`${l ? l.id : 'retrying'}: ${e.why}`);
      else l.status = `Retrying (${e.why})`;
      return;
    }
    if (e.kind !== 'layer') return;
    let l = byDigest.get(e.digest) ?? (e.replaces ? byDigest.get(e.replaces) : undefined);
    if (!l) {
      l = { id: shortId(e.digest), status: mode === 'pull' ? 'Pulling fs layer' : 'Preparing', current: 0, total: e.total, done: false };
      lines.push(l);
    }
    byDigest.set(e.digest, l);
    l.total = e.total;
    l.current = e.current;
    switch (e.state) {
      case 'waiting':
        l.status = e.replaces ? 'Waiting' : l.status;
        break;
      case 'compressing':
        l.status = 'Compressing';
        break;
      case 'downloading':
      case 'pushing':
        l.started ??= Date.now();
        l.status = e.state === 'downloading' ? 'Downloading' : 'Pushing';
        break;
      case 'exists':
        finish(l, mode === 'pull' ? 'Already exists' : 'Layer already exists');
        break;
      case 'mounted':
        finish(l, `Mounted from ${e.from}`);
        break;
      case 'downloaded':
      case 'pushed': {
        l.ended = Date.now();
        const secs = ((l.ended - (l.started ?? l.ended)) / 1000).toFixed(1);
        finish(l, `${e.state === 'downloaded' ? 'Pull complete' : 'Pushed'} ${humanSize(e.total)} in ${secs}s${rate(l) ? ` (${rate(l)})` : ''}`);
        break;
      }
    }
    if (tty && !timer) timer = setInterval(draw, 100);
  };
  return {
    event,
    close: () => {
      if (timer) clearInterval(timer);
      draw();
    },
  };
}
