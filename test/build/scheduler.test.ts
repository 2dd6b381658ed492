import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CopyStep, RunStep, SourceRef } from '../../src/dockerfile/index.js';
import { BuildCache, cacheKey } from '../../src/build/cache.js';
import { BuildContext } from '../../src/build/context.js';
import { BuildCancelled, BuildStepError } from '../../src/build/errors.js';
import { createExec } from '../../src/build/ops/exec.js';
import { runWorkdir, workdirKey } from '../../src/build/ops/file.js';
import { createHttpSources } from '../../src/build/ops/http.js';
import { linkBase } from '../../src/build/ops/merge.js';
import type { Merge, Node, Op, OpContext, State } from '../../src/build/ops/op.js';
import type { ProgressSink } from '../../src/build/progress.js';
import { Limiter, Scheduler } from '../../src/build/scheduler.js';
import type { BuildRequest } from '../../src/build/solver.js';
import type { Executor, RunRequest } from '../../src/sandbox/executor.js';
import { createSnapshotter } from '../../src/snapshot/index.js';
import { hostPlatform, Store } from '../../src/store/store.js';
import { tempDir } from '../support/env.js';

// The scheduler on a small graph of real ops (WORKDIR's file op, RUN's exec op) in a temporary
// store, with the store's own snapshotter: the executor is a plain function that plays the commands
// `write PATH TEXT MS` (write a file, taking MS milliseconds), `copy FROM TO` and `fail`.

interface Played {
  cmd: string;
  start: number;
  end: number;
}

function playingExecutor(played: Played[]): Executor {
  return {
    name: 'played',
    async run(r: RunRequest) {
      const [cmd = '', a = '', b = '', ms = '0'] = r.process.args;
      const start = performance.now();
      if (cmd === 'fail') {
        r.stderr?.write('it failed\n');
        played.push({ cmd: r.process.args.join(' '), start, end: performance.now() });
        return { exitCode: 3, createdMountpoints: [] };
      }
      await new Promise((res) => setTimeout(res, Number(ms)));
      if (cmd === 'write') await writeFile(join(r.rootfs, a), b);
      if (cmd === 'copy') await writeFile(join(r.rootfs, b), await readFile(join(r.mounts!.find((m) => m.destination === '/in')!.source, a)));
      played.push({ cmd: r.process.args.join(' '), start, end: performance.now() });
      return { exitCode: 0, createdMountpoints: [] };
    },
  };
}

function recordingProgress() {
  const events: string[] = [];
  const names = new Map<number, string>();
  const sink: ProgressSink = {
    start: (id, name) => (names.set(id, name), events.push(`start ${name}`)),
    log: () => {},
    cached: (id) => events.push(`cached ${names.get(id)}`),
    done: (id, error) => events.push(error ? `error ${names.get(id)}: ${error}` : `done ${names.get(id)}`),
    warn: () => {},
    close: () => {},
  };
  return { events, sink };
}

function runStep(line: number, args: string[], from?: SourceRef): RunStep {
  return {
    kind: 'run', line, createdBy: '', historyIndex: 0, onbuild: false, instruction: `RUN ${args.join(' ')}`,
    args, env: [], proxyEnv: [], user: '', workdir: '/', network: 'default', security: 'sandbox',
    mounts: from ? [{ type: 'bind', target: '/in', source: '/', from, readOnly: true, required: false }] : [],
    inlineFiles: [], devices: [],
  };
}

