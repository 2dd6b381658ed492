// container-structure-test's configuration (schemaVersion 2.0.0, and the older 1.0.0), in YAML or
// JSON, checked strictly as its YAML reader (yaml.v2 UnmarshalStrict) checks it: an unknown field, a
// wrong type or a regular expression that does not compile is an error naming the file and the path
// to the field (`commandTests[0].exitCode`). Like yaml.v2, a number or boolean where a string is
// expected is read as its text (`value: 1.0` is "1.0"), and YAML 1.1's yes/no/on/off are booleans.
// What container-structure-test checks only when a test runs (Validate: a name, a command, non-empty
// env values) is not refused here: the test carries the complaint and fails, as it does there.

import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { KilnError } from '../../errors.js';

export class StructureConfigInvalid extends KilnError {
  override exitCode = 2;
}

/** A regular expression as the configuration writes it (messages quote that text) and its test. */
export interface Pattern {
  text: string;
  test(s: string): boolean;
}

export interface EnvVar {
  key: string;
  value: string;
  isRegex: boolean;
}

/** Why container-structure-test's Validate would refuse the test: it is reported as a failure, not run. */
interface Checked {
  invalid: string[];
}

export interface CommandTest extends Checked {
  name: string;
  setup: string[][];
  teardown: string[][];
  command: string;
  args: string[];
  envVars: EnvVar[];
  expectedOutput: Pattern[];
  excludedOutput: Pattern[];
  expectedError: Pattern[];
  excludedError: Pattern[];
  exitCode: number;
}

export interface FileExistenceTest extends Checked {
  name: string;
  path: string;
  shouldExist: boolean;
  /** Go's os.FileMode.String() form, compared as text. */
  permissions?: string;
  uid?: number;
  gid?: number;
  /** owner, group, other or any; anything else fails the test, as there. */
  isExecutableBy?: string;
}

export interface FileContentTest extends Checked {
  name: string;
  path: string;
  expectedContents: Pattern[];
  excludedContents: Pattern[];
}

export interface MetadataTest extends Checked {
  envVars: EnvVar[];
  /** Variables that must not be set. */
  unboundEnvVars: string[];
  labels: EnvVar[];
  exposedPorts: string[];
  unexposedPorts: string[];
  volumes: string[];
  unmountedVolumes: string[];
  /** undefined: not checked; []: must be empty. */
  entrypoint?: string[];
  cmd?: string[];
  workdir?: string;
  user?: string;
}

export interface LicenseTest {
  debian: boolean;
  files: string[];
}

/** How command tests' containers run (schema 2.0.0 `containerRunOptions`). */
export interface ContainerRunOptions {
  /** Run setup and test commands as this user instead of the image's. */
  user?: string;
  /** Names of variables passed from kiln's own environment (unset or empty ones are not passed). */
  envVars: string[];
  /** A file of KEY=VALUE lines (dotenv), relative to the working directory; empty values are not passed. */
  envFile?: string;
  /** host:container[:options] bind mounts, as docker's Binds (options: ro, rw; others are ignored). */
  bindMounts: string[];
  privileged: boolean;
  capabilities: string[];
  allocateTty: boolean;
}

export interface StructureConfig {
  file: string;
  schemaVersion: '2.0.0' | '1.0.0';
  globalEnvVars: EnvVar[];
  containerRunOptions?: ContainerRunOptions;
  commandTests: CommandTest[];
  fileExistenceTests: FileExistenceTest[];
  fileContentTests: FileContentTest[];
  metadataTest?: MetadataTest;
  licenseTests: LicenseTest[];
}

