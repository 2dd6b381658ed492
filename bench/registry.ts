// Registry benchmark: kiln's registry side by side with Debian's docker-registry (CNCF Distribution)
// in one run, on loopback. Makes its own inputs (the debian fixture via scripts/fixtures.sh, random
// small images) and prints a markdown table with the date and the machine.
//   npx tsc -p . && node dist/bench/registry.js [--duration 10]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const duration = Number(process.argv[process.argv.indexOf('--duration') + 1]) || 10;
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
  const out = execFileSync('wrk', ['-t2', `-c${conns}`, `-d${duration}s`, '--latency', '-H', `Accept: ${accept}`, url], { encoding: 'utf8' });
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

interface Result {
  pushCold: number;
  pushWarm: number;
  pull: number;
  manifest: Wrk;
  smallBlob: Wrk;
  largeBlob: Wrk;
  pushers: { seconds: number; errors: number };
}

async function measure(name: string, url: string, debian: string, work: string): Promise<Result> {
  const host = url.replace('http://', '');
  const sk = (...args: string[]) => execFileSync('skopeo', args, { stdio: 'ignore' });
  process.stderr.write(`${name}: skopeo push/pull\n`);
  const pushCold = timed(() => sk('copy', '-q', `oci-archive:${debian}`, `docker://${host}/bench/debian:cold`, '--dest-tls-verify=false'));
  const pushWarm = timed(() => sk('copy', '-q', `oci-archive:${debian}`, `docker://${host}/bench/debian:warm`, '--dest-tls-verify=false'));
  const pull = timed(() => sk('copy', '-q', `docker://${host}/bench/debian:cold`, `oci:${join(work, name + '-pull')}:x`, '--src-tls-verify=false'));
  const m = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/bench/debian:cold`], { encoding: 'utf8' }));
  const big = [...m.layers].sort((a: { size: number }, b: { size: number }) => b.size - a.size)[0].digest;
  process.stderr.write(`${name}: wrk\n`);
  const manifest = wrk(`${url}/v2/bench/debian/manifests/cold`, 32);
  const smallBlob = wrk(`${url}/v2/bench/debian/blobs/${m.config.digest}`, 32);
  const largeBlob = wrk(`${url}/v2/bench/debian/blobs/${big}`, 4);
  process.stderr.write(`${name}: 32 concurrent pushers\n`);
  let errors = 0;
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 32 }, (_, i) => pushSmall(url, `bench/pusher${i}`).catch(() => errors++)));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  return { pushCold, pushWarm, pull, manifest, smallBlob, largeBlob, pushers: { seconds, errors } };
}

async function main(): Promise<void> {
  const debian = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  const children: ChildProcess[] = [];
  try {
    const kp = await freePort();
    const kilnLog = openSync(join(work, 'kiln.log'), 'w');
    children.push(spawn(process.execPath, [kilnMain, 'registry', 'serve', '--root', join(work, 'kiln'), '--addr', `127.0.0.1:${kp}`], { stdio: ['ignore', kilnLog, kilnLog] }));
    const dp = await freePort();
    writeFileSync(
      join(work, 'distribution.yml'),
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${work}/distribution\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${dp}\n`,
    );
    const distLog = openSync(join(work, 'distribution.log'), 'w');
    children.push(spawn('docker-registry', ['serve', join(work, 'distribution.yml')], { stdio: ['ignore', distLog, distLog] }));
    const kurl = `http://127.0.0.1:${kp}`;
    const durl = `http://127.0.0.1:${dp}`;
    await waitUp(kurl);
    await waitUp(durl);
    const d = await measure('distribution', durl, debian, work);
    const k = await measure('kiln', kurl, debian, work);

    const version = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
    const rows: [string, string, string, string][] = [
      ['skopeo push of debian, cold (s, lower is better)', f(d.pushCold, 2), f(k.pushCold, 2), `${f(k.pushCold / d.pushCold, 2)}× time`],
      ['skopeo push of debian, all blobs exist (s)', f(d.pushWarm, 2), f(k.pushWarm, 2), `${f(k.pushWarm / d.pushWarm, 2)}× time`],
      ['skopeo pull of debian (s)', f(d.pull, 2), f(k.pull, 2), `${f(k.pull / d.pull, 2)}× time`],
      ['manifest GET by tag, 32 connections (req/s)', f(d.manifest.rps), f(k.manifest.rps), `${f(k.manifest.rps / d.manifest.rps, 1)}×`],
      ['manifest GET p99 latency (ms)', f(d.manifest.p99ms, 2), f(k.manifest.p99ms, 2), `${f(k.manifest.p99ms / d.manifest.p99ms, 2)}× latency`],
      ['small blob GET (config), 32 connections (req/s)', f(d.smallBlob.rps), f(k.smallBlob.rps), `${f(k.smallBlob.rps / d.smallBlob.rps, 1)}×`],
      ['small blob GET p99 latency (ms)', f(d.smallBlob.p99ms, 2), f(k.smallBlob.p99ms, 2), `${f(k.smallBlob.p99ms / d.smallBlob.p99ms, 2)}× latency`],
      ['large blob GET (largest layer), 4 connections (MiB/s)', f(d.largeBlob.mbps), f(k.largeBlob.mbps), `${f(k.largeBlob.mbps / d.largeBlob.mbps, 2)}×`],
      ['32 concurrent pushers of distinct small images (s)', f(d.pushers.seconds, 2), f(k.pushers.seconds, 2), `${f(k.pushers.seconds / d.pushers.seconds, 2)}× time`],
      ['errors (wrk non-2xx/socket, pushers)', String(d.manifest.errors + d.smallBlob.errors + d.largeBlob.errors + d.pushers.errors), String(k.manifest.errors + k.smallBlob.errors + k.largeBlob.errors + k.pushers.errors), ''],
    ];
    const lines = [
      `Registry benchmark, ${new Date().toISOString().slice(0, 10)} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; wrk -t2, ${duration}s per run, loopback; Distribution ${version} (Debian docker-registry).`,
      '',
      '| scenario | Distribution | kiln | kiln vs Distribution |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
