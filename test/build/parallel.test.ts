import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, kilnOk, tempDir } from '../support/env.js';

// Independent stages whose RUNs mostly wait run all at once by default, as BuildKit runs every
// ready vertex: its workers limit steps only when buildkitd's max-parallelism is set
// (cmd/buildkitd/main_oci_worker.go: parallelismSem is nil unless MaxParallelism > 0). A core count
// must not queue them. More stages than cores, so a limit of one step per core would show. Each RUN records when it started and ended (system uptime, which every sandbox
// shares); the test compares those instants, never a duration.

const stages = Math.max(4, availableParallelism() + 1);
const names = Array.from({ length: stages }, (_, i) => `s${i}`);

async function intervals(t: Parameters<typeof tempDir>[0], jobs: string[], sleep = 2): Promise<{ start: number; end: number }[]> {
  const dir = await tempDir(t, 'kiln-parallel-');
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  const uptime = "cut -d' ' -f1 /proc/uptime";
  await writeFile(
    join(ctx, 'Dockerfile'),
    names.map((s) => `FROM busybox AS ${s}\nRUN ${uptime} > /start && sleep ${sleep} && ${uptime} > /end\n`).join('') +
      'FROM scratch\n' +
      names.map((s) => `COPY --from=${s} /start /end /${s}/\n`).join(''),
  );
  const out = join(dir, 'out');
  await kilnOk(root, ['build', '-q', ...jobs, '-o', `type=local,dest=${out}`, ctx]);
  return Promise.all(
    names.map(async (s) => ({
      start: Number(await readFile(join(out, s, 'start'), 'utf8')),
      end: Number(await readFile(join(out, s, 'end'), 'utf8')),
    })),
  );
}

test(`by default ${stages} independent stages that each RUN sleep 2 run at once, on any number of cores`, async (t) => {
  const runs = await intervals(t, []);
  // Every RUN started before any of them ended: all the intervals share an instant.
  const lastStart = Math.max(...runs.map((r) => r.start));
  const firstEnd = Math.min(...runs.map((r) => r.end));
  assert.ok(lastStart < firstEnd, `the RUNs did not all overlap: ${JSON.stringify(runs)}`);
});

test('--jobs 1 still runs one step at a time', async (t) => {
  // Overlap is what this test must not see, so a short RUN serves as well as a long one.
  const runs = (await intervals(t, ['--jobs', '1'], 0.3)).sort((a, b) => a.start - b.start);
  for (let i = 1; i < runs.length; i++) assert.ok(runs[i - 1]!.end <= runs[i]!.start, `RUNs overlapped: ${JSON.stringify(runs)}`);
});
