// Vulnerability database benchmark: `kiln db import` of a synthetic Debian tracker export the size of
// the real one (about 6,000 source packages; 30 issues each over 5 releases, ~900k release entries,
// ~80 MB) plus 5,000 OSV records, then matching 3,000 packages against it. Inputs are made here;
// nothing is downloaded. Prints a markdown table with the date and the machine.
//   npx tsc -p . && node dist/bench/vulndb.js
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join } from 'node:path';
import { readDebianTracker } from '../src/sbom/debian-tracker.js';
import { readOsvDirectory } from '../src/sbom/osv.js';
import { openVulnDb, writeVulnDb } from '../src/sbom/vulndb.js';
import { matchPackages, type MatchablePackage } from '../src/sbom/match.js';

const work = mkdtempSync(join(tmpdir(), 'kiln-bench-vulndb-'));
try {
  const releases = ['buster', 'bullseye', 'bookworm', 'trixie', 'sid'];
  const tracker: Record<string, Record<string, object>> = {};
  for (let p = 0; p < 6000; p++) {
    const issues: Record<string, object> = {};
    for (let i = 0; i < 30; i++) {
      const rel: Record<string, object> = {};
      releases.forEach((r, k) => {
        rel[r] = (i + k) % 4 === 0
          ? { status: 'open', repositories: { [r]: `1.${p}-${k}` }, urgency: 'low', nodsa: 'Minor issue' }
          : { status: 'resolved', repositories: { [r]: `1.${p}-${k}` }, fixed_version: `1.${p}-${k}+deb${k}u${i % 7}`, urgency: 'medium' };
      });
      issues[`CVE-20${10 + (i % 15)}-${p * 30 + i}`] = { description: 'A synthetic issue description of ordinary length for a tracker entry.', scope: 'remote', releases: rel };
    }
    tracker[`srcpkg${p}`] = issues;
  }
  const trackerFile = join(work, 'tracker.json');
  writeFileSync(trackerFile, JSON.stringify(tracker));
  const osvDir = join(work, 'osv');
  mkdirSync(osvDir);
  for (let i = 0; i < 5000; i++) {
    writeFileSync(join(osvDir, `GHSA-${i}.json`), JSON.stringify({
      id: `GHSA-${i}`, modified: '2024-01-01T00:00:00Z', summary: 'synthetic',
      affected: [{ package: { ecosystem: 'npm', name: `npmpkg${i % 2000}` }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: `1.${i % 10}.0` }] }] }],
      database_specific: { severity: 'HIGH' },
    }));
  }
  const t0 = performance.now();
  const debian = await readDebianTracker(trackerFile);
  const osv = await readOsvDirectory(osvDir);
  const dbFile = join(work, 'vuln.db');
  const info = await writeVulnDb(dbFile, { debian: { file: trackerFile, advisories: debian }, osv: { dir: osvDir, affected: osv } });
  const importMs = performance.now() - t0;
  const layer = { index: 0, digest: 'sha256:' + '0'.repeat(64) };
  const pkgs: MatchablePackage[] = [];
  for (let p = 0; p < 2000; p++) pkgs.push({ type: 'deb', name: `bin${p}`, version: `1.${p * 3}-2`, source: { name: `srcpkg${p * 3}`, version: `1.${p * 3}-2` }, purl: '', layer, location: '/var/lib/dpkg/status' });
  for (let p = 0; p < 1000; p++) pkgs.push({ type: 'npm', name: `npmpkg${p}`, version: '1.4.2', purl: '', layer, location: '/app/node_modules/x/package.json' });
  const db = openVulnDb(dbFile);
  const t1 = performance.now();
  const { matches } = matchPackages(db, pkgs, { id: 'debian', versionId: '12', codename: 'bookworm' });
  const matchMs = performance.now() - t1;
  db.close();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  console.log(`vulnerability database, ${new Date().toISOString().slice(0, 10)}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}\n`);
  console.log('| step | input | time |');
  console.log('|---|---|---|');
  console.log(`| db import | tracker ${mb(statSync(trackerFile).size)} MB (${info.debianEntries} entries kept) + ${osv.length} OSV records → ${mb(statSync(dbFile).size)} MB DB | ${(importMs / 1000).toFixed(1)} s |`);
  console.log(`| match | ${pkgs.length} packages → ${matches.length} matches | ${matchMs.toFixed(0)} ms |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
