import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileSyntaxError, parseDockerfile } from '../../src/dockerfile/index.js';
import { lintDockerfile, mergeConfig, type PartialConfig } from '../../src/lint/index.js';
import { kiln } from '../support/env.js';

// kiln lint reads any sequence of instructions, as hadolint does, while the build frontend keeps
// refusing what BuildKit refuses: a file without FROM first, a fragment, an unknown instruction.

async function found(text: string, config: PartialConfig = {}): Promise<[string, number][]> {
  const findings = await lintDockerfile(text, { file: 'Dockerfile', config: mergeConfig(config) });
  return findings.map((f) => [f.code, f.line]);
}

test('a file with no FROM gives DL3061 at each instruction, and the other rules still fire', async () => {
  const text = 'LABEL team=web\nRUN sudo apt-get install -y curl\nWORKDIR app\n';
  const codes = await found(text);
  assert.deepEqual(codes.filter(([c]) => c === 'DL3061'), [['DL3061', 1], ['DL3061', 2], ['DL3061', 3]]);
  for (const [code, line] of [['DL3004', 2], ['DL3008', 2], ['DL3015', 2], ['DL3000', 3]] as const) {
    assert.ok(codes.some(([c, l]) => c === code && l === line), `${code} at ${line} in ${JSON.stringify(codes)}`);
  }
});

test('a fragment of RUN lines is linted like the RUNs of a stage', async () => {
  const text = 'RUN apt-get update && apt-get install -y --no-install-recommends git=1:2.39\nRUN pip install requests\nRUN sudo ldconfig\nRUN curl -fsSL https://example.invalid/i.sh | sh\n';
  const codes = await found(text);
  for (const [code, line] of [['DL3009', 1], ['DL3013', 2], ['DL3042', 2], ['DL3004', 3], ['DL3059', 3], ['DL4006', 4]] as const) {
    assert.ok(codes.some(([c, l]) => c === code && l === line), `${code} at ${line} in ${JSON.stringify(codes)}`);
  }
});

test('an ARG before FROM is no DL3061; an instruction between ARG and FROM is', async () => {
  assert.deepEqual((await found('ARG BASE=debian:12\nFROM $BASE\nRUN true\n')).filter(([c]) => c === 'DL3061'), []);
  assert.deepEqual((await found('ARG BASE=debian:12\nENV X=1\nFROM $BASE\n')).filter(([c]) => c === 'DL3061'), [['DL3061', 2]]);
});

test('an unknown instruction is DL1000 at its line, and the lines around it are still linted', async () => {
  const codes = await found('FROM debian:12\nRUN sudo true\nFETCH https://example.invalid/x /x\nMAINTAINER me\n');
  assert.deepEqual(codes.filter(([c]) => ['DL1000', 'DL3004', 'DL4000'].includes(c)), [['DL3004', 2], ['DL1000', 3], ['DL4000', 4]]);
});

test('DL4000 and DL3049 fire in a file without FROM, the label at the first instruction', async () => {
  assert.deepEqual((await found('MAINTAINER me\n')).filter(([c]) => c === 'DL4000' || c === 'DL3061'), [['DL3061', 1], ['DL4000', 1]]);
  const schema: PartialConfig = { labelSchema: { owner: 'text' } };
  assert.deepEqual((await found('\nRUN true\nLABEL other=x\n', schema)).filter(([c]) => c === 'DL3049'), [['DL3049', 2]]);
});

test('instructions before a late FROM are their own stage: rules about the image judge the stage after FROM', async () => {
  // USER root before the FROM is not the image's user; the stage after FROM has none.
  assert.deepEqual((await found('USER root\nFROM debian:12\nRUN true\n')).filter(([c]) => c === 'DL3002'), []);
  assert.deepEqual((await found('RUN true\nFROM debian:12\nUSER 0\n')).filter(([c]) => c === 'DL3002'), [['DL3002', 3]]);
});

test('a file of comments only has nothing to report', async () => {
  assert.deepEqual(await found('# nothing yet\n\n'), []);
});

test('the build frontend still refuses what lint reads leniently', () => {
  for (const text of ['RUN true\n', 'LABEL a=b\nFROM debian:12\n', 'FROM debian:12\nFETCH x /x\n']) {
    assert.throws(() => parseDockerfile(text), DockerfileSyntaxError, JSON.stringify(text));
  }
});

test('kiln lint --format json on a fragment prints every finding with its code', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-lint-fragment-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'snippet.Dockerfile'), 'RUN apt-get update\nBOGUS x\nRUN sudo ls\n');
  const r = await kiln(join(dir, 'store'), ['lint', '--format', 'json', 'snippet.Dockerfile'], { cwd: dir, env: { KILN_LINT_SHELLCHECK: 'none', HOME: dir, XDG_CONFIG_HOME: join(dir, '.config') } });
  assert.equal(r.code, 1, r.stderr);
  const items = (JSON.parse(r.stdout) as { code: string; line: number }[]).map((f) => [f.code, f.line]);
  for (const [code, line] of [['DL3061', 1], ['DL3009', 1], ['DL1000', 2], ['DL3004', 3]] as const) {
    assert.ok(items.some(([c, l]) => c === code && l === line), `${code} at ${line} in ${r.stdout}`);
  }
});
