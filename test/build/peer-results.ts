// What buildah made of a case, kept between runs. The differential suites (compat, everyday) build
// every case with kiln and with buildah; buildah's side is the reference and, for the same inputs,
// always the same (the compared trees carry no mtimes; what varies from run to run is ignored by
// the suites). So its result is cached under a key of everything it depends on, and a run builds
// with buildah only the cases whose inputs changed: kiln's side is built every time.
//
// The key covers the prepared context (every path with its type, mode, owner, size and content
// hash, as flattenTree reads it), the Dockerfile arguments, the base image archives, the buildah
// version, the Debian mirror's Release file for the cases that install packages, and the code that
// reads an image (compat-image.js and this file). Set KILN_PEER_CACHE=off to build every case with
// buildah, or to a directory to keep the results there; by default they live beside the fixtures.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { flattenTree, type ComparedConfig, type Tree, type TreeEntry } from './compat-image.js';

const run = promisify(execFile);

/** buildah's outcome for one case: whether it built and, when it did and the case compares, the image. */
export interface PeerResult {
  ok: boolean;
  out: string;
  built?: { config: ComparedConfig; tree: Tree };
}

interface Stored {
  ok: boolean;
  out: string;
  built?: { config: ComparedConfig; tree: [string, TreeEntry][] };
}

/** The cache directory, or undefined when KILN_PEER_CACHE=off. */
function cacheDir(): string | undefined {
  const setting = process.env.KILN_PEER_CACHE;
  if (setting === 'off' || setting === '0') return undefined;
  if (setting) return setting;
  const fixtures = process.env.KILN_FIXTURES || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln-fixtures');
  return join(fixtures, 'peer-results');
}

const memo = new Map<string, Promise<string>>();
function once(id: string, compute: () => Promise<string>): Promise<string> {
  let p = memo.get(id);
  if (!p) memo.set(id, (p = compute()));
  return p;
}

async function hashOfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A base image archive, by content (its path stays the same when fixtures.sh remakes it). */
export const archiveIdentity = (path: string) => once(`archive:${path}`, () => hashOfFile(path));

/** The buildah that made the results. */
export const buildahIdentity = (buildah: string) => once(`buildah:${buildah}`, async () => (await run(buildah, ['--version'])).stdout.trim());

/** The Debian mirror's state: a point release changes what apt-get installs. */
export const mirrorIdentity = (mirror: string) =>
  once(`mirror:${mirror}`, async () => {
    const res = await fetch(`${mirror.replace(/\/$/, '')}/dists/bookworm/Release`, { signal: AbortSignal.timeout(20_000) });
    if (!res.ok) throw new Error(`${mirror}: Release answered ${res.status}`);
    return createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex');
  });

/** The code that turns an image into what is compared: a change to it invalidates every result. */
const codeIdentity = () =>
  once('code', async () => {
    const here = fileURLToPath(import.meta.url);
    const h = createHash('sha256');
    for (const f of [here, join(here, '..', 'compat-image.js')]) h.update(await readFile(f));
    return h.digest('hex');
  });

/** A directory's whole tree (paths, types, modes, owners, contents, link targets) as one hash. */
export async function treeIdentity(dir: string): Promise<string> {
  return createHash('sha256').update(JSON.stringify([...(await flattenTree(dir))])).digest('hex');
}

/**
 * buildah's result for the inputs in `key` (any JSON: what the case builds, from which contexts
 * and bases), from the cache when a run with the same inputs left one, else from `produce`.
 * Nothing is kept when `produce` throws, nor a failed build unless `keepFailure` says the case
 * expects one.
 */
export async function peerResult(
  suite: string,
  key: unknown,
  produce: () => Promise<PeerResult>,
  opts: { keepFailure?: boolean } = {},
): Promise<{ result: PeerResult; cached: boolean }> {
  const dir = cacheDir();
  if (!dir) return { result: await produce(), cached: false };
  const id = createHash('sha256').update(JSON.stringify({ key, code: await codeIdentity() })).digest('hex');
  const file = join(dir, suite, `${id}.json`);
  const stored = await readFile(file, 'utf8').then((t) => JSON.parse(t) as Stored, () => undefined);
  if (stored) {
    const result: PeerResult = { ok: stored.ok, out: stored.out };
    if (stored.built) result.built = { config: stored.built.config, tree: new Map(stored.built.tree) };
    return { result, cached: true };
  }
  const result = await produce();
  // A build buildah should have made but did not may be a passing fault (the mirror, the disk):
  // only a failure the case expects is kept.
  if (!result.ok && !opts.keepFailure) return { result, cached: false };
  const out: Stored = { ok: result.ok, out: result.out };
  if (result.built) out.built = { config: result.built.config, tree: [...result.built.tree] };
  await mkdir(join(dir, suite), { recursive: true });
  // Written whole, then renamed: a run cut off midway leaves no half result for the next one.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(out));
  await rename(tmp, file);
  return { result, cached: false };
}
