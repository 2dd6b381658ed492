// Build benchmark: `kiln build` side by side with `buildah bud --runtime runc --layers` (Debian's
// buildah) in one run, on the scenarios of issue 5. Makes its own inputs (the busybox fixture via
// scripts/fixtures.sh, loaded into both stores from the same archive; generated contexts), alternates
// which tool goes first, uses fresh stores for every cold build, and prints the medians of several
// repetitions as a markdown table with the ratio kiln/buildah, the date and the machine.
//
// buildah runs with its overlay storage driver: it is buildah's default and the same mechanism kiln's
// snapshotter uses (layers as overlayfs lower dirs, a RUN's changes in an upper dir), so neither side
// pays for a copy-per-layer driver (vfs copies the whole root filesystem for every step, which would
// flatter kiln on the 200 MiB context of S2).
//
// kiln's peak memory is GNU time's maximum RSS (that of its node process, the largest of the tree)
// and, during S2 cold, the largest sum of VmRSS over the process tree seen by polling /proc.
//
//   npx tsc -p . && node dist/bench/build.js [--reps 3] [--runtime runc|bwrap] [--only S1,S2,S3,S4] [--keep]
// (--runtime: kiln's executor; buildah always uses runc. KILN_BENCH_DIR: where stores and contexts go.)
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const flag = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const reps = Math.max(1, Number(flag('--reps')) || 3);
const runtime = flag('--runtime') ?? 'runc';
const only = new Set((flag('--only') ?? 'S1,S2,S3,S4').split(',').map((s) => s.trim().toUpperCase()));
const keep = process.argv.includes('--keep');
const driver = 'overlay';

type Tool = 'kiln' | 'buildah';

/** One build: wall time, CPU time, and for kiln the peak memory seen while it ran. */
interface Timing {
  seconds: number;
  /** User + system CPU seconds of the command and every process it waited for (GNU time). */
  cpu: number;
  /** Largest peak RSS of one process of the tree, from GNU time (for kiln: its node process), bytes. */
  hwm?: number;
  /** Largest sum of VmRSS over the kiln process tree seen by polling (bytes). */
  treeRss?: number;
}

function procStatus(pid: number, field: 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function descendants(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const t of readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').split(' ')) if (t.trim()) out.push(Number(t));
    } catch {
      /* gone */
    }
  }
  return out;
}

let timeOutputs = 0;

/**
 * Run a command to completion under GNU time (CPU seconds and peak RSS, which count the processes
 * it waited for: runc and what runs in the sandboxes), timing its wall clock; `watch` also polls the
 * process tree's summed RSS meanwhile. On a machine shared with other work, CPU seconds are the
 * steadier figure.
 */
