// Running container-structure-test configurations against an image without a daemon. File,
// content, metadata and license tests read a read-only view of the image; command tests run in the
// sandbox on a fresh snapshot of the image, with setup commands each committed as the new base, as
// container-structure-test's docker driver (pkg/drivers/docker_driver.go) does with `docker commit`.
// Results, their names, order and messages are those of its v2 tests (pkg/types/v2/*.go).

import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Executor, Mount } from '../../sandbox/index.js';
import { resolveUser } from '../../sandbox/index.js';
import { ensureWorkingDir } from '../../sandbox/mountpoints.js';
import { resolveInRoot } from '../../sandbox/rootpath.js';
import type { LayerRef, Snapshotter, View } from '../../snapshot/index.js';
import type { ImageConfig } from '../../oci/types.js';
import type { CommandTest, ContainerRunOptions, FileContentTest, FileExistenceTest, LicenseTest, MetadataTest, StructureConfig } from './config.js';
import { goRegExp } from './config.js';

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
  /** The sum of the results' durations, as container-structure-test's summary adds them. */
  Duration: number;
  /** Name is container-structure-test's ("Command Test: <name>"); Test is the name the configuration gives. */
  Results: (TestResult & { Test: string; File: string })[];
}

export interface StructureTarget {
  config: ImageConfig;
  layers: LayerRef[];
  snapshotter: Snapshotter;
  /**
   * Created on first use: file-only configurations never need a sandbox. None: container-structure-test's
   * tar driver, which runs no commands (each command test fails) and sets global variables unexpanded.
   */
  executor?: () => Executor;
}

/** A configuration file that could not be read: one failed result, and the other files still run. */
export interface UnreadableConfig {
  file: string;
  error: string;
}

export async function runStructureTests(target: StructureTarget, configs: (StructureConfig | UnreadableConfig)[]): Promise<StructureReport> {
  const results: StructureReport['Results'] = [];
  let view: View | undefined;
  const rootfs = async () => (view ??= await target.snapshotter.view(target.layers, `cst-${randomBytes(4).toString('hex')}`)).path;
  try {
    for (const cfg of configs) {
      const push = (test: string, r: TestResult) => results.push({ ...r, Test: test, File: cfg.file });
      if ('error' in cfg) {
        push('', refused('', [`error parsing config file: ${cfg.error}`]));
        continue;
      }
      // The docker driver's SetEnv: global variables, expanded against the image's environment.
      const imageEnv = envMap(target.config.config?.Env);
      const env = new Map([...imageEnv, ...cfg.globalEnvVars.map((v) => [v.key, target.executor ? expand(v.value, imageEnv) : v.value] as const)]);
      // v2/structure.go runAll: command, file content, file existence, license, then metadata tests.
      for (const t of cfg.commandTests) push(t.name, t.invalid.length ? refused(t.name, t.invalid) : await commandTest(target, env, cfg.containerRunOptions, t));
      for (const t of cfg.fileContentTests) push(t.name, t.invalid.length ? refused(t.name, t.invalid) : await timed(`File Content Test: ${t.name}`, async () => fileContent(await rootfs(), t)));
      for (const t of cfg.fileExistenceTests) push(t.name, t.invalid.length ? refused(t.name, t.invalid) : await timed(`File Existence Test: ${t.name}`, async () => fileExistence(await rootfs(), t, env)));
      for (const t of cfg.licenseTests) push('License Test', await timed('License Test', async () => license(await rootfs(), t)));
      const m = cfg.metadataTest;
      if (m) push('Metadata Test', m.invalid.length ? refused('Metadata Test', m.invalid) : await timed('Metadata Test', async () => metadata(target.config, m)));
    }
  } finally {
    await view?.release();
  }
  const pass = results.filter((r) => r.Pass).length;
  const duration = results.reduce((n, r) => n + r.Duration, 0);
  return { Pass: pass, Fail: results.length - pass, Total: results.length, Duration: duration, Results: results };
}

type Outcome = Omit<TestResult, 'Name' | 'Duration' | 'Pass'> & { Errors: string[] };

