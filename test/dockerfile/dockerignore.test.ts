import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIgnoreMatcher, loadDockerignore, parseDockerignore, DockerignorePatternError } from '../../src/dockerfile/index.js';

test('.dockerignore lines: comments skipped, blanks trimmed, paths cleaned, leading slash removed', () => {
  const text = '\ufeff# comment\n\n  node_modules  \n/abs/path\n./rel/../x/\n!  keep.md\n !/tmp\n  # not a comment\r\nsub//dir/\n';
  assert.deepEqual(parseDockerignore(text), ['node_modules', 'abs/path', 'x', '!keep.md', '!tmp', '# not a comment', 'sub/dir']);
});

const single: [pattern: string, path: string, ignored: boolean][] = [
  ['*.log', 'app.log', true],
  ['*.log', 'dir/app.log', false],
  ['**/*.log', 'dir/deeper/app.log', true],
  ['**/*.log', 'app.log', true],
  ['dir', 'dir/any/file', true],
  ['dir/*', 'dir/file', true],
  ['dir/*', 'dir', false],
  ['dir/**', 'dir', false],
  ['dir/**', 'dir/a/b', true],
  ['**', 'anything/at/all', true],
  ['a?c', 'abc', true],
  ['a?c', 'a/c', false],
  ['file[0-9].txt', 'file7.txt', true],
  ['file[0-9].txt', 'filex.txt', false],
  ['file[^0-9].txt', 'filex.txt', true],
  ['[a-c]*', 'beta', true],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'aXb', false],
  ['a\\?', 'a?', true],
  ['.git', '.git/config', true],
  ['.*', '.env', true],
  ['.*', 'env', false],
  ['abc.def', 'abcXdef', false],
  ['a+b(c)', 'a+b(c)', true],
  ['tmp*', 'tmp123/x', true],
  ['**/node_modules', 'pkg/a/node_modules/x.js', true],
  ['./build', 'build/out', true],
];

for (const [pattern, path, ignored] of single) {
  test(`pattern ${JSON.stringify(pattern)} ${ignored ? 'ignores' : 'keeps'} ${path}`, () => {
    assert.equal(createIgnoreMatcher([pattern]).ignores(path), ignored);
  });
}

test('a later exception re-includes, and a later pattern wins over an earlier exception', () => {
  const m = createIgnoreMatcher(['*.md', '!README.md', 'docs', '!docs/keep.md']);
  assert.equal(m.ignores('CHANGES.md'), true);
  assert.equal(m.ignores('README.md'), false);
  assert.equal(m.ignores('docs/a.md'), true);
  assert.equal(m.ignores('docs/keep.md'), false);
  const last = createIgnoreMatcher(['!README.md', '*.md']);
  assert.equal(last.ignores('README.md'), true, 'an exception before the pattern has no effect');
  const again = createIgnoreMatcher(['**', '!app', 'app/secret']);
  assert.equal(again.ignores('app/src/main.go'), false);
  assert.equal(again.ignores('app/secret/key'), true);
  assert.equal(again.ignores('other'), true);
});

test('paths are cleaned before matching; the context root is never ignored', () => {
  const m = createIgnoreMatcher(['a/b']);
  assert.equal(m.ignores('./a/b'), true);
  assert.equal(m.ignores('a//b/'), true);
  assert.equal(m.ignores('/a/b/c'), true);
  assert.equal(m.ignores('a/x/../b'), true);
  assert.equal(createIgnoreMatcher(['*']).ignores('.'), false);
  assert.equal(createIgnoreMatcher(parseDockerignore('/build\n')).ignores('build/x'), true, 'a leading slash is removed when the file is read');
});

test('a directory can be skipped only when no exception could match below it', () => {
  const plain = createIgnoreMatcher(['node_modules', 'build']);
  assert.equal(plain.canSkipDir('node_modules'), true);
  assert.equal(plain.canSkipDir('src'), false, 'not ignored');
  const withException = createIgnoreMatcher(['build', '!build/keep', 'cache', '!**/important']);
  assert.equal(withException.canSkipDir('build'), false, '!build/keep lies below build');
  assert.equal(withException.canSkipDir('cache'), false, '!**/important can match anywhere');
  const narrow = createIgnoreMatcher(['*', '!src/*.go']);
  assert.equal(narrow.canSkipDir('docs'), true, 'the exception only reaches into src');
  assert.equal(narrow.canSkipDir('src'), false);
  assert.equal(narrow.ignores('src/main.go'), false);
  assert.equal(narrow.hasExceptions, true);
  const wild = createIgnoreMatcher(['vendor', '!vendor/[ab]*/keep']);
  assert.equal(wild.canSkipDir('vendor'), false);
  assert.equal(wild.canSkipDir('vendor/cdep'), true, '[ab]* cannot match cdep');
  assert.equal(wild.canSkipDir('vendor/adep'), false);
});

test('malformed patterns are errors', () => {
  assert.throws(() => createIgnoreMatcher(['!']), DockerignorePatternError);
  assert.throws(() => createIgnoreMatcher(['[']), DockerignorePatternError);
  assert.throws(() => createIgnoreMatcher(['a[]']), DockerignorePatternError);
  assert.throws(() => createIgnoreMatcher(['trailing\\']), DockerignorePatternError);
});

test('<Dockerfile>.dockerignore beside the Dockerfile takes precedence over the context .dockerignore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ignore-'));
  try {
    await mkdir(join(dir, 'docker'));
    await writeFile(join(dir, '.dockerignore'), 'from-root\n');
    assert.deepEqual(await loadDockerignore(dir, join(dir, 'Dockerfile')), ['from-root']);
    await writeFile(join(dir, 'docker', 'app.Dockerfile.dockerignore'), '# specific\nfrom-beside\n!keep\n');
    assert.deepEqual(await loadDockerignore(dir, join(dir, 'docker', 'app.Dockerfile')), ['from-beside', '!keep']);
    assert.deepEqual(await loadDockerignore(dir, join(dir, 'docker', 'other.Dockerfile')), ['from-root']);
    await rm(join(dir, '.dockerignore'));
    assert.deepEqual(await loadDockerignore(dir, join(dir, 'Dockerfile')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
