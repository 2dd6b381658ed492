// Multi-platform benchmark (issue 22), side by side in one run on this machine's QEMU user-mode
// emulation (binfmt_misc, Debian's qemu-user-static):
//   E  an emulated build: 30 small RUN steps for linux/arm64 (the foreign platform), kiln against
//      `buildah bud --platform linux/arm64` with the same interpreter; target ≤ 0.5× buildah's time.
//   X  the cross-compilation pattern: a `FROM --platform=$BUILDPLATFORM` stage does the work natively
//      and each target stage only copies the result; both platforms in one kiln build against the
//      host platform alone; target ≤ 1.2×. Two variants:
//      X1 the stage reads no TARGET* argument (assets, generated code, a fat binary): it runs once
//         and both platforms share it, as the issue describes the pattern;
//      X2 the stage reads TARGETARCH (GOARCH=$TARGETARCH go build): it runs once per platform, so
//         both platforms are twice the work. Its floor is the machine's: the same command run twice
//         at once against once, with no build tool at all, is printed beside it.
//   A  (opt-in: --only A) apt-get on Debian under emulation: `apt-get update && apt-get install hello`
//      for the foreign platform from the debian-multi fixture (debootstrapped for both, minutes once),
//      kiln against buildah, as E.
// Every build is cold (fresh store, loaded from the busybox-multi fixture); the order of the two
// sides alternates between repetitions; medians of --reps, wall seconds, as a markdown table.
//
//   npx tsc -p . && node dist/bench/platform.js [--reps 3] [--only E,X,A]   (KILN_BENCH_DIR: where stores go)
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const flag = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const reps = Math.max(1, Number(flag('--reps')) || 3);
const only = new Set((flag('--only') ?? 'E,X').split(',').map((s) => s.trim().toUpperCase()));
const hostArch = process.arch === 'arm64' ? 'arm64' : 'amd64';
const foreign = hostArch === 'amd64' ? 'arm64' : 'amd64';
const base = mkdtempSync(join(process.env.KILN_BENCH_DIR ?? tmpdir(), 'kiln-bench-platform-'));

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return new Promise((res, rej) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', rej);
    child.on('exit', (code) => {
      if (code !== 0) return rej(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}`));
      res(Number(process.hrtime.bigint() - start) / 1e9);
    });
  });
}

const multi = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'busybox-multi'], { encoding: 'utf8' }).trim();

const debianMulti = only.has('A') ? execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian-multi'], { encoding: 'utf8' }).trim() : '';

/** A fresh kiln store holding the busybox index (both platforms), or another fixture's. */
function kilnStore(archive = multi): string {
  const root = mkdtempSync(join(base, 'kiln-'));
  execFileSync('node', [kilnMain, '--root', root, 'load', '-i', archive], { stdio: 'ignore' });
  return root;
}

/** A fresh buildah store holding busybox (or `name` from `archive`) for `arch` only, from the same index. */
function buildahStore(arch: string, archive = multi, name = 'docker.io/library/busybox:latest'): string[] {
  const dir = mkdtempSync(join(base, 'buildah-'));
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'overlay'];
  execFileSync('skopeo', ['--override-arch', arch, 'copy', '-q', `oci-archive:${archive}`, `containers-storage:[overlay@${dir}/root+${dir}/run]${name}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  return storage;
}

function context(name: string, dockerfile: string): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

// E: each step starts the emulated shell once, as everyday Dockerfiles do.
const emulated = context(
  'emulated',
  'FROM busybox\n' + Array.from({ length: 30 }, (_, i) => `RUN echo step ${i} > /step-${i} && uname -m >> /step-${i}\n`).join(''),
);
// X: the compile stage runs natively; the target stages copy and run nothing foreign.
const work = 'for i in $(seq 1 400); do head -c 1048576 /dev/zero | sha256sum; done > /sums';
const crossShared = context(
  'cross-shared',
  ['FROM --platform=$BUILDPLATFORM busybox AS build', `RUN ${work}`, 'FROM busybox', 'ARG TARGETARCH', 'LABEL arch=$TARGETARCH', 'COPY --from=build /sums /out/', ''].join('\n'),
);
const crossPerTarget = context(
  'cross-per-target',
  ['FROM --platform=$BUILDPLATFORM busybox AS build', 'ARG TARGETARCH', `RUN ${work} && echo "$TARGETARCH" > /arch`, 'FROM busybox', 'COPY --from=build /sums /arch /out/', ''].join('\n'),
);

/** Seconds for the compile stage's command run `n` times at once on the host, without any build tool. */
async function bare(n: number): Promise<number> {
  const dir = mkdtempSync(join(base, 'bare-'));
  const script = Array.from({ length: n }, (_, i) => `(${work.replace('/sums', `${dir}/sums${i}`)}) &`).join(' ') + ' wait';
  const t = await timed('busybox', ['sh', '-c', script]);
  rmSync(dir, { recursive: true, force: true });
  return t;
}

// A: what an everyday Debian Dockerfile's first line costs under emulation.
const apt = context('apt', 'FROM debian:bookworm\nRUN apt-get update && apt-get install -y --no-install-recommends hello && rm -rf /var/lib/apt/lists/*\nRUN hello\n');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];

async function main(): Promise<void> {
  const interp = `/proc/sys/fs/binfmt_misc/qemu-${foreign === 'arm64' ? 'aarch64' : 'x86_64'}`;
  if (!existsSync(interp)) throw new Error(`${interp} is not registered: install qemu-user-static and binfmt-support (scripts/setup.sh)`);
  const load0 = loadavg()[0]!;
  for (const [scenario, dir, archive, name, label] of [
    ['E', emulated, multi, 'docker.io/library/busybox:latest', `E: 30 emulated RUN steps, linux/${foreign}`],
    ['A', apt, debianMulti, 'docker.io/library/debian:bookworm', `A: apt-get update and install on Debian, emulated, linux/${foreign}`],
  ] as const) {
    if (!only.has(scenario)) continue;
    const k: number[] = [];
    const b: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? ['kiln', 'buildah'] : ['buildah', 'kiln'];
      for (const tool of order) {
        if (tool === 'kiln') {
          const root = kilnStore(archive);
          k.push(await timed('node', [kilnMain, '--root', root, 'build', '-q', '--platform', `linux/${foreign}`, '-t', 'bench:e', dir]));
          rmSync(root, { recursive: true, force: true });
        } else {
          const storage = buildahStore(foreign, archive, name);
          b.push(await timed('buildah', [...storage, 'bud', '--runtime', 'runc', '--layers', '-q', '--platform', `linux/${foreign}`, '-t', 'bench:e', dir]));
          execFileSync('buildah', [...storage, 'rmi', '--all', '--force'], { stdio: 'ignore' });
          rmSync(dirname(storage[1]!), { recursive: true, force: true });
        }
      }
    }
    const r = median(k) / median(b);
    rows.push(`| ${label} | kiln ${median(k).toFixed(2)} s | buildah ${median(b).toFixed(2)} s | ${r.toFixed(2)}× | ${scenario === 'E' ? '≤ 0.5×' : '—'} | ${scenario === 'E' ? (r <= 0.5 ? 'yes' : 'no') : '—'} |`);
  }
  if (only.has('X')) {
    for (const [label, dir] of [['X1: a shared native stage (no TARGET* argument)', crossShared], ['X2: a native stage per target (ARG TARGETARCH)', crossPerTarget]] as const) {
      const both: number[] = [];
      const host: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 === 0 ? ['both', 'host'] : ['host', 'both'];
        for (const which of order) {
          const root = kilnStore();
          const platforms = which === 'both' ? `linux/${hostArch},linux/${foreign}` : `linux/${hostArch}`;
          (which === 'both' ? both : host).push(await timed('node', [kilnMain, '--root', root, 'build', '-q', '--platform', platforms, '-t', 'bench:x', dir]));
          rmSync(root, { recursive: true, force: true });
        }
      }
      const r = median(both) / median(host);
      rows.push(`| ${label}, both platforms against the host's alone | both ${median(both).toFixed(2)} s | host ${median(host).toFixed(2)} s | ${r.toFixed(2)}× | ≤ 1.2× | ${r <= 1.2 ? 'yes' : 'no'} |`);
    }
    const twice: number[] = [];
    const once: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      twice.push(await bare(2));
      once.push(await bare(1));
    }
    const r = median(twice) / median(once);
    rows.push(`| X2's floor: its command twice at once against once, on the host with no build tool | twice ${median(twice).toFixed(2)} s | once ${median(once).toFixed(2)} s | ${r.toFixed(2)}× | — | — |`);
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const buildahVersion = execFileSync('buildah', ['--version'], { encoding: 'utf8' }).trim().split(' ')[2];
  const qemu = readFileSync(interp, 'utf8').split('\n').find((l) => l.startsWith('interpreter')) ?? '';
  console.log(`${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} × ${cpu}, load ${load0.toFixed(1)} at start; buildah ${buildahVersion}; ${qemu}; median of ${reps}, cold stores.\n`);
  console.log('| scenario | kiln | other | ratio | target | met |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main()
  .catch((e: unknown) => {
    console.error(String((e as Error).message ?? e));
    process.exitCode = 1;
  })
  .finally(() => rmSync(base, { recursive: true, force: true }));
