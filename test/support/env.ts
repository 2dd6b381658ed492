import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Repository root, from the compiled location dist/test/support/env.js. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const kilnMain = join(repoRoot, 'dist', 'bin', 'kiln.cjs');

/**
 * The signatures and keys made by the real cosign and Notation (see its README): KILN_INTEROP, else
 * ../shared/interop beside the checkout, else the workspace's /work/shared/interop (a clean
 * checkout elsewhere, as CI's, still finds it).
 */
export const interopDir: string =
  [process.env.KILN_INTEROP, join(repoRoot, '..', 'shared', 'interop'), '/work/shared/interop'].find((d): d is string => !!d && existsSync(join(d, 'README.md'))) ??
  join(repoRoot, '..', 'shared', 'interop');

/** A fresh directory removed when the test ends. */
export async function tempDir(t: { after: (fn: () => Promise<void> | void) => void }, prefix = 'kiln-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Path of a fixture archive made by scripts/fixtures.sh (cached between runs). */
export function fixture(name: 'busybox' | 'busybox-multi', format: 'oci' | 'docker' = 'oci'): string {
  if (name === 'busybox-multi') {
    // An OCI image index of busybox for linux/amd64 and linux/arm64 (no docker-archive: one platform only).
    const multi = process.env.KILN_BUSYBOX_MULTI_OCI;
    if (multi && existsSync(multi)) return multi;
    return execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), name], { encoding: 'utf8' }).trim();
  }
  const env = format === 'oci' ? process.env.KILN_BUSYBOX_OCI : process.env.KILN_BUSYBOX_DOCKER;
  if (env && existsSync(env)) return env;
  const oci = execFileSync('bash', [join(repoRoot, 'scripts', 'fixtures.sh'), name], { encoding: 'utf8' }).trim();
  return format === 'oci' ? oci : oci.replace(/\.oci\.tar$/, '.docker.tar');
}

export interface KilnResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the kiln CLI as a user would, against the store at `root`. */
export function kiln(root: string, args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<KilnResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--enable-source-maps', kilnMain, ...args], {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, KILN_ROOT: root, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Like kiln(), but fails the test with the command's stderr when it exits non-zero. */
export async function kilnOk(root: string, args: string[], opts: Parameters<typeof kiln>[2] = {}): Promise<string> {
  const r = await kiln(root, args, opts);
  if (r.code !== 0) throw new Error(`kiln ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
