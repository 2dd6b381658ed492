// BuildKit's frontend/dockerfile/dockerfile_addgit_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. Repositories are served over git's dumb HTTP protocol
// from a static file server on loopback. busybox has no git, so what BuildKit checks with git in a
// RUN is checked on the exported tree.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, stat, writeFile, mkdir, mkdtemp, lstat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, serveDirectory, type Builder, type Served } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('addgit');
});
after(() => b.close());

const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_GLOBAL: '/dev/null' };
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', env: gitEnv }).trim();

/** A repository with a commit and a tag per version, each writing "foo of TAG" to foo; served over HTTP. */
async function taggedRepo(t: { after: (fn: () => Promise<void>) => void }, name: string, format: 'sha1' | 'sha256', tags: string[]): Promise<{ url: string; commits: Record<string, string> }> {
  const repo = join(b.work, name);
  await mkdir(repo, { recursive: true });
  git(repo, 'init', '-q', '-b', 'master', `--object-format=${format}`);
  const commits: Record<string, string> = {};
  for (const tag of tags) {
    await writeFile(join(repo, 'foo'), `foo of ${tag}\n`);
    git(repo, 'add', 'foo');
    git(repo, 'commit', '-q', '-m', tag);
    git(repo, 'tag', tag);
    commits[tag] = git(repo, 'rev-parse', tag);
  }
  git(repo, 'update-server-info');
  const server: Served = await serveDirectory(repo);
  t.after(() => server.close());
  return { url: `${server.url}/.git`, commits };
}

for (const format of ['sha1', 'sha256'] as const) {
  test(`testAddGit${format.toUpperCase()}: ADD of a repository by tag or commit, --keep-git-dir, --chown, --checksum (${format} objects)`, async (t) => {
    const { url, commits } = await taggedRepo(t, `repo-${format}`, format, ['v0.0.1', 'v0.0.2', 'v0.0.3']);
    const dir = await b.context({
      Dockerfile:
        `FROM busybox\nADD ${url}#v0.0.1 /x\nRUN [ "$(cat /x/foo)" = "foo of v0.0.1" ]\n` +
        `ARG REPO="${url}"\nARG TAG="v0.0.2"\nADD --keep-git-dir=true --chown=4242:8484 --checksum=${commits['v0.0.2']} \${REPO}#\${TAG} /buildkit-chowned\n` +
        'USER 4242\nRUN cd /buildkit-chowned && [ "$(cat foo)" = "foo of v0.0.2" ] && [ "$(stat -c %u foo)" = 4242 ] && [ "$(stat -c %g foo)" = 8484 ]\nUSER root\n' +
        `ADD --checksum=${commits['v0.0.3']} \${REPO}#v0.0.3 /nogitdir\nRUN [ "$(cat /nogitdir/foo)" = "foo of v0.0.3" ] && [ ! -d /nogitdir/.git ]\n` +
        `ADD --keep-git-dir --checksum=${commits['v0.0.2']} \${REPO}#\${TAG} /again\nRUN [ "$(cat /again/foo)" = "foo of v0.0.2" ] && [ -d /again/.git ]\n` +
        `ARG COMMIT="${commits['v0.0.3']}"\nADD --keep-git-dir=true --checksum=${commits['v0.0.3']} \${REPO}#\${COMMIT} /commitdir\nRUN [ "$(cat /commitdir/foo)" = "foo of v0.0.3" ] && [ -d /commitdir/.git ]\n`,
    });
    const out = await b.tree(dir);
    // The kept .git is a repository whose work tree is clean (BuildKit: git status -s is empty).
    assert.equal(execFileSync('git', ['-c', 'safe.directory=*', '-C', join(out, 'buildkit-chowned'), 'status', '-s'], { encoding: 'utf8', env: gitEnv }), '');
    assert.equal(git(join(out, 'commitdir'), '-c', 'safe.directory=*', 'rev-parse', 'HEAD'), commits['v0.0.3']);
    const mismatch = await b.build(await b.context({ Dockerfile: `FROM busybox\nADD --checksum=${commits['v0.0.2']} ${url}#v0.0.3 /faildir\n` }));
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /expected checksum to match/);
    const garbage = await b.build(await b.context({ Dockerfile: `FROM busybox\nADD --checksum=foobar ${url}#v0.0.3 /faildir\n` }));
    assert.notEqual(garbage.code, 0);
    assert.match(garbage.stderr, /invalid checksum/);
    assert.match(garbage.stderr, /expected hex commit hash/);
  });
}

