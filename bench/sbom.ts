// SBOM benchmark: cataloguing the debian fixture image (debootstrap minbase, one layer) in this
// process, against streaming the same image's flattened filesystem to nowhere (`kiln export`'s work:
// the cost of reading every layer once), and rendering SPDX and CycloneDX from the catalog. Median
// of the rounds, printed as a markdown table with the date and the machine.
//   npx tsc -p . && node dist/bench/sbom.js [--rounds 5]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store/store.js';
import { loadArchiveFile } from '../src/store/load.js';
import { exportImage } from '../src/store/export.js';
import { catalogImage, renderSbom, sbomSubject } from '../src/sbom/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 5;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const archive = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), 'debian'], { encoding: 'utf8' }).trim();
const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-sbom-'));
try {
  const store = await Store.open(dir);
  const loaded = await loadArchiveFile(store, archive);
  const image = await store.loadImage(loaded[0]!.manifest, loaded[0]!.names);
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  const results: Record<string, number[]> = { catalog: [], export: [], spdx: [], cyclonedx: [] };
  let packages = 0;
  for (let i = 0; i < rounds; i++) {
    let catalog;
    results.catalog!.push(await time(async () => (catalog = await catalogImage(store, image))));
    packages = catalog!.packages.length;
    results.export!.push(await time(() => exportImage(store, image, sink())));
    results.spdx!.push(await time(async () => renderSbom(catalog!, sbomSubject(image), 'spdx-json')));
    results.cyclonedx!.push(await time(async () => renderSbom(catalog!, sbomSubject(image), 'cyclonedx-json')));
  }
  const size = image.manifest.layers.reduce((n, l) => n + l.size, 0);
  console.log(`SBOM of the debian fixture (${(size / 1e6).toFixed(1)} MB compressed, ${image.manifest.layers.length} layer, ${packages} packages), median of ${rounds} rounds`);
  console.log(`${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}\n`);
  console.log('| step | ms |\n| --- | ---: |');
  console.log(`| catalogue (read only metadata files from the layers) | ${median(results.catalog!).toFixed(0)} |`);
  console.log(`| reference: stream the flattened filesystem (kiln export) | ${median(results.export!).toFixed(0)} |`);
  console.log(`| render SPDX 2.3 JSON | ${median(results.spdx!).toFixed(0)} |`);
  console.log(`| render CycloneDX 1.6 JSON | ${median(results.cyclonedx!).toFixed(0)} |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