export async function readStructureConfig(path: string): Promise<StructureConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new StructureConfigInvalid(`${path}: cannot read the test configuration: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parseStructureConfig(text, path);
}

type Obj = Record<string, unknown>;

class Reader {
  /** `raw`: the same document read with YAML's failsafe schema, where every scalar is its text. */
  constructor(
    readonly file: string,
    private readonly raw: unknown,
  ) {}

  /** The text of the scalar at `path` (`a.b[2].c`), as the failsafe reading gives it. */
  private rawText(path: string): string | undefined {
    let v: unknown = this.raw;
    for (const tok of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
      if (v === null || typeof v !== 'object') return undefined;
      v = tok.startsWith('[') ? (v as unknown[])[Number(tok.slice(1, -1))] : (v as Obj)[tok];
    }
    return typeof v === 'string' ? v : undefined;
  }

  fail(path: string, why: string): never {
    throw new StructureConfigInvalid(`${this.file}: ${path}: ${why}`);
  }

  object(v: unknown, path: string, allowed: string[]): Obj {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, `expected a mapping, got ${describe(v)}`);
    for (const k of Object.keys(v as Obj)) {
      if (!allowed.includes(k)) this.fail(path === '' ? k : `${path}.${k}`, `unknown field (known: ${allowed.join(', ')})`);
    }
    return v as Obj;
  }

  string(v: unknown, path: string): string {
    // yaml.v2 decodes any scalar into a string field as its text.
    if (typeof v === 'number' || typeof v === 'boolean') return this.rawText(path) ?? String(v);
    if (typeof v !== 'string') this.fail(path, `expected a string, got ${describe(v)}`);
    return v as string;
  }

  /** A string field that may be left out or null (the empty string, as Go's zero value). */
  optionalString(v: unknown, path: string): string {
    return v === undefined || v === null ? '' : this.string(v, path);
  }

  int(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, `expected an integer, got ${describe(v)}`);
    return v as number;
  }

  bool(v: unknown, path: string): boolean {
    // YAML 1.1 booleans, which yaml.v2 reads.
    if (typeof v === 'string' && /^(?:y|Y|yes|Yes|YES|on|On|ON)$/.test(v)) return true;
    if (typeof v === 'string' && /^(?:n|N|no|No|NO|off|Off|OFF)$/.test(v)) return false;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, got ${describe(v)}`);
    return v as boolean;
  }

  list<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): T[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, `expected a list, got ${describe(v)}`);
    return (v as unknown[]).map((x, i) => item(x, `${path}[${i}]`));
  }

  strings(v: unknown, path: string): string[] {
    return this.list(v, path, (x, p) => this.string(x, p));
  }

  regexes(v: unknown, path: string): Pattern[] {
    return this.list(v, path, (x, p) => {
      const src = this.string(x, p);
      try {
        const re = goRegExp(src);
        return { text: src, test: (s: string) => re.test(s) };
      } catch (e) {
        return this.fail(p, `invalid regular expression ${JSON.stringify(src)}: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`);
      }
    });
  }

  envVars(v: unknown, path: string): EnvVar[] {
    return this.list(v, path, (x, p) => {
      const o = this.object(x, p, ['key', 'value', 'isRegex']);
      return {
        key: this.optionalString(o.key, `${p}.key`),
        value: this.optionalString(o.value, `${p}.value`),
        isRegex: o.isRegex === undefined || o.isRegex === null ? false : this.bool(o.isRegex, `${p}.isRegex`),
      };
    });
  }
}

// RE2's ASCII classes (github.com/google/re2/wiki/Syntax), as the inside of a JavaScript class.
const posixClasses: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/**
 * A Go (RE2) regular expression as a JavaScript one: leading inline flags such as `(?i)` or `(?s)`
 * become RegExp flags, `(?P<name>` becomes `(?<name>`, `\A` and `\z` become anchors, `[[:alpha:]]`
 * classes their ranges and `\Q…\E` its text.
 */
