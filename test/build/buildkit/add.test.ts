// BuildKit's frontend/dockerfile/dockerfile_add_test.go, behaviour by behaviour: each test names
// the BuildKit test function(s) it mirrors. URLs are served on loopback; archives are made with tar(1).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { openBuilder, serve, type Builder, type Served } from './builder.js';

let b: Builder;
let server: Served;
const modTime = new Date(Math.floor(Date.now() / 1000) * 1000 - 24 * 3600 * 1000);
let fooTar: Buffer;
let barTar: Buffer;

/** A tar of the given entries (path → content, a `/`-ended path is a directory, {symlink}/{hardlink}), in order. */
function tarOf(entries: [string, string | { symlink: string } | { hardlink: string }][]): Buffer {
  const stage = join(b.work, `tar-${Math.random().toString(36).slice(2)}`);
  execFileSync('mkdir', ['-p', stage]);
  for (const [p, e] of entries) {
    const abs = join(stage, p);
    execFileSync('mkdir', ['-p', p.endsWith('/') ? abs : dirname(abs)]);
    if (p.endsWith('/')) continue;
    if (typeof e === 'string') execFileSync('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', e, abs]);
    else if ('symlink' in e) execFileSync('ln', ['-s', e.symlink, abs]);
    else execFileSync('ln', [join(stage, e.hardlink), abs]);
  }
  return execFileSync('tar', ['--no-recursion', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-C', stage, ...entries.map(([p]) => p)], { maxBuffer: 1 << 24 });
}

before(async () => {
  b = await openBuilder('add');
  fooTar = tarOf([['foo', 'content0']]);
  barTar = tarOf([['bar', 'content1']]);
  server = await serve({
    '/foo': { body: 'content1', etag: 'e1' },
    '/': { body: 'content2', etag: 'e2', lastModified: modTime },
    '/t.tar.gz': { body: gzipSync(fooTar), etag: 'e3' },
  });
});
after(async () => {
  await server.close();
  await b.close();
});

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

test('testDockerfileADDFromURL: ADD names the file after the URL path (or __unnamed__) and dates it by Last-Modified', async () => {
  const dir = await b.context({ Dockerfile: `FROM scratch\nADD ${server.url}/foo /dest/\nADD ${server.url}/ /dest/\n` });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'dest/foo'), 'content1');
  assert.equal(await read(out, 'dest/__unnamed__'), 'content2');
  assert.equal((await stat(join(out, 'dest/__unnamed__'))).mtime.toUTCString(), modTime.toUTCString());
  // A second build of the same URLs re-uses the layer (its key is the downloaded content).
  const again = await b.build(dir);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.stderr.match(/CACHED/g) ?? []).length, 2, again.stderr);
});

test('testDockerfileAddArchive and testDockerfileAddArchiveWildcard: ADD unpacks local tar and tar.gz, --unpack overrides, COPY and URLs do not unpack', async () => {
  const dir = await b.context({
    Dockerfile:
      'FROM scratch\nADD t.tar /a/\nADD t.tar.gz /b/\nADD --unpack=false t.tar.gz /c/\nCOPY t.tar.gz /d/\n' +
      `ADD ${server.url}/t.tar.gz /e/\nADD --unpack=true ${server.url}/t.tar.gz /f/\nADD ${server.url}/t.tar.gz /newname.tar.gz\nADD *.tar /dest\n`,
    't.tar': fooTar,
    't.tar.gz': gzipSync(fooTar),
    'b.tar': barTar,
  });
  const out = await b.tree(dir);
  const gz = await readFile(join(dir, 't.tar.gz'));
  const served = gzipSync(fooTar);
  assert.equal(await read(out, 'a/foo'), 'content0');
  assert.equal(await read(out, 'b/foo'), 'content0');
  assert.deepEqual(await readFile(join(out, 'c/t.tar.gz')), gz);
  await assert.rejects(stat(join(out, 'c/foo')));
  assert.deepEqual(await readFile(join(out, 'd/t.tar.gz')), gz);
  assert.deepEqual(await readFile(join(out, 'e/t.tar.gz')), served);
  assert.equal(await read(out, 'f/foo'), 'content0');
  assert.deepEqual(await readFile(join(out, 'newname.tar.gz')), served);
  assert.equal(await read(out, 'dest/foo'), 'content0');
  assert.equal(await read(out, 'dest/bar'), 'content1');
});

test('testDockerfileAddArchiveWithImpliedParentDir and testDockerfileAddArchiveThroughAbsoluteSymlink: unpacking creates missing parents and follows an absolute link inside the image root', async () => {
  const implied = gzipSync(tarOf([['etc/dnf/', ''], ['etc/dnf/dnf.conf', 'content0']]));
  const rootfs = tarOf([['run/', ''], ['var/', ''], ['var/run', { symlink: '/run' }]]);
  const payload = tarOf([
    ['var/run/act/', ''],
    ['var/run/act/actions/', ''],
    ['var/run/act/actions/broad/', ''],
    ['var/run/act/actions/broad/.git/', ''],
    ['var/run/act/actions/broad/.git/HEAD', 'ref: refs/heads/main\n'],
    ['var/run/act/actions/broad/.git/HEAD.link', { hardlink: 'var/run/act/actions/broad/.git/HEAD' }],
  ]);
  const dir = await b.context({ Dockerfile: 'FROM scratch\nADD t.tar.gz /\nADD rootfs.tar /\nADD payload.tar /\n', 't.tar.gz': implied, 'rootfs.tar': rootfs, 'payload.tar': payload });
  const out = await b.tree(dir);
  assert.equal(await read(out, 'etc/dnf/dnf.conf'), 'content0');
  const head = join(out, 'run/act/actions/broad/.git/HEAD');
  assert.equal(await readFile(head, 'utf8'), 'ref: refs/heads/main\n');
  assert.equal(await read(out, 'run/act/actions/broad/.git/HEAD.link'), 'ref: refs/heads/main\n');
  assert.equal((await stat(head)).ino, (await stat(join(out, 'run/act/actions/broad/.git/HEAD.link'))).ino, 'the hard link stays one file');
});

