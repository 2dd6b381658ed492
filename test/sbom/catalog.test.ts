import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, link, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { catalogImage, type Catalog, type Package } from '../../src/sbom/catalog.js';
import { Store } from '../../src/store/store.js';
import { fixture, kilnOk } from '../support/env.js';
import { buildPackagesImage, writeContext } from './fixtures.js';

let work: string;
let root: string;
let pkgs: Catalog;
let layerCount: number;

async function catalogOf(tag: string): Promise<Catalog> {
  const store = await Store.open(root);
  return catalogImage(store, await store.resolveImage(tag));
}

const find = (c: Catalog, type: Package['type'], name: string) => c.packages.find((p) => p.type === type && p.name === name);

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-sbom-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  await buildPackagesImage(root, work);
  pkgs = await catalogOf('pkgs');
  const store = await Store.open(root);
  layerCount = (await store.resolveImage('pkgs')).manifest.layers.length;
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the distro comes from /etc/os-release, followed through its symlink to /usr/lib/os-release', () => {
  assert.deepEqual(pkgs.distro, { id: 'debian', versionId: '12', codename: 'bookworm' });
});

test('dpkg: installed packages only, with source package and version, arch and purl', () => {
  const debs = pkgs.packages.filter((p) => p.type === 'deb');
  assert.deepEqual(debs.map((p) => p.name), ['base-files', 'bash', 'libc6', 'zlib1g'], 'the deinstalled oldpkg is skipped');
  const bash = find(pkgs, 'deb', 'bash')!;
  assert.equal(bash.version, '5.2.15-2+b2');
  assert.deepEqual(bash.source, { name: 'bash', version: '5.2.15-2' });
  assert.equal(bash.arch, 'amd64');
  assert.equal(bash.purl, 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2');
  assert.equal(bash.location, '/var/lib/dpkg/status');
  assert.deepEqual(find(pkgs, 'deb', 'libc6')!.source, { name: 'glibc', version: '2.36-9+deb12u7' }, 'a bare Source: takes the binary version');
  assert.match(find(pkgs, 'deb', 'zlib1g')!.purl, /^pkg:deb\/debian\/zlib1g@1(:|%3A)1\.2\.13\.dfsg-1\?/);
});

test('dpkg licenses come from the machine-readable copyright file', () => {
  assert.deepEqual(find(pkgs, 'deb', 'bash')!.licenses, ['GPL-3+']);
  assert.deepEqual(find(pkgs, 'deb', 'libc6')!.licenses, []);
});

test('each package is attributed to the layer that introduced its version', () => {
  const bash = find(pkgs, 'deb', 'bash')!;
  const libc = find(pkgs, 'deb', 'libc6')!;
  // busybox is layer 0; COPY status is the 4th instruction → layer 3; the upgrade is layer 8
  assert.equal(bash.layer.index, 3, 'bash was not touched by the rewrite of the status file');
  assert.equal(libc.layer.index, 8, 'libc6 was upgraded by the later layer');
  assert.equal(libc.version, '2.36-9+deb12u7');
  assert.equal(layerCount, 10);
  assert.match(libc.layer.digest, /^sha256:[a-f0-9]{64}$/);
  assert.match(libc.layer.diffId, /^sha256:[a-f0-9]{64}$/);
  assert.notEqual(bash.layer.digest, libc.layer.digest);
  assert.equal(find(pkgs, 'apk', 'musl')!.layer.index, 5);
  assert.equal(find(pkgs, 'npm', 'express')!.layer.index, 7);
});

test('apk: name, version, arch, license and origin', () => {
  const musl = find(pkgs, 'apk', 'musl')!;
  assert.equal(musl.version, '1.2.4-r2');
  assert.equal(musl.arch, 'x86_64');
  assert.deepEqual(musl.licenses, ['MIT']);
  assert.deepEqual(musl.source, { name: 'musl', version: '1.2.4-r2' });
  assert.equal(musl.purl, 'pkg:apk/debian/musl@1.2.4-r2?arch=x86_64&distro=debian-12');
  assert.deepEqual(find(pkgs, 'apk', 'busybox-binsh')!.source, { name: 'busybox', version: '1.36.1-r15' });
});

test('python: dist-info METADATA and egg-info PKG-INFO, licenses from License-Expression or classifiers', () => {
  const flask = find(pkgs, 'python', 'Flask')!;
  assert.equal(flask.version, '3.0.2');
  assert.deepEqual(flask.licenses, ['BSD-3-Clause']);
  assert.equal(flask.purl, 'pkg:pypi/flask@3.0.2');
  assert.equal(flask.location, '/usr/lib/python3/dist-packages/flask-3.0.2.dist-info/METADATA');
  const six = find(pkgs, 'python', 'six')!;
  assert.deepEqual(six.licenses, ['MIT License'], 'License: UNKNOWN is no license; the classifier is');
  assert.equal(pkgs.packages.filter((p) => p.type === 'python').length, 2, 'the description body is not read as headers');
});

test('npm: packages under node_modules, scoped, nested, license string or object; whiteouts remove', () => {
  const npm = pkgs.packages.filter((p) => p.type === 'npm');
  assert.deepEqual(npm.map((p) => `${p.name}@${p.version}`).sort(), ['@types/node@20.11.5', 'debug@2.6.9', 'express@4.19.2']);
  assert.equal(find(pkgs, 'npm', '@types/node')!.purl, 'pkg:npm/%40types/node@20.11.5');
  assert.deepEqual(find(pkgs, 'npm', '@types/node')!.licenses, ['MIT']);
  assert.deepEqual(find(pkgs, 'npm', 'debug')!.licenses, ['MIT']);
  assert.equal(find(pkgs, 'npm', 'debug')!.location, '/app/node_modules/express/node_modules/debug/package.json');
  assert.deepEqual(pkgs.problems, []);
});

test('a malformed status file or package.json is reported with its path and cataloguing goes on', async () => {
  const ctx = join(work, 'ctx-bad');
  await writeContext(ctx, {
    Dockerfile: 'FROM busybox\nCOPY status /var/lib/dpkg/status\nCOPY nm/ /node_modules/\n',
    status: 'Package: good\nStatus: install ok installed\nVersion: 1.0\n\nthis line is garbage\nPackage: also-good\nStatus: install ok installed\nVersion: 2.0\n\nPackage: noversion\nStatus: install ok installed\n',
    'nm/broken/package.json': '{"name": "broken", "version": ',
    'nm/fine/package.json': '{"name": "fine", "version": "1.2.3"}',
  });
  await kilnOk(root, ['build', '-q', '-t', 'bad', ctx]);
  const c = await catalogOf('bad');
  assert.deepEqual(c.packages.map((p) => `${p.type}:${p.name}@${p.version}`), ['deb:also-good@2.0', 'deb:good@1.0', 'npm:fine@1.2.3']);
  assert.equal(c.problems.length, 3, JSON.stringify(c.problems));
  assert.equal(c.problems[0]!.path, '/node_modules/broken/package.json');
  assert.match(c.problems[0]!.message, /invalid JSON/);
  assert.deepEqual(
    c.problems.slice(1).map((p) => [p.path, p.message.replace(/:.*/, '')]),
    [['/var/lib/dpkg/status', 'line 5'], ['/var/lib/dpkg/status', 'line 10']],
  );
});

test('distroless status.d files, an .egg-info file, a hard-linked package.json (as pnpm lays them out), a directory emptied and refilled by a later layer', async () => {
  const ctx = join(work, 'ctx-misc');
  await writeContext(ctx, {
    Dockerfile: [
      'FROM busybox',
      'COPY status.d/ /var/lib/dpkg/status.d/',
      'COPY site/ /usr/lib/python3.11/site-packages/',
      'COPY nm/ /srv/node_modules/',
      'COPY linked/ /opt/node_modules/',
      // the whole directory goes and comes back with another package: nothing of the old one survives
      'RUN rm -rf /srv/node_modules && mkdir -p /srv/node_modules/fresh && echo \'{"name":"fresh","version":"1.0.0"}\' > /srv/node_modules/fresh/package.json',
      '',
    ].join('\n'),
    'status.d/tzdata': 'Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n',
    'status.d/tzdata.md5sums': 'd41d8cd98f00b204e9800998ecf8427e  usr/share/zoneinfo/UTC\n',
    'site/attrs-23.1.0.egg-info': 'Metadata-Version: 2.1\nName: attrs\nVersion: 23.1.0\nLicense: MIT\n',
    'nm/stale/package.json': '{"name":"stale","version":"0.1.0"}',
    'linked/once/package.json': '{"name":"once","version":"1.4.0","license":"ISC"}',
  });
  // as pnpm lays packages out: the same file hard-linked under a second name
  await mkdir(join(ctx, 'linked', 'once-alias'));
  await link(join(ctx, 'linked', 'once', 'package.json'), join(ctx, 'linked', 'once-alias', 'package.json'));
  await kilnOk(root, ['build', '-q', '-t', 'misc', ctx]);
  const c = await catalogOf('misc');
  assert.deepEqual(c.problems, []);
  assert.deepEqual(
    c.packages.map((p) => [p.type, p.name, p.version, p.location, p.layer.index]),
    [
      ['deb', 'tzdata', '2024a-0+deb12u1', '/var/lib/dpkg/status.d/tzdata', 1],
      ['npm', 'fresh', '1.0.0', '/srv/node_modules/fresh/package.json', 5],
      ['npm', 'once', '1.4.0', '/opt/node_modules/once-alias/package.json', 4],
      ['npm', 'once', '1.4.0', '/opt/node_modules/once/package.json', 4],
      ['python', 'attrs', '23.1.0', '/usr/lib/python3.11/site-packages/attrs-23.1.0.egg-info', 2],
    ],
  );
  assert.equal(c.distro, undefined, 'busybox has no os-release');
  assert.equal(find(c, 'deb', 'tzdata')!.purl, 'pkg:deb/debian/tzdata@2024a-0+deb12u1?arch=all');
});

test('the host\'s real dpkg database catalogues to what dpkg-query lists', { skip: !existsSync('/var/lib/dpkg/status') || !existsSync('/usr/bin/dpkg-query') }, async () => {
  const ctx = join(work, 'ctx-host');
  await writeContext(ctx, { Dockerfile: 'FROM busybox\nCOPY status /var/lib/dpkg/status\n' });
  await copyFile('/var/lib/dpkg/status', join(ctx, 'status'));
  const want = execFileSync('dpkg-query', ['--admindir=/var/lib/dpkg', '-W', '-f', '${db:Status-Status} ${Package} ${Version} ${source:Package} ${source:Version}\n'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('installed '))
    .map((l) => l.split(' ').slice(1).join(' '))
    .sort();
  await kilnOk(root, ['build', '-q', '-t', 'host', ctx]);
  const c = await catalogOf('host');
  assert.deepEqual(c.problems, []);
  const got = c.packages.map((p) => `${p.name} ${p.version} ${p.source?.name ?? p.name} ${p.source?.version ?? p.version}`).sort();
  assert.ok(want.length > 50);
  assert.deepEqual(got, want);
});
