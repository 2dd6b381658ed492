// Bundles the CLI from the TypeScript sources into dist/bin/: the entry point and one chunk per
// group of lazily loaded commands (esbuild's code splitting follows the dynamic imports). Node.js
// 20 loads an ES module graph file by file, resolving, reading, compiling and linking each one: the
// 65 modules of a fully cached `kiln build` cost some 40 ms of CPU more than the same code in a
// handful of chunks. Packages stay external (native addons, and their own layout on disk).
// tsc still type-checks and compiles dist/src/ and dist/test/, which the tests import.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// Chunk names carry a content hash: the previous build's chunks would otherwise pile up.
rmSync(new URL('../dist/bin', import.meta.url), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { kiln: 'src/cli/main.ts' },
  outdir: 'dist/bin',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
