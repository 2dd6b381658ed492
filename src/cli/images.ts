import type { Command } from 'commander';
import { openStore, out, type GlobalOptions } from './context.js';
import { renderTable } from '../ui/table.js';
import { humanSize, timeAgo, truncate } from '../ui/format.js';
import { shortId } from '../oci/digest.js';
import { parseReference, familiarRepository } from '../reference/reference.js';
import { inspectImage, historyRows, familiarName } from '../store/describe.js';
import { UsageError } from '../errors.js';
import type { Store } from '../store/store.js';
import { storeTree } from '../bake/lineage.js';
import { byCodeUnits } from '../order.js';
import { formatPlatform } from '../oci/platform.js';
import type { Index } from '../oci/types.js';
import { platformFlag } from './context.js';

/** images, tag, rmi, inspect, history, prune: commands over the local store. */
export function registerImageCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('builder')
    .description('Manage the build cache')
    .command('prune')
    .description('Empty the build cache and cache-mount directories')
    .option('-f, --force', 'do not prompt (kiln never prompts)')
    .action(async () => {
      const store = await openStore(globals());
      out(`Total reclaimed space: ${humanSize(await pruneBuildCache(store))}`);
    });

  program
    .command('images')
    .alias('image ls')
    .description('List images in the local store')
    .option('-q, --quiet', 'only show image IDs')
    .option('--digests', 'show manifest digests')
    .option('--no-trunc', 'do not truncate IDs')
    .option('--format <format>', '"json" for one JSON object per line, or "table"')
    .option('--tree', 'show each image under the image it was built on (its base.digest annotation)')
    .argument('[repository]', 'only images of this repository')
    .action(async (repository: string | undefined, o: { quiet?: boolean; digests?: boolean; trunc: boolean; format?: string; tree?: boolean }) => {
      const store = await openStore(globals());
      // An index (kiln build --platform A,B) is one row, its platforms listed; one without the
      // host's platform is shown by its first.
      const images = await store.listImages('any');
      const platformsOf = new Map<string, string>();
      for (const img of images) {
        if (!img.index) continue;
        const doc = await store.content.readJSON<Index>(img.index.digest);
        platformsOf.set(img.index.digest, doc.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!)).join(','));
      }
      if (o.tree) {
        process.stdout.write(storeTree(images));
        return;
      }
      type Row = { repo: string; tag: string; digest: string; id: string; created?: string; size: number; platforms?: string };
      const rows: Row[] = [];
      const wantRepo = repository ? familiarRepository(parseReference(repository)) : undefined;
      for (const img of images) {
        const size = await store.imageSize(img);
        const platforms = img.index ? platformsOf.get(img.index.digest) : undefined;
        // DIGEST is what the name points to (an index for several platforms), as podman shows it:
        // NAME@DIGEST pulls it. IMAGE ID stays the host entry's config, as podman's does.
        const base = { digest: img.index?.digest ?? img.manifestDescriptor.digest, id: img.id, created: img.config.created, size, ...(platforms ? { platforms } : {}) };
        if (img.names.length === 0) rows.push({ repo: '<none>', tag: '<none>', ...base });
        for (const name of img.names) {
          const ref = parseReference(name);
          rows.push({ repo: familiarRepository(ref), tag: ref.tag ?? '<none>', ...base });
        }
      }
      const shown = rows
        .filter((r) => !wantRepo || r.repo === wantRepo)
        .sort((a, b) => byCodeUnits(b.created ?? '', a.created ?? '') || byCodeUnits(a.repo, b.repo) || byCodeUnits(a.tag, b.tag));
      if (o.quiet) {
        const ids = [...new Set(shown.map((r) => (o.trunc ? shortId(r.id) : r.id)))];
        if (ids.length) out(ids.join('\n'));
        return;
      }
      if (o.format === 'json') {
        for (const r of shown) {
          out(JSON.stringify({ Repository: r.repo, Tag: r.tag, Digest: r.digest, ID: r.id, CreatedAt: r.created ?? '', Size: r.size, ...(r.platforms ? { Platforms: r.platforms.split(',') } : {}) }));
        }
        return;
      }
      if (o.format && o.format !== 'table') throw new UsageError(`unknown --format "${o.format}": use "json" or "table"`);
      // PLATFORMS only when an index is listed: the table of single-platform images stays docker's.
      const withPlatforms = shown.some((r) => r.platforms);
      const headers = ['REPOSITORY', 'TAG', ...(o.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE', ...(withPlatforms ? ['PLATFORMS'] : [])];
      const table = shown.map((r) => [
        r.repo,
        r.tag,
        ...(o.digests ? [r.digest] : []),
        o.trunc ? shortId(r.id) : r.id,
        timeAgo(r.created),
        humanSize(r.size),
        ...(withPlatforms ? [r.platforms ?? ''] : []),
      ]);
      process.stdout.write(renderTable(headers, table));
    });

  program
    .command('tag')
    .description('Create a tag TARGET that refers to SOURCE')
    .argument('<source>')
    .argument('<target>')
    .action(async (source: string, target: string) => {
      const store = await openStore(globals());
      await store.tag(source, target);
    });

  program
    .command('rmi')
    .description('Remove one or more images')
    .option('-f, --force', 'remove the image even when it has several names')
    .argument('<image...>')
    .action(async (refs: string[], o: { force?: boolean }) => {
      const store = await openStore(globals());
      let failed: Error | undefined;
      for (const ref of refs) {
        try {
          const r = await store.removeImage(ref, o.force);
          for (const n of r.untagged) out(`Untagged: ${familiarName(n)}`);
          if (r.deleted) out(`Deleted: ${r.deleted}`);
        } catch (e) {
          failed = e as Error;
          process.stderr.write(`Error: ${(e as Error).message}\n`);
        }
      }
      await store.gc();
      if (failed) process.exitCode = 1;
    });

  program
    .command('inspect')
    .description('Show low-level information on images, as docker image inspect')
    .option('-f, --format <template>', 'a Go-template-like path such as {{.Config.Env}} or {{json .Config}}')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .argument('<image...>')
    .action(async (refs: string[], o: { format?: string; platform?: string }) => {
      const store = await openStore(globals());
      const docs = [];
      for (const ref of refs) docs.push(await inspectImage(store, await store.resolveImage(ref, platformFlag(o.platform))));
      if (o.format) {
        for (const d of docs) out(renderTemplate(o.format, d));
        return;
      }
      out(JSON.stringify(docs, null, 4));
    });

  program
    .command('history')
    .description('Show the history of an image')
    .option('--no-trunc', 'do not truncate output')
    .option('-q, --quiet', 'only show image IDs')
    .option('-H, --human [bool]', 'print sizes and dates in human readable format', 'true')
    .option('--format <format>', '"json" for one JSON object per line')
    .option('--platform <os/arch[/variant]>', "an image index's entry for this platform (default: the host's)")
    .argument('<image>')
    .action(async (ref: string, o: { trunc: boolean; quiet?: boolean; human: string | boolean; format?: string; platform?: string }) => {
      const store = await openStore(globals());
      const rows = await historyRows(store, await store.resolveImage(ref, platformFlag(o.platform)));
      const human = o.human !== 'false' && o.human !== false;
      if (o.quiet) {
        out(rows.map((r) => (r.id === '<missing>' || !o.trunc ? r.id : shortId(r.id))).join('\n'));
        return;
      }
      if (o.format === 'json') {
        for (const r of rows) out(JSON.stringify({ ID: r.id, CreatedAt: r.created ?? '', CreatedBy: r.createdBy, Size: r.size, Comment: r.comment }));
        return;
      }
      const table = rows.map((r) => [
        r.id === '<missing>' || !o.trunc ? r.id : shortId(r.id),
        human ? timeAgo(r.created) : (r.created ?? ''),
        o.trunc ? truncate(r.createdBy.replace(/\s+/g, ' '), 45) : r.createdBy,
        human ? humanSize(r.size) : String(r.size),
        r.comment,
      ]);
      process.stdout.write(renderTable(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], table));
    });

  program
    .command('prune')
    .description('Remove dangling images and blobs nothing references')
    .option('-a, --all', 'remove all images without a name (same as default: kiln keeps no intermediate images)')
    .option('-f, --force', 'do not prompt (kiln never prompts)')
    .option('--cache', 'also empty the build cache and RUN --mount=type=cache directories')
    .action(async (o: { cache?: boolean }) => {
      const store = await openStore(globals());
      if (o.cache) out(`Build cache: ${humanSize(await pruneBuildCache(store))} reclaimed`);
      const deleted: string[] = [];
      for (const img of await store.listImages()) {
        if (img.names.length === 0) {
          // By manifest digest: the image ID may also name a tagged manifest of the same image.
          const r = await store.removeImage(img.manifestDescriptor.digest, true);
          if (r.deleted) deleted.push(r.deleted);
        }
      }
      const { bytes } = await store.gc();
      // A blank line before the total, as docker prints it (out() adds no newline to text ending in one).
      if (deleted.length) out('Deleted Images:\n' + deleted.map((d) => `deleted: ${d}`).join('\n') + '\n\n');
      out(`Total reclaimed space: ${humanSize(bytes)}`);
    });
}

