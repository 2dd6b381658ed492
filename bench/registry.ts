// Registry benchmark: kiln's registry side by side with Debian's docker-registry (CNCF Distribution)
// in one run, on loopback. Makes its own inputs (the debian fixture via scripts/fixtures.sh, random
// small images) and prints a markdown table with the date and the machine. Each run starts both
// servers afresh on empty roots and measures them one after the other, the order alternating between
// runs; the table shows medians over the runs, so one noisy moment on a shared machine does not decide.
//   npx tsc -p . && node dist/bench/registry.js [--duration 10] [--runs 3] [--only large-blob,manifest,...]
// --only takes: push (skopeo push and pull), manifest, small-blob, large-blob, pushers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const flag = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const duration = Number(flag('--duration')) || 10;
const runs = Number(flag('--runs')) || 3;
const scenarios = ['push', 'manifest', 'small-blob', 'large-blob', 'pushers'] as const;
type Scenario = (typeof scenarios)[number];
const only = new Set((flag('--only') ?? scenarios.join(',')).split(',').filter(Boolean));
for (const o of only) if (!(scenarios as readonly string[]).includes(o)) throw new Error(`--only: unknown scenario ${o} (one of ${scenarios.join(', ')})`);
const selected = (s: Scenario) => only.has(s);
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const accept = 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json';

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

