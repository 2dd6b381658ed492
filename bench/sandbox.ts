import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createBwrapExecutor } from '../src/sandbox/bwrap.js';
import type { Executor } from '../src/sandbox/executor.js';
import { createRuncExecutor } from '../src/sandbox/runc.js';
import { makeBusyboxRootfs, makeTempDir, removeDir } from '../test/sandbox/fixture.js';

// Per-run overhead of each executor: `true` in a busybox rootfs, run sequentially.
// Usage: node dist/bench/sandbox.js [runs]

const runs = Number(process.argv[2] ?? 20);
const dir = await makeTempDir('overhead');
try {
  const rootfs = await makeBusyboxRootfs(dir);
  const stateDir = path.join(dir, 'state');
  const executors: Executor[] = [createRuncExecutor({ stateDir }), createBwrapExecutor({ stateDir })];
  for (const executor of executors) {
    const run = () =>
      executor.run({
        id: `overhead-${randomUUID()}`,
        rootfs,
        network: 'default',
        process: { args: ['/bin/true'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
      });
    await run(); // warm-up (bwrap builds its init program once)
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      const result = await run();
      times.push(performance.now() - start);
      if (result.exitCode !== 0) throw new Error(`${executor.name}: exit ${result.exitCode}`);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
    console.log(`${executor.name.padEnd(6)} runs=${runs} mean=${mean.toFixed(1)}ms median=${pct(0.5).toFixed(1)}ms p90=${pct(0.9).toFixed(1)}ms min=${times[0]!.toFixed(1)}ms`);
  }
} finally {
  await removeDir(dir);
}
