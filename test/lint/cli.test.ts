import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { kiln, tempDir } from '../support/env.js';

// kiln lint as a user runs it: files on disk, configuration files, environment, exit codes, formats.

const noShellcheck = { KILN_LINT_SHELLCHECK: 'none' };

async function project(t: Parameters<typeof tempDir>[0], files: Record<string, string>): Promise<string> {
  const dir = await tempDir(t, 'kiln-lint-');
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

const lint = (dir: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  kiln(join(dir, 'store'), ['lint', ...args], { cwd: dir, env: { ...noShellcheck, HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), ...env } });

const sample = 'FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends curl\nMAINTAINER me\n';

test('--format json prints {file, line, column, level, code, message} items and exits 1 on findings', async (t) => {
  const dir = await project(t, { Dockerfile: sample });
  const r = await lint(dir, ['--format', 'json', 'Dockerfile']);
  assert.equal(r.code, 1, r.stderr);
  const items = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(items[0]).sort(), ['code', 'column', 'file', 'level', 'line', 'message']);
  assert.deepEqual(items.map((i: { code: string; line: number }) => `${i.code}@${i.line}`), ['DL3006@1', 'DL3008@2', 'DL3009@2', 'DL4000@3']);
  assert.equal(items[0].file, 'Dockerfile');
});

test('a clean Dockerfile exits 0 with no output, and a style finding does not fail at the default threshold', async (t) => {
  const dir = await project(t, { Dockerfile: 'FROM debian:12\nLABEL Maintainer=x\nCMD ["true"]\n' });
  const r = await lint(dir, ['Dockerfile']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /DL3048 style/);
  const strict = await lint(dir, ['-t', 'style', 'Dockerfile']);
  assert.equal(strict.code, 1);
});

test('.hadolint.yaml in the working directory is read: ignored, override, failure-threshold, trustedRegistries', async (t) => {
  const dir = await project(t, {
    Dockerfile: 'FROM quay.io/x/y:1\nMAINTAINER me\nRUN apt-get install -y --no-install-recommends curl\n',
    '.hadolint.yaml': 'ignored:\n  - DL4000\noverride:\n  info:\n    - DL3008\nfailure-threshold: warning\ntrustedRegistries:\n  - docker.io\n  - "*.example.com"\n',
  });
  const r = await lint(dir, ['--format', 'json', 'Dockerfile']);
  const items = JSON.parse(r.stdout) as { code: string; level: string }[];
  assert.deepEqual(items.map((i) => `${i.code}:${i.level}`), ['DL3026:error', 'DL3008:info']);
  assert.equal(r.code, 1); // DL3026 is an error, above the threshold
  const onlyInfo = await lint(dir, ['--ignore', 'DL3026', 'Dockerfile']);
  assert.equal(onlyInfo.code, 0, onlyInfo.stdout);
});

test('-c names the configuration; the user-level hadolint.yaml is used when the directory has none', async (t) => {
  const dir = await project(t, {
    Dockerfile: 'FROM debian\n',
    'conf/lint.yml': 'ignored: [DL3006]\n',
    '.config/hadolint.yaml': 'format: gnu\n',
  });
  const named = await lint(dir, ['-c', 'conf/lint.yml', 'Dockerfile']);
  assert.equal(named.code, 0, named.stdout + named.stderr);
  const user = await lint(dir, ['Dockerfile']);
  assert.match(user.stdout, /^kiln-lint:Dockerfile:1:1: warning: DL3006 /m);
});

test('KILN_LINT_* variables configure like HADOLINT_* ones, and flags win over them', async (t) => {
  const dir = await project(t, { Dockerfile: 'FROM debian\nMAINTAINER me\n' });
  const r = await lint(dir, ['Dockerfile'], { KILN_LINT_IGNORE: 'DL3006,DL4000' });
  assert.equal(r.code, 0, r.stdout);
  const h = await lint(dir, ['Dockerfile'], { HADOLINT_NOFAIL: 'true' });
  assert.equal(h.code, 0);
  assert.match(h.stdout, /DL4000/);
  const f = await lint(dir, ['--format', 'json', 'Dockerfile'], { KILN_LINT_FORMAT: 'gnu' });
  assert.ok(Array.isArray(JSON.parse(f.stdout)));
});

test('an invalid configuration names the key and why, and exits non-zero', async (t) => {
  const cases: [string, RegExp][] = [
    ['ignored: DL3006\n', /ignored: expected a list/],
    ['override:\n  fatal: [DL3006]\n', /override\.fatal: unknown severity/],
    ['failure-threshold: high\n', /failure-threshold: "high" is not one of/],
    ['label-schema:\n  version: number\n', /label-schema\.version: "number" is not a label type/],
    ['ignore: [DL3006]\n', /ignore: unknown key \(did you mean ignored\?\)/],
    ['ignored: [DL3006\n', /not valid YAML/],
  ];
  for (const [yaml, why] of cases) {
    const dir = await project(t, { Dockerfile: 'FROM debian:12\n', '.hadolint.yaml': yaml });
    const r = await lint(dir, ['Dockerfile']);
    assert.equal(r.code, 2, yaml);
    assert.match(r.stderr, why, yaml);
    assert.match(r.stderr, /\.hadolint\.yaml/);
  }
});

