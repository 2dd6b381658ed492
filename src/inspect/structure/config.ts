// container-structure-test's configuration (schemaVersion 2.0.0, and the older 1.0.0), in YAML or
// JSON, checked strictly: an unknown field, a wrong type or a regular expression that does not
// compile is an error naming the file and the path to the field (`commandTests[0].exitCode`).

import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { KilnError } from '../../errors.js';

export class StructureConfigInvalid extends KilnError {
  override exitCode = 2;
}

export interface EnvVar {
  key: string;
  value: string;
  isRegex: boolean;
}

export interface CommandTest {
  name: string;
  setup: string[][];
  teardown: string[][];
  command: string;
  args: string[];
  envVars: EnvVar[];
  expectedOutput: RegExp[];
  excludedOutput: RegExp[];
  expectedError: RegExp[];
  excludedError: RegExp[];
  exitCode: number;
}

export interface FileExistenceTest {
  name: string;
  path: string;
  shouldExist: boolean;
  permissions?: string;
  uid?: number;
  gid?: number;
  isExecutableBy?: 'owner' | 'group' | 'other' | 'any';
}

export interface FileContentTest {
  name: string;
  path: string;
  expectedContents: RegExp[];
  excludedContents: RegExp[];
}

export interface MetadataTest {
  envVars: EnvVar[];
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

export interface StructureConfig {
  file: string;
  schemaVersion: '2.0.0' | '1.0.0';
  globalEnvVars: EnvVar[];
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
  constructor(readonly file: string) {}

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
    if (typeof v !== 'string') this.fail(path, `expected a string, got ${describe(v)}`);
    return v as string;
  }

  optString(o: Obj, key: string, path: string): string | undefined {
    return o[key] === undefined || o[key] === null ? undefined : this.string(o[key], `${path}.${key}`);
  }

  int(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, `expected an integer, got ${describe(v)}`);
    return v as number;
  }

  bool(v: unknown, path: string): boolean {
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

  regexes(v: unknown, path: string): RegExp[] {
    return this.list(v, path, (x, p) => {
      const src = this.string(x, p);
      try {
        return goRegExp(src);
      } catch (e) {
        return this.fail(p, `invalid regular expression ${JSON.stringify(src)}: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`);
      }
    });
  }

  envVars(v: unknown, path: string): EnvVar[] {
    return this.list(v, path, (x, p) => {
      const o = this.object(x, p, ['key', 'value', 'isRegex']);
      if (o.key === undefined) this.fail(`${p}.key`, 'is required');
      return {
        key: this.string(o.key, `${p}.key`),
        value: o.value === undefined ? '' : this.string(o.value, `${p}.value`),
        isRegex: o.isRegex === undefined ? false : this.bool(o.isRegex, `${p}.isRegex`),
      };
    });
  }
}

/**
 * A Go (RE2) regular expression as a JavaScript one: leading inline flags such as `(?i)` or `(?s)`
 * become RegExp flags, `(?P<name>` becomes `(?<name>`, `\A` and `\z` become anchors.
 */
