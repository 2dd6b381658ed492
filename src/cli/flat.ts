import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { collect, openStore, out, platformFlag, writeToStdout, type GlobalOptions } from './context.js';
import { importTarball } from '../store/import.js';
import { exportImage, exportImageFile } from '../store/export.js';
import { KilnError, UsageError } from '../errors.js';

/** import and export: images to and from flat filesystem tarballs. */
export function registerFlatCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('import')
    .description('Create a one-layer image from a filesystem tarball (file, http(s) URL or - for stdin; plain, gzip or zstd)')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable', collect, [])
    .option('-m, --message <message>', 'history comment for the image')
    .argument('<source>', 'file, URL or -')
    .argument('[name]', 'name to tag the image with')
    .action(async (source: string, name: string | undefined, o: { change: string[]; message?: string }) => {
      const store = await openStore(globals());
      const img = await importTarball(store, () => openSource(source), { source, name, changes: o.change, message: o.message });
      out(img.id);
    });
  program
    .command('export')
    .description('Write the flattened filesystem of an image as a tar archive (stdout by default)')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .argument('<image>')
    .action(async (ref: string, o: { output?: string; platform?: string }) => {
      const store = await openStore(globals());
      const image = await store.resolveImage(ref, platformFlag(o.platform));
      if (o.output && o.output !== '-') await exportImageFile(store, image, o.output);
      else await writeToStdout('tar archive', (stdout) => exportImage(store, image, stdout));
    });
}

async function openSource(source: string): Promise<Readable> {
  if (source === '-') {
    if (process.stdin.isTTY) throw new UsageError('requested import from stdin, but stdin is a terminal: give a file or redirect input');
    return process.stdin;
  }
  if (/^https?:\/\//i.test(source)) {
    let res: Response;
    try {
      res = await fetch(source);
    } catch (e) {
      const cause = (e as { cause?: Error }).cause;
      throw new KilnError(`${source}: ${cause?.message ?? (e as Error).message}`);
    }
    if (!res.ok || !res.body) throw new KilnError(`${source}: HTTP ${res.status} ${res.statusText}`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  try {
    if (!(await stat(source)).isFile()) throw new UsageError(`${source}: not a regular file`);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new UsageError(`${source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return createReadStream(source);
}