/** A build's worth of scheduler, ops and services on `root`; `jobs` bounds the RUNs at once. */
async function session(root: string, jobs: number, signal = new AbortController().signal) {
  const store = await Store.open(join(root, 'store'));
  await mkdir(join(root, 'ctx'), { recursive: true });
  const played: Played[] = [];
  const progress = recordingProgress();
  const cache = new BuildCache(store);
  const limiter = new Limiter(jobs);
  const scheduler = new Scheduler({ cache, limiter, progress: progress.sink, signal });
  const req = {
    store, context: await BuildContext.open(join(root, 'ctx'), []), dockerfile: { text: '', name: 'Dockerfile' }, buildArgs: {}, noCache: false, labels: {},
    network: 'default', jobs, executor: playingExecutor(played), progress: progress.sink, signal, secrets: new Map(), pullPolicy: 'never',
  } satisfies BuildRequest;
  // COPY --from / RUN --mount from= name other "stages": here, nodes of the graph by number.
  const stages: Node[] = [];
  const ctx: OpContext = {
    req, file: 'Dockerfile', now: new Date(), host: hostPlatform(), targetPlatform: hostPlatform(), cache,
    snapshotter: await createSnapshotter(store), limiter, layerWrites: new Limiter(2), preparations: [],
    checkAbort: () => scheduler.checkAbort(),
    sourceLayers: async (from) => (await scheduler.solve(stages['stage' in from ? from.stage : -1]!)).layers,
    sourceKey: async (from) => (await scheduler.solve(stages['stage' in from ? from.stage : -1]!)).key,
    describeSource: (from) => JSON.stringify(from),
    namedDir: () => undefined,
    namedTree: () => Promise.reject(new Error('no named contexts here')),
  };
  const exec = createExec(ctx);
  const platform = hostPlatform();
  const run = (name: string, parent: Node, args: string[], input?: number): Op => ({
    kind: 'op', name, parent, platform, inputs: input !== undefined ? [stages[input]!] : [],
    key: (p) => exec.key(runStep(1, args, input !== undefined ? { stage: input } : undefined), p.key, platform),
    run: (p, _i, vertex) => exec.run(runStep(1, args, input !== undefined ? { stage: input } : undefined), p.layers, vertex),
  });
  const workdir = (name: string, parent: Node, path: string): Op => {
    const step = { kind: 'workdir', line: 1, createdBy: '', historyIndex: 0, onbuild: false, instruction: `WORKDIR ${path}`, path, user: '' } as const;
    return { kind: 'op', name, parent, platform, inputs: [], key: async (p) => workdirKey(step, p.key), run: (p) => runWorkdir(ctx, step, p.layers) };
  };
  return { store, scheduler, played, events: progress.events, ctx, stages, run, workdir };
}

const scratch: Node = { kind: 'source', state: { key: 'scratch', layers: [], keys: [] } satisfies State };

/**
 * scratch → WORKDIR /w → (RUN write /w/b, RUN write /w/c: siblings) → RUN copy, on b's state, of
 * c's /w/c (a bind mount from c: an input).
 */
function diamond(s: Awaited<ReturnType<typeof session>>) {
  const w = s.workdir('w', scratch, '/w');
  const b = s.run('b', w, ['write', 'w/b', 'B', '300']);
  const c = s.run('c', w, ['write', 'w/c', 'C', '300']);
  s.stages[0] = c;
  const d = s.run('d', b, ['copy', 'w/c', 'w/c-copy'], 0);
  return { w, b, c, d };
}

async function contents(s: Awaited<ReturnType<typeof session>>, layers: State['layers']): Promise<Record<string, string>> {
  const v = await s.ctx.snapshotter.view(layers, 'check');
  try {
    const out: Record<string, string> = {};
    for (const f of ['b', 'c', 'c-copy']) out[f] = await readFile(join(v.path, 'w', f), 'utf8').catch(() => '-');
    return out;
  } finally {
    await v.release();
  }
}

test('ops run after their parent and their inputs, siblings at once, and a second run is all cache hits', async (t) => {
  const root = await tempDir(t, 'kiln-scheduler-');
  const s = await session(root, 4);
  const g = diamond(s);
  const d = await s.scheduler.solve(g.d);
  const at = (cmd: string) => s.played.find((p) => p.cmd.startsWith(cmd))!;
  // The two writes overlap (both started before either ended); the copy waited for both.
  assert.ok(Math.max(at('write w/b').start, at('write w/c').start) < Math.min(at('write w/b').end, at('write w/c').end), JSON.stringify(s.played));
  assert.ok(at('copy').start >= Math.max(at('write w/b').end, at('write w/c').end), JSON.stringify(s.played));
  // d's state: WORKDIR's layer, b's and its own; c's file came through the mount, c's layer did not.
  assert.equal(d.layers.length, 3);
  assert.deepEqual(await contents(s, d.layers), { b: 'B', c: '-', 'c-copy': 'C' });
  assert.equal(d.cached, false);
  assert.deepEqual(s.events.filter((e) => e.startsWith('start')).sort(), ['start b', 'start c', 'start d', 'start w']);

  // The same graph, a new build on the same store: nothing runs, every key and layer is the same.
  const again = await session(root, 4);
  const d2 = await again.scheduler.solve(diamond(again).d);
  assert.deepEqual(again.played, []);
  assert.deepEqual(again.events.filter((e) => e.startsWith('cached')).sort(), ['cached b', 'cached c', 'cached d', 'cached w']);
  assert.equal(d2.key, d.key);
  assert.deepEqual(d2.keys, d.keys);
  assert.deepEqual(d2.layers, d.layers);
  assert.equal(d2.cached, true);
});

