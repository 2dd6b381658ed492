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
// version and flags) means a normal compile, and the cache is then written at exit, atomically, so
// a concurrent start never reads half a file. Any failure to write is ignored. Of the source, V8
// checks only the length, so the file name carries the Node.js version and a hash of the bundle's
// content, put here when both were built: a rebuilt bundle never meets the code of another one (a
// size and mtime would not do: npm packs every file with the same mtime).
//
// A code cache is code: only a file owned by this user and writable by no one else is run, and a
// new one is created exclusively (never through a symlink), so that `sudo kiln` with a user's HOME
// cannot be made to run, or overwrite, what that user put in their cache directory.
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { kilnCacheDir, ownedByMeAlone } from '../userdirs.js';

const bundle = join(__dirname, 'kiln-bundle.cjs');

/** sha256 of kiln-bundle.cjs, defined by scripts/bundle.mjs when it builds this file. */
declare const __KILN_BUNDLE_SHA256__: string;

/** The command named on the command line ("build", "push"…), which decides the cache file. */
function commandKey(argv: string[]): string {
  for (const a of argv.slice(2)) if (/^[a-z][a-z-]{0,30}$/.test(a)) return a;
  return 'none';
}

const source = readFileSync(bundle, 'utf8');
const key = commandKey(process.argv);
const stamp = `${process.version}-${__KILN_BUNDLE_SHA256__.slice(0, 16)}`;
const dir = kilnCacheDir('code-cache');
const file = join(dir, `${key}.${stamp}.v8`);

/** The cache file's bytes, if it is there and trustworthy. */
function readCache(): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || !ownedByMeAlone(st)) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Writes the cache for the next start: a new file, renamed into place. */
function writeCache(data: Buffer): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  // The previous bundle's cache for this command will not be read again.
  for (const name of readdirSync(dir)) if (name.startsWith(`${key}.`) && !name.startsWith(`${key}.${stamp}.`)) unlinkSync(join(dir, name));
}

const cached = readCache();

// The CommonJS wrapper, on the same line as the bundle's first line so that positions in stack
// traces and the source map still match.
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: bundle, ...(cached ? { cachedData: cached } : {}) });

if (!cached || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      writeCache(script.createCachedData());
    } catch {
      // No cache this time: the next start compiles again.
    }
  });
}

const run = script.runInThisContext() as (exports: object, require: NodeRequire, module: { exports: object }, filename: string, dirname: string) => void;
const bundleModule = { exports: {} };
run(bundleModule.exports, createRequire(bundle), bundleModule, bundle, __dirname);
