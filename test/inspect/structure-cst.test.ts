import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk } from '../support/env.js';

// container-structure-test's own end-to-end cases (its tests/ folder: a passing configuration, a
// failing one, a metadata image, run options, and its structure_test_tests.sh expectations of exit
// code and PASS/FAIL), written again for images kiln builds from busybox. Each test states what
// container-structure-test reports for the same configuration on the same image.

let work: string;
let root: string;

interface Result {
  Name: string;
  Pass: boolean;
  Stdout?: string;
  Stderr?: string;
  Errors?: string[];
  Duration: number;
}
interface Summary {
  Pass: number;
  Fail: number;
  Total: number;
  Duration: number;
  Results?: Result[];
}

async function build(tag: string, dockerfile: string, files: Record<string, string> = {}): Promise<void> {
  const ctx = join(work, `ctx-${tag.replace(/\W/g, '-')}`);
  await mkdir(ctx, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(ctx, name), text);
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  await kilnOk(root, ['build', '-q', '-t', tag, ctx]);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-cst-parity-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  // The stand-in for ubuntu:22.04: a machine id, Debian-style copyright files, a root owned /.
  await build(
    'plain:1',
    `FROM busybox
ENV HOME=/root
RUN mkdir -p /usr/share/doc/dash /usr/share/doc/keyring /usr/share/doc/libgnutls30 \\
 && echo "GPL-2 and BSD" > /usr/share/doc/dash/copyright \\
 && echo "public domain" > /usr/share/doc/keyring/copyright \\
 && ln -s dash /usr/share/doc/dash-link \\
 && echo 0123456789abcdef > /etc/machine-id && chmod 644 /etc/passwd
`,
  );
  // tests/Dockerfile.metadata, on busybox.
  await build(
    'metadata:1',
    `FROM busybox
ENV SOME_KEY="SOME_VAL" \\
    EMPTY_VAR="" \\
    FOO_BAR="FOO\\:BAR=BAZ" \\
    REGEX_VAR="test-2.1.8"
LABEL localnet.localdomain.commit_hash="0123456789abcdef0123456789abcdef01234567" \\
      localnet.my-domain.my-label="my test label" \\
      label-with-empty-val=""
`,
  );
  // tests/Dockerfile.unprivileged, on busybox.
  await build('unprivileged:1', `FROM busybox\nRUN echo "nonroot:x:1001:1001::/tmp:/bin/sh" >> /etc/passwd && echo "nonroot:x:1001:" >> /etc/group\nUSER 1001\n`);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

let n = 0;
async function config(text: string, ext = 'yaml'): Promise<string> {
  const p = join(work, `cst-${++n}.${ext}`);
  await writeFile(p, text);
  return p;
}

async function json(image: string, cfg: string, env?: NodeJS.ProcessEnv): Promise<{ code: number; report: Summary; stderr: string }> {
  const r = await kiln(root, ['test', '--image', image, '--config', cfg, '--output', 'json'], { env });
  return { code: r.code, report: JSON.parse(r.stdout) as Summary, stderr: r.stderr };
}

const verdicts = (s: Summary) => (s.Results ?? []).map((r) => [r.Name, r.Pass]);

test('the positive configuration (ubuntu_22_04_test.yaml on busybox) passes: exit 0, PASS, every kind in its order', async () => {
  const cfg = await config(`schemaVersion: '2.0.0'
commandTests:
- name: 'busybox'
  command: 'busybox'
  args: ['--help']
  excludedError: ['.*FAIL.*']
  expectedOutput: ['.*Usage.*']
- name: 'path'
  command: 'sh'
  args: ['-c', 'echo $PATH']
  expectedOutput: ['/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']
fileContentTests:
- name: 'Passwd file'
  expectedContents: ['root:x:0:0:root:/root:/bin/sh']
  excludedContents: ['.*nonroot.*']
  path: '/etc/passwd'
fileExistenceTests:
- name: 'Root'
  path: '/'
  shouldExist: true
  uid: 0
  gid: 0
- name: 'Date'
  path: '/bin/date'
  isExecutableBy: 'owner'
- name: 'Machine ID'
  path: '/etc/machine-id'
- name: 'Dummy File'
  path: '/etc/dummy'
  shouldExist: false
licenseTests:
- debian: false
  files:
    - "/usr/share/doc/keyring/copyright"
    - "/usr/share/doc/dash/copyright"
`);
  const text = await kiln(root, ['test', '--image', 'plain:1', '--config', cfg]);
  assert.equal(text.code, 0, text.stdout + text.stderr);
  assert.match(text.stdout, /\nPASS\n$/);
  const { code, report } = await json('plain:1', cfg);
  assert.equal(code, 0);
  assert.deepEqual(verdicts(report), [
    ['Command Test: busybox', true],
    ['Command Test: path', true],
    ['File Content Test: Passwd file', true],
    ['File Existence Test: Root', true],
    ['File Existence Test: Date', true],
    ['File Existence Test: Machine ID', true],
    ['File Existence Test: Dummy File', true],
    ['License Test', true],
  ]);
  assert.deepEqual([report.Pass, report.Fail, report.Total], [8, 0, 8]);
  assert.equal(report.Duration, report.Results!.reduce((s, r) => s + r.Duration, 0), 'the summary adds the results up');
  const path = report.Results![1]!;
  assert.equal(path.Stdout, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
  assert.equal('Stderr' in path || 'Errors' in path, false, 'empty output and no errors are left out');
  assert.equal('Stdout' in report.Results![2]!, false);
});

test('the failure configuration (ubuntu_22_04_failure_test.yaml, schema 1.0.0, on busybox) fails: exit 1, FAIL, the same tests fail', async () => {
  const cfg = await config(`schemaVersion: '1.0.0'
commandTests:
- name: 'bad busybox command'
  command: ['busybox', 'dslkfjasl']
  excludedError: ['.*FAIL.*']
  expectedError: ['.*applet not found.*']
  exitCode: 127
- name: 'wrong exit code'
  command: ['sh', '-c', 'exit 100']
- name: 'path'
  command: ['sh', '-c', 'echo $PATH']
  expectedOutput: ['/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']
fileContentTests:
- name: 'Passwd'
  excludedContents: ['.*gce_debian_mirror.*']
  expectedContents: ['.*httpredir\\.debian\\.org.*']
  path: '/etc/passwd'
- name: 'Wrong Retry Policy'
  expectedContents: ['Acquire::Retries 4;']
  path: '/etc/apt/apt.conf.d/apt-retry'
fileExistenceTests:
- name: 'Fake Dir'
  path: '/foo/bar'
  shouldExist: true
- name: 'Wrong permissions'
  path: '/etc/passwd'
  permissions: '-rwxrwxrwx'
  shouldExist: true
licenseTests:
- debian: true
  files:
`);
  const text = await kiln(root, ['test', '--image', 'plain:1', '--config', cfg]);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /\nFAIL\n$/);
  const { report } = await json('plain:1', cfg);
  assert.deepEqual(verdicts(report), [
    ['Command Test: bad busybox command', true],
    ['Command Test: wrong exit code', false],
    ['Command Test: path', true],
    ['File Content Test: Passwd', false],
    ['File Content Test: Wrong Retry Policy', false],
    ['File Existence Test: Fake Dir', false],
    ['File Existence Test: Wrong permissions', false],
    ['License Test', true],
  ]);
  const errors = Object.fromEntries(report.Results!.map((r) => [r.Name, r.Errors ?? []]));
  assert.deepEqual(errors['Command Test: wrong exit code'], ["Test 'wrong exit code' exited with incorrect error code. Expected: 0, Actual: 100"]);
  assert.equal(errors['File Content Test: Passwd']!.length, 1);
  assert.match(errors['File Content Test: Passwd']![0]!, /^Expected string '\.\*httpredir\\\.debian\\\.org\.\*' not found in file content string 'root:x:0:0:/);
  assert.deepEqual(errors['File Content Test: Wrong Retry Policy'], ['Failed to open /etc/apt/apt.conf.d/apt-retry. Error: File /etc/apt/apt.conf.d/apt-retry not found in image']);
  assert.deepEqual(errors['File Existence Test: Fake Dir'], ['Error examining file in container: File /foo/bar not found in image']);
  assert.deepEqual(errors['File Existence Test: Wrong permissions'], ['/etc/passwd has incorrect permissions. Expected: -rwxrwxrwx, Actual: -rw-r--r--']);
  // debian: every package directory (not dash-link, a symlink; not libgnutls30, never checked) needs a copyright file.
  assert.deepEqual(errors['License Test'], []);
});

test('licenseTests: a missing copyright file, and AGPL or WTFPL in any case, fail', async () => {
  await build('licenses:1', 'FROM plain:1\nRUN mkdir /usr/share/doc/nocopy /usr/share/doc/bad && echo "the Affero agpl v3" > /usr/share/doc/bad/copyright\n');
  const { code, report } = await json('licenses:1', await config("schemaVersion: '2.0.0'\nlicenseTests:\n- debian: true\n- files: ['/usr/share/doc/dash/copyright', '/nowhere']\n"));
  assert.equal(code, 1);
  assert.deepEqual(verdicts(report), [['License Test', false], ['License Test', false]]);
  assert.deepEqual(report.Results![0]!.Errors, [
    'Invalid license for /usr/share/doc/bad/copyright, license contains AGPL',
    'Error reading license file for nocopy: File /usr/share/doc/nocopy/copyright not found in image',
    'Error reading license file for /usr/share/doc/nocopy/copyright: File /usr/share/doc/nocopy/copyright not found in image',
  ]);
  assert.deepEqual(report.Results![1]!.Errors, ['Error reading license file for /nowhere: File /nowhere not found in image']);
});

test('the metadata configuration (ubuntu_22_04_metadata_test.yaml) passes on its image, from the store and from an OCI archive', async () => {
  const cfg = await config(`schemaVersion: '2.0.0'
metadataTest:
  envVars:
  - key: 'SOME_KEY'
    value: 'SOME_VAL'
  - key: 'EMPTY_VAR'
    value: ''
  - key: 'FOO_BAR'
    value: 'FOO\\:BAR=BAZ'
  - key: 'REGEX_VAR'
    value: '[a-z]+-2\\.1\\.*'
    isRegex: true
  unboundEnvVars:
  - key: 'BAR_FOO'
  labels:
  - key: 'localnet.localdomain.commit_hash'
    value: '0123456789abcdef0123456789abcdef01234567'
  - key: 'localnet.my-domain.my-label'
    value: 'my .+ label'
    isRegex: true
  - key: 'label-with-empty-val'
    value: ''
  unexposedPorts: ['80']
  unmountedVolumes: ['/root']
`);
  const archive = join(work, 'metadata.oci.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'metadata:1']);
  for (const image of ['metadata:1', archive]) {
    const { code, report } = await json(image, cfg);
    assert.equal(code, 0, JSON.stringify(report));
    assert.deepEqual(verdicts(report), [['Metadata Test', true]]);
  }
  // The same checks turned round fail, each with its own message.
  const wrong = await config(`schemaVersion: '2.0.0'
metadataTest:
  envVars: [{key: SOME_KEY, value: other}, {key: REGEX_VAR, value: '^2', isRegex: true}, {key: NOPE, value: x}]
  unboundEnvVars: [{key: SOME_KEY}]
  labels: [{key: label-with-empty-val, value: x}, {key: nolabel, value: ''}]
  exposedPorts: ['80']
  volumes: ['/root']
  entrypoint: ['/bin/sh']
  cmd: ['sh']
  workdir: /srv
  user: nobody
`);
  const { code, report } = await json('metadata:1', wrong);
  assert.equal(code, 1);
  assert.deepEqual(report.Results![0]!.Errors, [
    'env var SOME_KEY value SOME_VAL does not match expected value: other',
    'env var REGEX_VAR value test-2.1.8 does not match expected value: ^2',
    'variable NOPE not found in image env',
    'env variable SOME_KEY should not be present in image metadata',
    'label label-with-empty-val value  does not match expected value: x',
    'label nolabel not found in image metadata',
    'Image entrypoint [] does not match expected entrypoint: [/bin/sh]',
    'Image workdir  does not match config workdir: /srv',
    'Image user  does not match config user: nobody',
    'Port 80 not found in config',
    'Volume /root not found in config',
  ]);
  // An empty metadata test is not run, and does not count.
  const empty = await kiln(root, ['test', '--image', 'metadata:1', '--config', await config("schemaVersion: '2.0.0'\nmetadataTest: {}\n"), '-o', 'json']);
  assert.equal(empty.code, 1);
  assert.equal(empty.stdout, '{"Pass":0,"Fail":0,"Total":0,"Duration":0}\n');
});

test('containerRunOptions: user, envVars from kiln\'s environment, envFile and bindMounts (the containeropts configurations)', async () => {
  const envfile = join(work, 'envfile');
  await writeFile(envfile, "FOO=keepitsecret!\nexport BAR='keepitsafe!'\n# a comment\nEMPTY=\n");
  const shared = join(work, 'shared');
  await mkdir(shared);
  await writeFile(join(shared, 'hello'), 'from the host\n');
  const cfg = await config(`schemaVersion: '2.0.0'
commandTests:
- name: 'as root'
  command: 'sh'
  args: ['-c', 'whoami && touch /root/only-root-may']
  expectedOutput: ['^root\\n$']
containerRunOptions:
  user: 'root'
`);
  const user = await json('unprivileged:1', cfg);
  assert.equal(user.code, 0, JSON.stringify(user.report));
  const without = await json('unprivileged:1', await config("schemaVersion: '2.0.0'\ncommandTests:\n- name: whoami\n  command: whoami\n  expectedOutput: ['^nonroot\\n$']\n"));
  assert.equal(without.code, 0, 'without the option the image\'s user runs it');

  const env = await json(
    'plain:1',
    await config(`schemaVersion: '2.0.0'
commandTests:
- name: 'Test envVars containerRunOptions'
  command: 'env'
  expectedOutput: ['.*FOO=keepitsecret!.*', '.*BAR=keepitsafe!.*']
  excludedOutput: ['UNSET_ONE']
containerRunOptions:
  envVars: [FOO, BAR, UNSET_ONE]
`),
    { FOO: 'keepitsecret!', BAR: 'keepitsafe!' },
  );
  assert.equal(env.code, 0, JSON.stringify(env.report));
  const file = await json(
    'plain:1',
    await config(`schemaVersion: '2.0.0'
commandTests:
- name: 'Test envFile containerRunOptions'
  command: 'env'
  expectedOutput: ['(?m)^FOO=keepitsecret!$', '(?m)^BAR=keepitsafe!$']
  excludedOutput: ['EMPTY']
- name: 'Test bindMounts containerRunOptions'
  command: 'cat'
  args: ['/tmp/test/hello']
  expectedOutput: ['from the host']
containerRunOptions:
  envFile: ${envfile}
  bindMounts:
    - "${shared}:/tmp/test:ro"
`),
  );
  assert.equal(file.code, 0, JSON.stringify(file.report));
});

test('command tests: $VAR in the command comes from the image and global variables; test variables reach the process as written', async () => {
  const cfg = await config(`schemaVersion: '2.0.0'
globalEnvVars:
- {key: GLOBAL, value: 'g-$HOME'}
commandTests:
- name: 'expanded before the shell'
  command: 'echo'
  args: ['$GLOBAL', '\${PATH}', '[$LOCAL]', '$1']
  envVars: [{key: LOCAL, value: 'l-$HOME'}]
  expectedOutput: ['^g-/root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\[\\] \\n$']
- name: 'the process sees them'
  command: 'env'
  envVars: [{key: LOCAL, value: 'l-$HOME'}]
  expectedOutput: ['(?m)^GLOBAL=g-/root$', '(?m)^LOCAL=l-\\$HOME$']
- name: 'after a setup command, test variables are expanded and in the image'
  setup: [['sh', '-c', 'exit 3'], ['touch', '/tmp/setup-ran']]
  teardown: [['false']]
  command: 'sh'
  args: ['-c', 'ls /tmp/setup-ran && echo "[$LOCAL]"']
  envVars: [{key: LOCAL, value: 'l-$HOME'}]
  expectedOutput: ['^/tmp/setup-ran\\n\\[l-/root\\]\\n$']
- name: 'an empty value is refused'
  command: 'true'
  envVars: [{key: EMPTY, value: ''}]
fileExistenceTests:
- name: 'path expanded'
  path: '$HOME/../bin/$SHELLNAME'
`.replace('$SHELLNAME', 'sh'));
  const { report } = await json('plain:1', cfg);
  assert.deepEqual(verdicts(report), [
    ['Command Test: expanded before the shell', true],
    ['Command Test: the process sees them', true],
    ['Command Test: after a setup command, test variables are expanded and in the image', true],
    ['an empty value is refused', false],
    ['File Existence Test: path expanded', true],
  ], JSON.stringify(report.Results));
  assert.deepEqual(report.Results![3]!.Errors, ['Please provide non-empty keys and values for all specified env vars']);
  assert.equal(report.Results![3]!.Duration, 0);
});

test('checks run stderr first, then stdout, then the exit code, with the text of each pattern and the whole stream in the message', async () => {
  const { report } = await json(
    'plain:1',
    await config(`schemaVersion: '2.0.0'
commandTests:
- name: all wrong
  command: sh
  args: ['-c', 'echo out; echo err >&2; exit 2']
  expectedOutput: ['(?i)NOTHERE']
  excludedOutput: ['o.t']
  expectedError: ['missing']
  excludedError: ['^err']
`),
  );
  assert.deepEqual(report.Results![0]!.Errors, [
    "Expected string 'missing' not found in error 'err\n'",
    "Excluded string '^err' found in error 'err\n'",
    "Expected string '(?i)NOTHERE' not found in output 'out\n'",
    "Excluded string 'o.t' found in output 'out\n'",
    "Test 'all wrong' exited with incorrect error code. Expected: 0, Actual: 2",
  ]);
  assert.equal(report.Results![0]!.Stdout, 'out\n');
  assert.equal(report.Results![0]!.Stderr, 'err\n');
});

test('file existence: isExecutableBy, uid and gid checks and their messages; shouldExist false skips the rest', async () => {
  const { report } = await json(
    'plain:1',
    await config(`schemaVersion: '2.0.0'
fileExistenceTests:
- {name: not executable, path: /etc/passwd, isExecutableBy: any}
- {name: bad option, path: /bin/busybox, isExecutableBy: everyone}
- {name: owners, path: /etc/passwd, uid: 1, gid: 2}
- {name: absent with checks, path: /nope, shouldExist: false, permissions: "-rwxrwxrwx", uid: 5}
- {name: sticky tmp, path: /tmp, permissions: dtrwxrwxrwx}
`),
  );
  assert.deepEqual(report.Results!.map((r) => [r.Name, r.Errors ?? []]), [
    ['File Existence Test: not executable', ['/etc/passwd has incorrect executable bit. Expected to be executable by any, Actual: -rw-r--r--']],
    ['File Existence Test: bad option', ['everyone not recognised as a valid option']],
    ['File Existence Test: owners', ['/etc/passwd has incorrect user ownership. Expected: 1, Actual: 0', '/etc/passwd has incorrect group ownership. Expected: 2, Actual: 0']],
    ['File Existence Test: absent with checks', []],
    ['File Existence Test: sticky tmp', []],
  ]);
});

test('YAML read as yaml.v2 reads it: numbers where strings go keep their text, yes/no are booleans; 1.0.0 has no metadata test', async () => {
  await build('numbers:1', 'FROM busybox\nENV VERSION=1.0 PORT=8080\nLABEL release=010\n');
  const { code, report } = await json(
    'numbers:1',
    await config(`schemaVersion: 2.0.0
fileExistenceTests:
- {name: yes, path: /etc/passwd, shouldExist: yes}
- {name: no, path: /etc/nothing, shouldExist: no}
metadataTest:
  envVars: [{key: VERSION, value: 1.0}, {key: PORT, value: 8080}]
  labels: [{key: release, value: 010}]
  exposedPorts: []
`),
  );
  assert.equal(code, 0, JSON.stringify(report));
  assert.deepEqual(verdicts(report), [['File Existence Test: yes', true], ['File Existence Test: no', true], ['Metadata Test', true]]);
  const v1 = await json('numbers:1', await config("schemaVersion: '1.0.0'\nmetadataTest:\n  env: [{key: PORT, value: '8080'}]\n"));
  assert.equal(v1.code, 1);
  assert.match(v1.report.Results![0]!.Errors![0]!, /^error parsing config file: .*metadataTest: unknown field/);
});

test('several files: one that cannot be read is a failed result and the others still run', async () => {
  const good = await config("schemaVersion: '2.0.0'\nfileExistenceTests:\n- {name: passwd, path: /etc/passwd}\n");
  const r = await kiln(root, ['test', '--image', 'plain:1', '-c', join(work, 'missing.yaml'), '-c', good, '-j']);
  assert.equal(r.code, 1);
  const report = JSON.parse(r.stdout) as Summary;
  assert.deepEqual(verdicts(report), [['', false], ['File Existence Test: passwd', true]]);
  assert.match(report.Results![0]!.Errors![0]!, /^error parsing config file: .*missing\.yaml: cannot read the test configuration: no such file/);
  const junit = await kiln(root, ['test', '--image', 'plain:1', '--config', good, '-o', 'junit', '--junit-suite-name', 'my suite']);
  assert.match(junit.stdout, /<testsuite name="my suite"><testcase name="File Existence Test: passwd" time="[0-9.e+-]+"><system-out><\/system-out><system-err><\/system-err><\/testcase><\/testsuite><\/testsuites>\n$/);
  const quiet = await kiln(root, ['test', '--image', 'plain:1', '--config', good, '-q']);
  assert.deepEqual([quiet.code, quiet.stdout], [0, '']);
});

test('--driver tar runs no commands (each command test fails as there); --image-from-oci-layout reads a layout; --driver host is refused', async () => {
  const cfg = await config("schemaVersion: '2.0.0'\nglobalEnvVars: [{key: WHERE, value: '$HOME'}]\ncommandTests:\n- {name: echo, command: echo}\nfileExistenceTests:\n- {name: passwd, path: /etc/passwd}\n");
  const tar = await kiln(root, ['test', '--driver', 'tar', '--image', 'plain:1', '--config', cfg, '-o', 'json']);
  assert.equal(tar.code, 1);
  const report = JSON.parse(tar.stdout) as Summary;
  assert.deepEqual(report.Results!.map((r) => [r.Name, r.Pass, r.Errors ?? []]), [
    ['echo', false, ['error in setup: Tar driver is unable to process commands, please use a different driver']],
    ['File Existence Test: passwd', true, []],
  ]);
  const archive = join(work, 'plain.oci.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'plain:1']);
  const layout = join(work, 'plain-layout');
  await mkdir(layout);
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const files = await config("schemaVersion: '2.0.0'\nfileExistenceTests:\n- {name: passwd, path: /etc/passwd}\n");
  const fromLayout = await kiln(root, ['test', '--image-from-oci-layout', layout, '--default-image-tag', 'test.local/plain:1', '--config', files]);
  assert.equal(fromLayout.code, 0, fromLayout.stdout + fromLayout.stderr);
  assert.match(fromLayout.stdout, /\nPASS\n$/);
  const host = await kiln(root, ['test', '--driver', 'host', '--image', 'plain:1', '--config', files]);
  assert.equal(host.code, 2);
  assert.match(host.stderr, /--driver host/);
});
