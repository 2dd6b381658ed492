import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fixture, kiln, kilnOk } from '../support/env.js';

// kiln test against a busybox-based stand-in for the seed's Java image: a `java` that prints its
// version on stderr, an app jar owned by uid 1000, a non-root user, labels, ports and a volume.

let work: string;
let root: string;

const dockerfile = `FROM busybox
COPY --chmod=755 java /usr/bin/java
RUN echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd && echo "app:x:1000:" >> /etc/group \\
 && mkdir /app && echo jar > /app/app.jar && chown 1000:1000 /app/app.jar && chmod 644 /app/app.jar
ENV JAVA_HOME=/opt/java VERSION=11.0.21
LABEL org.opencontainers.image.title=demo
EXPOSE 8080
VOLUME /data
USER app
WORKDIR /app
CMD ["java", "-jar", "/app/app.jar"]
`;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-cst-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  const ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'java'), '#!/bin/sh\necho \'openjdk version "11.0.21" 2023-10-17\' >&2\n');
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  await kilnOk(root, ['build', '-q', '-t', 'javaapp:1', ctx]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

let n = 0;
async function config(text: string): Promise<string> {
  const p = join(work, `cst-${++n}.yaml`);
  await writeFile(p, text);
  return p;
}

const seed = `schemaVersion: 2.0.0
commandTests:
  - name: "java version"
    command: "java"
    args: ["-version"]
    expectedError: ['openjdk version "11\\.\\d+\\.\\d+"']
fileExistenceTests:
  - name: "app jar"
    path: "/app/app.jar"
    shouldExist: true
    permissions: "-rw-r--r--"
    uid: 1000
    gid: 1000
`;

test("the seed's example passes: java -version on stderr, the jar's owner and permissions", async () => {
  const r = await kiln(root, ['test', '--image', 'javaapp:1', '--config', await config(seed), '--output', 'json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual({ Pass: report.Pass, Fail: report.Fail, Total: report.Total }, { Pass: 2, Fail: 0, Total: 2 });
  assert.equal(typeof report.Duration, 'number');
  assert.deepEqual(report.Results.map((x: { Name: string; Pass: boolean }) => [x.Name, x.Pass]), [['Command Test: java version', true], ['File Existence Test: app jar', true]]);
  assert.match(report.Results[0].Stderr, /openjdk version "11\.0\.21"/);
});

test('failures are reported with their reasons and exit 1; setup is committed, teardown is not run, exit codes are checked', async () => {
  const cfg = await config(`schemaVersion: 2.0.0
globalEnvVars:
  - key: GREETING
    value: hello-$VERSION
commandTests:
  - name: setup carries over
    setup: [["sh", "-c", "echo from-setup > /tmp/setup"]]
    teardown: [["false"]]
    command: sh
    args: ["-c", "cat /tmp/setup; echo $GREETING $LOCAL; id -u; pwd"]
    envVars: [{key: LOCAL, value: here}]
    expectedOutput: ["(?m)^from-setup$", "hello-11.0.21 here", "(?m)^1000$", "(?m)^/app$"]
  - name: wrong exit code
    command: sh
    args: ["-c", "echo out; echo err >&2; exit 3"]
    exitCode: 0
    excludedOutput: ["out"]
    excludedError: ["nothing-like-this"]
fileExistenceTests:
  - name: jar is not world-writable
    path: /app/app.jar
    permissions: "-rwxrwxrwx"
  - name: no shadow file
    path: /etc/shadow
    shouldExist: false
  - name: busybox is executable by anyone
    path: /bin/busybox
    isExecutableBy: other
  - name: tmp is sticky
    path: /tmp
    permissions: dtrwxrwxrwx
fileContentTests:
  - name: passwd has app
    path: /etc/passwd
    expectedContents: ["app:x:1000"]
    excludedContents: ["^root:x:1"]
`);
  const r = await kiln(root, ['test', '--image', 'javaapp:1', '--config', cfg, '--output', 'json']);
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout);
  const byName = Object.fromEntries(report.Results.map((x: { Name: string }) => [x.Name.replace(/^[A-Za-z ]+Test: /, ''), x]));
  assert.equal(byName['setup carries over'].Pass, true, JSON.stringify(byName['setup carries over']));
  const wrong = byName['wrong exit code'];
  assert.equal(wrong.Pass, false);
  assert.ok(wrong.Errors.some((e: string) => /Expected: 0, Actual: 3/.test(e)));
  assert.ok(wrong.Errors.some((e: string) => /Excluded string 'out' found in output/.test(e)));
  assert.equal(wrong.Stderr, 'err\n');
  assert.equal(byName['jar is not world-writable'].Pass, false);
  assert.match(byName['jar is not world-writable'].Errors[0], /Expected: -rwxrwxrwx, Actual: -rw-r--r--/);
  for (const ok of ['no shadow file', 'busybox is executable by anyone', 'tmp is sticky', 'passwd has app']) assert.equal(byName[ok].Pass, true, ok);
  assert.deepEqual([report.Pass, report.Fail, report.Total], [5, 2, 7]);
});

test('metadata tests: [] means empty, absent means unchecked; env and labels by value or regex; ports and volumes', async () => {
  const pass = await config(`schemaVersion: 2.0.0
metadataTest:
  envVars:
    - {key: JAVA_HOME, value: /opt/java}
    - {key: VERSION, value: '^11\\.', isRegex: true}
  labels:
    - {key: org.opencontainers.image.title, value: demo}
  exposedPorts: ["8080"]
  unexposedPorts: ["22"]
  volumes: ["/data"]
  unmountedVolumes: ["/tmp"]
  entrypoint: []
  workdir: /app
  user: app
`);
  const ok = await kiln(root, ['test', '--image', 'javaapp:1', '--config', pass]);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /=== RUN: Metadata Test\n--- PASS/);
  assert.match(ok.stdout, /Passes: {6}1\nFailures: {4}0\n/);
  const fail = await config(`schemaVersion: 2.0.0
metadataTest:
  cmd: []
  exposedPorts: ["9090"]
  envVars: [{key: MISSING, value: x}]
`);
  const bad = await kiln(root, ['test', '--image', 'javaapp:1', '--config', fail, '--output', 'json']);
  assert.equal(bad.code, 1);
  const errors = JSON.parse(bad.stdout).Results[0].Errors.join('\n');
  assert.match(errors, /Image Cmd \[java -jar \/app\/app.jar\] does not match expected Cmd: \[\]/);
  assert.match(errors, /Port 9090 not found in config/);
  assert.match(errors, /variable MISSING not found in image env/);
});

test('--image takes an OCI archive or an OCI layout directory; junit and --test-report', async () => {
  const archive = join(work, 'javaapp.oci.tar');
  await kilnOk(root, ['save', '--format', 'oci', '-o', archive, 'javaapp:1']);
  const layout = join(work, 'layout');
  await mkdir(layout);
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const cfg = await config(seed.replace(/commandTests:[\s\S]*?fileExistenceTests:/, 'fileExistenceTests:'));
  const report = join(work, 'report.xml');
  const r = await kiln(root, ['test', '--image', archive, '--config', cfg, '--output', 'junit', '--test-report', report]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  // As container-structure-test: the report goes to the file instead of standard output.
  assert.equal(r.stdout, '');
  assert.match(await readFile(report, 'utf8'), /^<\?xml version="1\.0" encoding="UTF-8"\?><testsuites failures="0" tests="1" time="[^"]+"><testsuite name="container-structure-test\.test"><testcase name="File Existence Test: app jar"/);
  const t = await kiln(root, ['test', '--image', archive, '--config', cfg, '--test-report', report]);
  assert.equal(t.code, 0, t.stdout + t.stderr);
  assert.equal(JSON.parse(await readFile(report, 'utf8')).Pass, 1, 'text becomes json in a report file');
  const l = await kiln(root, ['test', '--image', layout, '--config', cfg]);
  assert.equal(l.code, 0, l.stdout + l.stderr);
  // Looking at the layout wrote nothing into it.
  assert.deepEqual(execFileSync('ls', [layout], { encoding: 'utf8' }).trim().split('\n').sort(), ['blobs', 'index.json', 'oci-layout']);
});

test('schema 1.0.0 is read: command is the whole argv', async () => {
  const cfg = await config(`schemaVersion: "1.0.0"
commandTests:
  - name: echo
    command: ["echo", "v1"]
    expectedOutput: ["v1"]
`);
  const r = await kiln(root, ['test', '--image', 'javaapp:1', '--config', cfg, '--output', 'json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(JSON.parse(r.stdout).Pass, 1);
});

test('bad input: unknown field, wrong type, bad regex, missing image, nothing to run — clear errors, exit 1', async () => {
  const cases: [string, RegExp][] = [
    ['schemaVersion: 2.0.0\ncommandTests:\n  - name: x\n    command: ls\n    expectedOuput: [a]\n', /commandTests\[0\]\.expectedOuput: unknown field/],
    ['schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: x\n    path: /x\n    uid: "0"\n', /fileExistenceTests\[0\]\.uid: expected an integer, got string "0"/],
    ['schemaVersion: 2.0.0\nfileContentTests:\n  - name: x\n    path: /x\n    expectedContents: ["ok", "a(b"]\n', /fileContentTests\[0\]\.expectedContents\[1\]: invalid regular expression "a\(b"/],
    ['schemaVersion: 3.0.0\n', /schemaVersion: "3.0.0" is not supported/],
    ['commandTests: []\n', /schemaVersion: is required/],
  ];
  // As container-structure-test: a configuration that cannot be read is one failed, nameless result.
  for (const [yaml, why] of cases) {
    const r = await kiln(root, ['test', '--image', 'javaapp:1', '--config', await config(yaml), '-o', 'json']);
    assert.equal(r.code, 1, yaml);
    const res = JSON.parse(r.stdout).Results;
    assert.equal(res.length, 1, yaml);
    assert.equal(res[0].Name, '');
    assert.equal(res[0].Pass, false);
    assert.match(res[0].Errors[0], /^error parsing config file: /);
    assert.match(res[0].Errors[0], why);
  }
  const missing = await kiln(root, ['test', '--image', 'no-such-image', '--config', await config(seed)]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /image "no-such-image" not found/);
  const empty = await kiln(root, ['test', '--image', 'javaapp:1', '--config', await config('schemaVersion: 2.0.0\n')]);
  assert.equal(empty.code, 1);
  assert.equal(empty.stdout, 'No tests run! Check config file format.\n');
});
