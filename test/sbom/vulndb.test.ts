import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from '../support/env.js';
import { readDebianTracker } from '../../src/sbom/debian-tracker.js';
import { evaluateAffected, readOsvDirectory, type OsvAffected } from '../../src/sbom/osv.js';
import { openVulnDb, writeVulnDb, type VulnDb } from '../../src/sbom/vulndb.js';
import { matchPackages, type MatchablePackage } from '../../src/sbom/match.js';
import { cvss3BaseScore } from '../../src/sbom/severity.js';
import { writeAdvisories } from './advisories.js';

const layer0 = { index: 0, digest: 'sha256:' + '0'.repeat(64), diffId: 'sha256:' + 'a'.repeat(64) };
const layer2 = { index: 2, digest: 'sha256:' + '2'.repeat(64), diffId: 'sha256:' + 'b'.repeat(64) };

function deb(name: string, version: string, source?: { name: string; version: string }, layer = layer0): MatchablePackage {
  return { type: 'deb', name, version, purl: `pkg:deb/debian/${name}@${version}`, ...(source ? { source } : {}), layer, location: '/var/lib/dpkg/status' };
}

const packages: MatchablePackage[] = [
  deb('libc6', '2.36-9+deb12u4', { name: 'glibc', version: '2.36-9+deb12u4' }, layer2),
  deb('libc-bin', '2.36-9+deb12u4', { name: 'glibc', version: '2.36-9+deb12u4' }),
  deb('bash', '5.2.15-2+b2', { name: 'bash', version: '5.2.15-2' }),
  deb('zlib1g', '1:1.2.13.dfsg-1', { name: 'zlib', version: '1:1.2.13.dfsg-1' }),
  { type: 'npm', name: 'debug', version: '2.6.9', purl: 'pkg:npm/debug@2.6.9', layer: layer2, location: '/app/node_modules/debug/package.json' },
  { type: 'npm', name: 'express', version: '4.19.2', purl: 'pkg:npm/express@4.19.2', layer: layer2, location: '/app/node_modules/express/package.json' },
  { type: 'python', name: 'Flask', version: '3.0.2', purl: 'pkg:pypi/flask@3.0.2', layer: layer2, location: '/usr/lib/python3/dist-packages/flask-3.0.2.dist-info/METADATA' },
];
const bookworm = { id: 'debian', versionId: '12', codename: 'bookworm' };

async function database(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; path: string; db: VulnDb }> {
  const dir = await tempDir(t);
  const { tracker, osv } = await writeAdvisories(dir);
  const path = join(dir, 'vuln.db');
  await writeVulnDb(path, { debian: { file: tracker, advisories: await readDebianTracker(tracker) }, osv: { dir: osv, affected: await readOsvDirectory(osv) } });
  const db = openVulnDb(path);
  t.after(() => db.close());
  return { dir, path, db };
}

test('Debian matches go by source package and release; fixed_version "0", fixed versions at or below the installed one and other releases do not match', async (t) => {
  const { db } = await database(t);
  const { matches, problems } = matchPackages(db, packages.filter((p) => p.type === 'deb'), bookworm);
  assert.deepEqual(problems, []);
  const got = matches.map((m) => [m.package, m.id, m.fixedVersion, m.severity]);
  assert.deepEqual(got, [
    ['libc-bin', 'CVE-2024-2961', '2.36-9+deb12u6', 'high'],
    ['libc6', 'CVE-2024-2961', '2.36-9+deb12u6', 'high'],
    // open and undetermined: no fixed version, still affected
    ['libc-bin', 'CVE-2010-4756', '', 'negligible'],
    ['libc6', 'CVE-2010-4756', '', 'negligible'],
    ['zlib1g', 'CVE-2022-37434', '', 'unknown'],
    // known only to OSV's Debian records, which also name source packages
    ['zlib1g', 'DLA-9999-1', '1:1.2.13.dfsg-1+deb12u1', 'unknown'],
  ]);
  const libc6 = matches.find((m) => m.package === 'libc6')!;
  assert.deepEqual(libc6.layer, { index: 2, digest: layer2.digest });
  assert.equal(libc6.installedVersion, '2.36-9+deb12u4');
  assert.deepEqual(libc6.sourcePackage, { name: 'glibc', version: '2.36-9+deb12u4' });
  assert.equal(libc6.purl, 'pkg:deb/debian/libc6@2.36-9+deb12u4');
  assert.equal(libc6.dataSource, 'debian-tracker');
  // The DSA that only repeats CVE-2024-2961 (its alias) is not reported a second time.
  assert.ok(!matches.some((m) => m.id === 'DSA-5678-1'));
  // The same packages in bullseye: the tracker's bullseye entries, not bookworm's.
  const bullseye = matchPackages(db, [deb('libc6', '2.31-13+deb11u5', { name: 'glibc', version: '2.31-13+deb11u5' })], { id: 'debian', versionId: '11' });
  assert.deepEqual(bullseye.matches.map((m) => [m.id, m.fixedVersion]), [['CVE-2024-2961', '2.31-13+deb11u9']]);
});

