// Registry replicas benchmark (issue 18): two kiln replicas on one PostgreSQL and one S3 bucket,
// against two Debian docker-registry (CNCF Distribution 2.8) processes on another bucket of the same
// S3 (a Ceph radosgw, test/support/radosgw.ts), each pair behind its own haproxy with the same
// settings (mode http, roundrobin, keep-alive). Every figure is measured through the balancers, with
// the same client for both: wrk (keep-alive, 32 connections; a C client takes less of the two cores
// than a Node.js one would) for the GETs, skopeo for the push, Node.js's fetch for the pushers.
// Prints a markdown table with the date and the machine. Needs root (PostgreSQL and Ceph run as
// their own users, skopeo's blob cache is hidden by a private mount).
//   npx tsc -p . && node scripts/bundle.mjs && node dist/bench/registry-scale.js [--duration 5] [--rounds 3] [--only manifest,small-blob,large-blob,push,pushers] [--profile DIR]
// --profile DIR runs the first kiln replica with --cpu-prof (written to DIR when it stops) and
// prints the functions with the most self time.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startPostgres } from '../test/support/postgres.js';
import { startRadosgw, type Radosgw } from '../test/support/radosgw.js';
import { freePort, startDaemon, waitUntil, type Daemon, type TestContextLike } from '../test/support/daemon.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const flag = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const duration = Number(flag('--duration')) || 5;
// the GETs are measured in several rounds, the pairs' order alternating, and the medians shown: the
// machine may be shared, and one busy moment should not decide a figure
const rounds = Number(flag('--rounds')) || 3;
const warmup = 2;
const conns = 32;
// 32 downloads of 64 MiB at once through two cores read nothing for seconds (each waits for its first
// bytes from radosgw): the large blob is read by fewer connections, for longer
const largeConns = Number(flag('--large-conns')) || 4;
const largeDuration = Number(flag('--large-duration')) || 3 * duration;
const scenarios = ['manifest', 'small-blob', 'large-blob', 'push', 'pushers'] as const;
type Scenario = (typeof scenarios)[number];
const only = new Set((flag('--only') ?? scenarios.join(',')).split(',').filter(Boolean));
for (const o of only) if (!(scenarios as readonly string[]).includes(o)) throw new Error(`--only: unknown scenario ${o} (one of ${scenarios.join(', ')})`);
const selected = (s: Scenario) => only.has(s);
const profileDir = flag('--profile') ? resolve(flag('--profile')!) : undefined;
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const accept = 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json';
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

// The processes of each side, for the CPU time they use while a figure is measured.
const groups = { kiln: [] as number[], 'kiln haproxy': [] as number[], Distribution: [] as number[], 'Distribution haproxy': [] as number[], 'radosgw+OSD+mon': [] as number[] };
type Group = keyof typeof groups;

/** CPU seconds (user + system) of each group so far. */
function cpuTimes(): Record<Group, number> {
  const tick = 100; // USER_HZ
  const out = {} as Record<Group, number>;
  for (const [g, pids] of Object.entries(groups) as [Group, number[]][]) {
    out[g] = 0;
    for (const pid of pids) {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        out[g] += (Number(f[11]) + Number(f[12])) / tick;
      } catch {
        /* ended */
      }
    }
  }
  return out;
}

// Everything started is stopped at the end, in reverse order (the test helpers take a context like node:test's).
const cleanups: (() => Promise<void> | void)[] = [];
const scope: TestContextLike = { after: (fn) => void cleanups.push(fn) };

async function registryUp(d: Daemon, url: string): Promise<void> {
  await waitUntil(d, `answering on ${url}`, async () => (await fetch(url + '/v2/', { signal: AbortSignal.timeout(2000) })).status === 200, 60_000);
}

/** haproxy in the foreground (-db), stopped by its PID: the same settings for both pairs. */
async function startHaproxy(dir: string, name: string, backends: string[]): Promise<string> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${name}.cfg`);
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  http-reuse safe',
      '  timeout connect 5s',
      '  timeout client 300s',
      '  timeout server 300s',
      '  timeout http-request 300s',
      '  timeout http-keep-alive 300s',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend be',
      'backend be',
      '  balance roundrobin',
      ...backends.map((b, i) => `  server s${i} ${b}`),
      '',
    ].join('\n'),
  );
  const d = startDaemon(`haproxy-${name}`, '/usr/sbin/haproxy', ['-db', '-f', cfg], { logFile: join(dir, `haproxy-${name}.log`) });
  scope.after(() => d.stop('SIGTERM', 3000));
  groups[`${name === 'kiln' ? 'kiln' : 'Distribution'} haproxy`].push(d.pid);
  const url = `http://127.0.0.1:${port}`;
  await registryUp(d, url);
  return url;
}