export function goRegExp(src: string): RegExp {
  let flags = '';
  let body = src;
  const m = /^\(\?([imsU]+)\)/.exec(body);
  if (m) {
    for (const f of m[1]!) if (f !== 'U' && !flags.includes(f)) flags += f;
    body = body.slice(m[0].length);
  }
  body = body.replace(/\(\?P</g, '(?<').replace(/\\A/g, '^').replace(/\\z/g, '$(?![\\s\\S])');
  return new RegExp(body, flags);
}

export function parseStructureConfig(text: string, file: string): StructureConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text); // YAML is a superset of JSON: both forms are read here
  } catch (e) {
    throw new StructureConfigInvalid(`${file}: not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = new Reader(file);
  const top = r.object(doc, '', ['schemaVersion', 'globalEnvVars', 'commandTests', 'fileExistenceTests', 'fileContentTests', 'metadataTest', 'licenseTests', 'containerRunOptions']);
  if (top.schemaVersion === undefined) r.fail('schemaVersion', 'is required ("2.0.0")');
  const version = r.string(top.schemaVersion, 'schemaVersion');
  if (version !== '2.0.0' && version !== '1.0.0') r.fail('schemaVersion', `"${version}" is not supported (use "2.0.0" or "1.0.0")`);
  const v1 = version === '1.0.0';

  const commandFields = v1
    ? ['name', 'setup', 'teardown', 'command', 'envVars', 'expectedOutput', 'excludedOutput', 'expectedError', 'excludedError', 'exitCode']
    : ['name', 'setup', 'teardown', 'command', 'args', 'envVars', 'expectedOutput', 'excludedOutput', 'expectedError', 'excludedError', 'exitCode'];
  const commandTests = r.list(top.commandTests, 'commandTests', (x, p) => {
    const o = r.object(x, p, commandFields);
    const name = o.name === undefined ? r.fail(`${p}.name`, 'is required') : r.string(o.name, `${p}.name`);
    let command: string;
    let args: string[];
    if (v1) {
      // 1.0.0: `command` is the whole argv.
      const argv = r.strings(o.command, `${p}.command`);
      if (argv.length === 0) r.fail(`${p}.command`, 'is required');
      [command, ...args] = argv as [string, ...string[]];
    } else {
      command = o.command === undefined ? r.fail(`${p}.command`, 'is required') : r.string(o.command, `${p}.command`);
      args = r.strings(o.args, `${p}.args`);
    }
    const commands = (v: unknown, path: string) => r.list(v, path, (c, cp) => r.strings(c, cp));
    return {
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
      exitCode: o.exitCode === undefined ? 0 : r.int(o.exitCode, `${p}.exitCode`),
    };
  });

  const fileExistenceTests = r.list(top.fileExistenceTests, 'fileExistenceTests', (x, p) => {
    const o = r.object(x, p, ['name', 'path', 'shouldExist', 'permissions', 'uid', 'gid', 'isExecutableBy']);
    const t: FileExistenceTest = {
      name: o.name === undefined ? r.fail(`${p}.name`, 'is required') : r.string(o.name, `${p}.name`),
      path: o.path === undefined ? r.fail(`${p}.path`, 'is required') : r.string(o.path, `${p}.path`),
      shouldExist: o.shouldExist === undefined ? true : r.bool(o.shouldExist, `${p}.shouldExist`),
    };
    const perms = r.optString(o, 'permissions', p);
    if (perms !== undefined) {
      if (!/^[dalTLDpSugct?-]*[rwx-]{9}$/.test(perms)) r.fail(`${p}.permissions`, `"${perms}" is not a mode string such as -rw-r--r--`);
      t.permissions = perms;
    }
    if (o.uid !== undefined) t.uid = r.int(o.uid, `${p}.uid`);
    if (o.gid !== undefined) t.gid = r.int(o.gid, `${p}.gid`);
    const by = r.optString(o, 'isExecutableBy', p);
    if (by !== undefined) {
      if (!['owner', 'group', 'other', 'any'].includes(by)) r.fail(`${p}.isExecutableBy`, `"${by}" is not owner, group, other or any`);
      t.isExecutableBy = by as FileExistenceTest['isExecutableBy'];
    }
    return t;
  });

  const fileContentTests = r.list(top.fileContentTests, 'fileContentTests', (x, p) => {
    const o = r.object(x, p, ['name', 'path', 'expectedContents', 'excludedContents']);
    return {
      name: o.name === undefined ? r.fail(`${p}.name`, 'is required') : r.string(o.name, `${p}.name`),
      path: o.path === undefined ? r.fail(`${p}.path`, 'is required') : r.string(o.path, `${p}.path`),
      expectedContents: r.regexes(o.expectedContents, `${p}.expectedContents`),
      excludedContents: r.regexes(o.excludedContents, `${p}.excludedContents`),
    };
  });

  let metadataTest: MetadataTest | undefined;
  if (top.metadataTest !== undefined && top.metadataTest !== null) {
    const p = 'metadataTest';
    const o = r.object(top.metadataTest, p, v1
      ? ['env', 'labels', 'exposedPorts', 'unexposedPorts', 'volumes', 'unmountedVolumes', 'entrypoint', 'cmd', 'workdir', 'user']
      : ['envVars', 'labels', 'exposedPorts', 'unexposedPorts', 'volumes', 'unmountedVolumes', 'entrypoint', 'cmd', 'workdir', 'user']);
    metadataTest = {
      envVars: r.envVars(v1 ? o.env : o.envVars, `${p}.${v1 ? 'env' : 'envVars'}`),
      labels: r.envVars(o.labels, `${p}.labels`),
      exposedPorts: r.strings(o.exposedPorts, `${p}.exposedPorts`),
      unexposedPorts: r.strings(o.unexposedPorts, `${p}.unexposedPorts`),
      volumes: r.strings(o.volumes, `${p}.volumes`),
      unmountedVolumes: r.strings(o.unmountedVolumes, `${p}.unmountedVolumes`),
    };
    // Present but empty (`[]`) means "must be empty"; absent means "not checked".
    if ('entrypoint' in o) metadataTest.entrypoint = r.strings(o.entrypoint, `${p}.entrypoint`);
    if ('cmd' in o) metadataTest.cmd = r.strings(o.cmd, `${p}.cmd`);
    const workdir = r.optString(o, 'workdir', p);
    if (workdir !== undefined) metadataTest.workdir = workdir;
    const user = r.optString(o, 'user', p);
    if (user !== undefined) metadataTest.user = user;
  }

  const licenseTests = r.list(top.licenseTests, 'licenseTests', (x, p) => {
    const o = r.object(x, p, ['debian', 'files']);
    return { debian: o.debian === undefined ? false : r.bool(o.debian, `${p}.debian`), files: r.strings(o.files, `${p}.files`) };
  });

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
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}
