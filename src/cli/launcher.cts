#!/usr/bin/env node
// The `kiln` command (dist/bin/kiln.cjs): runs the CLI bundle with V8's code cache.
//
// Node.js 20 compiles a script's source on every start; for the 1 MB bundle that is some 40 ms of
// CPU, a third of a fully cached `kiln build`. V8 can serialize what it compiled and take it back
// next time (the code cache Node.js 22 offers as `module.enableCompileCache`, which 20 lacks), so
// the bundle is compiled through `vm.Script` with the cached data of an earlier run of the same
// command. Which functions get compiled depends on the command, hence one cache per command.
//
// The cache is an optimisation only: a missing, unreadable or rejected cache (V8 checks its own
// version, flags and the source length) means a normal compile, and the cache is then written
// at exit, atomically, so a concurrent start never reads half a file. Any failure to write is
// ignored. The file name carries the Node.js version and the bundle's size and mtime, so a
// rebuilt bundle never meets the code of the previous one.
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';

const bundle = join(__dirname, 'kiln-bundle.cjs');

/** The command named on the command line ("build", "push"…), which decides the cache file. */
function commandKey(argv: string[]): string {
  for (const a of argv.slice(2)) if (/^[a-z][a-z-]{0,30}$/.test(a)) return a;
  return 'none';
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln', 'code-cache');
}

const source = readFileSync(bundle, 'utf8');
const { size, mtimeMs } = statSync(bundle);
const key = commandKey(process.argv);
const stamp = `${process.version}-${size}-${Math.trunc(mtimeMs)}`;
const dir = cacheDir();
const file = join(dir, `${key}-${stamp}.v8`);

let cached: Buffer | undefined;
try {
  cached = readFileSync(file);
} catch {
  cached = undefined;
}

// The CommonJS wrapper, on the same line as the bundle's first line so that positions in stack
// traces and the source map still match.
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: bundle, ...(cached ? { cachedData: cached } : {}) });

if (!cached || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      const data = script.createCachedData();
      mkdirSync(dir, { recursive: true });
      const temp = `${file}.${process.pid}.tmp`;
      writeFileSync(temp, data);
      renameSync(temp, file);
      // The previous bundle's cache for this command will not be read again.
      for (const name of readdirSync(dir)) if (name.startsWith(`${key}-`) && !name.startsWith(`${key}-${stamp}`)) unlinkSync(join(dir, name));
    } catch {
      // No cache this time: the next start compiles again.
    }
  });
}

const run = script.runInThisContext() as (exports: object, require: NodeRequire, module: { exports: object }, filename: string, dirname: string) => void;
const bundleModule = { exports: {} };
run(bundleModule.exports, createRequire(bundle), bundleModule, bundle, __dirname);
