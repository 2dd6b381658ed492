import type { Command } from 'commander';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { openImage } from '../inspect/index.js';
import { catalogImage } from '../sbom/catalog.js';
import { readDebianTracker } from '../sbom/debian-tracker.js';
import { matchPackages } from '../sbom/match.js';
import { readOsvDirectory } from '../sbom/osv.js';
import { formatScan, scanFormats, type ScanFormat } from '../sbom/report.js';
import { isSeverity, severities, severityRank } from '../sbom/severity.js';
import { openVulnDb, writeVulnDb, type VulnDbSources } from '../sbom/vulndb.js';
import { openStore, out, platformFlag, type GlobalOptions } from './context.js';

const toolVersion = '0.1.0';

export function registerScanCommands(program: Command, globals: () => GlobalOptions): void {
  const db = program.command('db').description('The offline vulnerability database kiln scan reads');
  db.command('import')
    .description('Build a vulnerability database file from the Debian Security Tracker JSON export and/or a directory of OSV records')
    .option('--debian-tracker <file>', 'the tracker export (https://security-tracker.debian.org/tracker/data/json), plain or gzip')
    .option('--osv <dir>', 'a directory of OSV .json records (searched recursively)')
    .requiredOption('-o, --output <dbfile>', 'the database file to write (replaced whole, or left as it was on error)')
    .action(async (o: { debianTracker?: string; osv?: string; output: string }) => {
      if (!o.debianTracker && !o.osv) throw new UsageError('db import: give --debian-tracker FILE, --osv DIR or both');
      const sources: VulnDbSources = {};
      if (o.debianTracker) sources.debian = { file: resolve(o.debianTracker), advisories: await readDebianTracker(o.debianTracker) };
      if (o.osv) sources.osv = { dir: resolve(o.osv), affected: await readOsvDirectory(o.osv) };
      const info = await writeVulnDb(o.output, sources);
      out(`${o.output}: ${info.debianEntries} Debian tracker entries, ${info.osvEntries} OSV affected-package entries (schema ${info.schemaVersion})`);
    });
  db.command('info')
    .description('Show what a vulnerability database holds')
    .argument('<dbfile>')
    .option('--format <format>', 'text or json', 'text')
    .action((file: string, o: { format: string }) => {
      const vdb = openVulnDb(file);
      try {
        const info = vdb.info();
        if (o.format === 'json') out(JSON.stringify(info));
        else out(Object.entries(info).map(([k, v]) => `${k}: ${v}`).join('\n'));
      } finally {
        vdb.close();
      }
    });

  program
    .command('scan')
    .description("Match an image's installed packages against an offline vulnerability database")
    .argument('<image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .requiredOption('--db <dbfile>', 'vulnerability database built by kiln db import')
    .option('--format <format>', scanFormats.join(', '), 'table')
    .option('--fail-on <severity>', `exit 1 when a match at or above this severity exists: ${severities.join(', ')}`)
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .action(async (ref: string, o: { db: string; format: string; failOn?: string; platform?: string }) => {
      if (!(scanFormats as readonly string[]).includes(o.format)) throw new UsageError(`--format: "${o.format}" is not one of ${scanFormats.join(', ')}`);
      if (o.failOn !== undefined && !isSeverity(o.failOn)) throw new UsageError(`--fail-on: "${o.failOn}" is not one of ${severities.join(', ')}`);
      // The database is checked before the image is read: a wrong file fails at once.
      const vdb = openVulnDb(o.db);
      try {
        const opened = await openImage(() => openStore(globals()), ref, platformFlag(o.platform));
        try {
          const catalog = await catalogImage(opened.store, opened.image);
          const { matches, problems } = matchPackages(vdb, catalog.packages, catalog.distro);
          const report = {
            image: { name: opened.image.names[0] ?? ref, digest: opened.image.manifestDescriptor.digest },
            ...(catalog.distro ? { distro: catalog.distro } : {}),
            database: vdb.info(),
            matches,
            problems: [...catalog.problems.map((p) => ({ subject: p.path, message: p.message })), ...problems],
          };
          // JSON carries the problems itself; beside a table or SARIF they go to stderr.
          if (o.format !== 'json') for (const p of report.problems) process.stderr.write(`warning: ${p.subject}: ${p.message}\n`);
          process.stdout.write(formatScan(report, o.format as ScanFormat, toolVersion));
          if (o.failOn !== undefined && isSeverity(o.failOn)) {
            const limit = severityRank(o.failOn);
            if (matches.some((m) => severityRank(m.severity) >= limit)) process.exitCode = 1;
          }
        } finally {
          await opened.close();
        }
      } finally {
        vdb.close();
      }
    });
}