function timedRun(cmd: string, args: string[], env: NodeJS.ProcessEnv, watch = false): Promise<Timing> {
  return new Promise((resolvePromise, reject) => {
    const start = process.hrtime.bigint();
    const timeFile = join(tmpdir(), `kiln-bench-time-${process.pid}-${++timeOutputs}`);
    const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stdout.resume();
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const t: Timing = { seconds: 0, cpu: 0 };
    const poll = () => {
      const sum = descendants(child.pid!).reduce((a, p) => a + (procStatus(p, 'VmRSS') ?? 0), 0);
      t.treeRss = Math.max(t.treeRss ?? 0, sum);
    };
    const timer = watch ? setInterval(poll, 25) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      t.seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (timer) clearInterval(timer);
      try {
        const [user, sys, maxKb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        t.cpu = user! + sys!;
        t.hwm = maxKb! * 1024;
        rmSync(timeFile, { force: true });
      } catch {
        /* reported below through the exit code */
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${Buffer.concat(err).toString().slice(-2000)}`));
      else resolvePromise(t);
    });
  });
}

/** A tool's store: fresh for each cold build, busybox:latest loaded from the fixture archive. */
class Stores {
  private n = 0;
  constructor(
    private readonly work: string,
    private readonly busybox: string,
  ) {}

  async fresh(tool: Tool): Promise<string> {
    const dir = join(this.work, `${tool}-store-${++this.n}`);
    mkdirSync(dir);
    if (tool === 'kiln') execFileSync(process.execPath, [kilnMain, 'load', '-q', '-i', this.busybox], { env: { ...process.env, KILN_ROOT: dir }, stdio: ['ignore', 'ignore', 'inherit'] });
    else execFileSync('skopeo', ['copy', '-q', `oci-archive:${this.busybox}`, `containers-storage:[${driver}@${dir}/root+${dir}/run]docker.io/library/busybox:latest`], { stdio: ['ignore', 'ignore', 'inherit'] });
    return dir;
  }

  remove(tool: Tool, dir: string): void {
    if (tool === 'buildah') {
      try {
        execFileSync('buildah', [...buildahStorage(dir), 'rm', '--all'], { stdio: 'ignore' });
        execFileSync('buildah', [...buildahStorage(dir), 'rmi', '--all', '--force'], { stdio: 'ignore' });
      } catch {
        /* removed below all the same */
      }
    }
    // Anything still mounted below the store (an overlay driver's home) goes before the files do.
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir + '/'));
    for (const m of mounts.sort().reverse()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

function buildahStorage(dir: string): string[] {
  return ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', driver];
}

function build(tool: Tool, store: string, ctx: string, extra: { buildahArgs?: string[]; kilnArgs?: string[]; watch?: boolean } = {}): Promise<Timing> {
  if (tool === 'kiln') {
    return timedRun(process.execPath, [kilnMain, 'build', '-q', '--runtime', runtime, ...(extra.kilnArgs ?? []), '-t', 'bench:latest', '-f', join(ctx, 'Dockerfile'), ctx], { KILN_ROOT: store }, extra.watch);
  }
  return timedRun('buildah', [...buildahStorage(store), 'bud', '--runtime', 'runc', '--layers', '-q', ...(extra.buildahArgs ?? []), '-t', 'bench:latest', '-f', join(ctx, 'Dockerfile'), ctx], {});
}

/** S1: 30 small RUNs on busybox. */
function makeS1(work: string): string {
  const ctx = join(work, 's1');
  mkdirSync(ctx);
  const runs = Array.from({ length: 30 }, (_, i) => `RUN echo ${i + 1} > /f${i + 1}`);
  writeFileSync(join(ctx, 'Dockerfile'), ['FROM busybox', ...runs, ''].join('\n'));
  return ctx;
}

/** S2: 20,000 files of 1 KiB in 200 directories plus 20 files of 10 MiB random data. */
function makeS2(work: string): { ctx: string; small: string } {
  const ctx = join(work, 's2');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), ['FROM busybox', 'WORKDIR /app', 'COPY package.json .', 'RUN sleep 3 && echo deps > deps.txt', 'COPY . .', 'RUN ls -R | wc -l > count.txt', ''].join('\n'));
  writeFileSync(join(ctx, 'package.json'), JSON.stringify({ name: 'bench', version: '1.0.0', dependencies: {} }, null, 2) + '\n');
  for (let d = 0; d < 200; d++) {
    const dir = join(ctx, 'src', `mod${String(d).padStart(3, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(dir, `file${String(f).padStart(3, '0')}.txt`), randomBytes(512).toString('hex'));
  }
  mkdirSync(join(ctx, 'assets'));
  for (let i = 0; i < 20; i++) writeFileSync(join(ctx, 'assets', `blob${String(i).padStart(2, '0')}.bin`), randomBytes(10 << 20));
  return { ctx, small: join(ctx, 'src', 'mod100', 'file050.txt') };
}

/**
 * S3 and S4: independent stages that sleep 2 s, and a final stage copying their outputs. S3 has three;
 * S4 has four, more than the two cores of the reference machine, so a step limit of one per core shows.
 */
function makeParallelStages(work: string, scenario: string, names: string[]): string {
  const ctx = join(work, scenario);
  mkdirSync(ctx);
  const stages = names.flatMap((n) => [`FROM busybox AS ${n}`, `RUN sleep 2 && echo ${n} > /out`, '']);
  writeFileSync(join(ctx, 'Dockerfile'), [...stages, 'FROM busybox', ...names.map((n) => `COPY --from=${n} /out /${n}`), ''].join('\n'));
  return ctx;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
  scenario: string;
  target: number;
  kiln: Timing[];
  buildah: Timing[];
}

async function main(): Promise<void> {
  const busybox = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'busybox'], { encoding: 'utf8' }).trim();
  const base = process.env.KILN_BENCH_DIR ?? '/var/tmp';
  const work = mkdtempSync(join(existsSync(base) ? base : tmpdir(), 'kiln-bench-build-'));
  const stores = new Stores(work, busybox);
  const rows = new Map<string, Row>();
  const record = (scenario: string, target: number, tool: Tool, t: Timing) => {
    let r = rows.get(scenario);
    if (!r) rows.set(scenario, (r = { scenario, target, kiln: [], buildah: [] }));
    r[tool].push(t);
    process.stderr.write(`  ${scenario}: ${tool} ${t.seconds.toFixed(2)}s, CPU ${t.cpu.toFixed(2)}s${tool === 'kiln' && t.hwm ? ` (peak RSS ${(t.hwm / 2 ** 20).toFixed(0)} MiB${t.treeRss ? `, tree ${(t.treeRss / 2 ** 20).toFixed(0)} MiB` : ''})` : ''}\n`);
  };
  const memory: { hwm: number; tree: number }[] = [];
  const load0 = loadavg()[0]!;
  try {
    const s1 = only.has('S1') ? makeS1(work) : undefined;
    const s2 = only.has('S2') ? makeS2(work) : undefined;
    const s3 = only.has('S3') ? makeParallelStages(work, 's3', ['a', 'b', 'c']) : undefined;
    const s4 = only.has('S4') ? makeParallelStages(work, 's4', ['a', 'b', 'c', 'd']) : undefined;
    // Stores are removed only at the end: ext4 is slow to create files for a while after many were
    // deleted (it scans past recently deleted inodes, fs/ext4/ialloc.c recently_deleted), which would
    // charge one run's clean-up to the next run's first tool.
    const spent: [Tool, string][] = [];
    for (let rep = 0; rep < reps; rep++) {
      // Alternate which tool goes first, so neither always meets the other's page cache or load.
      const order: Tool[] = rep % 2 === 0 ? ['kiln', 'buildah'] : ['buildah', 'kiln'];
      process.stderr.write(`repetition ${rep + 1}/${reps} (${order.join(' first, then ')})\n`);
      if (s1) {
        const st = new Map<Tool, string>();
        for (const tool of order) st.set(tool, await stores.fresh(tool));
        for (const tool of order) record('S1 cold: FROM busybox + 30 RUN', 0.15, tool, await build(tool, st.get(tool)!, s1));
        for (const tool of order) record('S1 fully cached rebuild', 0.5, tool, await build(tool, st.get(tool)!, s1));
        for (const tool of order) spent.push([tool, st.get(tool)!]);
      }
      if (s2) {
        const st = new Map<Tool, string>();
        for (const tool of order) st.set(tool, await stores.fresh(tool));
        for (const tool of order) {
          const t = await build(tool, st.get(tool)!, s2.ctx, { watch: tool === 'kiln' });
          if (tool === 'kiln') memory.push({ hwm: t.hwm ?? 0, tree: t.treeRss ?? 0 });
          record('S2 cold: 20,000 files + 200 MiB context', 0.35, tool, t);
        }
        for (const tool of order) record('S2 unchanged rebuild', 0.15, tool, await build(tool, st.get(tool)!, s2.ctx));
        appendFileSync(s2.small, `changed in repetition ${rep + 1}\n`);
        for (const tool of order) record('S2 rebuild, one small file changed', 0.3, tool, await build(tool, st.get(tool)!, s2.ctx));
        for (const tool of order) spent.push([tool, st.get(tool)!]);
      }
      if (s3) {
        const st = new Map<Tool, string>();
        for (const tool of order) st.set(tool, await stores.fresh(tool));
        for (const tool of order) record('S3 cold: 3 parallel stages (--jobs 4 for both)', 0.6, tool, await build(tool, st.get(tool)!, s3, { buildahArgs: ['--jobs=4'], kilnArgs: ['--jobs', '4'] }));
        for (const tool of order) spent.push([tool, st.get(tool)!]);
      }
      if (s4) {
        // kiln with its default --jobs (no limit); buildah's default is one stage at a time.
        const st = new Map<Tool, string>();
        for (const tool of order) st.set(tool, await stores.fresh(tool));
        for (const tool of order) record('S4 cold: 4 parallel stages (kiln default --jobs, buildah --jobs=4)', 1.0, tool, await build(tool, st.get(tool)!, s4, { buildahArgs: ['--jobs=4'] }));
        for (const tool of order) spent.push([tool, st.get(tool)!]);
      }
    }
    for (const [tool, dir] of spent) stores.remove(tool, dir);
  } finally {
    if (!keep) rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }

  const model = (() => {
    try {
      return /^Model name:\s+(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim();
    } catch {
      return undefined;
    }
  })() ?? cpus()[0]?.model.trim();
  const buildahVersion = execFileSync('buildah', ['--version'], { encoding: 'utf8' }).trim().split(' ')[2];
  const f = (n: number) => n.toFixed(2);
  const lines = [
    `Build benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${model}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; ` +
      `kiln --runtime ${runtime} (overlay snapshotter); buildah ${buildahVersion} bud --runtime runc --layers, ${driver} storage driver; median of ${reps}, wall seconds; load average ${load0.toFixed(1)} at start.`,
    '',
    '| scenario | kiln (s) | buildah (s) | kiln/buildah | target | met | kiln CPU (s) | buildah CPU (s) | CPU ratio |',
    '| --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |',
    ...[...rows.values()].map((r) => {
      const k = median(r.kiln.map((t) => t.seconds));
      const b = median(r.buildah.map((t) => t.seconds));
      const kc = median(r.kiln.map((t) => t.cpu));
      const bc = median(r.buildah.map((t) => t.cpu));
      return `| ${r.scenario} | ${f(k)} | ${f(b)} | ${f(k / b)} | ≤ ${r.target} | ${k / b <= r.target ? 'yes' : 'no'} | ${f(kc)} | ${f(bc)} | ${f(kc / bc)} |`;
    }),
  ];
  if (memory.length) {
    const hwm = median(memory.map((m) => m.hwm)) / 2 ** 20;
    const tree = median(memory.map((m) => m.tree)) / 2 ** 20;
    lines.push(`| kiln peak memory, S2 cold (node peak RSS; process tree RSS summed) | ${hwm.toFixed(0)} MiB; ${tree.toFixed(0)} MiB | | | < 300 MB | ${Math.max(hwm, tree) * 2 ** 20 < 300e6 ? 'yes' : 'no'} | | | |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