export function goRegExp(src: string): RegExp {
  let flags = '';
  let body = src;
  const m = /^\(\?([imsU]+)\)/.exec(body);
  if (m) {
    for (const f of m[1]!) if (f !== 'U' && !flags.includes(f)) flags += f;
    body = body.slice(m[0].length);
  }
  body = body.replace(/\\Q([\s\S]*?)(?:\\E|$)/g, (_m, lit: string) => lit.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'));
  body = body.replace(/\[:(\w+):\]/g, (m, name: string) => posixClasses[name] ?? m);
  body = body.replace(/\(\?P</g, '(?<').replace(/\\A/g, '^').replace(/\\z/g, '$(?![\\s\\S])');
  return new RegExp(body, flags);
}

export function parseStructureConfig(text: string, file: string): StructureConfig {
  let doc: unknown;
  let raw: unknown;
  try {
    doc = parseYaml(text); // YAML is a superset of JSON: both forms are read here
    raw = parseYaml(text, { schema: 'failsafe' });
  } catch (e) {
    throw new StructureConfigInvalid(`${file}: not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = new Reader(file, raw);
  const top0 = r.object(doc, '', ['schemaVersion', 'globalEnvVars', 'commandTests', 'fileExistenceTests', 'fileContentTests', 'metadataTest', 'licenseTests', 'containerRunOptions']);
  if (top0.schemaVersion === undefined || top0.schemaVersion === null) r.fail('schemaVersion', 'is required ("2.0.0")');
  const version = r.string(top0.schemaVersion, 'schemaVersion');
  if (version !== '2.0.0' && version !== '1.0.0') r.fail('schemaVersion', `"${version}" is not supported (use "2.0.0" or "1.0.0")`);
  const v1 = version === '1.0.0';
  // pkg/types/v1/structure.go: 1.0.0 has no metadata test and no run options.
  const top = v1 ? r.object(doc, '', ['schemaVersion', 'globalEnvVars', 'commandTests', 'fileExistenceTests', 'fileContentTests', 'licenseTests']) : top0;

  const commandFields = v1
    ? ['name', 'setup', 'teardown', 'command', 'envVars', 'expectedOutput', 'excludedOutput', 'expectedError', 'excludedError', 'exitCode']
    : ['name', 'setup', 'teardown', 'command', 'args', 'envVars', 'expectedOutput', 'excludedOutput', 'expectedError', 'excludedError', 'exitCode'];
  const commandTests = r.list(top.commandTests, 'commandTests', (x, p): CommandTest => {
    const o = r.object(x, p, commandFields);
    const name = r.optionalString(o.name, `${p}.name`);
    let command: string;
    let args: string[];
    if (v1) {
      // 1.0.0: `command` is the whole argv.
      [command = '', ...args] = r.strings(o.command, `${p}.command`);
    } else {
      command = r.optionalString(o.command, `${p}.command`);
      args = r.strings(o.args, `${p}.args`);
    }
    const commands = (v: unknown, path: string) => r.list(v, path, (c, cp) => r.strings(c, cp));
    const t: CommandTest = {
      name,
      setup: commands(o.setup, `${p}.setup`),
      teardown: commands(o.teardown, `${p}.teardown`),
      command,
      args,
      envVars: r.envVars(o.envVars, `${p}.envVars`),
      expectedOutput: r.regexes(o.expectedOutput, `${p}.expectedOutput`),
      excludedOutput: r.regexes(o.excludedOutput, `${p}.excludedOutput`),
      expectedError: r.regexes(o.expectedError, `${p}.expectedError`),
      excludedError: r.regexes(o.excludedError, `${p}.excludedError`),
      exitCode: o.exitCode === undefined || o.exitCode === null ? 0 : r.int(o.exitCode, `${p}.exitCode`),
      invalid: [],
    };
    // pkg/types/v2/command.go, Validate.
    if (name === '') t.invalid.push('Please provide a valid name for every test');
    if (command === '') t.invalid.push(`Please provide a valid command to run for test ${name}`);
    if (t.setup.some((c) => c.length === 0)) t.invalid.push('Error in setup command configuration encountered; please check formatting and remove all empty setup commands');
    if (t.teardown.some((c) => c.length === 0)) t.invalid.push('Error in teardown command configuration encountered; please check formatting and remove all empty teardown commands');
    for (const v of t.envVars) if (v.key === '' || v.value === '') t.invalid.push('Please provide non-empty keys and values for all specified env vars');
    return t;
  });

  const existenceFields = v1 ? ['name', 'path', 'shouldExist', 'permissions'] : ['name', 'path', 'shouldExist', 'permissions', 'uid', 'gid', 'isExecutableBy'];
  const fileExistenceTests = r.list(top.fileExistenceTests, 'fileExistenceTests', (x, p): FileExistenceTest => {
    const o = r.object(x, p, existenceFields);
    const t: FileExistenceTest = {
      name: r.optionalString(o.name, `${p}.name`),
      path: r.optionalString(o.path, `${p}.path`),
      // file_existence.go UnmarshalYAML: shouldExist defaults to true, uid and gid to "not checked".
      shouldExist: o.shouldExist === undefined || o.shouldExist === null ? true : r.bool(o.shouldExist, `${p}.shouldExist`),
      invalid: [],
    };
    const perms = r.optionalString(o.permissions, `${p}.permissions`);
    if (perms !== '') t.permissions = perms;
    if (o.uid !== undefined && o.uid !== null) t.uid = r.int(o.uid, `${p}.uid`);
    if (o.gid !== undefined && o.gid !== null) t.gid = r.int(o.gid, `${p}.gid`);
    const by = r.optionalString(o.isExecutableBy, `${p}.isExecutableBy`);
    if (by !== '') t.isExecutableBy = by;
    if (t.name === '') t.invalid.push('Please provide a valid name for every test');
    if (t.path === '') t.invalid.push(`Please provide a valid file path for test ${t.name}`);
    return t;
  });

  const fileContentTests = r.list(top.fileContentTests, 'fileContentTests', (x, p): FileContentTest => {
    const o = r.object(x, p, ['name', 'path', 'expectedContents', 'excludedContents']);
    const t: FileContentTest = {
      name: r.optionalString(o.name, `${p}.name`),
      path: r.optionalString(o.path, `${p}.path`),
      expectedContents: r.regexes(o.expectedContents, `${p}.expectedContents`),
      excludedContents: r.regexes(o.excludedContents, `${p}.excludedContents`),
      invalid: [],
    };
    if (t.name === '') t.invalid.push('Please provide a valid name for every test');
    if (t.path === '') t.invalid.push(`Please provide a valid file path for test ${t.name}`);
    return t;
  });

  let metadataTest: MetadataTest | undefined;
  if (top.metadataTest !== undefined && top.metadataTest !== null) {
    const p = 'metadataTest';
    const o = r.object(top.metadataTest, p, ['envVars', 'unboundEnvVars', 'labels', 'exposedPorts', 'unexposedPorts', 'volumes', 'unmountedVolumes', 'entrypoint', 'cmd', 'workdir', 'user']);
    const m: MetadataTest = {
      envVars: r.envVars(o.envVars, `${p}.envVars`),
      unboundEnvVars: r.envVars(o.unboundEnvVars, `${p}.unboundEnvVars`).map((v) => v.key),
      labels: r.envVars(o.labels, `${p}.labels`),
      exposedPorts: r.strings(o.exposedPorts, `${p}.exposedPorts`),
      unexposedPorts: r.strings(o.unexposedPorts, `${p}.unexposedPorts`),
      volumes: r.strings(o.volumes, `${p}.volumes`),
      unmountedVolumes: r.strings(o.unmountedVolumes, `${p}.unmountedVolumes`),
      invalid: [],
    };
    // Present (even `[]`) means checked, "must be exactly this"; absent or null means not checked.
    if (o.entrypoint !== undefined && o.entrypoint !== null) m.entrypoint = r.strings(o.entrypoint, `${p}.entrypoint`);
    if (o.cmd !== undefined && o.cmd !== null) m.cmd = r.strings(o.cmd, `${p}.cmd`);
    const workdir = r.optionalString(o.workdir, `${p}.workdir`);
    if (workdir !== '') m.workdir = workdir;
    const user = r.optionalString(o.user, `${p}.user`);
    if (user !== '') m.user = user;
    // metadata.go: Validate, and IsEmpty (an empty metadata test is not run and not counted).
    for (const v of m.envVars) if (v.key === '') m.invalid.push('Environment variable key cannot be empty');
    for (const v of m.labels) if (v.key === '') m.invalid.push('Label key cannot be empty');
    for (const port of m.exposedPorts) if (port === '') m.invalid.push('Port cannot be empty');
    for (const v of m.volumes) if (v === '') m.invalid.push('Volume cannot be empty');
    const empty = [m.envVars, m.unboundEnvVars, m.labels, m.exposedPorts, m.unexposedPorts, m.volumes, m.unmountedVolumes].every((l) => l.length === 0);
    if (!empty || m.entrypoint || m.cmd || m.workdir !== undefined || m.user !== undefined) metadataTest = m;
  }

  const licenseTests = r.list(top.licenseTests, 'licenseTests', (x, p) => {
    const o = r.object(x, p, ['debian', 'files']);
    return { debian: o.debian === undefined || o.debian === null ? false : r.bool(o.debian, `${p}.debian`), files: r.strings(o.files, `${p}.files`) };
  });

  let containerRunOptions: ContainerRunOptions | undefined;
  if (top.containerRunOptions !== undefined && top.containerRunOptions !== null) {
    const p = 'containerRunOptions';
    const o = r.object(top.containerRunOptions, p, ['user', 'privileged', 'allocateTty', 'envVars', 'envFile', 'capabilities', 'bindMounts']);
    const flag = (k: string) => (o[k] === undefined || o[k] === null ? false : r.bool(o[k], `${p}.${k}`));
    const c: ContainerRunOptions = {
      envVars: r.strings(o.envVars, `${p}.envVars`),
      bindMounts: r.strings(o.bindMounts, `${p}.bindMounts`),
      capabilities: r.strings(o.capabilities, `${p}.capabilities`),
      privileged: flag('privileged'),
      allocateTty: flag('allocateTty'),
    };
    const user = r.optionalString(o.user, `${p}.user`);
    if (user !== '') c.user = user;
    const envFile = r.optionalString(o.envFile, `${p}.envFile`);
    if (envFile !== '') c.envFile = envFile;
    for (const [i, b] of c.bindMounts.entries()) {
      const parts = b.split(':');
      if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]!.startsWith('/')) {
        r.fail(`${p}.bindMounts[${i}]`, `"${b}" is not host-path:container-path[:options]`);
      }
    }
    containerRunOptions = c;
  }

  const out: StructureConfig = {
    file,
    schemaVersion: version as StructureConfig['schemaVersion'],
    globalEnvVars: r.envVars(top.globalEnvVars, 'globalEnvVars'),
    commandTests,
    fileExistenceTests,
    fileContentTests,
    licenseTests,
  };
  if (metadataTest) out.metadataTest = metadataTest;
  if (containerRunOptions) out.containerRunOptions = containerRunOptions;
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}
