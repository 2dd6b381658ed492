// BuildKit's frontend/dockerfile/dockerfile_source_date_epoch_test.go, behaviour by behaviour: each
// test names the BuildKit test function it mirrors. BuildKit marks a layer whose timestamps it
// rewrote with a `buildkit/rewritten-timestamp` annotation (exporter rewrite-timestamp=true); kiln
// always clamps the mtimes of the layers it writes to SOURCE_DATE_EPOCH and adds no annotation, so
// these tests read the mtimes in the layer instead.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { openBuilder, serve, serveDirectory, type Builder } from './builder.js';
import { fixture } from '../../support/env.js';

let b: Builder;
before(async () => {
  b = await openBuilder('sourcedate');
});
after(() => b.close());

interface OCI {
  manifestDigest: string;
  manifest: any;
  config: any;
  /** Each layer's entries: path (no leading ./ or /) → mtime in seconds. */
  layers: Map<string, number>[];
  /** Each layer's entries: path → content (regular files only). */
  contents: Map<string, string>[];
}

function blob(archive: string, digest: string): Buffer {
  return execFileSync('tar', ['-xOf', archive, `blobs/sha256/${digest.replace(/^sha256:/, '')}`], { maxBuffer: 1 << 28 });
}

/** A tar's regular entries and directories, with their mtimes and (small) contents. */
function entries(tar: Buffer): { mtimes: Map<string, number>; contents: Map<string, string> } {
  const data = tar[0] === 0x1f && tar[1] === 0x8b ? gunzipSync(tar) : tar;
  const mtimes = new Map<string, number>();
  const contents = new Map<string, string>();
  let paxPath: string | undefined;
  for (let off = 0; off + 512 <= data.length; ) {
    const h = data.subarray(off, off + 512);
    if (h.every((c) => c === 0)) break;
    const str = (a: number, n: number) => h.subarray(a, a + n).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 12).trim() || '0', 8);
    const type = str(156, 1) || '0';
    const body = data.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      paxPath = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
      continue;
    }
    if (type === 'g') continue;
    const prefix = str(345, 155);
    const name = (paxPath ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100))).replace(/^\.?\//, '').replace(/\/$/, '');
    paxPath = undefined;
    mtimes.set(name, parseInt(str(136, 12).trim(), 8));
    if (type === '0') contents.set(name, body.toString('utf8'));
  }
  return { mtimes, contents };
}

function readOCI(archive: string): OCI {
  const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' }));
  const manifestDigest: string = index.manifests[0].digest;
  const manifest = JSON.parse(blob(archive, manifestDigest).toString('utf8'));
  const config = JSON.parse(blob(archive, manifest.config.digest).toString('utf8'));
  const layers: Map<string, number>[] = [];
  const contents: Map<string, string>[] = [];
  for (const l of manifest.layers) {
    const e = entries(blob(archive, l.digest));
    layers.push(e.mtimes);
    contents.push(e.contents);
  }
  return { manifestDigest, manifest, config, layers, contents };
}