async function startKiln(dir: string, n: number, pgUrl: string, gw: Radosgw, bucket: string): Promise<string> {
  const port = await freePort();
  const root = join(dir, `kiln-${n}`);
  mkdirSync(root, { recursive: true });
  const cfg = join(dir, `kiln-${n}.yml`);
  writeFileSync(
    cfg,
    `root: ${root}
database:
  driver: postgres
  postgres:
    url: ${pgUrl}
storage:
  driver: s3
  s3:
    endpoint: ${gw.endpoint}
    region: ${gw.region}
    bucket: ${bucket}
    accessKey: ${gw.accessKey}
    secretKey: ${gw.secretKey}
    forcePathStyle: true
log:
  level: error
  requests: false
`,
  );
  const prof = n === 0 && profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const d = startDaemon(`kiln-${n}`, process.execPath, [...prof, kilnMain, 'registry', 'serve', '--config', cfg, '--addr', `127.0.0.1:${port}`], { logFile: join(dir, `kiln-${n}.log`) });
  // SIGTERM: kiln closes its server and its pool and exits, so that --cpu-prof writes its profile
  scope.after(() => d.stop('SIGTERM', 10_000));
  groups.kiln.push(d.pid);
  const url = `http://127.0.0.1:${port}`;
  await registryUp(d, url);
  return url;
}

async function startDistribution(dir: string, n: number, gw: Radosgw, bucket: string, secret: string): Promise<string> {
  const port = await freePort();
  const cfg = join(dir, `distribution-${n}.yml`);
  // redirect disabled: blobs go through the registry, as kiln's do (storage.s3.redirect defaults to
  // false); http.secret shared: an upload started on one instance is continued on the other.
  writeFileSync(
    cfg,
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    region: ${gw.region}
    regionendpoint: ${gw.endpoint}
    bucket: ${bucket}
    accesskey: ${gw.accessKey}
    secretkey: ${gw.secretKey}
    secure: false
    v4auth: true
  redirect:
    disable: true
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${secret}
`,
  );
  // aws-sdk-go applies AWS_CA_BUNDLE to its HTTP client's transport, and panics ("unable to load
  // custom CA bundle, HTTPClient's transport unsupported type") on the transport Distribution wraps
  // it in; radosgw is plain HTTP here, so the variable goes
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  const d = startDaemon(`distribution-${n}`, '/usr/bin/docker-registry', ['serve', cfg], { logFile: join(dir, `distribution-${n}.log`), env });
  scope.after(() => d.stop('SIGTERM', 5000));
  groups.Distribution.push(d.pid);
  const url = `http://127.0.0.1:${port}`;
  await registryUp(d, url);
  return url;
}

interface Wrk {
  /** CPU seconds per second of the measurement (cores busy), per group of processes. */
  cores?: Record<Group, number>;
  rps: number;
  mbps: number;
  errors: number;
}

function wrk(url: string, seconds: number, c = conns): Wrk {
  const out = execFileSync('wrk', ['-t2', `-c${c}`, `-d${seconds}s`, '--timeout', '30s', '-H', `Accept: ${accept}`, url], { encoding: 'utf8' });
  process.stderr.write(out.trimEnd().replace(/^/gm, '    ') + '\n');
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const tr = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  // wrk's MB are MiB; the table says MB/s (10^6)
  const mbps = tr ? (Number(tr[1]) * ({ B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 } as Record<string, number>)[tr[2]!]!) / 1e6 : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0);
  return { rps, mbps, errors };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A warm-up, then the measurement; a pause after each, for what the servers still send to closed connections. */
async function measureGet(url: string, c = conns, seconds = duration): Promise<Wrk> {
  wrk(url, warmup, c);
  await sleep(1000);
  const before = cpuTimes();
  const t = process.hrtime.bigint();
  const r = wrk(url, seconds, c);
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  const after = cpuTimes();
  r.cores = Object.fromEntries(Object.keys(groups).map((g) => [g, (after[g as Group] - before[g as Group]) / wall])) as Record<Group, number>;
  await sleep(1000);
  return r;
}

async function pushBlob(url: string, repo: string, b: Buffer<ArrayBuffer>): Promise<string> {
  const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  if (post.status !== 202) throw new Error(`POST ${repo} ${post.status}`);
  const loc = new URL(post.headers.get('location')!, url);
  loc.searchParams.set('digest', sha256(b));
  const put = await fetch(loc, { method: 'PUT', body: b, headers: { 'content-type': 'application/octet-stream' } });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`PUT blob ${repo} ${put.status} ${text.slice(0, 200)}`);
  return sha256(b);
}