test('--jobs 1 runs one op at a time', async (t) => {
  const s = await session(await tempDir(t, 'kiln-scheduler-'), 1);
  await s.scheduler.solve(diamond(s).d);
  const runs = [...s.played].sort((a, b) => a.start - b.start);
  assert.equal(runs.length, 3);
  for (let i = 1; i < runs.length; i++) assert.ok(runs[i - 1]!.end <= runs[i]!.start, JSON.stringify(runs));
});

test('a failed op fails the ops after it and those reading it, runs nothing after it, and is not cached', async (t) => {
  const root = await tempDir(t, 'kiln-scheduler-');
  const s = await session(root, 4);
  const w = s.workdir('w', scratch, '/w');
  const bad = s.run('bad', w, ['fail']);
  const after = s.run('after', bad, ['write', 'w/x', 'X', '0']);
  s.stages[0] = bad;
  const reader = s.run('reader', w, ['copy', 'x', 'y'], 0);
  const sibling = s.run('sibling', w, ['write', 'w/b', 'B', '0']);
  const [r1, r2, r3] = await Promise.allSettled([s.scheduler.solve(after), s.scheduler.solve(reader), s.scheduler.solve(sibling)]);
  assert.equal(r1.status, 'rejected');
  assert.equal(r2.status, 'rejected');
  const err = (r1 as PromiseRejectedResult).reason as Error;
  assert.ok(err instanceof BuildStepError);
  assert.match(err.message, /^Dockerfile:1: RUN failed: process "fail" did not complete successfully: exit code: 3\nit failed$/);
  assert.equal((r2 as PromiseRejectedResult).reason, err);
  assert.equal(r3.status, 'fulfilled');
  assert.deepEqual(s.played.map((p) => p.cmd).sort(), ['fail', 'write w/b B 0']);
  assert.ok(s.events.includes('error bad: Dockerfile:1: RUN failed: process "fail" did not complete successfully: exit code: 3'), s.events.join('\n'));
  assert.ok(!s.events.some((e) => e.includes('after') || e.includes('reader')), s.events.join('\n'));

  // Not recorded: the next build runs it again (and WORKDIR comes from the cache).
  const again = await session(root, 4);
  await assert.rejects(again.scheduler.solve(again.run('bad', again.workdir('w', scratch, '/w'), ['fail'])), BuildStepError);
  assert.deepEqual(again.played.map((p) => p.cmd), ['fail']);
  assert.ok(again.events.includes('cached w'));
});

test('a cancelled build starts no further op', async (t) => {
  const abort = new AbortController();
  const s = await session(await tempDir(t, 'kiln-scheduler-'), 4, abort.signal);
  const first = s.run('first', scratch, ['write', 'a', 'A', '0']);
  const second = s.run('second', first, ['write', 'b', 'B', '0']);
  await s.scheduler.solve(first);
  abort.abort();
  await assert.rejects(s.scheduler.solve(second), BuildCancelled);
  assert.deepEqual(s.played.map((p) => p.cmd), ['write a A 0']);
});

