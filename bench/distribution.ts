// Distribution client benchmark: push and pull of the debian fixture image with kiln and with skopeo
// against Debian's docker-registry (CNCF Distribution) on loopback, in one run. Each round starts a
// fresh registry (so neither tool can mount or skip what the other, or an earlier round, uploaded);
// the median of the rounds is printed as a markdown table with the date and the machine. kiln is timed
// twice: as the CLI (a new Node.js process per command, like skopeo) and as the library in this process.
//   npx tsc -p . && node dist/bench/distribution.js [--rounds 3]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { Store } from '../src/store/store.js';
import { pull, pushImage } from '../src/registry/client/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 3;

function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });
}

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(url + '/v2/')).status === 200) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not start`);
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number {
  const t = process.hrtime.bigint();
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timedAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function startDistribution(work: string, n: number): Promise<{ child: ChildProcess; host: string }> {
  const port = await freePort();
  const dir = join(work, `distribution-${n}`);
  writeFileSync(
    join(work, `distribution-${n}.yml`),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${dir}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', join(work, `distribution-${n}.yml`)], { stdio: 'ignore' });
  await waitUp(`http://127.0.0.1:${port}`);
  return { child, host: `127.0.0.1:${port}` };
}

type Scenario = 'push (cold)' | 'push (again, all blobs present)' | 'pull (empty store)' | 'pull (again, all blobs present)';

async function main(): Promise<void> {
  const debian = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-dist-'));
  const results: Record<Scenario, { kiln: number[]; library: number[]; skopeo: number[] }> = {
    'push (cold)': { kiln: [], library: [], skopeo: [] },
    'push (again, all blobs present)': { kiln: [], library: [], skopeo: [] },
    'pull (empty store)': { kiln: [], library: [], skopeo: [] },
    'pull (again, all blobs present)': { kiln: [], library: [], skopeo: [] },
  };
  // skopeo reads an OCI layout directory, kiln its store (also an OCI layout): neither reads the archive while timed.
  const layout = join(work, 'layout');
  execFileSync('skopeo', ['copy', '-q', `oci-archive:${debian}`, `oci:${layout}:debian`]);
  const kilnStore = join(work, 'kiln-store');
  const env = { KILN_ROOT: kilnStore, HOME: join(work, 'home'), KILN_CONFIG: join(work, 'none.yaml') };
  execFileSync(process.execPath, [kilnMain, 'load', '-q', '-i', debian], { env: { ...process.env, ...env } });
  const kiln = (args: string[], extra: NodeJS.ProcessEnv = {}) => timed(process.execPath, [kilnMain, ...args], { ...env, ...extra });
  const children: ChildProcess[] = [];
  try {
    for (let n = 0; n < rounds; n++) {
      process.stderr.write(`round ${n + 1} of ${rounds}\n`);
      const { child, host } = await startDistribution(work, n);
      children.push(child);
      execFileSync(process.execPath, [kilnMain, 'tag', 'debian:bookworm', `${host}/bench/kiln:1`], { env: { ...process.env, ...env } });
      // Alternate who goes first, so that neither always meets a cold page cache.
      const order = n % 2 === 0 ? ['kiln', 'library', 'skopeo'] : ['skopeo', 'library', 'kiln'];
      for (const who of order) {
        if (who === 'library') {
          // The same work in this process: the transfer without Node's start-up and the CLI's module loading.
          const store = await Store.open(kilnStore);
          rmSync(join(kilnStore, 'distribution'), { recursive: true, force: true }); // no mounts from kiln's CLI push
          const ref = `${host}/bench/library:1`;
          results['push (cold)'].library.push(await timedAsync(() => pushImage(store, 'debian:bookworm', ref, { env: { ...process.env, ...env } })));
          results['push (again, all blobs present)'].library.push(await timedAsync(() => pushImage(store, 'debian:bookworm', ref, { env: { ...process.env, ...env } })));
          const pulled = await Store.open(join(work, `library-pull-${n}`));
          results['pull (empty store)'].library.push(await timedAsync(() => pull(pulled, ref, { env: { ...process.env, ...env } })));
          results['pull (again, all blobs present)'].library.push(await timedAsync(() => pull(pulled, ref, { env: { ...process.env, ...env } })));
        } else if (who === 'kiln') {
          rmSync(join(kilnStore, 'distribution'), { recursive: true, force: true });
          results['push (cold)'].kiln.push(kiln(['push', '-q', `${host}/bench/kiln:1`]));
          results['push (again, all blobs present)'].kiln.push(kiln(['push', '-q', `${host}/bench/kiln:1`]));
          const pulled = join(work, `kiln-pull-${n}`);
          results['pull (empty store)'].kiln.push(kiln(['pull', '-q', `${host}/bench/kiln:1`], { KILN_ROOT: pulled }));
          results['pull (again, all blobs present)'].kiln.push(kiln(['pull', '-q', `${host}/bench/kiln:1`], { KILN_ROOT: pulled }));
        } else {
          results['push (cold)'].skopeo.push(timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:debian`, `docker://${host}/bench/skopeo:1`]));
          results['push (again, all blobs present)'].skopeo.push(timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:debian`, `docker://${host}/bench/skopeo:1`]));
          const pulled = join(work, `skopeo-pull-${n}`);
          results['pull (empty store)'].skopeo.push(timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${host}/bench/skopeo:1`, `oci:${pulled}:x`]));
          results['pull (again, all blobs present)'].skopeo.push(timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${host}/bench/skopeo:1`, `oci:${pulled}:x`]));
        }
      }
      child.kill('SIGKILL');
    }
    const version = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const skopeoVersion = execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const lines = [
      `Distribution client benchmark, ${new Date().toISOString().slice(0, 10)} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; debian:bookworm fixture (one ${'gzip'} layer, ${Math.round(Number(execFileSync('stat', ['-c', '%s', debian], { encoding: 'utf8' })) / 1e6)} MB), Distribution ${version}, skopeo ${skopeoVersion}, loopback, median of ${rounds} rounds, wall-clock seconds including process start.`,
      '',
      '| scenario | kiln CLI | kiln library (in-process) | skopeo | kiln CLI / skopeo | library / skopeo |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    ];
    for (const [name, r] of Object.entries(results)) {
      const k = median(r.kiln);
      const l = median(r.library);
      const s = median(r.skopeo);
      lines.push(`| ${name} | ${k.toFixed(2)} s | ${l.toFixed(2)} s | ${s.toFixed(2)} s | ${(k / s).toFixed(2)}× | ${(l / s).toFixed(2)}× |`);
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
