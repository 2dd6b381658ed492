// BuildKit's frontend/dockerfile/dockerfile_history_test.go, the exported-history half: each test
// names the BuildKit test function it mirrors. The image config is read from an OCI archive output
// (BuildKit reads it from containerd or a registry).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('history');
});
after(() => b.close());

let n = 0;
/** The image config of a build written as an OCI archive. */
async function configOf(dir: string): Promise<any> {
  const dest = join(b.work, `history-${++n}.tar`);
  const r = await b.build(dir, ['-o', `type=oci,dest=${dest}`]);
  assert.equal(r.code, 0, r.stderr);
  const blob = (d: string) => JSON.parse(execFileSync('tar', ['-xOf', dest, `blobs/sha256/${d.replace(/^sha256:/, '')}`], { encoding: 'utf8' }));
  const index = JSON.parse(execFileSync('tar', ['-xOf', dest, 'index.json'], { encoding: 'utf8' }));
  return blob(blob(index.manifests[0].digest).config.digest);
}

const historyDockerfile = [
  // two stages: the history is the target stage's only
  'FROM busybox AS base',
  'ENV foo=bar',
  'COPY foo /foo2',
  'FROM busybox',
  'LABEL lbl=val',
  'COPY --from=base foo2 foo3',
  'WORKDIR /',
  'RUN echo bar > foo4',
  'RUN ["ls"]',
  'EXPOSE 2375 5000 1234/udp',
  '',
].join('\n');

test('testExportedHistory: one history entry per instruction of the target stage, after the base image\'s, with empty_layer and created', async () => {
  const img = await configOf(await b.context({ Dockerfile: historyDockerfile, foo: 'contents0' }));
  assert.equal(img.rootfs.type, 'layers');
  // busybox has two history entries, as BuildKit's busybox
  assert.equal(img.history.length, 8);
  const h = img.history.slice(2);
  const expect: [RegExp, boolean | undefined][] = [
    [/lbl=val/, true],
    [/COPY foo2 foo3/, false],
    [/WORKDIR \//, true],
    [/echo bar > foo4/, false],
    [/RUN ls/, false], // a layer, empty (the test below)
    [/EXPOSE \[1234\/udp 2375\/tcp 5000\/tcp\]/, true],
  ];
  for (const [i, [createdBy, empty]] of expect.entries()) {
    assert.match(h[i].created_by, createdBy, `history ${i + 2}`);
    if (empty !== undefined) assert.equal(h[i].empty_layer ?? false, empty, `history ${i + 2}: ${h[i].created_by}`);
    assert.ok(h[i].created, `history ${i + 2} has a created time`);
  }
  // a layer for each entry that is not empty
  assert.equal(img.rootfs.diff_ids.length, img.history.filter((e: any) => !e.empty_layer).length);
});

// BuildKit commits every RUN with a layer (dockerfile2llb/convert.go:1505, commitToHistory(…, true,
// …); :1822 EmptyLayer: !withLayer), so a RUN that changes nothing has an (empty) layer too.
test('testExportedHistory (a RUN that changes nothing): it still has a layer, 4 diff_ids in all', async () => {
  const img = await configOf(await b.context({ Dockerfile: historyDockerfile, foo: 'contents0' }));
  assert.equal(img.rootfs.diff_ids.length, 4);
  assert.equal(img.history[6].empty_layer ?? false, false);
});

test('testExportedHistoryFlattenArgs: a RUN\'s history names each build arg once, with its last value (moby/buildkit#5505)', async () => {
  const img = await configOf(await b.context({ Dockerfile: 'FROM busybox\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN ls /etc/\n' }));
  const history: { created_by: string }[] = img.history;
  const first = history.findIndex((h) => h.created_by === 'ARG foo=bar');
  assert.ok(first > 0, JSON.stringify(history));
  assert.equal(history.length, first + 4);
  assert.match(history[first + 1]!.created_by, /ARG bar=123/);
  assert.match(history[first + 2]!.created_by, /ARG foo=bar2/);
  const run = history[first + 3]!.created_by;
  assert.ok(run.includes('ls /etc/'), run);
  assert.ok(!run.includes('ARG foo=bar'), run);
  assert.ok(run.includes('RUN |2 foo=bar2 bar=123 '), run);
});