test('a Dockerfile that does not parse is DL1000 at its line, exit 1, even with a high threshold', async (t) => {
  const dir = await project(t, { Dockerfile: 'FROM debian:12\nRUN true\nFROBNICATE x\n' });
  const r = await lint(dir, ['--format', 'json', '-t', 'error', 'Dockerfile']);
  assert.equal(r.code, 1);
  const [item] = JSON.parse(r.stdout);
  assert.equal(item.code, 'DL1000');
  assert.equal(item.line, 3);
  assert.match(item.message, /unknown instruction: FROBNICATE/);
});

test('a missing file is a clear error', async (t) => {
  const dir = await project(t, {});
  const r = await lint(dir, ['nope/Dockerfile']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot read nope\/Dockerfile: no such file/);
});

test('--no-fail exits 0 and stdin is read with -', async (t) => {
  const dir = await project(t, {});
  const r = await kiln(join(dir, 'store'), ['lint', '--no-fail', '-'], { cwd: dir, input: 'FROM debian\n', env: { ...noShellcheck, HOME: dir } });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^-:1 DL3006 warning: Always tag the image version explicitly\n {5}1 \| FROM debian\n$/);
});

test('sarif, checkstyle, junit and gnu outputs carry the same findings', async (t) => {
  const dir = await project(t, { Dockerfile: 'FROM debian\nMAINTAINER "a<b>"\n', 'clean.Dockerfile': 'FROM debian:12\n' });
  const sarif = JSON.parse((await lint(dir, ['--format', 'sarif', 'Dockerfile'])).stdout);
  assert.equal(sarif.version, '2.1.0');
  const results = sarif.runs[0].results;
  assert.deepEqual(results.map((r: { ruleId: string }) => r.ruleId), ['DL3006', 'DL4000']);
  assert.equal(results[1].level, 'error');
  assert.equal(results[1].locations[0].physicalLocation.region.startLine, 2);
  assert.deepEqual(sarif.runs[0].tool.driver.rules.map((r: { id: string }) => r.id), ['DL3006', 'DL4000']);

  const cs = (await lint(dir, ['--format', 'checkstyle', 'Dockerfile', 'clean.Dockerfile'])).stdout;
  assert.match(cs, /<file name="Dockerfile">\n {4}<error line="1" column="1" severity="warning" message="Always tag the image version explicitly" source="DL3006"\/>/);
  assert.match(cs, /<file name="clean.Dockerfile">\n {2}<\/file>/);

  const junit = (await lint(dir, ['--format', 'junit', 'Dockerfile', 'clean.Dockerfile'])).stdout;
  assert.match(junit, /<testsuites name="kiln lint" tests="3" failures="2">/);
  assert.match(junit, /<testcase name="DL4000 line 2" classname="Dockerfile">/);
  assert.match(junit, /<testcase name="lint" classname="clean.Dockerfile"\/>/);

  const gnu = (await lint(dir, ['--format', 'gnu', 'Dockerfile'])).stdout;
  assert.equal(gnu, 'kiln-lint:Dockerfile:1:1: warning: DL3006 Always tag the image version explicitly\nkiln-lint:Dockerfile:2:1: error: DL4000 MAINTAINER is deprecated\n');
});

const hasShellcheck = (() => {
  try {
    execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('ShellCheck findings are reported at the RUN line, with ARG and ENV names declared, and can be ignored', { skip: !hasShellcheck && 'shellcheck is not installed' }, async (t) => {
  const dir = await project(t, {
    Dockerfile: 'FROM debian:12\nARG NAME\nSHELL ["/bin/bash", "-c"]\nRUN echo $NAME && echo $lower\n# hadolint ignore=SC2154\nRUN echo $other\n',
  });
  const r = await lint(dir, ['--format', 'json', 'Dockerfile'], { KILN_LINT_SHELLCHECK: 'shellcheck' });
  const items = JSON.parse(r.stdout) as { code: string; line: number; level: string }[];
  const sc = items.filter((i) => i.code.startsWith('SC'));
  assert.ok(sc.some((i) => i.code === 'SC2086' && i.line === 4 && i.level === 'info'), JSON.stringify(sc));
  assert.ok(sc.some((i) => i.code === 'SC2154' && i.line === 4), 'an undeclared lower-case variable is reported');
  assert.ok(!sc.some((i) => i.line === 6 && i.code === 'SC2154'), 'the pragma silences SC2154 on line 6');
  const ignored = await lint(dir, ['--format', 'json', '--ignore', 'SC2086', '--ignore', 'SC2154', 'Dockerfile'], { KILN_LINT_SHELLCHECK: 'shellcheck' });
  assert.ok(!JSON.parse(ignored.stdout).some((i: { code: string }) => i.code.startsWith('SC')));
});

test('without ShellCheck one info line says so on stderr and the JSON stays clean', async (t) => {
  const dir = await project(t, { Dockerfile: 'FROM debian:12\nRUN echo $X\n' });
  const r = await lint(dir, ['--format', 'json', 'Dockerfile'], { KILN_LINT_SHELLCHECK: join(dir, 'no-such-shellcheck') });
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), []);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /shellcheck is not installed/);
});