/** A test container-structure-test's Validate refuses: failed, under its own name, never run. */
function refused(name: string, errors: string[]): TestResult {
  return { Name: name, Pass: false, Errors: errors, Duration: 0 };
}

function result(name: string, outcome: Outcome, duration: number): TestResult {
  const r: TestResult = { Name: name, Pass: outcome.Errors.length === 0, Duration: duration };
  // Go's encoding/json with omitempty: empty output and no errors are left out.
  if (outcome.Stdout) r.Stdout = outcome.Stdout;
  if (outcome.Stderr) r.Stderr = outcome.Stderr;
  if (outcome.Errors.length) r.Errors = outcome.Errors;
  return r;
}

async function timed(name: string, fn: () => Promise<Outcome>): Promise<TestResult> {
  const t0 = process.hrtime.bigint();
  let outcome: Outcome;
  try {
    outcome = await fn();
  } catch (e) {
    outcome = { Errors: [(e as Error).message] };
  }
  return result(name, outcome, Number(process.hrtime.bigint() - t0));
}

/**
 * Go's os.Expand, which container-structure-test applies to values, commands and paths: $NAME and
 * ${NAME} become the variable's value ("" when unset); $ before anything else stays; a bad ${ is eaten.
 */
export function expand(s: string, env: ReadonlyMap<string, string>): string {
  const special = (c: string | undefined) => c !== undefined && '*#$@!?-0123456789'.includes(c);
  const alnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c);
  let out = '';
  let i = 0;
  for (let j = 0; j < s.length; j++) {
    if (s[j] !== '$' || j + 1 >= s.length) continue;
    out += s.slice(i, j);
    const rest = s.slice(j + 1);
    let name = '';
    let width = 0;
    if (rest[0] === '{') {
      if (rest.length > 2 && special(rest[1]) && rest[2] === '}') [name, width] = [rest[1]!, 3];
      else {
        const close = rest.indexOf('}');
        if (close < 0) width = 1; // bad syntax: eat "${"
        else if (close === 1) width = 2; // bad syntax: eat "${}"
        else [name, width] = [rest.slice(1, close), close + 1];
      }
    } else if (special(rest[0])) [name, width] = [rest[0]!, 1];
    else {
      while (alnum(rest[width])) width++;
      name = rest.slice(0, width);
    }
    if (name !== '') out += env.get(name) ?? '';
    else if (width === 0) out += '$';
    j += width;
    i = j + 1;
  }
  return i === 0 && out === '' ? s : out + s.slice(i);
}

