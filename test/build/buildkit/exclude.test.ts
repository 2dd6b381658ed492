// BuildKit's frontend/dockerfile/exclude_patterns_test.go (testExcludedFilesOnCopy): COPY and ADD
// --exclude, from the context and from a stage that a git source (served over loopback HTTP) filled.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { openBuilder, serve, type Builder, type Entry } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('exclude');
});
after(() => b.close());

const files: Record<string, Entry> = {
  'dir1/file-101.png': '2',
  'dir1/file-102.txt': '3',
  'dir1/file-103.jpeg': '4',
  'dir2/file-201.pdf': '6',
  'dir2/file-202.jpeg': '7',
  'dir2/file-203.png': '8',
  'dir3/file-301.mp3': '9',
  'dir3/file-302.mpeg': '10',
  'dir4/file-401.txt': '11',
  'dir4/file-402.txt': { symlink: 'file-401.txt' },
  'dir4/file-403.txt': { symlink: 'file-404.txt' },
};

/** Expected content (a link's target for links), or null for a path that must be absent. */
const expected: Record<string, string | null> = {
  'builder1/1/dir1/file-101.png': null,
  'builder1/1/dir1/file-102.txt': '3',
  'builder1/1/dir1/file-103.jpeg': null,
  'builder1/1/dir2/file-201.pdf': '6',
  'builder1/1/dir2/file-202.jpeg': null,
  'builder1/1/dir2/file-203.png': null,
  'builder1/1/dir3/file-301.mp3': '9',
  'builder1/1/dir3/file-302.mpeg': '10',
  'builder1/1/dir4/file-401.txt': '11',
  'builder1/1/dir4/file-402.txt': 'file-401.txt',
  'builder1/1/dir4/file-403.txt': 'file-404.txt',
  'builder2/2/dir1/file-101.png': '2',
  'builder2/2/dir1/file-102.txt': null,
  'builder2/2/dir1/file-103.jpeg': '4',
  'builder2/2/dir2/file-201.pdf': null,
  'builder2/2/dir2/file-202.jpeg': '7',
  'builder2/2/dir2/file-203.png': '8',
  'builder2/2/dir3/file-301.mp3': '9',
  'builder2/2/dir3/file-302.mpeg': '10',
  'builder2/2/dir4/file-401.txt': null,
  'builder2/2/dir4/file-402.txt': null,
  'builder2/2/dir4/file-403.txt': null,
  'builder3/3/file-301.mp3': null,
  'builder3/3/file-302.mpeg': '10',
  'builder4/4/file-101.png': null,
  'builder4/4/file-102.txt': null,
  'builder4/4/file-103.jpeg': null,
  'builder4/4/file-201.pdf': null,
  'builder4/4/file-202.jpeg': null,
  'builder4/4/file-203.png': null,
  'builder4/4/file-301.mp3': null,
  'builder4/4/file-302.mpeg': '10',
  'builder4/4/dir4/file-401.txt': null,
  'builder4/4/dir4/file-402.txt': null,
  'builder4/4/dir4/file-403.txt': null,
  'builder5/5/file-101.png': null,
  'builder5/5/file-102.txt': '3',
  'builder5/5/file-103.jpeg': null,
  'builder5/5/file-201.pdf': null,
  'builder5/5/file-202.jpeg': null,
  'builder5/5/file-203.png': null,
  'builder5/5/file-301.mp3': null,
  'builder5/5/file-302.mpeg': null,
  'builder5/5/file-401.txt': '11',
  'builder5/5/file-402.txt': 'file-401.txt',
  'builder5/5/file-403.txt': 'file-404.txt',
};

/** The six builder stages, reading with `from` (empty: the context), then one stage gathering them. */
function stages(from: string, add: string): string {
  const f = from ? ` --from=${from}` : '';
  return [
    'FROM scratch AS builder1',
    `COPY${f} --exclude=*/*.png --exclude=*/*.jpeg . /1`,
    'FROM scratch AS builder2',
    `COPY${f} --exclude=*/*.pdf --exclude=*/*.txt . /2`,
    'FROM scratch AS builder3',
    `${add}${f} --exclude=*.mp3 dir3/ /3/`,
    'FROM scratch AS builder4',
    `COPY${f} --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/`,
    'FROM scratch AS builder5',
    `${add}${f} --exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5`,
    'FROM scratch AS builder6',
    `${add}${f} --exclude=* dir* /6`,
    'FROM scratch',
    ...[1, 2, 3, 4, 5, 6].map((n) => `COPY --from=builder${n} / /builder${n}`),
    '',
  ].join('\n');
}

async function check(out: string): Promise<void> {
  for (const [name, want] of Object.entries(expected)) {
    const p = join(out, name);
    const st = await lstat(p).catch(() => undefined);
    if (want === null) {
      assert.equal(st, undefined, `${name} should be excluded`);
      continue;
    }
    assert.ok(st, `${name} should exist`);
    assert.equal(st.isSymbolicLink() ? await readlink(p) : await readFile(p, 'utf8'), want, name);
  }
  assert.deepEqual(await readdir(join(out, 'builder6/6')), []);
}

test('testExcludedFilesOnCopy (context): --exclude leaves out what it matches, in COPY and ADD, with wildcard sources', async () => {
  const dir = await b.context({ ...files, Dockerfile: stages('', 'ADD') });
  await check(await b.tree(dir));
});

test('testExcludedFilesOnCopy (git source): the same --exclude patterns on a stage filled by ADD of a git repository', async () => {
  const repo = await b.context(files);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, stdio: 'pipe' });
  git('init', '-q');
  git('config', 'user.email', 'test@example.com');
  git('config', 'user.name', 'test');
  git('add', '.');
  git('commit', '-q', '-m', '0.1');
  git('tag', '0.1');
  git('update-server-info');
  // A dumb-HTTP git server: the repository's .git directory, file by file.
  const server = await serve((path) => {
    try {
      return { body: execFileSync('cat', [join(repo, decodeURIComponent(path))]) };
    } catch {
      return undefined;
    }
  });
  try {
    // The source is named through ARGs, as BuildKit's test names it.
    const dockerfile = `FROM scratch AS base\nARG REPO="${server.url}/.git"\nARG TAG="0.1"\nADD --keep-git-dir=true \${REPO}#\${TAG} /\n` + stages('base', 'COPY');
    await check(await b.tree(await b.context({ Dockerfile: dockerfile })));
  } finally {
    await server.close();
  }
});
