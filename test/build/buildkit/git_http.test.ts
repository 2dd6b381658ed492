// BuildKit's frontend/dockerfile/dockerfile_git_http_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors. Repositories are served over git's dumb HTTP
// protocol from a static file server on loopback, as BuildKit's test serves them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, serve, serveDirectory, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('git-http');
});
after(() => b.close());

const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_GLOBAL: '/dev/null' };
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', env: gitEnv }).trim();

for (const format of ['sha1', 'sha256'] as const) {
  test(`testDockerfileFromGit${format.toUpperCase()}: a repository over HTTP is the context, at a branch or at its default branch (${format} objects)`, async (t) => {
    const repo = join(b.work, `repo-${format}`);
    await mkdir(repo, { recursive: true });
    git(repo, 'init', '-q', '-b', 'master', `--object-format=${format}`);
    const dockerfile = 'FROM busybox AS build\nRUN echo -n fromgit > foo\nFROM scratch\nCOPY --from=build foo bar\n';
    await writeFile(join(repo, 'Dockerfile'), dockerfile);
    git(repo, 'add', 'Dockerfile');
    git(repo, 'commit', '-q', '-m', 'initial');
    git(repo, 'branch', 'first');
    await writeFile(join(repo, 'Dockerfile'), dockerfile + 'COPY --from=build foo bar2\n');
    git(repo, 'add', 'Dockerfile');
    git(repo, 'commit', '-q', '-m', 'second');
    git(repo, 'update-server-info');
    const server = await serveDirectory(repo);
    t.after(() => server.close());
    const first = join(b.work, `out-${format}-first`);
    const r1 = await b.kiln(['build', '-q', '-o', `type=local,dest=${first}`, `${server.url}/.git#first`]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(await readFile(join(first, 'bar'), 'utf8'), 'fromgit');
    await assert.rejects(stat(join(first, 'bar2')));
    const head = join(b.work, `out-${format}-head`);
    const r2 = await b.kiln(['build', '-q', '-o', `type=local,dest=${head}`, `${server.url}/.git`]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await readFile(join(head, 'bar'), 'utf8'), 'fromgit');
    assert.equal(await readFile(join(head, 'bar2'), 'utf8'), 'fromgit');
  });
}

test('testDockerfileFromHTTP: a tar archive at a URL is the context; -f names the Dockerfile inside it', async (t) => {
  const stage = join(b.work, 'http-context');
  await mkdir(stage, { recursive: true });
  await writeFile(join(stage, 'mydockerfile'), 'FROM scratch\nCOPY foo bar\n');
  await writeFile(join(stage, 'foo'), 'foo-contents');
  const server = await serve({ '/myurl': { body: execFileSync('tar', ['-cf', '-', '-C', stage, 'mydockerfile', 'foo']), etag: 'x' } });
  t.after(() => server.close());
  const dest = join(b.work, 'http-context-out');
  const r = await b.kiln(['build', '-q', '-f', 'mydockerfile', '-o', `type=local,dest=${dest}`, `${server.url}/myurl`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(dest, 'bar'), 'utf8'), 'foo-contents');
});

test('testHTTPDockerfile: a URL that is not an archive is the Dockerfile itself, with an empty context', async (t) => {
  const dockerfile = 'FROM busybox\nRUN echo -n "foo-contents" > /foo\nFROM scratch\nCOPY --from=0 /foo /foo\n';
  const server = await serve({ '/df': { body: dockerfile, etag: 'y', contentType: 'text/plain' } });
  t.after(() => server.close());
  const dest = join(b.work, 'http-df-out');
  // -f names nothing here: any name is accepted, as BuildKit's test passes a bogus one.
  const r = await b.kiln(['build', '-q', '-f', 'mydockerfile', '-o', `type=local,dest=${dest}`, `${server.url}/df`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(dest, 'foo'), 'utf8'), 'foo-contents');
});