function envMap(list: string[] | undefined): Map<string, string> {
  const env = new Map<string, string>();
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    env.set(i < 0 ? kv : kv.slice(0, i), i < 0 ? '' : kv.slice(i + 1));
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Command tests

interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface RunIn {
  rootfs: string;
  argv: string[];
  env: ReadonlyMap<string, string>;
  user: string;
  mounts: Mount[];
}

async function run(target: StructureTarget, r: RunIn): Promise<Ran> {
  const user = await resolveUser(r.rootfs, r.user);
  const cwd = target.config.config?.WorkingDir || '/';
  await ensureWorkingDir(r.rootfs, cwd, user, []);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => new Writable({ write: (c: Buffer, _e, cb) => (into.push(c), cb()) });
  const result = await target.executor!().run({
    id: `kiln-cst-${process.pid}-${randomBytes(4).toString('hex')}`,
    rootfs: r.rootfs,
    process: { args: r.argv, env: [...r.env].map(([k, v]) => `${k}=${v}`), cwd, user },
    network: 'default',
    mounts: r.mounts,
    stdout: sink(out),
    stderr: sink(err),
  });
  return { exitCode: result.exitCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** containerRunOptions' variables: envFile's (dotenv), then those named from kiln's environment; empty values are left out, as there. */
async function runOptionsEnv(o: ContainerRunOptions | undefined): Promise<[string, string][]> {
  const out: [string, string][] = [];
  if (o?.envFile) {
    const text = await readFile(o.envFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`Unable to load envFile ${o.envFile}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    });
    for (const [k, v] of parseDotenv(text)) if (k !== '' && v !== '') out.push([k, v]);
  }
  for (const k of o?.envVars ?? []) {
    const v = process.env[k];
    if (v) out.push([k, v]);
  }
  return out;
}

/** The dotenv format of github.com/joho/godotenv: KEY=VALUE lines, `export ` prefixes, # comments, quoted values. */
export function parseDotenv(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    const q = v[0];
    if ((q === '"' || q === "'") && v.lastIndexOf(q) > 0) {
      v = v.slice(1, v.lastIndexOf(q));
      if (q === '"') v = v.replace(/\\([nr"\\])/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
    } else {
      v = v.replace(/\s+#.*$/, '').trim();
    }
    out.push([m[1]!, v]);
  }
  return out;
}

function bindMounts(o: ContainerRunOptions | undefined): Mount[] {
  return (o?.bindMounts ?? []).map((b) => {
    const [source, destination, options = ''] = b.split(':') as [string, string, string?];
    return { destination, type: 'bind', source: resolve(source), options: ['rbind', options.split(',').includes('ro') ? 'ro' : 'rw'] };
  });
}

async function commandTest(target: StructureTarget, baseEnv: ReadonlyMap<string, string>, opts: ContainerRunOptions | undefined, t: CommandTest): Promise<TestResult> {
  if (!target.executor) return refused(t.name, ['error in setup: Tar driver is unable to process commands, please use a different driver']);
  const user = opts?.user ?? target.config.config?.User ?? '';
  const mounts = bindMounts(opts);
  let layers = target.layers;
  // The image's environment as the docker driver sees it: the global variables, then (once a setup
  // command has been committed, since `docker commit` keeps the container's environment) the
  // test's variables, expanded against the image's environment as the driver's Setup expands them.
  let imageEnv = baseEnv;
  if (t.setup.length) {
    imageEnv = new Map([...baseEnv, ...t.envVars.map((v) => [v.key, expand(v.value, baseEnv)] as const)]);
    for (const argv of t.setup) {
      try {
        const snap = await target.snapshotter.prepare(layers, `kiln-cst-${process.pid}-${randomBytes(4).toString('hex')}`);
        try {
          // The driver waits for a setup command and commits whatever it did: its exit code is not checked.
          await run(target, { rootfs: snap.rootfs, argv, env: imageEnv, user, mounts });
          const layer = await snap.commit({ exclude: [] });
          if (layer) layers = [...layers, layer];
        } finally {
          await snap.release();
        }
      } catch (e) {
        return refused(t.name, [`error in setup: ${(e as Error).message}`]);
      }
    }
  }
  // Teardown commands are not run: as with the docker driver, every test gets a container of its own.
  const argv = [t.command, ...t.args].map((a) => expand(a, imageEnv));
  // The test's variables reach the command as written (the driver does not expand them there).
  const env = new Map([...imageEnv, ...t.envVars.map((v) => [v.key, v.value] as const), ...(await runOptionsEnv(opts))]);
  const name = `Command Test: ${t.name}`;
  const snap = await target.snapshotter.prepare(layers, `kiln-cst-${process.pid}-${randomBytes(4).toString('hex')}`);
  let r: Ran;
  const t0 = process.hrtime.bigint();
  try {
    r = await run(target, { rootfs: snap.rootfs, argv, env, user, mounts });
  } catch (e) {
    return result(name, { Errors: [(e as Error).message] }, Number(process.hrtime.bigint() - t0));
  } finally {
    await snap.release();
  }
  const duration = Number(process.hrtime.bigint() - t0);
  // command.go CheckOutput: stderr, then stdout, then the exit code.
  const errors: string[] = [];
  for (const p of t.expectedError) if (!p.test(r.stderr)) errors.push(`Expected string '${p.text}' not found in error '${r.stderr}'`);
  for (const p of t.excludedError) if (p.test(r.stderr)) errors.push(`Excluded string '${p.text}' found in error '${r.stderr}'`);
  for (const p of t.expectedOutput) if (!p.test(r.stdout)) errors.push(`Expected string '${p.text}' not found in output '${r.stdout}'`);
  for (const p of t.excludedOutput) if (p.test(r.stdout)) errors.push(`Excluded string '${p.text}' found in output '${r.stdout}'`);
  if (r.exitCode !== t.exitCode) errors.push(`Test '${t.name}' exited with incorrect error code. Expected: ${t.exitCode}, Actual: ${r.exitCode}`);
  return result(name, { Errors: errors, Stdout: r.stdout, Stderr: r.stderr }, duration);
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

async function fileExistence(root: string, t: FileExistenceTest, env: ReadonlyMap<string, string>): Promise<Outcome> {
  // file_existence.go: the path is expanded against the image's environment; messages name it as written.
  const st = await lstat(await pathInRoot(root, expand(t.path, env))).catch(() => undefined);
  if (!st) return { Errors: t.shouldExist ? [`Error examining file in container: File ${t.path} not found in image`] : [] };
  if (!t.shouldExist) return { Errors: [`File ${t.path} should not exist but does`] };
  const errors: string[] = [];
  const mode = goFileMode(st.mode);
  if (t.permissions !== undefined && mode !== t.permissions) errors.push(`${t.path} has incorrect permissions. Expected: ${t.permissions}, Actual: ${mode}`);
  if (t.isExecutableBy !== undefined) {
    const bits = ({ any: 0o111, owner: 0o100, group: 0o010, other: 0o001 } as Record<string, number>)[t.isExecutableBy];
    if (bits === undefined) errors.push(`${t.isExecutableBy} not recognised as a valid option`);
    else if ((st.mode & bits) === 0) errors.push(`${t.path} has incorrect executable bit. Expected to be executable by ${t.isExecutableBy}, Actual: ${mode}`);
  }
  if (t.uid !== undefined && st.uid !== t.uid) errors.push(`${t.path} has incorrect user ownership. Expected: ${t.uid}, Actual: ${st.uid}`);
  if (t.gid !== undefined && st.gid !== t.gid) errors.push(`${t.path} has incorrect group ownership. Expected: ${t.gid}, Actual: ${st.gid}`);
  return { Errors: errors };
}

/** A file's text as a container would read it (a final symlink followed), or why it cannot be read. */
async function readInRoot(root: string, path: string): Promise<string | { error: string }> {
  try {
    return await readFile(join(root, ...(await resolveInRoot(root, path))), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return { error: `Cannot read specified path: ${path} is a directory, not a file` };
    if (code === 'ENOENT' || code === 'ENOTDIR') return { error: `File ${path} not found in image` };
    return { error: (e as Error).message };
  }
}

async function fileContent(root: string, t: FileContentTest): Promise<Outcome> {
  const text = await readInRoot(root, t.path);
  if (typeof text !== 'string') return { Errors: [`Failed to open ${t.path}. Error: ${text.error}`] };
  const errors: string[] = [];
  for (const p of t.expectedContents) if (!p.test(text)) errors.push(`Expected string '${p.text}' not found in file content string '${text}'`);
  for (const p of t.excludedContents) if (p.test(text)) errors.push(`Excluded string '${p.text}' found in file content string '${text}'`);
  return { Errors: errors };
}

// ---------------------------------------------------------------------------------------------
// Metadata and license tests

/** Go's %v of a []string: [a b c]. */
const goList = (l: readonly string[] | undefined) => `[${(l ?? []).join(' ')}]`;

/** container-structure-test's CompileAndRunRegex: a pattern that does not compile matches nothing. */
function matches(pattern: string, text: string): boolean {
  try {
    return goRegExp(pattern).test(text);
  } catch {
    return false;
  }
}

function metadata(image: ImageConfig, t: MetadataTest): Outcome {
  const c = image.config ?? {};
  const errors: string[] = [];
  const env = envMap(c.Env);
  // metadata.go Run, in its order and words.
  for (const v of t.envVars) {
    const actual = env.get(v.key);
    if (actual === undefined) errors.push(`variable ${v.key} not found in image env`);
    else if (v.isRegex ? !matches(v.value, actual) : actual !== v.value) errors.push(`env var ${v.key} value ${actual} does not match expected value: ${v.value}`);
  }
  for (const k of t.unboundEnvVars) if (env.has(k)) errors.push(`env variable ${k} should not be present in image metadata`);
  const labels = new Map(Object.entries(c.Labels ?? {}));
  for (const v of t.labels) {
    const actual = labels.get(v.key);
    if (actual === undefined) errors.push(`label ${v.key} not found in image metadata`);
    else if (v.isRegex ? !matches(v.value, actual) : actual !== v.value) errors.push(`label ${v.key} value ${actual} does not match expected value: ${v.value}`);
  }
  const cmd = c.Cmd ?? [];
  if (t.cmd !== undefined) {
    if (t.cmd.length !== cmd.length) errors.push(`Image Cmd ${goList(cmd)} does not match expected Cmd: ${goList(t.cmd)}`);
    else for (const [i, x] of t.cmd.entries()) if (x !== cmd[i]) errors.push(`Image config Cmd ${goList(cmd)} does not match expected value: ${goList(t.cmd)}`);
  }
  const entrypoint = c.Entrypoint ?? [];
  if (t.entrypoint !== undefined) {
    if (t.entrypoint.length !== entrypoint.length) errors.push(`Image entrypoint ${goList(entrypoint)} does not match expected entrypoint: ${goList(t.entrypoint)}`);
    else for (const [i, x] of t.entrypoint.entries()) if (x !== entrypoint[i]) errors.push(`Image config entrypoint ${goList(entrypoint)} does not match expected value: ${goList(t.entrypoint)}`);
  }
  if (t.workdir !== undefined && t.workdir !== (c.WorkingDir ?? '')) errors.push(`Image workdir ${c.WorkingDir ?? ''} does not match config workdir: ${t.workdir}`);
  if (t.user !== undefined && t.user !== (c.User ?? '')) errors.push(`Image user ${c.User ?? ''} does not match config user: ${t.user}`);
  // The driver lists exposed ports without their protocol ("8080"). kiln also accepts the port with
  // its protocol ("8080/tcp"), which there matches nothing: an unexposedPorts entry like that would
  // pass whatever the image exposes.
  const ports = Object.keys(c.ExposedPorts ?? {});
  const exposed = (p: string) => ports.some((k) => k === p || k.split('/')[0] === p);
  for (const p of t.exposedPorts) if (!exposed(p)) errors.push(`Port ${p} not found in config`);
  for (const p of t.unexposedPorts) if (exposed(p)) errors.push(`Port ${p} should not be exposed`);
  const volumes = Object.keys(c.Volumes ?? {});
  for (const v of t.volumes) if (!volumes.includes(v)) errors.push(`Volume ${v} not found in config`);
  for (const v of t.unmountedVolumes) if (volumes.includes(v)) errors.push(`Volume ${v} should not be mounted`);
  return { Errors: errors };
}

// licenses.go: words that fail a license file (compared in upper case), and packages never checked.
const bannedLicenses = ['AGPL', 'WTFPL'];
const unlicensedPackages = ['libgnutls30'];

async function license(root: string, t: LicenseTest): Promise<Outcome> {
  const errors: string[] = [];
  const check = async (file: string) => {
    const text = await readInRoot(root, file);
    if (typeof text !== 'string') return errors.push(`Error reading license file for ${file}: ${text.error}`);
    const upper = text.toUpperCase();
    for (const b of bannedLicenses) if (upper.includes(b)) return errors.push(`Invalid license for ${file}, license contains ${b}`);
  };
  if (t.debian) {
    // Every package directory under /usr/share/doc (not the symlinks to others') needs a copyright file.
    let entries;
    try {
      entries = await readdir(await pathInRoot(root, '/usr/share/doc'), { withFileTypes: true });
    } catch (e) {
      return { Errors: [`Error reading directory: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? '/usr/share/doc not found in image' : (e as Error).message}`] };
    }
    for (const pkg of entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
      if (unlicensedPackages.includes(pkg)) continue;
      const file = `/usr/share/doc/${pkg}/copyright`;
      if (!(await lstat(await pathInRoot(root, file)).catch(() => undefined))) errors.push(`Error reading license file for ${pkg}: File ${file} not found in image`);
      await check(file);
    }
  }
  for (const f of t.files) await check(f);
  return { Errors: errors };
}