test('the source version is compared, not the binary one: a binary versioned apart from its source still matches', async (t) => {
  const { dir } = await database(t);
  const tracker = join(dir, 'gcc.json');
  await writeFile(tracker, JSON.stringify({ 'gcc-defaults': { 'CVE-2099-0001': { releases: { bookworm: { status: 'resolved', fixed_version: '1.204', urgency: 'medium' } } } } }));
  const path = join(dir, 'gcc.db');
  await writeVulnDb(path, { debian: { file: tracker, advisories: await readDebianTracker(tracker) } });
  const db = openVulnDb(path);
  t.after(() => db.close());
  // gcc 4:12.2.0-3 is built from gcc-defaults 1.203: by the binary version it would look fixed.
  const { matches } = matchPackages(db, [deb('gcc', '4:12.2.0-3', { name: 'gcc-defaults', version: '1.203' })], bookworm);
  assert.deepEqual(matches.map((m) => [m.package, m.installedVersion, m.sourcePackage?.version, m.fixedVersion]), [['gcc', '4:12.2.0-3', '1.203', '1.204']]);
  const fixed = matchPackages(db, [deb('gcc', '4:12.2.0-3', { name: 'gcc-defaults', version: '1.204' })], bookworm);
  assert.deepEqual(fixed.matches, []);
});

test('OSV matches: npm SEMVER and ECOSYSTEM ranges, PyPI by normalised name, severity from the record or its CVSS vector', async (t) => {
  const { db } = await database(t);
  const { matches } = matchPackages(db, packages.filter((p) => p.type !== 'deb'), bookworm);
  assert.deepEqual(
    matches.map((m) => [m.package, m.id, m.fixedVersion, m.severity, m.dataSource]),
    [
      ['express', 'GHSA-dddd-eeee-ffff', '', 'critical', 'osv:npm'],
      ['debug', 'GHSA-aaaa-bbbb-cccc', '2.6.10', 'medium', 'osv:npm'],
      ['Flask', 'PYSEC-2099-1', '3.0.3', 'low', 'osv:PyPI'],
    ],
  );
  assert.deepEqual(matches.find((m) => m.package === 'debug')!.aliases, ['CVE-2017-16137']);
  assert.equal(matches.find((m) => m.package === 'Flask')!.description, 'Flask session cookie issue');
});

test('OSV range evaluation: several introduced/fixed pairs, last_affected, explicit versions, unsorted events', () => {
  const entry = (ranges: OsvAffected['ranges'], versions: string[] = []): OsvAffected => ({ id: 'X', aliases: [], summary: '', ecosystem: 'npm', name: 'p', ranges, versions, severity: 'unknown' });
  const two = entry([{ type: 'SEMVER', events: [{ fixed: '3.1.0' }, { introduced: '3.0.0' }, { introduced: '2.0.0' }, { fixed: '2.6.10' }] }]);
  assert.deepEqual(evaluateAffected(two, '1.9.0'), { affected: false, fixedVersion: '' });
  assert.deepEqual(evaluateAffected(two, '2.0.0'), { affected: true, fixedVersion: '2.6.10' });
  assert.deepEqual(evaluateAffected(two, '2.6.10'), { affected: false, fixedVersion: '' });
  assert.deepEqual(evaluateAffected(two, '3.0.5'), { affected: true, fixedVersion: '3.1.0' });
  assert.deepEqual(evaluateAffected(two, '3.1.0-rc.1'), { affected: true, fixedVersion: '3.1.0' });
  const last = entry([{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '1.2.3' }] }]);
  assert.equal(evaluateAffected(last, '1.2.3').affected, true);
  assert.equal(evaluateAffected(last, '1.2.4').affected, false);
  const listed = entry([{ type: 'GIT', events: [{ introduced: '0' }] }], ['0.9.1']);
  assert.equal(evaluateAffected(listed, '0.9.1').affected, true);
  assert.equal(evaluateAffected(listed, '0.9.2').affected, false);
});

