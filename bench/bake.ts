// kiln bake benchmark: the seed's seven-image hierarchy (test/bake/seed.ts) baked from scratch with
// one and with two targets at once, a fully cached bake, a --changed rebuild of the base (six images),
// and the same hierarchy built by hand with one `kiln build` per image in order, as a shell script
// would. Each scenario runs in a fresh store (busybox loaded); medians of the rounds are printed as a
// markdown table with the date and the machine.
//   npx tsc -p . && node dist/bench/bake.js [--rounds 3]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tags, writeSeedHierarchy } from '../test/bake/seed.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 3;
const busybox = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'busybox'], { encoding: 'utf8' }).trim();

const kiln = (root: string, cwd: string, args: string[]) => execFileSync(process.execPath, [kilnMain, ...args], { cwd, env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'ignore', 'pipe'] });

/** Seconds one scenario takes: `prepare` runs untimed in the fresh store first. */
async function timed(prepare: (root: string, dir: string) => void, run: (root: string, dir: string) => void): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-bake-'));
  try {
    const root = join(work, 'store');
    const dir = join(work, 'seed');
    await writeSeedHierarchy(dir);
    kiln(root, dir, ['load', '-i', busybox]);
    prepare(root, dir);
    const t0 = process.hrtime.bigint();
    run(root, dir);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const none = () => {};
const bake = (extra: string[]) => (root: string, dir: string) => kiln(root, dir, ['bake', '--progress', 'quiet', ...extra]);
// By hand: what the hierarchy costs without kiln bake, one build per image in an order worked out by a person.
const byHand = (root: string, dir: string) => {
  const steps: [string, string, string[]][] = [
    ['alpine', tags.alpine, []],
    ['pyenv', tags.pyenv, []],
    ['python', tags['python-3-7'], ['--build-arg', 'PYTHON_VERSION=3.7.4']],
    ['python', tags['python-3-8'], ['--build-arg', 'PYTHON_VERSION=3.8.0']],
    ['flask', tags.flask, []],
    ['app', tags.app, []],
    ['tools', tags.tools, []],
  ];
  for (const [ctx, tag, args] of steps) kiln(root, dir, ['build', '-q', '-t', tag, ...args, ctx]);
};

const scenarios: [string, (root: string, dir: string) => void, (root: string, dir: string) => void][] = [
  ['7 images, one `kiln build` each in order', none, byHand],
  ['kiln bake, --parallel 1', none, bake(['--parallel', '1'])],
  ['kiln bake, --parallel 2', none, bake(['--parallel', '2'])],
  ['kiln bake, all cached', bake([]), bake([])],
  ['kiln bake --changed alpine (6 images)', (root, dir) => {
    bake([])(root, dir);
    appendFileSync(join(dir, 'alpine', 'Dockerfile'), 'LABEL bench=1\n');
  }, bake(['--changed', 'alpine'])],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
for (const [name, prepare, run] of scenarios) {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push(await timed(prepare, run));
  rows.push(`| ${name} | ${median(times).toFixed(2)} s |`);
}
console.log(`kiln bake, seed hierarchy, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, median of ${rounds}`);
console.log('| scenario | time |\n|---|---|');
for (const r of rows) console.log(r);
