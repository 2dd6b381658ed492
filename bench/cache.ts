// Registry build cache benchmark: the S2 scenario of the build-engine benchmarks (20,000 files of
// 1 KiB in 200 directories plus 20 files of 10 MiB random; FROM busybox, WORKDIR, COPY package.json,
// RUN sleep 3, COPY . ., RUN ls -R) built cold on a store holding only busybox, then exported with
// --cache-to type=registry,mode=max to Debian's docker-registry (CNCF Distribution) on loopback, then
// rebuilt with --cache-from on another store holding only busybox. Each round uses fresh stores and a
// fresh registry; the median of the rounds is printed as a markdown table with the date and machine.
//   npx tsc -p . && KILN_BUSYBOX_OCI=… node dist/bench/cache.js [--rounds 3]
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/registry/server/support.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 3;

const S2Dockerfile = 'FROM busybox\nWORKDIR /app\nCOPY package.json .\nRUN sleep 3 && echo deps > deps.txt\nCOPY . .\nRUN ls -R | wc -l > count.txt\n';

/** The S2 build context: many small files and a few large random ones. */
function makeS2(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), S2Dockerfile);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 's2', version: '1.0.0' }) + '\n');
  for (let d = 0; d < 200; d++) {
    const sub = join(dir, 'src', `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(sub, `f${f}.txt`), randomBytes(512).toString('hex'));
  }
  mkdirSync(join(dir, 'assets'));
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'assets', `blob${i}.bin`), randomBytes(10 << 20));
}

async function startDistribution(work: string, n: number): Promise<{ child: ChildProcess; host: string }> {
  const port = await freePort();
  writeFileSync(
    join(work, `distribution-${n}.yml`),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, `distribution-${n}`)}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', join(work, `distribution-${n}.yml`)], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status).catch(() => 0)) === 200) return { child, host: `127.0.0.1:${port}` };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('docker-registry did not start');
}

function kiln(root: string, args: string[]): void {
  execFileSync('node', [kilnMain, '--root', root, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Run a build: its wall-clock seconds and how many steps it reported CACHED. */
function build(root: string, args: string[]): { seconds: number; cached: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync('node', [kilnMain, '--root', root, 'build', '--progress', 'plain', ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`kiln build ${args.join(' ')} failed:\n${r.stderr}`);
  return { seconds, cached: (r.stderr.match(/^#\d+ CACHED$/gm) ?? []).length };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const busybox = process.env.KILN_BUSYBOX_OCI ?? execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'busybox'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-cache-'));
  const ctx = join(work, 'ctx');
  makeS2(ctx);
  const rows: Record<string, number[]> = { 'cold build (store with busybox only)': [], 'cache export (--cache-to type=registry,mode=max)': [], 'rebuild with --cache-from (store with busybox only)': [] };
  let cachedSteps = 0;
  try {
    for (let n = 0; n < rounds; n++) {
      const reg = await startDistribution(work, n);
      try {
        const a = join(work, `store-a-${n}`);
        const b = join(work, `store-b-${n}`);
        kiln(a, ['load', '-i', busybox]);
        kiln(b, ['load', '-i', busybox]);
        const ref = `${reg.host}/bench/s2-cache:main`;
        rows['cold build (store with busybox only)']!.push(build(a, ['-t', 's2', ctx]).seconds);
        rows['cache export (--cache-to type=registry,mode=max)']!.push(build(a, ['-t', 's2', '--cache-to', `type=registry,ref=${ref},mode=max`, ctx]).seconds);
        const warm = build(b, ['-t', 's2', '--cache-from', `type=registry,ref=${ref}`, ctx]);
        cachedSteps = warm.cached;
        rows['rebuild with --cache-from (store with busybox only)']!.push(warm.seconds);
        rmSync(a, { recursive: true, force: true });
        rmSync(b, { recursive: true, force: true });
      } finally {
        reg.child.kill('SIGKILL');
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const version = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim().split(/\s+/).pop();
  const cold = median(rows['cold build (store with busybox only)']!);
  console.log(
    `Registry build cache benchmark, ${new Date().toISOString().slice(0, 10)} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; S2 (20,000 × 1 KiB in 200 dirs + 20 × 10 MiB random), Distribution ${version}, loopback, median of ${rounds} rounds, wall-clock seconds including process start.\n`,
  );
  console.log('| | seconds | × cold build |');
  console.log('|---|---:|---:|');
  for (const [name, xs] of Object.entries(rows)) console.log(`| ${name} | ${median(xs).toFixed(2)} | ${(median(xs) / cold).toFixed(2)} |`);
  console.log(`\nSteps reported CACHED in the --cache-from rebuild: ${cachedSteps} of 5.`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
