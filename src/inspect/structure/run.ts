// Running container-structure-test configurations against an image without a daemon. File,
// content, metadata and license tests read a read-only view of the image; command tests run in the
// sandbox on a fresh snapshot of the image, with setup commands each committed as the new base, as
// container-structure-test does with `docker commit`.

import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Executor } from '../../sandbox/index.js';
import { resolveUser } from '../../sandbox/index.js';
import { ensureWorkingDir } from '../../sandbox/mountpoints.js';
import { resolveInRoot } from '../../sandbox/rootpath.js';
import type { LayerRef, Snapshotter, View } from '../../snapshot/index.js';
import type { ImageConfig } from '../../oci/types.js';
import type { CommandTest, EnvVar, FileContentTest, FileExistenceTest, LicenseTest, MetadataTest, StructureConfig } from './config.js';

/** One result, shaped as container-structure-test's JSON output. */
export interface TestResult {
  Name: string;
  Pass: boolean;
  Stdout?: string;
  Stderr?: string;
  Errors?: string[];
  /** Nanoseconds, as Go's time.Duration marshals. */
  Duration: number;
}

export interface StructureReport {
  Pass: number;
  Fail: number;
  Total: number;
  Duration: number;
  Results: (TestResult & { Kind: string; File: string })[];
}

export interface StructureTarget {
  config: ImageConfig;
  layers: LayerRef[];
  snapshotter: Snapshotter;
  /** Created on first use: file-only configurations never need a sandbox. */
  executor: () => Executor;
}

export async function runStructureTests(target: StructureTarget, configs: StructureConfig[]): Promise<StructureReport> {
  const started = process.hrtime.bigint();
  const results: StructureReport['Results'] = [];
  let view: View | undefined;
  const rootfs = async () => (view ??= await target.snapshotter.view(target.layers, `cst-${randomBytes(4).toString('hex')}`)).path;
  try {
    for (const cfg of configs) {
      const push = (kind: string, r: TestResult) => results.push({ ...r, Kind: kind, File: cfg.file });
      for (const t of cfg.commandTests) push('Command Test', await timed(t.name, () => commandTest(target, cfg.globalEnvVars, t)));
      for (const t of cfg.fileExistenceTests) push('File Existence Test', await timed(t.name, async () => fileExistence(await rootfs(), t)));
      for (const t of cfg.fileContentTests) push('File Content Test', await timed(t.name, async () => fileContent(await rootfs(), t)));
      if (cfg.metadataTest) push('Metadata Test', await timed('Metadata Test', async () => metadata(target.config, cfg.metadataTest!)));
      for (const [i, t] of cfg.licenseTests.entries()) push('License Test', await timed(`License Test ${i + 1}`, async () => license(await rootfs(), t)));
    }
  } finally {
    await view?.release();
  }
  const pass = results.filter((r) => r.Pass).length;
  return { Pass: pass, Fail: results.length - pass, Total: results.length, Duration: Number(process.hrtime.bigint() - started), Results: results };
}

type Outcome = Omit<TestResult, 'Name' | 'Duration' | 'Pass'> & { Errors: string[] };

