import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KilnError } from '../../src/errors.js';
import {
  DockerfileSyntaxError,
  dispatchStage,
  parseDockerfile,
  planBuild,
  triggerSources,
} from '../../src/dockerfile/index.js';
import type { ImageConfig } from '../../src/oci/types.js';

const linux = { os: 'linux', architecture: 'amd64' };

test('syntax errors are KilnErrors carrying the file and the 1-based line', () => {
  try {
    parseDockerfile('FROM scratch\n\nCOPY --chmode=644 a /b\n', { file: 'web.Dockerfile' });
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(err instanceof DockerfileSyntaxError);
    assert.ok(err instanceof KilnError);
    assert.equal(err.file, 'web.Dockerfile');
    assert.equal(err.line, 3);
    assert.equal(err.detail, 'unknown flag --chmode for COPY (did you mean chmod?)');
    assert.equal(err.message, 'web.Dockerfile:3: unknown flag --chmode for COPY (did you mean chmod?)');
  }
});

test('a stage built FROM another stage inherits its build state through the config object', () => {
  const df = parseDockerfile('FROM scratch AS base\nARG X=1\nFROM base\nRUN echo $X\n');
  const plan = planBuild(df, { buildArgs: {}, platform: linux });
  const base = dispatchStage(plan, 0, { config: undefined }, { buildArgs: {} });
  // the engine passes only the config; the frontend finds the stage's build state from it
  const child = dispatchStage(plan, 1, { config: base.config }, { buildArgs: {} });
  assert.equal(child.steps[0]!.createdBy, 'RUN |1 X=1 /bin/sh -c echo $X # buildkit');
  assert.ok(child.steps[0]!.kind === 'run' && child.steps[0]!.env.includes('X=1'));
});

test('history indices point at the layer entries after the base history', () => {
  const df = parseDockerfile('FROM alpine\nENV A=1\nRUN true\nWORKDIR /w\nCOPY a b\n');
  const plan = planBuild(df, { buildArgs: {}, platform: linux });
  const base: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:x'] }, history: [{ created_by: 'base' }] };
  const p = dispatchStage(plan, 0, { config: base }, { buildArgs: {} });
  assert.deepEqual(p.steps.map((s) => [s.kind, s.historyIndex]), [['run', 2], ['workdir', 3], ['copy', 4]]);
  for (const s of p.steps) assert.equal(p.config.history![s.historyIndex]!.created_by, s.createdBy);
  assert.deepEqual(p.config.rootfs.diff_ids, ['sha256:x'], 'the engine appends the new layers');
});

test('labels, exposed ports and volumes are written with sorted keys, as Go writes maps', () => {
  const df = parseDockerfile('FROM scratch\nLABEL z=1 a=2 m=3\nEXPOSE 9090 80\nVOLUME /z /a\n');
  const plan = planBuild(df, { buildArgs: {}, platform: linux });
  const c = dispatchStage(plan, 0, { config: undefined }, { buildArgs: {}, labels: { b: '4' } }).config.config!;
  assert.deepEqual(Object.keys(c.Labels!), ['a', 'b', 'm', 'z']);
  assert.deepEqual(Object.keys(c.ExposedPorts!), ['80/tcp', '9090/tcp']);
  assert.deepEqual(Object.keys(c.Volumes!), ['/a', '/z']);
});

test('ONBUILD triggers of an image base can need stages; triggerSources names them', () => {
  const df = parseDockerfile('FROM scratch AS assets\nCOPY a /a\nFROM example/onbuild-base\n');
  const plan = planBuild(df, { buildArgs: {}, platform: linux });
  assert.equal(plan.stages[0]!.used, false, 'nothing in the Dockerfile needs assets');
  assert.deepEqual(triggerSources(plan, 1, ['COPY --from=assets /a /b', 'RUN --mount=from=alpine,target=/m true', 'ENV X=1']), [
    { stage: 0 },
    { image: 'alpine' },
  ]);
});

test('the plan reports the global scope and warnings of parse and plan', () => {
  const df = parseDockerfile('ARG TAG=3.19\nFROM alpine:$TAG AS Build\n');
  const plan = planBuild(df, { buildArgs: { UNUSED: '1' }, platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(plan.globalArgs.TAG, '3.19');
  assert.equal(plan.globalArgs.TARGETARCH, 'arm64');
  assert.deepEqual(plan.stages[0]!.base, { kind: 'image', ref: 'alpine:3.19' });
  assert.deepEqual(plan.warnings.map((w) => w.rule), ['StageNameCasing', 'UnconsumedBuildArgs']);
});