/** The build cache: cache records, extracted layers no image needs, and cache-mount directories. */
async function pruneBuildCache(store: Store): Promise<number> {
  const { rm, readdir, stat } = await import('node:fs/promises');
  const { join } = await import('node:path');
  let bytes = 0;
  for (const dir of ['cache', 'cachemounts', 'contexts', 'snapshots/layers', 'snapshots/layers.donors']) {
    const path = join(store.root, dir);
    for (const name of await readdir(path).catch(() => [] as string[])) {
      const st = await stat(join(path, name)).catch(() => undefined);
      if (st?.isFile()) bytes += st.size;
      await rm(join(path, name), { recursive: true, force: true });
    }
  }
  return bytes + (await store.gc()).bytes;
}

/** The subset of Go templates people use with `inspect -f`: {{.A.B}} and {{json .A}}. */
export function renderTemplate(tpl: string, doc: unknown): string {
  return tpl.replace(/\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}/g, (_m, json: string | undefined, path: string) => {
    let v: unknown = doc;
    for (const part of path.split('.').filter(Boolean)) v = (v as Record<string, unknown> | undefined)?.[part];
    if (json) return JSON.stringify(v ?? null);
    if (v === undefined || v === null) return '<no value>';
    if (Array.isArray(v)) return `[${v.join(' ')}]`;
    if (typeof v === 'object') return `map[${Object.entries(v as object).map(([k, x]) => `${k}:${typeof x === 'object' ? JSON.stringify(x) : x}`).join(' ')}]`;
    return String(v);
  });
}