function timed(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

interface Wrk {
  rps: number;
  p99ms: number;
  mbps: number;
  errors: number;
}

function wrk(url: string, conns: number): Wrk {
  // A 10 s timeout: on a loaded machine a slow answer is latency (p99 shows it), not a socket error.
  const out = execFileSync('wrk', ['-t2', `-c${conns}`, `-d${duration}s`, '--timeout', '10s', '--latency', '-H', `Accept: ${accept}`, url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN;
  const tr = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const mbps = tr ? Number(tr[1]) * ({ B: 1 / 1048576, KB: 1 / 1024, MB: 1, GB: 1024 } as Record<string, number>)[tr[2]!]! : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0);
  return { rps, p99ms, mbps, errors };
}

/** One client pushing one small random image: monolithic blob uploads, then the manifest. */
async function pushSmall(url: string, repo: string): Promise<void> {
  const layers = [randomBytes(64 * 1024), randomBytes(32 * 1024)];
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  for (const b of [config, ...layers]) {
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (post.status !== 202) throw new Error(`POST ${post.status}`);
    const loc = new URL(post.headers.get('location')!, url);
    loc.searchParams.set('digest', sha256(b));
    const put = await fetch(loc, { method: 'PUT', body: b, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`PUT blob ${put.status}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
  });
  const r = await fetch(`${url}/v2/${repo}/manifests/latest`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  if (r.status !== 201) throw new Error(`PUT manifest ${r.status}`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Result {
  pushCold?: number;
  pushWarm?: number;
  pull?: number;
  manifest?: Wrk;
  smallBlob?: Wrk;
  largeBlob?: Wrk;
  pushers?: { seconds: number; errors: number };
}

async function measure(name: string, url: string, debian: string, work: string): Promise<Result> {
  const host = url.replace('http://', '');
  const sk = (...args: string[]) => execFileSync('skopeo', args, { stdio: 'ignore' });
  const r: Result = {};
  process.stderr.write(`${name}: skopeo push/pull\n`);
  // The cold push is also what every other scenario reads, so it always runs.
  const pushCold = timed(() => sk('copy', '-q', `oci-archive:${debian}`, `docker://${host}/bench/debian:cold`, '--dest-tls-verify=false'));
  if (selected('push')) {
    r.pushCold = pushCold;
    // A push or pull takes well under a second, about skopeo's own start-up: three of each, the median.
    r.pushWarm = median([1, 2, 3].map((i) => timed(() => sk('copy', '-q', `oci-archive:${debian}`, `docker://${host}/bench/debian:warm${i}`, '--dest-tls-verify=false'))));
    r.pull = median([1, 2, 3].map((i) => timed(() => sk('copy', '-q', `docker://${host}/bench/debian:cold`, `oci:${join(work, `${name}-pull-${i}`)}:x`, '--src-tls-verify=false'))));
  }
  const m = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/bench/debian:cold`], { encoding: 'utf8' }));
  const big = [...m.layers].sort((a: { size: number }, b: { size: number }) => b.size - a.size)[0].digest;
  process.stderr.write(`${name}: wrk\n`);
  if (selected('manifest')) r.manifest = wrk(`${url}/v2/bench/debian/manifests/cold`, 32);
  if (selected('small-blob')) r.smallBlob = wrk(`${url}/v2/bench/debian/blobs/${m.config.digest}`, 32);
  if (selected('large-blob')) r.largeBlob = wrk(`${url}/v2/bench/debian/blobs/${big}`, 4);
  if (selected('pushers')) {
    process.stderr.write(`${name}: 32 concurrent pushers\n`);
    let errors = 0;
    const t = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 32 }, (_, i) => pushSmall(url, `bench/pusher${i}`).catch(() => errors++)));
    r.pushers = { seconds: Number(process.hrtime.bigint() - t) / 1e9, errors };
  }
  return r;
}

interface Servers {
  kiln: string;
  distribution: string;
  stop(): Promise<void>;
}

/** Both registries on fresh, empty roots under dir. */
async function startServers(dir: string): Promise<Servers> {
  mkdirSync(dir, { recursive: true });
  const children: ChildProcess[] = [];
  const kp = await freePort();
  const kilnLog = openSync(join(dir, 'kiln.log'), 'w');
  children.push(spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', join(dir, 'kiln'), '--addr', `127.0.0.1:${kp}`], { stdio: ['ignore', kilnLog, kilnLog] }));
  const dp = await freePort();
  writeFileSync(
    join(dir, 'distribution.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${dir}/distribution\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${dp}\n`,
  );
  const distLog = openSync(join(dir, 'distribution.log'), 'w');
  children.push(spawn('docker-registry', ['serve', join(dir, 'distribution.yml')], { stdio: ['ignore', distLog, distLog] }));
  const stop = async () => {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
  };
  const servers = { kiln: `http://127.0.0.1:${kp}`, distribution: `http://127.0.0.1:${dp}`, stop };
  try {
    await waitUp(servers.kiln);
    await waitUp(servers.distribution);
  } catch (e) {
    await stop();
    throw e;
  }
  return servers;
}

async function main(): Promise<void> {
  const debian = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  const results: { kiln: Result[]; distribution: Result[] } = { kiln: [], distribution: [] };
  try {
    for (let run = 0; run < runs; run++) {
      process.stderr.write(`run ${run + 1} of ${runs}\n`);
      const servers = await startServers(join(work, `run-${run}`));
      try {
        // Alternate who goes first, so that neither always meets the other's leftovers (page cache, load).
        const order = run % 2 === 0 ? (['distribution', 'kiln'] as const) : (['kiln', 'distribution'] as const);
        for (const who of order) results[who].push(await measure(who, servers[who], debian, join(work, `run-${run}`)));
      } finally {
        await servers.stop();
      }
    }

    const version = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
    const rows: string[][] = [];
    // One row per figure: the medians over the runs, their ratio, and the errors summed over the runs.
    const row = (label: string, pick: (r: Result) => number | undefined, ratio: (k: number, d: number) => string, digits: number, errors?: (r: Result) => number | undefined) => {
      const d = results.distribution.map(pick).filter((x): x is number => x !== undefined);
      const k = results.kiln.map(pick).filter((x): x is number => x !== undefined);
      if (!d.length || !k.length) return;
      const sum = (rs: Result[]) => (errors ? String(rs.map((r) => errors(r) ?? 0).reduce((a, b) => a + b, 0)) : '');
      rows.push([label, f(median(d), digits), f(median(k), digits), ratio(median(k), median(d)), errors ? `${sum(results.distribution)} / ${sum(results.kiln)}` : '']);
    };
    const time = (k: number, d: number) => `${f(k / d, 2)}× time`;
    const faster = (k: number, d: number) => `${f(k / d, 1)}×`;
    const latency = (k: number, d: number) => `${f(k / d, 2)}× latency`;
    row('skopeo push of debian, cold (s, lower is better)', (r) => r.pushCold, time, 2);
    row('skopeo push of debian, all blobs exist (s)', (r) => r.pushWarm, time, 2);
    row('skopeo pull of debian (s)', (r) => r.pull, time, 2);
    row('manifest GET by tag, 32 connections (req/s)', (r) => r.manifest?.rps, faster, 0, (r) => r.manifest?.errors);
    row('manifest GET p99 latency (ms)', (r) => r.manifest?.p99ms, latency, 2);
    row('small blob GET (config), 32 connections (req/s)', (r) => r.smallBlob?.rps, faster, 0, (r) => r.smallBlob?.errors);
    row('small blob GET p99 latency (ms)', (r) => r.smallBlob?.p99ms, latency, 2);
    row('large blob GET (largest layer), 4 connections (MiB/s)', (r) => r.largeBlob?.mbps, (k, d) => `${f(k / d, 2)}×`, 0, (r) => r.largeBlob?.errors);
    row('large blob GET p99 latency (ms)', (r) => r.largeBlob?.p99ms, latency, 0);
    row('32 concurrent pushers of distinct small images (s)', (r) => r.pushers?.seconds, time, 2, (r) => r.pushers?.errors);
    const lines = [
      `Registry benchmark, ${new Date().toISOString().slice(0, 10)} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; wrk -t2, ${duration}s per figure, loopback; Distribution ${version} (Debian docker-registry); median of ${runs} runs (of 3 per run for warm pushes and pulls), each on fresh servers, the order alternating; errors are wrk's non-2xx and socket errors (10 s timeout) and failed pushes, summed over the runs.`,
      '',
      '| scenario | Distribution | kiln | kiln vs Distribution | errors (Distribution / kiln) |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
