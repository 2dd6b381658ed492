import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/store.js';
import { fixture, kiln, kilnOk } from '../support/env.js';
import { buildPackagesImage } from './fixtures.js';
import { TRACKER, writeAdvisories } from './advisories.js';

// kiln db import and kiln scan end to end: an image built from busybox with a crafted dpkg status
// database and a bookworm os-release (test/sbom/fixtures.ts), advisories written by the test.

let work: string;
let root: string;
let db: string;
let trackerOnlyDb: string;
let layerDigests: string[];

interface Match {
  id: string;
  package: string;
  installedVersion: string;
  fixedVersion: string;
  severity: string;
  purl: string;
  layer: { index: number; digest: string };
  location: string;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-scan-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  await buildPackagesImage(root, work);
  const store = await Store.open(root);
  layerDigests = (await store.resolveImage('pkgs')).manifest.layers.map((l) => l.digest);
  const { osv } = await writeAdvisories(work);
  // One more glibc issue, fixed after the version the image's upper layer upgraded libc6 to.
  const tracker = join(work, 'tracker-e2e.json');
  const glibc = { ...TRACKER.glibc, 'CVE-2025-4802': { description: 'static setuid LD_LIBRARY_PATH', releases: { bookworm: { status: 'resolved', fixed_version: '2.36-9+deb12u11', urgency: 'medium' } } } };
  await writeFile(tracker, JSON.stringify({ ...TRACKER, glibc }));
  db = join(work, 'vuln.db');
  const imported = await kilnOk(root, ['db', 'import', '--debian-tracker', tracker, '--osv', osv, '-o', db]);
  assert.match(imported, /vuln\.db: 9 Debian tracker entries, 6 OSV affected-package entries \(schema 1\)/);
  trackerOnlyDb = join(work, 'tracker.db');
  await kilnOk(root, ['db', 'import', '--debian-tracker', tracker, '-o', trackerOnlyDb]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function scanJson(database = db): Promise<{ matches: Match[]; image: { name: string; digest: string }; problems: unknown[] }> {
  return JSON.parse(await kilnOk(root, ['scan', '--db', database, '--format', 'json', 'pkgs']));
}

test('kiln scan --format json reports each vulnerable package with versions, severity, purl and the layer that brought it in', async () => {
  const r = await scanJson();
  assert.match(r.image.digest, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(r.problems, []);
  const rows = r.matches.map((m) => [m.package, m.id, m.installedVersion, m.fixedVersion, m.severity, m.layer.index]);
  assert.deepEqual(rows, [
    ['express', 'GHSA-dddd-eeee-ffff', '4.19.2', '', 'critical', 7],
    ['debug', 'GHSA-aaaa-bbbb-cccc', '2.6.9', '2.6.10', 'medium', 7],
    // libc6 was upgraded to 2.36-9+deb12u7 in layer 8: CVE-2024-2961 (fixed in deb12u6) is gone.
    ['libc6', 'CVE-2025-4802', '2.36-9+deb12u7', '2.36-9+deb12u11', 'medium', 8],
    ['Flask', 'PYSEC-2099-1', '3.0.2', '3.0.3', 'low', 6],
    ['libc6', 'CVE-2010-4756', '2.36-9+deb12u7', '', 'negligible', 8],
    ['zlib1g', 'CVE-2022-37434', '1:1.2.13.dfsg-1', '', 'unknown', 3],
    ['zlib1g', 'DLA-9999-1', '1:1.2.13.dfsg-1', '1:1.2.13.dfsg-1+deb12u1', 'unknown', 3],
  ]);
  for (const m of r.matches) assert.equal(m.layer.digest, layerDigests[m.layer.index], `${m.package}'s layer digest`);
  const libc6 = r.matches.find((m) => m.package === 'libc6')!;
  assert.match(libc6.purl, /^pkg:deb\/debian\/libc6@2\.36-9(\+|%2B)deb12u7/);
  assert.equal(libc6.location, '/var/lib/dpkg/status');
});

test('kiln scan prints a table by default, with the layer and "(unfixed)" for issues without a fix', async () => {
  const out = await kilnOk(root, ['scan', '--db', db, 'pkgs']);
  const lines = out.trimEnd().split('\n');
  assert.match(lines[0]!, /^PACKAGE\s+INSTALLED\s+FIXED\s+SEVERITY\s+VULNERABILITY\s+LAYER$/);
  assert.match(out, new RegExp(`libc6\\s+2\\.36-9\\+deb12u7\\s+\\(unfixed\\)\\s+negligible\\s+CVE-2010-4756\\s+8 ${layerDigests[8]!.slice(7, 19)}`));
  assert.equal(lines.at(-1), '7 matches (critical: 1, medium: 2, low: 1, negligible: 1, unknown: 2)');
});

test('kiln scan --format sarif writes SARIF 2.1.0: one rule per vulnerability, results pointing at them and at the package file', async () => {
  const sarif = JSON.parse(await kilnOk(root, ['scan', '--db', db, '--format', 'sarif', 'pkgs']));
  assert.equal(sarif.version, '2.1.0');
  assert.match(sarif.$schema, /sarif-2\.1\.0/);
  assert.equal(sarif.runs.length, 1);
  const run = sarif.runs[0];
  assert.equal(run.tool.driver.name, 'kiln');
  const ruleIds: string[] = run.tool.driver.rules.map((r: { id: string }) => r.id);
  assert.equal(new Set(ruleIds).size, ruleIds.length, 'rule ids are unique');
  assert.equal(run.results.length, 7);
  for (const res of run.results) {
    assert.equal(ruleIds[res.ruleIndex], res.ruleId);
    assert.ok(['error', 'warning', 'note'].includes(res.level));
    assert.equal(typeof res.message.text, 'string');
    const uri: string = res.locations[0].physicalLocation.artifactLocation.uri;
    assert.ok(!uri.startsWith('/'), `relative uri ${uri}`);
  }
  const express = run.results.find((r: { ruleId: string }) => r.ruleId === 'GHSA-dddd-eeee-ffff');
  assert.equal(express.level, 'error');
  assert.equal(express.locations[0].physicalLocation.artifactLocation.uri, 'app/node_modules/express/package.json');
  assert.equal(run.tool.driver.rules[express.ruleIndex].properties['security-severity'], '9.5');
});

test('--fail-on exits 1 when a match at or above the severity exists and 0 otherwise', async () => {
  assert.equal((await kiln(root, ['scan', '--db', db, '--fail-on', 'critical', '--format', 'json', 'pkgs'])).code, 1);
  assert.equal((await kiln(root, ['scan', '--db', db, '--fail-on', 'high', 'pkgs'])).code, 1);
  // Without OSV data the worst match is medium (CVE-2025-4802).
  assert.equal((await kiln(root, ['scan', '--db', trackerOnlyDb, '--fail-on', 'high', 'pkgs'])).code, 0);
  assert.equal((await kiln(root, ['scan', '--db', trackerOnlyDb, '--fail-on', 'medium', 'pkgs'])).code, 1);
  assert.equal((await kiln(root, ['scan', '--db', trackerOnlyDb, 'pkgs'])).code, 0);
  const bad = await kiln(root, ['scan', '--db', db, '--fail-on', 'severe', 'pkgs']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--fail-on: "severe" is not one of unknown, negligible, low, medium, high, critical/);
});

test('kiln scan refuses a database of another schema version and a file that is not a kiln database, in one line', async () => {
  const old = join(work, 'old.db');
  await writeFile(old, await readFile(db));
  const w = new Database(old);
  w.prepare('UPDATE schema_version SET version = 2').run();
  w.close();
  const r = await kiln(root, ['scan', '--db', old, 'pkgs']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `Error: ${old}: vulnerability database schema version 2, this kiln reads version 1; rebuild it with kiln db import\n`);
  const notDb = await kiln(root, ['scan', '--db', join(work, 'tracker-e2e.json'), 'pkgs']);
  assert.equal(notDb.code, 1);
  assert.match(notDb.stderr, /^Error: .*tracker-e2e\.json: not a kiln vulnerability database/);
  assert.equal(notDb.stderr.split('\n').length, 2);
});

test('kiln db import of a malformed file fails naming file and JSON path, and leaves no database and no temporary file', async () => {
  const dir = join(work, 'bad-import');
  await rm(dir, { recursive: true, force: true });
  await kilnOk(root, ['db', 'info', db]);
  const bad = join(work, 'bad-tracker.json');
  await writeFile(bad, JSON.stringify({ zlib: { 'CVE-1': { releases: { bookworm: { status: 'resolved', fixed_version: 7 } } } } }));
  const out = join(work, 'never.db');
  const r = await kiln(root, ['db', 'import', '--debian-tracker', bad, '-o', out]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `Error: ${bad}: $.zlib["CVE-1"].releases.bookworm.fixed_version: expected a string, found number 7\n`);
  assert.equal(existsSync(out), false);
  // An existing database is kept as it was when the import fails.
  const before = await readFile(trackerOnlyDb);
  assert.equal((await kiln(root, ['db', 'import', '--debian-tracker', bad, '-o', trackerOnlyDb])).code, 1);
  assert.deepEqual(await readFile(trackerOnlyDb), before);
  assert.deepEqual((await readdir(work)).filter((n) => n.endsWith('.tmp')), []);
  const none = await kiln(root, ['db', 'import', '-o', out]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /give --debian-tracker FILE, --osv DIR or both/);
});