test('testDockerfileAddChownArchive: ADD --chown owns the unpacked files and the destination directory', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nADD --chown=100:200 t.tar /out/\n', 't.tar': fooTar });
  const dest = join(b.work, 'chown-archive.tar');
  const r = await b.build(dir, ['-o', `type=tar,dest=${dest}`]);
  assert.equal(r.code, 0, r.stderr);
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', dest], { encoding: 'utf8' });
  assert.match(listing, /^-\S+ 100\/200 .* out\/foo$/m);
  assert.match(listing, /^d\S+ 100\/200 .* out\/?$/m);
  assert.equal(execFileSync('tar', ['-xOf', dest, 'out/foo'], { encoding: 'utf8' }), 'content0');
});

test('testDockerfileAddChownExpand and testAddURLChmod: --chown and --chmod take variables; --chmod applies to downloaded files', async () => {
  const dir = await b.context({
    Dockerfile:
      `FROM busybox AS build\nARG group\nENV owner 1000\nADD --chown=\${owner}:\${group} foo /\nRUN [ "$(stat -c "%u %G" /foo)" = "1000 nogroup" ]\n` +
      `ADD --chmod=644 ${server.url}/foo /tmp/foo1\nADD --chmod=755 ${server.url}/foo /tmp/foo2\nADD --chmod=0413 ${server.url}/foo /tmp/foo3\nARG mode\nADD --chmod=\${mode} ${server.url}/foo /tmp/foo4\n` +
      'RUN for f in 1 2 3 4; do stat -c "%04a" /tmp/foo$f; done > /dest\nFROM scratch\nCOPY --from=build /dest /dest\n',
    foo: 'foo-contents',
  });
  // The fixture's busybox calls group 65534 "nogroup" (docker's busybox: "nobody").
  const out = await b.tree(dir, ['--build-arg', 'group=nogroup', '--build-arg', 'mode=400']);
  assert.equal(await read(out, 'dest'), '0644\n0755\n0413\n0400\n');
});

test('testAddInvalidChmod: ADD --chmod that is not octal or above 07777 is refused', async () => {
  for (const mode of ['64a', '10000']) {
    const dir = await b.context({ Dockerfile: `FROM scratch\nADD --chmod=${mode} foo /\n`, foo: 'foo-contents' });
    const r = await b.build(dir);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`invalid chmod parameter: '${mode}'. it should be octal string and between 0 and 07777`), r.stderr);
  }
});

test('testAddChecksum: ADD --checksum verifies a download, takes variables, and refuses unknown algorithms, bare hex and local sources', async () => {
  const good = 'sha256:' + createHash('sha256').update('content1').digest('hex');
  const ok = async (dockerfile: string, files: Record<string, string> = {}) => {
    const r = await b.build(await b.context({ Dockerfile: dockerfile, ...files }));
    assert.equal(r.code, 0, r.stderr);
  };
  const fails = async (dockerfile: string, message: RegExp, files: Record<string, string> = {}) => {
    const r = await b.build(await b.context({ Dockerfile: dockerfile, ...files }));
    assert.notEqual(r.code, 0, dockerfile);
    assert.match(r.stderr, message);
  };
  await ok(`FROM scratch\nADD --checksum=${good} ${server.url}/foo /tmp/foo\n`);
  await ok(`FROM scratch\nADD --checksum=sha512:${createHash('sha512').update('content1').digest('hex')} ${server.url}/foo /tmp/foo\n`);
  await ok(`FROM scratch\nENV DIGEST=${good}\nENV LINK=${server.url}/foo\nADD --checksum=\${DIGEST} \${LINK} /tmp/foo\n`);
  const empty = 'sha256:' + createHash('sha256').update('').digest('hex');
  await fails(`FROM scratch\nADD --checksum=${empty} ${server.url}/foo /tmp/foo\n`, /checksum mismatch|digest mismatch/);
  await fails(`FROM scratch\nADD --checksum=md5:7e55db001d319a94b0b713529a756623 ${server.url}/foo /tmp/foo\n`, /unsupported digest algorithm/);
  await fails(`FROM scratch\nADD --checksum=unknown:${good.slice(7)} ${server.url}/foo /tmp/foo\n`, /unsupported digest algorithm/);
  await fails(`FROM scratch\nADD --checksum=${good.slice(7)} ${server.url}/foo /tmp/foo\n`, /invalid checksum digest format/);
  await fails(`FROM scratch\nADD --checksum=${'sha256:' + createHash('sha256').update('local file').digest('hex')} foo /tmp/foo\n`, /checksum requires HTTP\(S\) or Git sources/, { foo: 'local file' });
});