test('a merge lays its inputs\' layers in order with no step of its own; an input on scratch keeps its key and layer under another parent', async (t) => {
  const root = await tempDir(t, 'kiln-scheduler-');
  // COPY --link's shape: the step runs on scratch, and the merge puts its layer over the parent's.
  const graph = (s: Awaited<ReturnType<typeof session>>, parentText: string) => {
    const w = s.workdir('w', scratch, '/w');
    const parent = s.run('parent', w, ['write', 'w/b', parentText, '0']);
    const linked = s.run('linked', linkBase(hostPlatform(), undefined), ['write', 'l', 'L', '0']);
    return { parent, linked, merge: { kind: 'merge', inputs: [parent, linked] } satisfies Merge };
  };
  const s = await session(root, 4);
  const g = graph(s, 'B');
  const m = await s.scheduler.solve(g.merge);
  const [p, l] = [await s.scheduler.solve(g.parent), await s.scheduler.solve(g.linked)];
  assert.deepEqual(m.layers, [...p.layers, ...l.layers]);
  assert.deepEqual(m.keys, [...p.keys, ...l.keys]);
  assert.equal(l.layers.length, 1);
  assert.notEqual(m.key, p.key);
  assert.notEqual(m.key, l.key);
  assert.deepEqual(s.events.filter((e) => e.startsWith('start')), ['start w', 'start parent', 'start linked']);
  const v = await s.ctx.snapshotter.view(m.layers, 'check');
  try {
    assert.equal(await readFile(join(v.path, 'w', 'b'), 'utf8'), 'B');
    assert.equal(await readFile(join(v.path, 'l'), 'utf8'), 'L');
  } finally {
    await v.release();
  }

  // Another parent: the merged step is a cache hit with the very same layer; the merge's key changes.
  const again = await session(root, 4);
  const g2 = graph(again, 'B2');
  const m2 = await again.scheduler.solve(g2.merge);
  assert.deepEqual(again.played.map((x) => x.cmd), ['write w/b B2 0']);
  assert.ok(again.events.includes('cached linked'), again.events.join('\n'));
  assert.deepEqual(m2.layers.at(-1), m.layers.at(-1));
  assert.equal(m2.keys.at(-1), m.keys.at(-1));
  assert.notEqual(m2.key, m.key);
  assert.equal(m2.cached, true);
});

test('an http source two ops read is fetched once, keyed by its content, and removed at the end; with a checksum a cached build fetches nothing', async (t) => {
  let requests = 0;
  const body = 'downloaded';
  const server = createServer((_req, res) => (requests++, res.end(body)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.txt`;
  const root = await tempDir(t, 'kiln-scheduler-');
  const build = async (checksum?: string) => {
    const s = await session(root, 4);
    const http = createHttpSources();
    const source = http.node(url, { line: 1, checksum } as CopyStep, 'Dockerfile');
    const read: string[] = [];
    // Two steps that read the download (as two ADDs of one URL would): keyed by what the source's key names.
    const reader = (name: string): Op => ({
      kind: 'op', name, parent: scratch, inputs: [source], platform: hostPlatform(),
      key: async (p, [src]) => cacheKey(p.key, { name, source: src!.files!.keyPart }),
      run: async (_p, [src]) => {
        const f = await src!.files!.open();
        read.push(join(f.dir, f.name));
        return undefined;
      },
    });
    await Promise.all([s.scheduler.solve(reader('one')), s.scheduler.solve(reader('two'))]);
    const state = await s.scheduler.solve(source);
    await http.cleanup();
    return { read, state, events: s.events };
  };
  const first = await build();
  assert.equal(requests, 1);
  assert.equal(first.read.length, 2);
  assert.equal(first.read[0], first.read[1]);
  assert.deepEqual(first.state.layers, []);
  assert.match(JSON.stringify(first.state.files!.keyPart), /"content":"sha256:[0-9a-f]{64}"/);
  await assert.rejects(stat(first.read[0]!), { code: 'ENOENT' });

  const checksum = 'sha256:' + (await import('node:crypto')).createHash('sha256').update(body).digest('hex');
  await build(checksum);
  assert.equal(requests, 2);
  const cached = await build(checksum);
  assert.equal(requests, 2, 'a cached step keyed by the checksum downloads nothing');
  assert.deepEqual(cached.read, []);
  assert.deepEqual(cached.events.filter((e) => e.startsWith('cached')).sort(), ['cached one', 'cached two']);
});