test('testAddGitChecksumCache: adding --checksum to an ADD of a repository keeps its cache', async (t) => {
  const { url, commits } = await taggedRepo(t, 'repo-cache', 'sha1', ['v0.0.1', 'v0.0.2']);
  const dockerfile = (checksum: string) =>
    `FROM busybox AS src\nADD --keep-git-dir ${checksum}${url}#v0.0.2 /repo\nRUN head -c 16 /dev/urandom | base64 > /repo/unique.txt\nFROM scratch\nCOPY --from=src /repo/unique.txt /\n`;
  const one = await b.tree(await b.context({ Dockerfile: dockerfile('') }));
  const two = await b.tree(await b.context({ Dockerfile: dockerfile(`--checksum=${commits['v0.0.2']} `) }));
  assert.equal(await readFile(join(two, 'unique.txt'), 'utf8'), await readFile(join(one, 'unique.txt'), 'utf8'));
});

test('testGitQueryString (ADD): ?ref=, ?tag=, ?commit= (full or a prefix), ?subdir= and ?keep-git-dir=, and refs the repository lacks', async (t) => {
  const repo = join(b.work, 'repo-query');
  await mkdir(join(repo, 'sub'), { recursive: true });
  git(repo, 'init', '-q', '-b', 'master');
  await writeFile(join(repo, 'foo'), 'base\n');
  git(repo, 'add', 'foo');
  git(repo, 'commit', '-q', '-m', 'base');
  git(repo, 'branch', 'base');
  await writeFile(join(repo, 'foo'), 'v0.0.2\n');
  await writeFile(join(repo, 'sub', 'foo'), 'subfeature\n');
  git(repo, 'add', 'foo', 'sub');
  git(repo, 'commit', '-q', '-m', 'v0.0.2');
  git(repo, 'tag', 'v0.0.2');
  const v2 = git(repo, 'rev-parse', 'v0.0.2');
  await writeFile(join(repo, 'foo'), 'latest\n');
  git(repo, 'commit', '-q', '-am', 'latest');
  const latest = git(repo, 'rev-parse', 'HEAD');
  git(repo, 'update-server-info');
  const server = await serveDirectory(repo);
  t.after(() => server.close());
  const url = `${server.url}/.git`;
  const cases: { q: string; want?: string; err?: RegExp }[] = [
    { q: '#v0.0.2', want: 'v0.0.2\n' },
    { q: '?ref=base', want: 'base\n' },
    { q: '?branch=base', want: 'base\n' },
    { q: '?tag=v0.0.2#refs/tags/v0.0.2', want: 'v0.0.2\n' },
    { q: `?commit=${latest}`, want: 'latest\n' },
    { q: `?commit=${latest.slice(0, 8)}`, want: 'latest\n' },
    { q: `?ref=${v2}`, want: 'v0.0.2\n' },
    { q: '?subdir=sub&tag=v0.0.2', want: 'subfeature\n' },
    { q: `?tag=v0.0.2&commit=${latest}`, err: /expected checksum to match/ },
    { q: `?commit=${v2.slice(0, 8)}#master`, err: /expected checksum to match/ },
    { q: '?branch=invalid', err: /repository does not contain ref/ },
  ];
  for (const c of cases) {
    const dir = await b.context({ Dockerfile: `FROM scratch\nADD ${url}${c.q} /out/\n` });
    const dest = join(b.work, 'q-' + Math.random().toString(36).slice(2));
    // Each build clones into a TMPDIR of its own, so what a refused ADD leaves there is its own.
    const tmp = await mkdtemp(join(b.work, 'tmp-'));
    const r = await b.build(dir, ['-o', `type=local,dest=${dest}`], { env: { ...process.env, TMPDIR: tmp } });
    assert.deepEqual(await readdir(tmp), [], `${c.q}: the clone is removed, whether the ADD succeeded or not`);
    if (c.err) {
      assert.notEqual(r.code, 0, c.q);
      assert.match(r.stderr, c.err, c.q);
    } else {
      assert.equal(r.code, 0, `${c.q}: ${r.stderr}`);
      assert.equal(await readFile(join(dest, 'out/foo'), 'utf8'), c.want, c.q);
    }
  }
  const kept = await b.tree(await b.context({ Dockerfile: `FROM scratch\nADD ${url}?keep-git-dir=true&tag=v0.0.2 /out/\n` }));
  assert.equal(await readFile(join(kept, 'out/foo'), 'utf8'), 'v0.0.2\n');
  assert.ok((await lstat(join(kept, 'out/.git'))).isDirectory());
  const plain = await b.tree(await b.context({ Dockerfile: `FROM scratch\nADD ${url}?tag=v0.0.2 /out/\n` }));
  await assert.rejects(stat(join(plain, 'out/.git')));
});
