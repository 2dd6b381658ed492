// Advisory fixtures in the formats users download: a Debian Security Tracker export and OSV records,
// small and made up, about the packages test/sbom/fixtures.ts puts in its images.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const TRACKER = {
  glibc: {
    'CVE-2024-2961': {
      description: 'iconv overflow in ISO-2022-CN-EXT',
      scope: 'local',
      releases: {
        bookworm: { status: 'resolved', repositories: { bookworm: '2.36-9+deb12u7' }, fixed_version: '2.36-9+deb12u6', urgency: 'high' },
        bullseye: { status: 'resolved', repositories: { bullseye: '2.31-13+deb11u10' }, fixed_version: '2.31-13+deb11u9', urgency: 'high' },
      },
    },
    'CVE-2010-4756': {
      description: 'glob implementation allows denial of service',
      releases: { bookworm: { status: 'open', repositories: { bookworm: '2.36-9+deb12u7' }, urgency: 'unimportant', nodsa: 'Minor issue', nodsa_reason: '' } },
    },
    'CVE-2023-4911': {
      description: 'Looney Tunables',
      releases: { bookworm: { status: 'resolved', repositories: { bookworm: '2.36-9+deb12u7' }, fixed_version: '2.36-9+deb12u3', urgency: 'high**' } },
    },
  },
  zlib: {
    'CVE-2023-45853': {
      description: 'minizip integer overflow',
      releases: { bookworm: { status: 'resolved', repositories: { bookworm: '1:1.2.13.dfsg-1' }, fixed_version: '0', urgency: 'unimportant' } },
    },
    'CVE-2022-37434': {
      description: 'inflateGetHeader overflow',
      releases: { bookworm: { status: 'undetermined', repositories: { bookworm: '1:1.2.13.dfsg-1' }, urgency: 'not yet assigned' } },
    },
  },
  bash: {
    'CVE-2022-3715': {
      description: 'heap overflow in valid_parameter_transform',
      releases: { bookworm: { status: 'resolved', repositories: { bookworm: '5.2.15-2' }, fixed_version: '5.2.15-2', urgency: 'low' } },
    },
    'TEMP-0000000-BASH01': {
      description: 'made-up issue fixed only in trixie',
      releases: { trixie: { status: 'resolved', fixed_version: '5.2.21-1', urgency: 'medium' } },
    },
  },
  openssl: {
    'CVE-2024-5535': { description: 'not installed in the image', releases: { bookworm: { status: 'open', urgency: 'low' } } },
  },
};

export const OSV: Record<string, object> = {
  'npm/GHSA-aaaa-bbbb-cccc.json': {
    schema_version: '1.6.0',
    id: 'GHSA-aaaa-bbbb-cccc',
    modified: '2024-01-01T00:00:00Z',
    aliases: ['CVE-2017-16137'],
    summary: 'debug ReDoS',
    affected: [{ package: { ecosystem: 'npm', name: 'debug' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '2.0.0' }, { fixed: '2.6.10' }, { introduced: '3.0.0' }, { fixed: '3.1.0' }] }] }],
    database_specific: { severity: 'MODERATE' },
  },
  'npm/GHSA-dddd-eeee-ffff.json': {
    id: 'GHSA-dddd-eeee-ffff',
    modified: '2024-01-01T00:00:00Z',
    summary: 'express open redirect',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [{ package: { ecosystem: 'npm', name: 'express' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '4.19.2' }] }] }],
  },
  'npm/GHSA-not-affected.json': {
    id: 'GHSA-gggg-hhhh-iiii',
    modified: '2024-01-01T00:00:00Z',
    affected: [{ package: { ecosystem: 'npm', name: 'express' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '4.19.2' }] }] }],
  },
  'npm/withdrawn.json': {
    id: 'GHSA-wwww-wwww-wwww',
    modified: '2024-01-01T00:00:00Z',
    withdrawn: '2024-02-01T00:00:00Z',
    affected: [{ package: { ecosystem: 'npm', name: 'express' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }],
  },
  'PyPI/PYSEC-2099-1.json': {
    id: 'PYSEC-2099-1',
    modified: '2024-01-01T00:00:00Z',
    details: 'Flask session cookie issue\nmore details',
    affected: [{ package: { ecosystem: 'PyPI', name: 'Flask' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.3' }] }], versions: ['3.0.0', '3.0.1', '3.0.2'] }],
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N' }],
  },
  'Debian/DSA-5678-1.json': {
    id: 'DSA-5678-1',
    modified: '2024-01-01T00:00:00Z',
    aliases: ['CVE-2024-2961'],
    affected: [{ package: { ecosystem: 'Debian:12', name: 'glibc' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.36-9+deb12u6' }] }] }],
  },
  'Debian/DLA-9999-1.json': {
    id: 'DLA-9999-1',
    modified: '2024-01-01T00:00:00Z',
    summary: 'zlib issue known only to OSV',
    affected: [{ package: { ecosystem: 'Debian:12', name: 'zlib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.2.13.dfsg-1+deb12u1' }] }] }],
  },
  'git/only-git.json': {
    id: 'OSV-2099-2',
    modified: '2024-01-01T00:00:00Z',
    affected: [{ ranges: [{ type: 'GIT', repo: 'https://example.invalid/repo', events: [{ introduced: '0' }, { fixed: 'abc' }] }] }],
  },
};

export async function writeAdvisories(dir: string): Promise<{ tracker: string; osv: string }> {
  const tracker = join(dir, 'tracker.json');
  await writeFile(tracker, JSON.stringify(TRACKER));
  const osv = join(dir, 'osv');
  for (const [p, record] of Object.entries(OSV)) {
    await mkdir(join(osv, p, '..'), { recursive: true });
    await writeFile(join(osv, p), JSON.stringify(record, null, 1));
  }
  return { tracker, osv };
}
