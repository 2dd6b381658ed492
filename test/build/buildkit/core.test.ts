// BuildKit's frontend/dockerfile/dockerfile_core_test.go, behaviour by behaviour: each test names
// the BuildKit test function(s) it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('core');
});
after(() => b.close());

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

test('testDockerfileDirs: the context and the Dockerfile given as absolute paths, relative to the working directory, or in different directories', async () => {
  const dockerfile = 'FROM busybox\nCOPY foo /foo2\nCOPY foo /\nRUN echo -n bar > foo3\nRUN test -f foo\nRUN cmp -s foo foo2\nRUN cmp -s foo foo3\n';
  const dir = await b.context({ Dockerfile: dockerfile, foo: 'bar' });
  const abs = await b.build(dir);
  assert.equal(abs.code, 0, abs.stderr);
  const rel = await b.kiln(['build', '-q', '-f', 'Dockerfile', '.'], { cwd: dir });
  assert.equal(rel.code, 0, rel.stderr);
  const dfDir = await b.context({ Dockerfile: dockerfile });
  const ctxDir = await b.context({ foo: 'bar' });
  const apart = await b.build(ctxDir, ['-f', join(dfDir, 'Dockerfile')]);
  assert.equal(apart.code, 0, apart.stderr);
});

test('testSymlinkedDockerfile and testDockerfileLowercase: a Dockerfile that is a symbolic link, and one named dockerfile', async () => {
  const linked = await b.context({ 'Dockerfile.web': 'FROM scratch\nENV foo bar\n', Dockerfile: { symlink: 'Dockerfile.web' } });
  const r = await b.build(linked, ['-t', 'symlinked-df']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await b.inspect('symlinked-df')).Config.Env.includes('foo=bar'));
  const lower = await b.context({ dockerfile: 'FROM scratch\nENV lower=yes\n' });
  const l = await b.build(lower, ['-t', 'lowercase-df']);
  assert.equal(l.code, 0, l.stderr);
  assert.ok((await b.inspect('lowercase-df')).Config.Env.includes('lower=yes'));
});

test('testSymlinkDestination: COPY into a path that is a relative symbolic link (from an ADDed archive) writes into its target', async () => {
  const stage = join(b.work, 'symlink-tar');
  await mkdir(stage, { recursive: true });
  execFileSync('ln', ['-s', '../tmp/symlink-target', join(stage, 'symlink')]);
  const tar = execFileSync('tar', ['--owner=0', '--group=0', '-cf', '-', '-C', stage, 'symlink']);
  const dir = await b.context({ Dockerfile: 'FROM scratch\nADD t.tar /\nCOPY foo /symlink/\n', foo: 'content0', 't.tar': tar });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'tmp/symlink-target/foo'), 'content0');
});

test('testContextChangeDirToFile: a context path that was a directory in the last build and is a file now', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nCOPY foo /\n', 'foo/bar': 'contents' });
  await b.tree(dir);
  await rm(join(dir, 'foo'), { recursive: true });
  await writeFile(join(dir, 'foo'), 'contents2');
  assert.equal(await read(await b.tree(dir), 'foo'), 'contents2');
});

test('testNoSnapshotLeak: building the same thing twice leaves the store as large as once', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nCOPY foo /\n', foo: 'contents' });
  const count = async () => (await readdir(b.root, { recursive: true })).length;
  assert.equal((await b.build(dir, ['-t', 'leak'])).code, 0);
  const once = await count();
  assert.equal((await b.build(dir, ['-t', 'leak'])).code, 0);
  assert.equal(await count(), once);
});

test('testExposeExpansion and testLabels: EXPOSE expands a list from an ARG; LABEL and --label both land in the config', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nARG PORTS="3000 4000/udp"\nEXPOSE $PORTS\nEXPOSE 5000\nLABEL foo=bar\n' });
  const r = await b.build(dir, ['-t', 'expose-labels', '--label', 'bar=baz']);
  assert.equal(r.code, 0, r.stderr);
  const { Config } = await b.inspect('expose-labels');
  assert.deepEqual(Object.keys(Config.ExposedPorts).sort(), ['3000/tcp', '4000/udp', '5000/tcp']);
  assert.equal(Config.Labels.foo, 'bar');
  assert.equal(Config.Labels.bar, 'baz');
});

