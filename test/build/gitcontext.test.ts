// A git repository as the build context: cloned with the system's git, ref and subdirectory from
// the URL fragment, .git kept out of the context, the clone removed afterwards.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rm, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { isGitContext, parseGitContext } from '../../src/build/gitcontext.js';

let work: string;
let root: string;
let repo: string;
let firstCommit: string;

const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' } }).trim();

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-test-git-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  // The seed's "distribute the image source": a repository with the Dockerfile at its root and an
  // app in a subdirectory, a tag on the first commit and a branch with a change.
  repo = join(work, 'repo');
  await mkdir(join(repo, 'app'), { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  await writeFile(join(repo, 'Dockerfile'), 'FROM busybox\nCOPY . /src\nRUN ls -a /src > /listing\n');
  await writeFile(join(repo, 'version.txt'), 'one\n');
  await writeFile(join(repo, 'app', 'Dockerfile'), 'FROM busybox\nCOPY app.txt /app.txt\n');
  await writeFile(join(repo, 'app', 'app.txt'), 'app\n');
  await writeFile(join(repo, 'alt.Dockerfile'), 'FROM busybox\nCOPY version.txt /alt.txt\n');
  git('add', '.');
  git('commit', '-q', '-m', 'one');
  git('tag', 'v1');
  firstCommit = git('rev-parse', 'HEAD');
  git('checkout', '-q', '-b', 'next');
  await writeFile(join(repo, 'version.txt'), 'two\n');
  git('commit', '-q', '-am', 'two');
  git('checkout', '-q', 'main');
});

after(() => rm(work, { recursive: true, force: true }));

async function built(context: string, file: string, extra: string[] = []): Promise<string> {
  const dest = join(work, `out-${Math.random().toString(36).slice(2)}`);
  await kilnOk(root, ['build', '-q', ...extra, '-o', `type=local,dest=${dest}`, context]);
  return readFile(join(dest, file), 'utf8');
}

test('URLs that name repositories are told from local directories, and the fragment is split', () => {
  for (const yes of ['https://example.com/r.git', 'https://example.com/r.git#main:sub', 'git@example.com:r.git', 'git://h/r', 'file:///srv/r', 'github.com/o/r']) assert.ok(isGitContext(yes), yes);
  for (const no of ['.', 'ctx', '/srv/r', 'https://example.com/r.tar.gz', '-']) assert.ok(!isGitContext(no), no);
  assert.deepEqual(parseGitContext('file:///r#v1:app'), { url: 'file:///r', ref: 'v1', subdir: 'app' });
  assert.deepEqual(parseGitContext('file:///r'), { url: 'file:///r', subdir: '' });
  assert.deepEqual(parseGitContext('file:///r#:app/'), { url: 'file:///r', subdir: 'app' });
  assert.throws(() => parseGitContext('file:///r#main:../x'), /leaves the repository/);
});

test('the default branch, a branch, a tag and a commit build from a file:// repository, without .git', async () => {
  const url = `file://${repo}`;
  const listing = await built(url, 'listing');
  assert.deepEqual(listing.split('\n').filter(Boolean).sort(), ['.', '..', 'Dockerfile', 'alt.Dockerfile', 'app', 'version.txt']);
  assert.equal(await built(`${url}#next`, 'src/version.txt'), 'two\n');
  assert.equal(await built(`${url}#v1`, 'src/version.txt'), 'one\n');
  assert.equal(await built(`${url}#${firstCommit}`, 'src/version.txt'), 'one\n');
  // A subdirectory is the context, and its own Dockerfile is used.
  assert.equal(await built(`${url}#main:app`, 'app.txt'), 'app\n');
  // -f names a file in the repository.
  assert.equal(await built(url, 'alt.txt', ['-f', 'alt.Dockerfile']), 'one\n');
});

test('a repository that cannot be cloned, a missing ref or subdirectory: clear errors, nothing left behind', async () => {
  // A temporary directory of its own: other test files running at the same time clone too.
  const tmp = await mkdtemp(join(work, 'tmp-'));
  const env = { TMPDIR: tmp };
  const missing = await kiln(root, ['build', `file://${join(work, 'no-such-repo')}`], { env });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /build context file:\/\/.*no-such-repo: .*(does not exist|not a git repository|not appear to be a git repository)/);
  const badRef = await kiln(root, ['build', `file://${repo}#no-such-branch`], { env });
  assert.notEqual(badRef.code, 0);
  assert.match(badRef.stderr, /#no-such-branch: .*no-such-branch/);
  const badDir = await kiln(root, ['build', `file://${repo}#main:nope`], { env });
  assert.notEqual(badDir.code, 0);
  assert.match(badDir.stderr, /"nope" is not a directory in the repository/);
  assert.deepEqual((await readdir(tmp)).filter((f) => f.startsWith('kiln-git-context-')), []);
});
