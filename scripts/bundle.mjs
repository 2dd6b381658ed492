// Bundles the CLI from the TypeScript sources into dist/bin/:
//   kiln-bundle.cjs   every module of src/ in one CommonJS file;
//   kiln-thread-*.cjs each module with a worker-thread side, bundled alone for the threads the CLI
//                     starts to run (see threadUrl in src/thread.ts);
//   kiln.cjs          the `kiln` command (src/cli/launcher.cts), which runs the bundle through V8's
//                     code cache.
// Why one CommonJS file: Node.js 20 loads an ES module graph file by file (resolve, read, compile,
// link, each through the ESM loader's machinery), and a script compiled with `vm.Script`, which is
// how the code cache is used, cannot `import()`. Modules that src/ imports lazily stay lazy: esbuild
// wraps them in functions run on first import, so a command still runs only the code it needs.
// A lazy `import()` of an external package becomes a lazy `require()`.
// tsc still type-checks and compiles dist/src/ and dist/test/, which the tests import.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** `import('pkg')` of an external package, as a `require` esbuild runs when the import happens. */
const lazyRequire = {
  name: 'lazy-require',
  setup(b) {
    b.onResolve({ filter: /^[^./]/, namespace: 'file' }, (args) => (args.kind === 'dynamic-import' ? { path: args.path, namespace: 'lazy-require' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy-require' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js', resolveDir: root }));
  },
};

// Packages stay external (native addons, WASM and data files found beside their code), except the
// small pure-JavaScript ones nearly every command loads: bundled, they come from the code cache
// instead of being resolved, read and compiled file by file (commander is 7 files, the lock 13).
const bundledPackages = new Set(['commander', 'proper-lockfile']);
const { dependencies } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const external = Object.keys(dependencies).filter((p) => !bundledPackages.has(p));

// Written into a directory of its own, then renamed into place: a kiln that starts while another
// bundle step runs (./kiln recompiles whatever is stale) finds the old bundle or the new one,
// never a half-written or missing one. dist/.bin-PID sits at dist/bin's depth, so the source maps'
// relative paths stay right.
const out = `dist/.bin-${process.pid}`;
rmSync(new URL(`../${out}`, import.meta.url), { recursive: true, force: true });
const common = { absWorkingDir: root, bundle: true, format: 'cjs', platform: 'node', target: 'node20', external, logLevel: 'warning' };
// Module files are bundle files: createRequire resolves packages from the bundle, and a thread is
// started on the thread bundle beside it.
const threads = { filehash: 'src/build/filehash.ts', extract: 'src/archive/apply-thread.ts', download: 'src/registry/client/blob-thread.ts' };
const bundled = {
  ...common,
  sourcemap: true,
  plugins: [lazyRequire],
  define: { 'import.meta.url': '__kilnBundleUrl' },
  banner: {
    js: [
      '"use strict";',
      'var __kilnBundleUrl = require("node:url").pathToFileURL(__filename).href;',
      'var __kilnThreadsDir = require("node:url").pathToFileURL(__dirname + "/").href;',
    ].join('\n'),
  },
};
await build({ ...bundled, entryPoints: ['src/cli/main.ts'], outfile: `${out}/kiln-bundle.cjs` });
for (const [name, entry] of Object.entries(threads)) await build({ ...bundled, entryPoints: [entry], outfile: `${out}/kiln-thread-${name}.cjs` });
// The launcher names its code cache files by the bundle's content (see src/cli/launcher.cts).
const bundleSha256 = createHash('sha256').update(readFileSync(new URL(`../${out}/kiln-bundle.cjs`, import.meta.url))).digest('hex');
await build({ ...common, entryPoints: ['src/cli/launcher.cts'], outfile: `${out}/kiln.cjs`, define: { __KILN_BUNDLE_SHA256__: JSON.stringify(bundleSha256) } });
const bin = fileURLToPath(new URL('../dist/bin', import.meta.url));
const fresh = fileURLToPath(new URL(`../${out}`, import.meta.url));
// Another bundle step may swap its own directory in meanwhile: move whatever is there aside, retry.
for (let attempt = 0; ; attempt++) {
  const old = `${bin}.old-${process.pid}-${attempt}`;
  try {
    renameSync(bin, old);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  try {
    renameSync(fresh, bin);
    rmSync(old, { recursive: true, force: true });
    break;
  } catch (err) {
    rmSync(old, { recursive: true, force: true });
    if ((err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') || attempt > 10) throw err;
  }
}
