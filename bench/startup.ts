// Start-up benchmark: what a kiln command costs before and around its real work, against Node.js
// running an empty script. Commands whose work is nearly nil: `kiln --version`, `kiln images -q`,
// and a fully cached build of S1 (FROM busybox + 30 RUN, built once beforehand). Each is run with
// the code cache the launcher keeps (warm: what every run after a command's first one gets) and
// with an empty cache directory (cold: a command's first run, which also writes the cache at exit).
// The variants run interleaved, so that a host that slows down for a while slows all of them; the
// medians of wall and CPU time (user + system, GNU time) are printed as a markdown table.
//   npx tsc -p . && KILN_BUSYBOX_OCI=… node dist/bench/startup.js [--runs 25]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 25;

interface Variant {
  name: string;
  args: string[];
  /** A fresh, empty cache directory for every run. */
  coldCache?: boolean;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function main(): void {
  const busybox = process.env.KILN_BUSYBOX_OCI ?? execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'busybox'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-startup-'));
  try {
    const store = join(work, 'store');
    const ctx = join(work, 's1');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), ['FROM busybox', ...Array.from({ length: 30 }, (_, i) => `RUN echo ${i} > /f${i}`), ''].join('\n'));
    const warmCache = join(work, 'cache');
    const empty = join(work, 'empty.js');
    writeFileSync(empty, '');
    const env = { ...process.env, KILN_ROOT: store, XDG_CACHE_HOME: warmCache };
    execFileSync(process.execPath, [kilnMain, 'load', '-q', '-i', busybox], { env, stdio: 'ignore' });
    execFileSync(process.execPath, [kilnMain, 'build', '-q', '-t', 's1', ctx], { env, stdio: 'ignore' });
    const kiln = ['build', '-q', '-t', 's1', ctx];
    const variants: Variant[] = [
      { name: 'Node.js, an empty file', args: [empty] },
      { name: '`kiln --version`', args: [kilnMain, '--version'] },
      { name: '`kiln images -q`', args: [kilnMain, 'images', '-q'] },
      { name: '`kiln images -q`, cold code cache', args: [kilnMain, 'images', '-q'], coldCache: true },
      { name: 'fully cached S1 build', args: [kilnMain, ...kiln] },
      { name: 'fully cached S1 build, cold code cache', args: [kilnMain, ...kiln], coldCache: true },
    ];
    // Warm every command's cache once.
    for (const v of variants) spawnSync(process.execPath, v.args, { env, stdio: 'ignore' });
    const wall = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    const cpu = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    const timeFile = join(work, 'time');
    for (let i = 0; i < runs; i++) {
      for (const v of variants) {
        const cache = v.coldCache ? mkdtempSync(join(work, 'cold-')) : warmCache;
        const start = process.hrtime.bigint();
        const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, ...v.args], { env: { ...env, XDG_CACHE_HOME: cache }, stdio: ['ignore', 'ignore', 'pipe'] });
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        if (r.status !== 0) throw new Error(`${v.name} exited ${r.status}: ${r.stderr.toString()}`);
        const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        wall.get(v)!.push(seconds * 1000);
        cpu.get(v)!.push((user! + sys!) * 1000);
        if (v.coldCache) rmSync(cache, { recursive: true, force: true });
      }
    }
    const node = median(wall.get(variants[0]!)!);
    console.log(
      `Start-up benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node.js ${process.version}; ${runs} interleaved runs, medians; GNU time's CPU has a 10 ms resolution.\n`,
    );
    console.log('| command | wall (ms) | above Node.js (ms) | CPU (ms) |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const v of variants) {
      const w = median(wall.get(v)!);
      console.log(`| ${v.name} | ${w.toFixed(0)} | ${v === variants[0] ? '' : (w - node).toFixed(0)} | ${median(cpu.get(v)!).toFixed(0)} |`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
