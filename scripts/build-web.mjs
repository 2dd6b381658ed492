// Builds the registry's web UI (web/) into dist/web/, which `kiln registry serve` serves
// (src/registry/server/routes/ui.ts): index.html, assets/app.js (Preact and the pages in one
// minified script) and assets/app.css. esbuild bundles but does not type-check, so this runs
// `tsc -p web/tsconfig.json` first and stops on its errors: every path to a build (npm run build,
// scripts/setup.sh, ./kiln) checks the pages, and the row types they import from src/.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}web/tsconfig.json`], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build-web: web/ does not type-check (tsc -p web/tsconfig.json); nothing was built');
  process.exit(1);
}
// Written beside, then renamed into place, so a registry starting meanwhile never reads half a build.
const out = `${root}dist/.web-${process.pid}`;
rmSync(out, { recursive: true, force: true });
mkdirSync(`${out}/assets`, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: ['web/src/main.tsx'],
  outfile: `${out}/assets/app.js`,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: true,
  legalComments: 'eof',
  logLevel: 'warning',
});
copyFileSync(`${root}web/style.css`, `${out}/assets/app.css`);
copyFileSync(`${root}web/index.html`, `${out}/index.html`);
const dest = `${root}dist/web`;
rmSync(`${dest}.old-${process.pid}`, { recursive: true, force: true });
try {
  renameSync(dest, `${dest}.old-${process.pid}`);
} catch (e) {
  if (e.code !== 'ENOENT') throw e;
}
renameSync(out, dest);
rmSync(`${dest}.old-${process.pid}`, { recursive: true, force: true });
