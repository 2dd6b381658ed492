import type { Command } from 'commander';
import { openStore, out, writeToStdout, type GlobalOptions } from './context.js';
import { loadArchive, loadArchiveFile } from '../store/load.js';
import { saveArchive, saveArchiveFile, type ArchiveFormat, type SaveItem } from '../store/save.js';
import { familiarName } from '../store/describe.js';
import { normalize, parseReference } from '../reference/reference.js';
import { UsageError } from '../errors.js';

/** load and save: images in and out of archives. */
export function registerArchiveCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('load')
    .description('Load images from an OCI archive or a docker-archive (gzip-compressed or not)')
    .option('-i, --input <file>', 'read from this file instead of stdin')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (o: { input?: string; quiet?: boolean }) => {
      const store = await openStore(globals());
      if (!o.input && process.stdin.isTTY) throw new UsageError('requested load from stdin, but stdin is a terminal: use -i FILE or redirect input');
      const loaded = o.input ? await loadArchiveFile(store, o.input) : await loadArchive(store, process.stdin, 'stdin');
      await store.content.releaseLease();
      if (o.quiet) return;
      for (const l of loaded) {
        if (l.names.length === 0) out(`Loaded image ID: ${l.id}`);
        for (const n of l.names) out(`Loaded image: ${familiarName(n)}`);
      }
    });

  program
    .command('save')
    .description('Save images to an archive (docker-archive by default, or OCI)')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--format <format>', 'docker or oci', 'docker')
    .argument('<image...>')
    .action(async (refs: string[], o: { output?: string; format: string }) => {
      if (o.format !== 'docker' && o.format !== 'oci' && o.format !== 'docker-archive' && o.format !== 'oci-archive') {
        throw new UsageError(`unknown --format "${o.format}": use docker or oci`);
      }
      const format: ArchiveFormat = o.format.startsWith('oci') ? 'oci' : 'docker';
      const store = await openStore(globals());
      const items: SaveItem[] = [];
      for (const ref of refs) {
        const image = await store.resolveImage(ref);
        // Saved by name: the archive carries that name. Saved by ID: every name the image has.
        let names: (string | undefined)[] = [];
        try {
          const n = normalize(ref);
          if (image.names.includes(n)) names = [n];
        } catch {
          /* an ID */
        }
        if (names.length === 0) names = image.names.length ? image.names : [undefined];
        for (const name of names) items.push({ image, name: name && !parseReference(name).digest ? name : undefined });
      }
      if (o.output && o.output !== '-') await saveArchiveFile(store, items, format, o.output);
      else await writeToStdout('archive', (stdout) => saveArchive(store, items, format, stdout));
    });
}
