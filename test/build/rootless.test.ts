import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kilnOk } from '../support/env.js';
import { isRoot, rootlessUser, unprivileged } from '../support/unprivileged.js';

/** The owners (uid:gid) and paths in a flattened image tar. */
function owners(tarFile: string): string[] {
  return execFileSync('tar', ['-tvf', tarFile, '--numeric-owner'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => / (f|out|out\/b|cached-seen|many\/f999|many-count)$/.test(l))
    .map((l) => {
      const parts = l.trim().split(/\s+/);
      return `${parts[parts.length - 1]} ${parts[1]}`;
    })
    .sort();
}

test('a non-root user builds in its own user namespace, with the same owners as a root build', { skip: !isRoot && 'needs root to create the unprivileged user' }, async (t) => {
  const u = await unprivileged(t);
  const { dir } = u;
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'f'), 'file\n');
  // 1,000 files: a COPY this big is extracted on a worker thread, inside the user namespace too.
  await mkdir(join(ctx, 'many'));
  for (let i = 0; i < 1000; i++) await writeFile(join(ctx, 'many', `f${i}`), `${i}\n`);
  await writeFile(
    join(ctx, 'Dockerfile'),
    'FROM busybox AS build\nRUN --mount=type=cache,target=/cache touch /cache/seen && mkdir /out && ls /cache > /out/b && chown 1234:1234 /out/b\n' +
      'FROM busybox\nCOPY --chown=1000:1000 f /f\nCOPY --from=build /out /out\nRUN --mount=type=cache,target=/cache ls /cache > /cached-seen\n' +
      'COPY --chown=1000:1000 many /many\nRUN ls /many | wc -l > /many-count\n',
  );
  execFileSync('chmod', ['-R', 'a+rX', ctx]);
  const { userRoot, userOut, busybox: archive } = u;
  const asUser = u.kiln;
  asUser(`load -i ${archive}`);
  asUser(`build -q -t rootless-app -o type=tar,dest=${userOut}/user.tar ${ctx}`);
  const rootStore = join(dir, 'root-store');
  await kilnOk(rootStore, ['load', '-i', archive]);
  await kilnOk(rootStore, ['build', '-q', '-o', `type=tar,dest=${dir}/root.tar`, ctx]);
  const fromUser = owners(join(userOut, 'user.tar'));
  assert.deepEqual(fromUser, owners(join(dir, 'root.tar')));
  assert.ok(fromUser.includes('f 1000/1000'), fromUser.join(', '));
  assert.ok(fromUser.includes('out/b 1234/1234'), fromUser.join(', '));
  assert.ok(fromUser.includes('many/f999 1000/1000'), fromUser.join(', '));
  // The store belongs to the user, and the cache mount persisted between the two stages' RUNs.
  assert.equal(execFileSync('stat', ['-c', '%U', join(userRoot, 'index.json')], { encoding: 'utf8' }).trim(), rootlessUser);
  execFileSync('tar', ['-xf', join(userOut, 'user.tar'), '-C', dir, 'cached-seen']);
  assert.equal(await readFile(join(dir, 'cached-seen'), 'utf8'), 'seen\n');
  execFileSync('tar', ['-xf', join(userOut, 'user.tar'), '-C', dir, 'many-count']);
  assert.equal((await readFile(join(dir, 'many-count'), 'utf8')).trim(), '1000');
});