/** A small random image: 2 layers + config, monolithic uploads, then the manifest. */
async function pushSmall(url: string, repo: string, layerSizes = [64 * 1024, 32 * 1024]): Promise<void> {
  const layers = layerSizes.map((n) => randomBytes(n));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  for (const b of [config, ...layers]) await pushBlob(url, repo, b);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
  });
  const r = await fetch(`${url}/v2/${repo}/manifests/latest`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`PUT manifest ${repo} ${r.status} ${text.slice(0, 200)}`);
}

/** skopeo with its blob-info cache hidden behind an empty tmpfs: it cannot mount a blob from an earlier run's repository. */
function skopeoPush(archive: string, url: string, repo: string): number {
  const host = url.replace('http://', '');
  const script = 'mkdir -p /var/lib/containers/cache && mount -t tmpfs tmpfs /var/lib/containers/cache && exec skopeo copy -q --dest-tls-verify=false "$1" "$2"';
  const t = process.hrtime.bigint();
  execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', `oci-archive:${archive}`, `docker://${host}/${repo}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Deleted objects' data stays in the memstore OSD until radosgw's garbage collection runs (2 h by default): run it now. */
function rgwGc(gw: Radosgw): void {
  execFileSync('radosgw-admin', ['-c', join(gw.dir, 'ceph.conf'), 'gc', 'process', '--include-all'], { stdio: 'ignore', timeout: 120_000 });
}

interface Pair {
  name: 'kiln' | 'Distribution';
  url: string;
  manifestUrl: string;
  smallUrl: string;
  largeUrl: string;
}

interface Result {
  manifest: Wrk[];
  smallBlob: Wrk[];
  largeBlob: Wrk[];
  push?: number[];
  pushers?: { seconds: number; errors: number; firstError?: string };
}

async function seed(p: Pair, debian: string): Promise<void> {
  log(`${p.name}: seeding (debian, a 4 KiB blob, a 64 MiB blob)`);
  skopeoPush(debian, p.url, 'bench/debian:1');
  const small = await pushBlob(p.url, 'bench/blobs', randomBytes(4096));
  const large = await pushBlob(p.url, 'bench/blobs', randomBytes(64 * 1024 * 1024));
  p.manifestUrl = `${p.url}/v2/bench/debian/manifests/1`;
  p.smallUrl = `${p.url}/v2/bench/blobs/blobs/${small}`;
  p.largeUrl = `${p.url}/v2/bench/blobs/blobs/${large}`;
  // each of the two instances behind the balancer answers each (roundrobin: two requests in a row)
  for (const u of [p.manifestUrl, p.manifestUrl, p.smallUrl, p.smallUrl]) {
    const r = await fetch(u, { headers: { accept } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${p.name}: GET ${u}: ${r.status}`);
  }
}

function cpuModel(): { model: string; count: number } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const models = [...info.matchAll(/^model name\s*:\s*(.*)$/gm)].map((m) => m[1]!.trim());
  return { model: models[0] ?? 'unknown', count: models.length || (info.match(/^processor\s*:/gm) ?? []).length };
}

/** The functions with the most self time in the V8 CPU profiles in dir. */
function topFunctions(dir: string, n = 15): string[] {
  type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number };
  const self = new Map<string, number>();
  let total = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
    const byId = new Map(p.nodes.map((x) => [x.id, x]));
    p.samples.forEach((id, i) => {
      const node = byId.get(id)!;
      const cf = node.callFrame;
      const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1')}:${cf.lineNumber + 1}`;
      const dt = p.timeDeltas[i] ?? 0;
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: PostgreSQL and Ceph are started as their own users, skopeo in a private mount namespace');
  const debian = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-scale-'));
  if (profileDir) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const results: Record<Pair['name'], Result> = { kiln: { manifest: [], smallBlob: [], largeBlob: [] }, Distribution: { manifest: [], smallBlob: [], largeBlob: [] } };
  try {
    log('starting radosgw and PostgreSQL');
    const [gw, pg] = await Promise.all([startRadosgw(scope), startPostgres(scope)]);
    const s3 = new S3Client({ endpoint: gw.endpoint, region: gw.region, forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey } });
    // Distribution does not create its bucket; kiln would, but both are made here alike
    for (const Bucket of ['kiln-bench', 'distribution-bench']) await s3.send(new CreateBucketCommand({ Bucket }));
    s3.destroy();
    // Ceph's daemons are those whose command line names this cluster's configuration
    for (const pid of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(join(gw.dir, 'ceph.conf'))) groups['radosgw+OSD+mon'].push(Number(pid));
      } catch {
        /* ended */
      }
    }
    log('starting two kiln replicas, two Distribution instances, two haproxy');
    const kilnA = await startKiln(work, 0, pg.url, gw, 'kiln-bench');
    const kilnB = await startKiln(work, 1, pg.url, gw, 'kiln-bench');
    const secret = randomBytes(16).toString('hex');
    const distA = await startDistribution(work, 0, gw, 'distribution-bench', secret);
    const distB = await startDistribution(work, 1, gw, 'distribution-bench', secret);
    const pairs: Pair[] = [
      { name: 'kiln', url: await startHaproxy(work, 'kiln', [kilnA.slice(7), kilnB.slice(7)]), manifestUrl: '', smallUrl: '', largeUrl: '' },
      { name: 'Distribution', url: await startHaproxy(work, 'distribution', [distA.slice(7), distB.slice(7)]), manifestUrl: '', smallUrl: '', largeUrl: '' },
    ];
    for (const p of pairs) await seed(p, debian);
    rgwGc(gw);

    // Each scenario measures both pairs one after the other, the order alternating between scenarios.
    let turn = 0;
    const both = async (what: string, fn: (p: Pair, r: Result) => Promise<void> | void) => {
      for (const p of turn++ % 2 ? [...pairs].reverse() : pairs) {
        log(`${p.name}: ${what}`);
        await fn(p, results[p.name]);
      }
    };
    for (let round = 1; round <= rounds; round++) {
      const of = `round ${round} of ${rounds}`;
      if (selected('manifest')) await both(`manifest GET by tag, ${of}`, async (p, r) => void r.manifest.push(await measureGet(p.manifestUrl)));
      if (selected('small-blob')) await both(`4 KiB blob GET, ${of}`, async (p, r) => void r.smallBlob.push(await measureGet(p.smallUrl)));
      if (selected('large-blob')) await both(`64 MiB blob GET, ${of}`, async (p, r) => void r.largeBlob.push(await measureGet(p.largeUrl, largeConns, largeDuration)));
    }
    if (selected('push')) {
      await both('skopeo push of debian, 3 fresh repositories', (p, r) => {
        r.push = [1, 2, 3].map((i) => skopeoPush(debian, p.url, `bench/push${i}:1`));
        rgwGc(gw);
      });
    }
    if (selected('pushers')) {
      await both('64 concurrent pushers', async (p, r) => {
        let errors = 0;
        let firstError: string | undefined;
        const t = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: 64 }, (_, i) =>
            pushSmall(p.url, `bench/pusher${i}`).catch((e: Error) => {
              errors++;
              firstError ??= e.message;
            }),
          ),
        );
        r.pushers = { seconds: Number(process.hrtime.bigint() - t) / 1e9, errors, firstError };
      });
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    rmSync(work, { recursive: true, force: true });
  }

  const k = results.kiln;
  const d = results.Distribution;
  const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows: string[][] = [];
  const ratioRow = (label: string, kv: number | undefined, dv: number | undefined, digits: number, target: number, higherBetter: boolean, extra = '') => {
    if (kv === undefined || dv === undefined) return;
    const ratio = kv / dv;
    const met = higherBetter ? ratio >= target : ratio <= target;
    rows.push([label, f(kv, digits), f(dv, digits), `${f(ratio, 2)}×`, `${higherBetter ? '≥' : '≤'} ${f(target, target < 1 ? 1 : 0)}×`, (met ? 'yes' : 'no') + extra]);
  };
  const median = (xs: number[]): number | undefined => {
    if (!xs.length) return undefined;
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  const errs = (a: Wrk[], b: Wrk[]) => {
    const [ka, db] = [a, b].map((w) => w.reduce((n, x) => n + x.errors, 0));
    return ka || db ? ` (errors: kiln ${ka}, Distribution ${db})` : '';
  };
  ratioRow(`manifest GET by tag, ${conns} connections (req/s)`, median(k.manifest.map((w) => w.rps)), median(d.manifest.map((w) => w.rps)), 0, 10, true, errs(k.manifest, d.manifest));
  ratioRow(`4 KiB blob GET, ${conns} connections (req/s)`, median(k.smallBlob.map((w) => w.rps)), median(d.smallBlob.map((w) => w.rps)), 0, 5, true, errs(k.smallBlob, d.smallBlob));
  ratioRow(`64 MiB blob GET, ${largeConns} connections (MB/s)`, median(k.largeBlob.map((w) => w.mbps)), median(d.largeBlob.map((w) => w.mbps)), 0, 0.9, true, errs(k.largeBlob, d.largeBlob));
  ratioRow('skopeo push of debian, fresh repository, best of 3 (s)', k.push && Math.min(...k.push), d.push && Math.min(...d.push), 2, 1, false);
  if (k.pushers && d.pushers) {
    rows.push([
      '64 concurrent pushers of small images (s; errors)',
      `${f(k.pushers.seconds, 2)}; ${k.pushers.errors}`,
      `${f(d.pushers.seconds, 2)}; ${d.pushers.errors}`,
      `${f(k.pushers.seconds / d.pushers.seconds, 2)}× time`,
      'no error (kiln)',
      k.pushers.errors === 0 ? 'yes' : 'no',
    ]);
  }
  const cpu = cpuModel();
  const version = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
  const haproxy = /version (\S+)/.exec(execFileSync('haproxy', ['-v'], { encoding: 'utf8' }))?.[1];
  const lines = [
    `Registry replicas on PostgreSQL and S3, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${cpu.count} × ${cpu.model}, Linux ${release()}, Node.js ${process.version}; ` +
      `two kiln replicas (PostgreSQL 15, one radosgw bucket) and two Distribution ${version} instances (S3 driver, another bucket of the same radosgw), each pair behind haproxy ${haproxy} (roundrobin, keep-alive); ` +
      `wrk -t2, ${warmup} s warm-up then ${duration} s per figure (${largeDuration} s for the large blob), medians of ${rounds} rounds, the order alternating.`,
    '',
    '| scenario | kiln | Distribution | kiln vs Distribution | target | met |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  const each = (label: string, kv: number[], dv: number[], digits: number) => {
    if (kv.length && dv.length) lines.push(`${label}: kiln ${kv.map((x) => f(x, digits)).join(', ')}; Distribution ${dv.map((x) => f(x, digits)).join(', ')}.`);
  };
  lines.push('');
  each('Manifest GET rounds (req/s)', k.manifest.map((w) => w.rps), d.manifest.map((w) => w.rps), 0);
  each('4 KiB blob GET rounds (req/s)', k.smallBlob.map((w) => w.rps), d.smallBlob.map((w) => w.rps), 0);
  each('64 MiB blob GET rounds (MB/s)', k.largeBlob.map((w) => w.mbps), d.largeBlob.map((w) => w.mbps), 0);
  each('skopeo pushes (s)', k.push ?? [], d.push ?? [], 2);
  // where the CPU went while each side was measured: cores busy, averaged over the rounds
  const cores = (label: string, side: Pair['name'], ws: Wrk[]) => {
    if (!ws.length) return;
    const avg = (g: Group) => ws.reduce((n, w) => n + (w.cores?.[g] ?? 0), 0) / ws.length;
    const mine: Group[] = side === 'kiln' ? ['kiln', 'kiln haproxy', 'radosgw+OSD+mon'] : ['Distribution', 'Distribution haproxy', 'radosgw+OSD+mon'];
    lines.push(`- ${label}, ${side}: ${mine.map((g) => `${g === side ? 'registries' : g.replace(`${side} `, '')} ${f(avg(g), 2)}`).join(', ')}`);
  };
  lines.push('', 'Cores busy while measured (CPU seconds per second, the two processes of a side summed; 2 cores in all, wrk takes some too):');
  for (const side of ['kiln', 'Distribution'] as const) {
    cores('manifest GET', side, results[side].manifest);
    cores('4 KiB blob GET', side, results[side].smallBlob);
    cores('64 MiB blob GET', side, results[side].largeBlob);
  }
  for (const [name, r] of Object.entries(results)) if (r.pushers?.firstError) lines.push(`${name}: first pusher error: ${r.pushers.firstError}`);
  if (profileDir) lines.push('', `Top self time of kiln replica 0 (${profileDir}):`, '```', ...topFunctions(profileDir), '```');
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
// the daemons are stopped; an S3 or fetch keep-alive socket must not hold the process
process.exit(0);