async function timed(name: string, fn: () => Promise<Outcome>): Promise<TestResult> {
  const t0 = process.hrtime.bigint();
  let outcome: Outcome;
  try {
    outcome = await fn();
  } catch (e) {
    outcome = { Errors: [(e as Error).message] };
  }
  const r: TestResult = { Name: name, Pass: outcome.Errors.length === 0, Duration: Number(process.hrtime.bigint() - t0) };
  if (outcome.Stdout !== undefined) r.Stdout = outcome.Stdout;
  if (outcome.Stderr !== undefined) r.Stderr = outcome.Stderr;
  if (outcome.Errors.length) r.Errors = outcome.Errors;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Command tests

/** The image's environment with the configuration's variables on top; `$VAR` in values expands. */
function environment(config: ImageConfig, ...layers: EnvVar[][]): string[] {
  const env = new Map<string, string>();
  for (const kv of config.config?.Env ?? []) {
    const i = kv.indexOf('=');
    env.set(i < 0 ? kv : kv.slice(0, i), i < 0 ? '' : kv.slice(i + 1));
  }
  for (const list of layers) {
    for (const v of list) env.set(v.key, v.value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => env.get(a ?? b) ?? ''));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(target: StructureTarget, rootfs: string, argv: string[], env: string[], id: string): Promise<Ran> {
  const user = await resolveUser(rootfs, target.config.config?.User ?? '');
  const cwd = target.config.config?.WorkingDir || '/';
  await ensureWorkingDir(rootfs, cwd, user, []);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => new Writable({ write: (c: Buffer, _e, cb) => (into.push(c), cb()) });
  const result = await target.executor().run({
    id,
    rootfs,
    process: { args: argv, env, cwd, user },
    network: 'default',
    stdout: sink(out),
    stderr: sink(err),
  });
  return { exitCode: result.exitCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

async function commandTest(target: StructureTarget, globalEnv: EnvVar[], t: CommandTest): Promise<Outcome> {
  const env = environment(target.config, globalEnv, t.envVars);
  const errors: string[] = [];
  let layers = target.layers;
  const id = () => `kiln-cst-${process.pid}-${randomBytes(4).toString('hex')}`;
  // Setup commands: each runs in a container of the current image and is committed as the new base.
  for (const argv of t.setup) {
    const snap = await target.snapshotter.prepare(layers, id());
    try {
      const r = await run(target, snap.rootfs, argv, env, id());
      if (r.exitCode !== 0) return { Errors: [`setup command ${JSON.stringify(argv)} exited ${r.exitCode}: ${r.stderr.trim()}`], Stdout: r.stdout, Stderr: r.stderr };
      const layer = await snap.commit({ exclude: [] });
      if (layer) layers = [...layers, layer];
    } finally {
      await snap.release();
    }
  }
  const snap = await target.snapshotter.prepare(layers, id());
  let r: Ran;
  try {
    // The entrypoint is overridden: the command and its arguments are the whole argv.
    r = await run(target, snap.rootfs, [t.command, ...t.args], env, id());
    for (const argv of t.teardown) {
      const td = await run(target, snap.rootfs, argv, env, id());
      if (td.exitCode !== 0) errors.push(`teardown command ${JSON.stringify(argv)} exited ${td.exitCode}`);
    }
  } finally {
    await snap.release();
  }
  if (r.exitCode !== t.exitCode) errors.push(`Test '${t.name}' exited with incorrect error code. Expected: ${t.exitCode}, Actual: ${r.exitCode}`);
  const check = (text: string, stream: string, expected: RegExp[], excluded: RegExp[]) => {
    for (const re of expected) if (!re.test(text)) errors.push(`Expected string '${re.source}' not found in ${stream} '${text.trim()}'`);
    for (const re of excluded) if (re.test(text)) errors.push(`Excluded string '${re.source}' found in ${stream} '${text.trim()}'`);
  };
  check(r.stdout, 'output', t.expectedOutput, t.excludedOutput);
  check(r.stderr, 'error', t.expectedError, t.excludedError);
  return { Errors: errors, Stdout: r.stdout, Stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// File tests

/** The host path of `p` inside the root: directories resolved through symlinks, the last component not. */
async function pathInRoot(root: string, p: string): Promise<string> {
  const norm = posix.normalize(posix.join('/', p));
  if (norm === '/') return root;
  const parent = await resolveInRoot(root, posix.dirname(norm));
  return join(root, ...parent, posix.basename(norm));
}

/** Go's os.FileMode.String(): type letters (d, L, D, p, S, u, g, c, t) then rwxrwxrwx. */
export function goFileMode(mode: number): string {
  const type = mode & 0o170000;
  let s = '';
  if (type === 0o040000) s += 'd';
  if (type === 0o120000) s += 'L';
  if (type === 0o060000 || type === 0o020000) s += 'D';
  if (type === 0o010000) s += 'p';
  if (type === 0o140000) s += 'S';
  if (mode & 0o4000) s += 'u';
  if (mode & 0o2000) s += 'g';
  if (type === 0o020000) s += 'c';
  if (mode & 0o1000) s += 't';
  if (s === '') s = '-';
  const rwx = 'rwxrwxrwx';
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return s;
}

async function fileExistence(root: string, t: FileExistenceTest): Promise<Outcome> {
  const st = await lstat(await pathInRoot(root, t.path)).catch(() => undefined);
  if (!t.shouldExist) return { Errors: st ? [`File ${t.path} should not exist but does`] : [] };
  if (!st) return { Errors: [`File ${t.path} not found`] };
  const errors: string[] = [];
  const mode = goFileMode(st.mode);
  if (t.permissions !== undefined && mode !== t.permissions) errors.push(`${t.path} has incorrect permissions. Expected: ${t.permissions}, Actual: ${mode}`);
  if (t.uid !== undefined && st.uid !== t.uid) errors.push(`${t.path} has incorrect user ownership. Expected: ${t.uid}, Actual: ${st.uid}`);
  if (t.gid !== undefined && st.gid !== t.gid) errors.push(`${t.path} has incorrect group ownership. Expected: ${t.gid}, Actual: ${st.gid}`);
  if (t.isExecutableBy !== undefined) {
    const bits = { owner: 0o100, group: 0o010, other: 0o001, any: 0o111 }[t.isExecutableBy];
    if ((st.mode & bits) === 0) errors.push(`${t.path} is not executable by ${t.isExecutableBy} (mode ${mode})`);
  }
  return { Errors: errors };
}

async function fileContent(root: string, t: FileContentTest): Promise<Outcome> {
  let text: string;
  try {
    // Content tests follow a final symlink, as reading the file in a container would.
    text = await readFile(join(root, ...(await resolveInRoot(root, t.path))), 'utf8');
  } catch {
    return { Errors: [`Failed to read ${t.path}: no such file`] };
  }
  const errors: string[] = [];
  for (const re of t.expectedContents) if (!re.test(text)) errors.push(`Expected string '${re.source}' not found in file content`);
  for (const re of t.excludedContents) if (re.test(text)) errors.push(`Excluded string '${re.source}' found in file content`);
  return { Errors: errors };
}

// ---------------------------------------------------------------------------------------------
// Metadata and license tests

function metadata(image: ImageConfig, t: MetadataTest): Outcome {
  const c = image.config ?? {};
  const errors: string[] = [];
  const env = new Map((c.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=') < 0 ? kv.length : kv.indexOf('=')), kv.includes('=') ? kv.slice(kv.indexOf('=') + 1) : '']));
  const compare = (what: string, have: Map<string, string>, want: EnvVar[]) => {
    for (const v of want) {
      const actual = have.get(v.key);
      if (actual === undefined) errors.push(`${what} ${v.key} not found in image metadata`);
      else if (v.isRegex ? !new RegExp(v.value).test(actual) : actual !== v.value) errors.push(`${what} ${v.key} does not match. Expected: ${v.value}, Actual: ${actual}`);
    }
  };
  compare('Env var', env, t.envVars);
  compare('Label', new Map(Object.entries(c.Labels ?? {})), t.labels);
  const ports = Object.keys(c.ExposedPorts ?? {});
  const exposed = (p: string) => ports.some((k) => k === p || k.split('/')[0] === p);
  for (const p of t.exposedPorts) if (!exposed(p)) errors.push(`Port ${p} not found in exposed ports`);
  for (const p of t.unexposedPorts) if (exposed(p)) errors.push(`Port ${p} should not be exposed`);
  const volumes = Object.keys(c.Volumes ?? {});
  for (const v of t.volumes) if (!volumes.includes(v)) errors.push(`Volume ${v} not found in image volumes`);
  for (const v of t.unmountedVolumes) if (volumes.includes(v)) errors.push(`Volume ${v} should not be mounted`);
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (t.entrypoint !== undefined && !same(t.entrypoint, c.Entrypoint ?? [])) errors.push(`Image entrypoint ${JSON.stringify(c.Entrypoint ?? [])} does not match expected entrypoint ${JSON.stringify(t.entrypoint)}`);
  if (t.cmd !== undefined && !same(t.cmd, c.Cmd ?? [])) errors.push(`Image cmd ${JSON.stringify(c.Cmd ?? [])} does not match expected cmd ${JSON.stringify(t.cmd)}`);
  if (t.workdir !== undefined && (c.WorkingDir ?? '') !== t.workdir) errors.push(`Image workdir ${c.WorkingDir ?? ''} does not match expected workdir ${t.workdir}`);
  if (t.user !== undefined && (c.User ?? '') !== t.user) errors.push(`Image user ${c.User ?? ''} does not match expected user ${t.user}`);
  return { Errors: errors };
}

/** container-structure-test's banned licenses. */
const bannedLicenses = ['AGPL', 'WTFPL'];

async function license(root: string, t: LicenseTest): Promise<Outcome> {
  const errors: string[] = [];
  const files = [...t.files];
  if (t.debian) {
    const doc = join(root, 'usr', 'share', 'doc');
    for (const pkg of await readdir(doc).catch(() => [] as string[])) files.push(`/usr/share/doc/${pkg}/copyright`);
  }
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(join(root, ...(await resolveInRoot(root, f))), 'utf8');
    } catch {
      if (t.files.includes(f)) errors.push(`License file ${f} not found`);
      continue;
    }
    for (const banned of bannedLicenses) if (text.includes(banned)) errors.push(`${f} mentions banned license ${banned}`);
  }
  return { Errors: errors };
}
