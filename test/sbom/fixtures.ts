// Images with package metadata written by hand into the busybox fixture: a dpkg status database,
// an apk installed database, Python dist-info/egg-info and node_modules, laid out over several
// layers so that upgrades, whiteouts and attribution to layers can be checked.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kilnOk } from '../support/env.js';

export const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';

const dpkg = (pkgs: { name: string; version: string; status?: string; source?: string; arch?: string }[]) =>
  pkgs
    .map((p) =>
      [
        `Package: ${p.name}`,
        `Status: ${p.status ?? 'install ok installed'}`,
        'Priority: optional',
        `Architecture: ${p.arch ?? 'amd64'}`,
        ...(p.source ? [`Source: ${p.source}`] : []),
        `Version: ${p.version}`,
        'Description: a package',
        ' with a long description',
        ' .',
        ' over several lines',
      ].join('\n') + '\n',
    )
    .join('\n');

export const STATUS_BASE = dpkg([
  { name: 'base-files', version: '12.4+deb12u5' },
  { name: 'bash', version: '5.2.15-2+b2', source: 'bash (5.2.15-2)' },
  { name: 'libc6', version: '2.36-9+deb12u4', source: 'glibc' },
  { name: 'oldpkg', version: '1.0-1', status: 'deinstall ok config-files' },
  { name: 'zlib1g', version: '1:1.2.13.dfsg-1', source: 'zlib', arch: 'amd64' },
]);

/** The same database after a later layer upgraded libc6. */
export const STATUS_UPGRADED = STATUS_BASE.replace('2.36-9+deb12u4', '2.36-9+deb12u7');

export const BASH_COPYRIGHT = [
  'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
  'Upstream-Name: bash',
  '',
  'Files: *',
  'Copyright: 1987-2022 Free Software Foundation, Inc.',
  'License: GPL-3+',
  '',
  'Files: lib/glob/*',
  'Copyright: FSF',
  'License: GPL-3+',
  '',
  'License: GPL-3+',
  ' This program is free software; you can redistribute it',
  '',
].join('\n');

export const APK_INSTALLED = [
  'C:Q1abc=',
  'P:musl',
  'V:1.2.4-r2',
  'A:x86_64',
  'S:383152',
  'L:MIT',
  'o:musl',
  'F:lib',
  'R:ld-musl-x86_64.so.1',
  '',
  'P:busybox-binsh',
  'V:1.36.1-r15',
  'A:x86_64',
  'L:GPL-2.0-only',
  'o:busybox',
  '',
].join('\n');

export const DIST_INFO_METADATA = 'Metadata-Version: 2.4\nName: Flask\nVersion: 3.0.2\nLicense-Expression: BSD-3-Clause\nRequires-Dist: Werkzeug>=3.0.0\n\nFlask is a lightweight WSGI web application framework.\nName: not-a-header\n';
export const EGG_INFO = 'Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\nLicense: UNKNOWN\nClassifier: Programming Language :: Python\nClassifier: License :: OSI Approved :: MIT License\n';

export async function writeContext(dir: string, files: Record<string, string>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/**
 * `pkgs`: layer 1 os-release, 2 the /etc/os-release symlink, 3 dpkg status, 4 copyright, 5 apk db,
 * 6 python, 7 node_modules, 8 the dpkg status again with libc6 upgraded, 9 a RUN removing left-pad.
 */
export async function buildPackagesImage(root: string, work: string, tag = 'pkgs'): Promise<void> {
  const ctx = join(work, `ctx-${tag}`);
  await writeContext(ctx, {
    Dockerfile: [
      'FROM busybox',
      'COPY os-release /usr/lib/os-release',
      'RUN ln -s ../usr/lib/os-release /etc/os-release',
      'COPY status /var/lib/dpkg/status',
      'COPY bash-copyright /usr/share/doc/bash/copyright',
      'COPY installed /lib/apk/db/installed',
      'COPY site/ /usr/lib/python3/dist-packages/',
      'COPY app/ /app/',
      'COPY status-upgraded /var/lib/dpkg/status',
      'RUN rm -rf /app/node_modules/left-pad',
      '',
    ].join('\n'),
    'os-release': OS_RELEASE,
    status: STATUS_BASE,
    'status-upgraded': STATUS_UPGRADED,
    'bash-copyright': BASH_COPYRIGHT,
    installed: APK_INSTALLED,
    'site/flask-3.0.2.dist-info/METADATA': DIST_INFO_METADATA,
    'site/six-1.16.0.egg-info/PKG-INFO': EGG_INFO,
    'app/package.json': JSON.stringify({ name: 'the-app', version: '0.0.1' }),
    'app/node_modules/express/package.json': JSON.stringify({ name: 'express', version: '4.19.2', license: 'MIT' }),
    'app/node_modules/express/lib/package.json': JSON.stringify({ type: 'commonjs' }),
    'app/node_modules/@types/node/package.json': JSON.stringify({ name: '@types/node', version: '20.11.5', license: { type: 'MIT', url: 'x' } }),
    'app/node_modules/express/node_modules/debug/package.json': JSON.stringify({ name: 'debug', version: '2.6.9', licenses: [{ type: 'MIT' }] }),
    'app/node_modules/left-pad/package.json': JSON.stringify({ name: 'left-pad', version: '1.3.0', license: 'WTFPL' }),
  });
  await kilnOk(root, ['build', '-q', '-t', tag, ctx]);
}