let outputs = 0;
/** Build the context into an OCI archive and read it back; fails the test when the build fails. */
async function buildOCI(dir: string, args: string[] = []): Promise<OCI> {
  const dest = join(b.work, `sde-${++outputs}.tar`);
  const r = await b.build(dir, [...args, '-o', `type=oci,dest=${dest}`]);
  assert.equal(r.code, 0, r.stderr);
  return readOCI(dest);
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

test('testSourceDateEpochWithoutExporter: the SOURCE_DATE_EPOCH build arg sets the image created time and every history entry', async () => {
  const tm = 1700000001;
  const dir = await b.context({ Dockerfile: 'FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n' });
  const img = await buildOCI(dir, ['--build-arg', `SOURCE_DATE_EPOCH=${tm}`]);
  assert.equal(seconds(img.config.created), tm);
  assert.ok(img.config.history.length >= 2);
  for (const h of img.config.history) assert.equal(seconds(h.created), tm);
});

test('testReproSourceDateEpoch: uncached builds give the same digest; base layers and history stay as they are; new layers have mtimes clamped to the epoch', async () => {
  const tm = Date.UTC(2023, 0, 10, 12, 34, 56) / 1000; // 1673354096
  const base = readOCI(fixture('busybox'));
  const baseLayers: string[] = base.manifest.layers.map((l: any) => l.digest);
  const baseHistory: string[] = base.config.history.map((h: any) => h.created);
  const cases: { name: string; dockerfile: string; files?: Record<string, string>; check?: (img: OCI) => void }[] = [
    {
      name: 'Basic',
      dockerfile: [
        'FROM busybox',
        'RUN touch /foo',
        'RUN touch /foo.1',
        "RUN touch -d '2010-01-01 12:34:56' /foo-2010",
        "RUN touch -d '2010-01-01 12:34:56' /foo-2010.1",
        "RUN touch -d '2030-01-01 12:34:56' /foo-2030",
        "RUN touch -d '2030-01-01 12:34:56' /foo-2030.1",
        'RUN rm -f /foo.1',
        'RUN rm -f /foo-2010.1',
        'RUN rm -f /foo-2030.1',
        '',
      ].join('\n'),
      check: (img) => {
        const at = (path: string) => img.layers.find((l) => l.has(path))?.get(path);
        assert.equal(at('foo'), tm, 'a file made now is clamped to the epoch');
        assert.equal(at('foo-2010'), Date.UTC(2010, 0, 1, 12, 34, 56) / 1000, 'an older mtime is kept');
        assert.equal(at('foo-2030'), tm, 'a later mtime is clamped to the epoch');
        for (const l of img.layers.slice(baseLayers.length)) for (const [p, m] of l) assert.ok(m <= tm, `${p}: ${m} > ${tm}`);
      },
    },
    {
      name: 'CopyLink',
      dockerfile: 'FROM busybox\nCOPY --link foo foo\n',
      files: { foo: 'foo' },
      check: (img) => assert.equal(img.layers.at(-1)!.get('foo'), tm),
    },
    { name: 'NoAdditionalLayer', dockerfile: 'FROM busybox\n', check: (img) => assert.equal(img.layers.length, baseLayers.length) },
  ];
  const args = ['--no-cache', '--build-arg', `SOURCE_DATE_EPOCH=${tm}`];
  const dirs: string[] = [];
  const firsts: OCI[] = [];
  for (const c of cases) {
    dirs.push(await b.context({ Dockerfile: c.dockerfile, ...c.files }));
    firsts.push(await buildOCI(dirs.at(-1)!, args));
  }
  // Without the epoch the second builds' times would differ: a second later makes that visible.
  await sleep(1100);
  for (const [i, c] of cases.entries()) {
    const first = firsts[i]!;
    const second = await buildOCI(dirs[i]!, args);
    assert.equal(second.manifestDigest, first.manifestDigest, `${c.name}: the digest is reproducible`);
    // The base image's history keeps its own times; its layers are the base image's blobs.
    for (const [i, created] of baseHistory.entries()) assert.equal(first.config.history[i].created, created, `${c.name}: base history ${i}`);
    for (const [i, d] of baseLayers.entries()) assert.equal(first.manifest.layers[i].digest, d, `${c.name}: base layer ${i}`);
    c.check?.(first);
  }
});

test('testSourceDateEpochDockerfileDefault: a global ARG SOURCE_DATE_EPOCH default applies without a build arg', async () => {
  const tm = Date.UTC(2015, 9, 21, 7, 28, 0) / 1000;
  const dir = await b.context({ Dockerfile: `ARG SOURCE_DATE_EPOCH=${tm}\nFROM scratch\nCOPY Dockerfile .\n` });
  const img = await buildOCI(dir);
  assert.equal(img.layers.length, 1);
  assert.equal(img.layers[0]!.get('Dockerfile'), tm);
  assert.equal(seconds(img.config.created), tm);
});

test('testSourceDateEpochDockerfileDefaultOverride: the build arg wins over the Dockerfile default', async () => {
  const [defaultTM, overrideTM] = [1700000001, 1700000002];
  const dir = await b.context({ Dockerfile: `ARG SOURCE_DATE_EPOCH=${defaultTM}\nFROM scratch\nCOPY Dockerfile .\n` });
  const img = await buildOCI(dir, ['--build-arg', `SOURCE_DATE_EPOCH=${overrideTM}`]);
  assert.equal(img.layers.length, 1);
  assert.equal(img.layers[0]!.get('Dockerfile'), overrideTM);
});

test('testSourceDateEpochDockerfileDefaultReset: an empty value resets the Dockerfile default (kiln: --build-arg SOURCE_DATE_EPOCH= for the exporter attribute source-date-epoch=)', async () => {
  const tm = Date.UTC(2015, 9, 21, 7, 28, 0) / 1000;
  const dir = await b.context({ Dockerfile: `ARG SOURCE_DATE_EPOCH=${tm}\nFROM scratch\nCOPY Dockerfile .\n` });
  const img = await buildOCI(dir, ['--build-arg', 'SOURCE_DATE_EPOCH=']);
  assert.equal(img.layers.length, 1);
  assert.ok(img.layers[0]!.get('Dockerfile')! > tm, 'the file keeps its own mtime');
});

test('testSourceDateEpochDockerfileDefaultInvalid: a default that is not a timestamp fails the build', async () => {
  const dir = await b.context({ Dockerfile: 'ARG SOURCE_DATE_EPOCH=not-a-timestamp\nFROM scratch\nCOPY Dockerfile .\n' });
  const r = await b.build(dir, ['-o', `type=oci,dest=${join(b.work, 'invalid.tar')}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /invalid SOURCE_DATE_EPOCH: not-a-timestamp/);
});

test('testSourceDateEpochContextLocalUnset: SOURCE_DATE_EPOCH=context with a local context leaves the epoch unset', async () => {
  const dir = await b.context({ Dockerfile: 'FROM scratch\nCOPY Dockerfile /\n' });
  const img = await buildOCI(dir, ['--build-arg', 'SOURCE_DATE_EPOCH=context']);
  assert.equal(img.layers.length, 1);
  // Unclamped: the file's own mtime, which is now.
  assert.ok(Math.abs(img.layers[0]!.get('Dockerfile')! - Date.now() / 1000) < 120);
});

test('testSourceDateEpochStageOverride: the build arg wins over a Dockerfile default that names a stage', async () => {
  const server = await serve({ '/src.tar': { body: execFileSync('tar', ['-c', '--mtime=@1700000501', '-C', await b.context({ foo: 'bar' }), 'foo']), etag: 'src' } });
  try {
    const overrideTM = 1700000502;
    const dir = await b.context({ Dockerfile: `ARG SOURCE_DATE_EPOCH=mysource\nFROM scratch AS mysource\nADD ${server.url}/src.tar /\nFROM scratch\nCOPY Dockerfile .\n` });
    const img = await buildOCI(dir, ['--build-arg', `SOURCE_DATE_EPOCH=${overrideTM}`]);
    assert.equal(img.layers.length, 1);
    assert.equal(img.layers[0]!.get('Dockerfile'), overrideTM);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochStageInvalid: a SOURCE_DATE_EPOCH stage that is more than FROM scratch and one remote ADD is refused', async () => {
  const dir = await b.context({ Dockerfile: 'ARG SOURCE_DATE_EPOCH=mysource\nFROM scratch AS mysource\nCOPY Dockerfile /Dockerfile\nFROM scratch\n' });
  const r = await b.build(dir, ['-o', `type=oci,dest=${join(b.work, 'stage-invalid.tar')}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SOURCE_DATE_EPOCH stage does not meet source-only requirements/);
});

/** A tar of the given files, each with its own mtime (seconds). */
async function tarOf(files: { name: string; data: string; mtime: number }[]): Promise<Buffer> {
  const dir = await b.context(Object.fromEntries(files.map((f) => [f.name, f.data])));
  for (const f of files) execFileSync('touch', ['-d', `@${f.mtime}`, join(dir, f.name)]);
  return execFileSync('tar', ['-c', '--owner=0', '--group=0', '-C', dir, ...files.map((f) => f.name)]);
}

test('testSourceDateEpochContextHTTPLastModified: SOURCE_DATE_EPOCH=context with an HTTP context takes its Last-Modified', async () => {
  const lastModified = 1700000201;
  const archiveMax = 1700000202;
  const body = await tarOf([
    { name: 'Dockerfile', data: 'FROM scratch\nCOPY foo /\n', mtime: archiveMax - 3600 },
    { name: 'foo', data: 'bar', mtime: archiveMax },
  ]);
  const server = await serve({ '/context.tar': { body, etag: 'ctx1', lastModified: new Date(lastModified * 1000) } });
  try {
    const dest = join(b.work, 'ctx-http-lm.tar');
    const r = await b.kiln(['build', '--progress', 'plain', '--build-arg', 'SOURCE_DATE_EPOCH=context', '-o', `type=oci,dest=${dest}`, `${server.url}/context.tar`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(seconds(readOCI(dest).config.created), lastModified);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochContextHTTPArchive: without Last-Modified, the newest entry of the archive context is the epoch', async () => {
  const archiveMax = 1700000302;
  const body = await tarOf([
    { name: 'Dockerfile', data: 'FROM busybox\nARG SOURCE_DATE_EPOCH\nRUN echo -n "$SOURCE_DATE_EPOCH" >/epoch\n', mtime: archiveMax - 3600 },
    { name: 'foo', data: 'bar', mtime: archiveMax },
  ]);
  const server = await serve({ '/context.tar': { body, etag: 'ctx2' } });
  try {
    const dest = join(b.work, 'ctx-http-archive.tar');
    const r = await b.kiln(['build', '--progress', 'plain', '--build-arg', 'SOURCE_DATE_EPOCH=context', '-o', `type=oci,dest=${dest}`, `${server.url}/context.tar`]);
    assert.equal(r.code, 0, r.stderr);
    const img = readOCI(dest);
    assert.equal(img.layers.at(-1)!.get('epoch'), archiveMax);
    assert.equal(img.contents.at(-1)!.get('epoch'), String(archiveMax));
    assert.equal(seconds(img.config.created), archiveMax);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochStageHTTPArchive: a stage of FROM scratch and one remote ADD gives the epoch: its archive\'s newest entry', async () => {
  const archiveMax = 1700000402;
  const server = await serve({ '/src.tar': { body: await tarOf([{ name: 'foo', data: 'bar', mtime: archiveMax }]), etag: 'src2' } });
  try {
    const dir = await b.context({
      Dockerfile: `ARG SOURCE_DATE_EPOCH=mysource\nFROM scratch AS mysource\nADD ${server.url}/src.tar /\nFROM busybox\nARG SOURCE_DATE_EPOCH\nRUN echo -n "$SOURCE_DATE_EPOCH" >/epoch\n`,
    });
    const img = await buildOCI(dir);
    assert.equal(img.layers.at(-1)!.get('epoch'), archiveMax);
    assert.equal(img.contents.at(-1)!.get('epoch'), String(archiveMax));
    assert.equal(seconds(img.config.created), archiveMax);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochContextGit: SOURCE_DATE_EPOCH=context with a git context over HTTP is its commit\'s time', async () => {
  const commitTime = 1700000101;
  const repo = join(b.work, 'sde-git');
  const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@example.com', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@example.com' };
  const date = new Date(commitTime * 1000).toISOString();
  execFileSync('mkdir', ['-p', repo]);
  execFileSync('sh', ['-c', 'printf "FROM scratch\\nCOPY Dockerfile /\\n" > Dockerfile && git init -q && git add Dockerfile && git commit -q -m msg && git update-server-info'], {
    cwd: repo,
    env: { ...env, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
  });
  const server = await serveDirectory(repo);
  try {
    // BuildKit dockerfile_source_date_epoch_test.go:322-347: the context is SERVER/.git, the created time the commit's.
    const dest = join(b.work, 'sde-git.tar');
    const r = await b.kiln(['build', '--progress', 'plain', '--build-arg', 'SOURCE_DATE_EPOCH=context', '-o', `type=oci,dest=${dest}`, `${server.url}/.git`]);
    assert.equal(r.code, 0, r.stderr);
    const img = readOCI(dest);
    assert.equal(seconds(img.config.created), commitTime);
    assert.equal(img.layers.at(-1)!.get('Dockerfile'), commitTime);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochNamedContextHTTPLastModified: SOURCE_DATE_EPOCH naming an http(s) --build-context takes its Last-Modified', async () => {
  const lastModified = 1700000601;
  const body = await tarOf([{ name: 'foo', data: 'bar', mtime: lastModified + 3600 }]);
  const server = await serve({ '/src.tar': { body, etag: 'named1', lastModified: new Date(lastModified * 1000) } });
  try {
    // BuildKit dockerfile_source_date_epoch_test.go:690-694 (the Dockerfile), :705 (context:mysource), :731-733.
    const dir = await b.context({ Dockerfile: 'ARG SOURCE_DATE_EPOCH=mysource\nFROM scratch\nCOPY Dockerfile .\n' });
    const img = await buildOCI(dir, ['--build-context', `mysource=${server.url}/src.tar`]);
    assert.equal(img.manifest.layers.length, 1);
    assert.equal(img.layers[0]!.get('Dockerfile'), lastModified);
    assert.equal(seconds(img.config.created), lastModified);
  } finally {
    await server.close();
  }
});

test('testSourceDateEpochNamedContextHTTPArchive: without Last-Modified, the newest entry of the named context\'s archive; the context itself is the file "context"', async () => {
  const archiveMax = 1700000602;
  const body = await tarOf([{ name: 'foo', data: 'bar', mtime: archiveMax }]);
  const server = await serve({ '/src.tar': { body, etag: 'named2' } });
  try {
    // BuildKit :755-759 and :795-801. COPY --from=mysource shows what the context holds: the download
    // as one file named "context" (dockerui/namedcontext.go:152-161, llb.HTTP with Filename("context")).
    const dir = await b.context({ Dockerfile: 'ARG SOURCE_DATE_EPOCH=mysource\nFROM busybox\nARG SOURCE_DATE_EPOCH\nRUN echo -n "$SOURCE_DATE_EPOCH" >/epoch\nCOPY --from=mysource /context /src.tar\n' });
    const img = await buildOCI(dir, ['--build-context', `mysource=${server.url}/src.tar`]);
    assert.equal(img.contents.at(-2)!.get('epoch'), String(archiveMax));
    assert.equal(img.layers.at(-2)!.get('epoch'), archiveMax);
    assert.equal(img.layers.at(-1)!.has('src.tar'), true);
    assert.equal(seconds(img.config.created), archiveMax);
  } finally {
    await server.close();
  }
});
