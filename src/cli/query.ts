import type { Command } from 'commander';
import { openStore, out, type GlobalOptions } from './context.js';
import { renderTable } from '../ui/table.js';
import { shortId, isDigest } from '../oci/digest.js';
import { UsageError } from '../errors.js';
import { parsePackageQuery } from '../sbom/version-range.js';
import { digestsOf, imagesBuiltOn, imagesWithPackage } from '../sbom/affected.js';
import { searchRegistry, type RemoteSearchResult } from '../registry/client/search.js';

// kiln query: "which images are affected?" — images containing a package (from their SBOMs) or built
// on an image (from base annotations), in the local store or, with --registry, a kiln registry.

interface QueryOptions {
  package?: string;
  base?: string;
  registry?: string;
  format: string;
  catalog: boolean;
}

/** IMAGE column: the image's names, or <none>. */
const imageCell = (names: string[]) => (names.length ? names.join(', ') : '<none>');
const remoteNames = (r: RemoteSearchResult) => (r.tags.length ? r.tags.map((t) => `${r.repository}:${t}`) : [`${r.repository}@${r.digest}`]);
const baseCell = (b: { digest: string; name?: string }) => (b.name ? `${b.name}@${shortId(b.digest)}` : b.digest);

export function registerQueryCommand(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('query')
    .description('Which images contain a package, or are built on an image (directly or through others)')
    .option('--package <name[@range]>', 'images containing the package (or built from that source package); range e.g. "<5.2.15-3" or ">=3.0,<3.0.11"')
    .option('--base <digest|image>', 'images built on this image, by manifest digest (or, locally, by name)')
    .option('--registry <url>', 'ask this kiln registry (its search API) instead of the local store')
    .option('--format <format>', 'table or json', 'table')
    .option('--no-catalog', 'only read stored SBOMs; skip images without one instead of cataloguing them (and storing their SBOM)');
  cmd.action(async (o: QueryOptions) => {
    if ((o.package === undefined) === (o.base === undefined)) throw new UsageError('kiln query: give exactly one of --package NAME[@RANGE] or --base DIGEST');
    if (o.format !== 'table' && o.format !== 'json') throw new UsageError(`--format "${o.format}": expected table or json`);
    const json = o.format === 'json';
    const q = o.package !== undefined ? parsePackageQuery(o.package) : undefined;
    const head = q ? { package: q.name, ...(q.rangeText ? { version: q.rangeText } : {}) } : { base: o.base };

    if (o.registry) {
      if (o.base !== undefined && !isDigest(o.base)) throw new UsageError(`--base "${o.base}": a registry is searched by manifest digest (sha256:…)`);
      const results = await searchRegistry(o.registry, q ? { package: q.name, version: q.rangeText } : { base: o.base! });
      if (json) return out(JSON.stringify({ ...head, results }, null, 2));
      if (q) {
        const rows = results.flatMap((r) => (r.packages ?? []).map((p) => [imageCell(remoteNames(r)), shortId(r.digest), p.name, p.version, p.type]));
        return out(renderTable(['IMAGE', 'DIGEST', 'PACKAGE', 'VERSION', 'TYPE'], rows));
      }
      return out(renderTable(['IMAGE', 'DIGEST', 'BASE', 'DEPTH'], results.map((r) => [imageCell(remoteNames(r)), shortId(r.digest), r.base ? baseCell(r.base) : '', String(r.depth ?? '')])));
    }

    const store = await openStore(globals());
    if (q) {
      const problems: string[] = [];
      const results = await imagesWithPackage(store, q.name, q.range, { catalogue: o.catalog, problems });
      for (const p of problems) process.stderr.write(`warning: ${p}\n`);
      if (json) return out(JSON.stringify({ ...head, results }, null, 2));
      const rows = results.flatMap((r) => r.packages.map((p) => [imageCell(r.names), shortId(r.digest), p.name, p.version, p.type, r.from]));
      return out(renderTable(['IMAGE', 'DIGEST', 'PACKAGE', 'VERSION', 'TYPE', 'FROM'], rows));
    }
    const digests = isDigest(o.base!) ? [o.base!] : await digestsOf(store, o.base!);
    const results = await imagesBuiltOn(store, digests);
    if (json) return out(JSON.stringify({ base: digests[0], results }, null, 2));
    out(renderTable(['IMAGE', 'DIGEST', 'BASE', 'DEPTH'], results.map((r) => [imageCell(r.names), shortId(r.digest), baseCell(r.base), String(r.depth)])));
  });
}
