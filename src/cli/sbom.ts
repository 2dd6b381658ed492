import type { Command } from 'commander';
import { resolve } from 'node:path';
import { openImage } from '../inspect/index.js';
import { imageCatalog, parseSbomFormat, renderSbom, sbomSubject, SBOM_FORMATS } from '../sbom/index.js';
import { writeFileAtomic } from '../store/atomic.js';
import { openStore, platformFlag, type GlobalOptions } from './context.js';

// `kiln sbom`: the packages installed in an image, as SPDX, CycloneDX, JSON or a table.

interface SbomFlags {
  format: string;
  platform?: string;
  output?: string;
}

export function registerSbomCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('sbom')
    .description('List the packages installed in an image (dpkg, apk, Python, npm) as an SBOM; uses the SBOM stored by `kiln build --sbom` when there is one')
    .argument('<image>', 'image name or ID in the store, an OCI layout directory or an archive')
    .option('--format <format>', SBOM_FORMATS.join(', '), 'table')
    .option('-o, --output <file>', 'write the SBOM to this file instead of standard output')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .action(async (ref: string, o: SbomFlags) => {
      const format = parseSbomFormat(o.format);
      const opened = await openImage(() => openStore(globals()), ref, platformFlag(o.platform));
      try {
        const { catalog } = await imageCatalog(opened.store, opened.image);
        // Metadata kiln could not read does not stop the SBOM; it is said, with the file at fault.
        for (const p of catalog.problems) process.stderr.write(`warning: ${p.path}: ${p.message}\n`);
        const text = renderSbom(catalog, sbomSubject(opened.image), format);
        if (o.output) await writeFileAtomic(resolve(o.output), text);
        else process.stdout.write(text);
      } finally {
        await opened.close();
      }
    });
}