test('testUser and testUserAdditionalGids: USER by name, id, user:group in every spelling, unknown ids, and the groups a RUN gets', async () => {
  const id = (want: string) => `RUN [ "$(id -u):$(id -g)/$(id -un):$(id -gn)/$(id -G):$(id -Gn)" = '${want}' ] || { id; exit 1; }\n`;
  const dir = await b.context({
    Dockerfile:
      // The fixture's busybox lacks docker's busybox wheel group (10, with root in it): add it.
      'FROM busybox AS base\nRUN echo wheel:x:10:root >> /etc/group\nRUN mkdir -m 0777 /out\nRUN id -un > /out/rootuser\n' +
      `RUN [ "$(id -u):$(id -g)/$(id -un):$(id -gn)" = '0:0/root:root' ]\nUSER root\nRUN [ "$(id -G):$(id -Gn)" = '0 10:root wheel' ]\n` +
      "RUN echo 'dockerio:x:1001:1001::/bin:/bin/false' >> /etc/passwd && echo 'dockerio:x:1001:' >> /etc/group\n" +
      'USER dockerio\n' + id('1001:1001/dockerio:dockerio/1001:dockerio') +
      'USER root\n' + id('0:0/root:root/0 10:root wheel') + "RUN echo 'supplementary:x:1002:dockerio' >> /etc/group\n" +
      'USER dockerio\n' + id('1001:1001/dockerio:dockerio/1001 1002:dockerio supplementary') +
      'USER 1001\n' + id('1001:1001/dockerio:dockerio/1001 1002:dockerio supplementary') +
      ['dockerio:dockerio', '1001:dockerio', 'dockerio:1001', '1001:1001'].map((u) => `USER ${u}\n` + id('1001:1001/dockerio:dockerio/1001:dockerio')).join('') +
      ['dockerio:supplementary', 'dockerio:1002', '1001:supplementary', '1001:1002'].map((u) => `USER ${u}\n` + id('1001:1002/dockerio:supplementary/1002:supplementary')).join('') +
      'USER 1042:1043\n' + id('1042:1043/1042:1043/1043:1043') +
      'USER root\nRUN [ "$(id)" = "uid=0(root) gid=0(root) groups=0(root),10(wheel)" ]\nUSER 1234\nRUN [ "$(id)" = "uid=1234 gid=0(root) groups=0(root)" ]\n' +
      'USER 1234:1234\nRUN [ "$(id)" = "uid=1234 gid=1234 groups=1234" ]\nUSER daemon\nRUN [ "$(id)" = "uid=1(daemon) gid=1(daemon) groups=1(daemon)" ]\n' +
      'RUN id -un > /out/daemonuser\nFROM scratch\nCOPY --from=base /out /\nUSER nobody\n',
  });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'rootuser'), 'root\n');
  assert.equal(await read(out, 'daemonuser'), 'daemon\n');
  const r = await b.build(dir, ['-t', 'user-final']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await b.inspect('user-final')).Config.User, 'nobody');
});

test('testDockerfileCheckHostname: --build-arg BUILDKIT_SANDBOX_HOSTNAME names the RUN sandbox (hostname, $HOSTNAME, /etc/hosts)', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nRUN cat /etc/hosts | grep foo\nRUN echo $HOSTNAME | grep foo\n\tRUN echo $(hostname) | grep foo\n' });
  const r = await b.build(dir, ['--build-arg', 'BUILDKIT_SANDBOX_HOSTNAME=foo']);
  assert.equal(r.code, 0, r.stderr);
});

test('testStepNames: progress names a step [stage n/total] and its instruction as written', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox AS base\nWORKDIR /out\nRUN echo "base" > base\nFROM scratch\nCOPY --from=base --chmod=0644 /out /out\n' });
  const r = await b.build(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^#\d+ \[base 3\/3\] RUN echo "base" > base$/m);
  assert.match(r.stderr, /^#\d+ \[stage-1 1\/1\] COPY --from=base --chmod=0644 \/out \/out$/m);
});

test('testTargetMistype: an unknown --target suggests the stage it may mean', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\nCOPY --from=build /out /\n' });
  const r = await b.build(dir, ['--target', 'bulid']);
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes('target stage "bulid" could not be found (did you mean build?)'), r.stderr);
});