test('apk packages match Alpine OSV records of the image release; an unreadable version is a problem, not a crash', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'osv'));
  await writeFile(join(dir, 'osv', 'ALPINE-1.json'), JSON.stringify({ id: 'CVE-2099-0002', modified: 'x', affected: [{ package: { ecosystem: 'Alpine:v3.19', name: 'musl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.2.4_git20230717-r5' }] }] }] }));
  await writeFile(join(dir, 'osv', 'npm-bad.json'), JSON.stringify({ id: 'GHSA-bad', modified: 'x', affected: [{ package: { ecosystem: 'npm', name: 'left-pad' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: 'soon' }] }] }] }));
  const path = join(dir, 'v.db');
  await writeVulnDb(path, { osv: { dir: join(dir, 'osv'), affected: await readOsvDirectory(join(dir, 'osv')) } });
  const db = openVulnDb(path);
  t.after(() => db.close());
  const musl: MatchablePackage = { type: 'apk', name: 'musl', version: '1.2.4_git20230717-r4', purl: 'pkg:apk/alpine/musl@1.2.4_git20230717-r4', layer: layer0, location: '/lib/apk/db/installed' };
  const leftPad: MatchablePackage = { type: 'npm', name: 'left-pad', version: '1.3.0', purl: 'pkg:npm/left-pad@1.3.0', layer: layer0, location: '/app/node_modules/left-pad/package.json' };
  const r = matchPackages(db, [musl, leftPad], { id: 'alpine', versionId: '3.19.1' });
  assert.deepEqual(r.matches.map((m) => [m.package, m.id, m.fixedVersion]), [['musl', 'CVE-2099-0002', '1.2.4_git20230717-r5']]);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!.message, /GHSA-bad: "soon" is not a semantic version/);
  assert.equal(r.problems[0]!.subject, 'left-pad@1.3.0');
  // Another Alpine release's records do not apply.
  assert.deepEqual(matchPackages(db, [musl], { id: 'alpine', versionId: '3.18.4' }).matches, []);
});

test('CVSS v3 base scores follow the specification equations', () => {
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), 10);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N'), 5.5);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
  assert.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N'), 3.1);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
  assert.equal(cvss3BaseScore('CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N'), undefined);
});

test('a database of another schema version, a non-kiln SQLite file and a non-SQLite file are refused with a clear error', async (t) => {
  const { dir, path } = await database(t);
  const old = join(dir, 'old.db');
  await writeFile(old, await readFile(path));
  const w = new Database(old);
  w.prepare('UPDATE schema_version SET version = 99').run();
  w.close();
  assert.throws(() => openVulnDb(old), /old\.db: vulnerability database schema version 99, this kiln reads version 1; rebuild it with kiln db import/);
  const other = join(dir, 'other.db');
  const o = new Database(other);
  o.exec('CREATE TABLE schema_version (version INTEGER)');
  o.close();
  assert.throws(() => openVulnDb(other), /other\.db: not a kiln vulnerability database/);
  const text = join(dir, 'text.db');
  await writeFile(text, 'this is not a database, just some text that is long enough to look like a header...\n'.repeat(20));
  assert.throws(() => openVulnDb(text), /text\.db: not a kiln vulnerability database/);
  assert.throws(() => openVulnDb(join(dir, 'missing.db')), /missing\.db: no such vulnerability database/);
});

test('malformed advisory files are errors naming the file and the JSON path', async (t) => {
  const dir = await tempDir(t);
  const f = join(dir, 'tracker.json');
  await writeFile(f, '{"glibc": {"CVE-1": {"releases": {"bookworm": {"status": 3}}}}}');
  await assert.rejects(readDebianTracker(f), { message: `${f}: $.glibc["CVE-1"].releases.bookworm.status: expected a string, found number 3` });
  await writeFile(f, '{"glibc": {"CVE-1": {"releases": {"bookworm": {"status": "fixed"}}}}}');
  await assert.rejects(readDebianTracker(f), /status: "fixed" is not open, resolved or undetermined/);
  await writeFile(f, '{"glibc": {"CVE-1": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "1:"}}}}}');
  await assert.rejects(readDebianTracker(f), /fixed_version: not a Debian version/);
  await writeFile(f, '{"glibc": [');
  await assert.rejects(readDebianTracker(f), (e: Error) => e.message.startsWith(`${f}: not valid JSON: `));
  await writeFile(f, '[1]');
  await assert.rejects(readDebianTracker(f), /tracker\.json: \$: expected an object, found an array/);
  const osv = join(dir, 'osv');
  await mkdir(join(osv, 'npm'), { recursive: true });
  await writeFile(join(osv, 'npm', 'a.json'), JSON.stringify({ id: 'A', affected: [{ package: { ecosystem: 'npm', name: 'x' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0', fixed: '1' }] }] }] }));
  await assert.rejects(readOsvDirectory(osv), { message: `${join(osv, 'npm', 'a.json')}: $.affected[0].ranges[0].events[0]: an event has exactly one of introduced, fixed, last_affected, limit` });
  await writeFile(join(osv, 'npm', 'a.json'), JSON.stringify({ affected: [] }));
  await assert.rejects(readOsvDirectory(osv), /a\.json: \$\.id: expected a string, found undefined/);
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(readOsvDirectory(empty), /holds no OSV \.json files/);
});

test('a failed import leaves the existing database file as it was and no temporary file behind', async (t) => {
  const { dir, path } = await database(t);
  const before = await readFile(path);
  await assert.rejects(
    writeVulnDb(path, { osv: { dir, affected: [{ id: 'X', aliases: [], summary: '', ecosystem: 'npm', name: 'x', ranges: [], versions: [], severity: 'unknown' }, null as unknown as OsvAffected] } }),
  );
  assert.deepEqual(await readFile(path), before);
  assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
});
