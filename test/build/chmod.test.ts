import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';

// COPY and ADD --chmod end to end: BuildKit takes any octal mode up to 07777 (testCopyChmod has
// `COPY --chmod=0 foo /foobis` give 0000) and chmod(1) symbolic modes (testChmodNonOctal compares
// each with busybox's chmod of the same mode); frontend/dockerfile/dockerfile2llb/convert_copy.go,
// dispatchCopy, decides.

async function store(t: Parameters<typeof tempDir>[0]): Promise<{ root: string; dir: string }> {
  const dir = await tempDir(t, 'kiln-chmod-');
  const root = join(dir, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  return { root, dir };
}

test('COPY and ADD --chmod give a file exactly the octal mode: 0, 000, 0755, 4755, 07777', async (t) => {
  const { root, dir } = await store(t);
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'f'), 'f\n');
  await chmod(join(ctx, 'f'), 0o640);
  await writeFile(
    join(ctx, 'Dockerfile'),
    'FROM busybox\n' +
      ['0', '000', '0755', '4755', '07777'].map((m) => `COPY --chmod=${m} f /m/copy-${m}\nADD --chmod=${m} f /m/add-${m}\n`).join('') +
      'COPY --chmod=0 <<EOF /m/heredoc-0\nx\nEOF\n' +
      // A RUN sees the modes too (the layer, mounted), and the exported image keeps them.
      'RUN stat -c "%04a %n" /m/* > /modes-in-run\n',
  );
  await kilnOk(root, ['build', '-q', '-t', 'chmod-octal', ctx]);
  const expected = [
    '0000 /m/add-0', '0000 /m/add-000', '0755 /m/add-0755', '7777 /m/add-07777', '4755 /m/add-4755',
    '0000 /m/copy-0', '0000 /m/copy-000', '0755 /m/copy-0755', '7777 /m/copy-07777', '4755 /m/copy-4755',
    '0000 /m/heredoc-0',
  ].join('\n') + '\n';
  assert.equal(await kilnOk(root, ['run', '--rm', 'chmod-octal', 'cat', '/modes-in-run']), expected);
  assert.equal(await kilnOk(root, ['run', '--rm', 'chmod-octal', 'sh', '-c', 'stat -c "%04a %n" /m/*']), expected);
});

test('COPY --chmod with a symbolic mode changes each entry\'s own mode as chmod(1) does', async (t) => {
  const { root, dir } = await store(t);
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  // testChmodNonOctal's inputs: a file 0666 and a directory 0124, each copied with a mode and then
  // compared with busybox chmod of a copy (modes that name their classes: busybox applies its umask
  // when none is named, BuildKit a umask of 0).
  const modes = ['go-w', 'u=rw,g=r,o=r', 'a+X', 'u+rw,g+r,o-x,o+w', 'u=rwX,go=rX', 'g=u', 'ug+s'];
  const expected = modes.map((m, i) =>
    `mkdir -p /input/dirs/d${i} && cp -a /input/dir /input/dirs/d${i}/d${i} && cp -a /input/dirs/d${i}/. /expected/ && chmod ${m} /expected/d${i} && ` +
    `cp -a /input/file /expected/f${i} && chmod ${m} /expected/f${i}`);
  const lines = ['FROM busybox AS base', `RUN mkdir -p /input/dir /expected && touch /input/file && chmod 666 /input/file && chmod 124 /input/dir && ${expected.join(' && ')}`];
  const copies = ['FROM scratch AS result'];
  modes.forEach((m, i) => copies.push(`COPY --from=base --chmod=${m} /input/dirs/d${i} /`, `COPY --from=base --chmod=${m} /input/file /f${i}`));
  const names = modes.flatMap((_, i) => [`d${i}`, `f${i}`]).join(' ');
  const checks = ['FROM base', 'COPY --from=result / /actual/', `RUN for n in ${names}; do echo "$(stat -c %a /actual/$n) $(stat -c %a /expected/$n) $n"; done > /compared`];
  // Without a class every class changes, with no umask: a context file 0600 gets 0711 from +x.
  await writeFile(join(ctx, 'f'), 'f\n');
  await chmod(join(ctx, 'f'), 0o600);
  checks.push('COPY --chmod=+x f /plus-x', 'COPY --chmod=u=rwX,go=rX f /plain');
  await writeFile(join(ctx, 'Dockerfile'), [...lines, ...copies, ...checks, ''].join('\n'));
  await kilnOk(root, ['build', '-q', '-t', 'chmod-symbolic', ctx]);
  const compared = (await kilnOk(root, ['run', '--rm', 'chmod-symbolic', 'cat', '/compared'])).trim().split('\n');
  assert.equal(compared.length, modes.length * 2);
  for (const line of compared) {
    const [actual, expected, name] = line.split(' ');
    assert.equal(actual, expected, `${name} (${modes[Number(name!.slice(1))]})`);
  }
  assert.equal(await kilnOk(root, ['run', '--rm', 'chmod-symbolic', 'stat', '-c', '%04a %n', '/plus-x', '/plain']), '0711 /plus-x\n0644 /plain\n');
});

test('a --chmod BuildKit refuses fails the build with its message and line', async (t) => {
  const { root, dir } = await store(t);
  await writeFile(join(dir, 'f'), 'f\n');
  for (const [mode, message] of [
    ['10000', "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"],
    ['64a', "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"],
    ['u+x,', "invalid chmod parameter: 'u+x,'"],
  ]) {
    await writeFile(join(dir, 'Dockerfile'), `FROM busybox\nCOPY --chmod=${mode} f /f\n`);
    const r = await kiln(root, ['build', '-q', dir]);
    assert.notEqual(r.code, 0, mode);
    assert.match(r.stderr, new RegExp(`Dockerfile:2: ${message!.replace(/[.+()]/g, '\\$&')}`), mode);
  }
});
