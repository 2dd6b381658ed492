import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReport, goDuration, goFloat } from '../../src/inspect/structure/report.js';
import { expand, parseDotenv, type StructureReport } from '../../src/inspect/structure/run.js';
import { goRegExp, parseStructureConfig } from '../../src/inspect/structure/config.js';

// The report formats as container-structure-test's pkg/output writes them through Go's encoders,
// and the Go behaviours kiln re-implements (os.Expand, time.Duration.String, strconv 'g').

const report: StructureReport = {
  Pass: 1,
  Fail: 1,
  Total: 2,
  Duration: 3_500_000,
  Results: [
    { Name: 'Command Test: says hi', Pass: true, Stdout: 'hi <there> & "you"\n', Duration: 1_500_000, Test: 'says hi', File: 'a.yaml' },
    { Name: "File Existence Test: it's there", Pass: false, Errors: ['one', 'two\ttabs'], Duration: 2_000_000, Test: "it's there", File: 'a.yaml' },
  ],
};

test('json: Go encoding/json of the summary, empty fields left out, <>& escaped', () => {
  assert.equal(
    formatReport(report, 'json'),
    '{"Pass":1,"Fail":1,"Total":2,"Duration":3500000,"Results":[' +
      '{"Name":"Command Test: says hi","Pass":true,"Stdout":"hi \\u003cthere\\u003e \\u0026 \\"you\\"\\n","Duration":1500000},' +
      '{"Name":"File Existence Test: it\'s there","Pass":false,"Errors":["one","two\\ttabs"],"Duration":2000000}]}\n',
  );
  assert.equal(formatReport({ Pass: 0, Fail: 0, Total: 0, Duration: 0, Results: [] }, 'json'), '{"Pass":0,"Fail":0,"Total":0,"Duration":0}\n');
});

test('junit: one line of encoding/xml, a <failure> per error, system-out and system-err always, the suite name', () => {
  const expected =
    '<?xml version="1.0" encoding="UTF-8"?><testsuites failures="1" tests="2" time="0.0035"><testsuite name="container-structure-test.test">' +
    '<testcase name="Command Test: says hi" time="0.0015"><system-out>hi &lt;there&gt; &amp; &#34;you&#34;&#xA;</system-out><system-err></system-err></testcase>' +
    '<testcase name="File Existence Test: it&#39;s there" time="0.002"><failure>one</failure><failure>two&#x9;tabs</failure><system-out></system-out><system-err></system-err></testcase>' +
    '</testsuite></testsuites>\n';
  assert.equal(formatReport(report, 'junit'), expected);
  assert.match(formatReport(report, 'junit', { junitSuiteName: 'mine' }), /<testsuite name="mine">/);
});

test('text: its banner, RUN/PASS/FAIL lines, Go durations and the results block', () => {
  assert.equal(
    formatReport(report, 'text'),
    '\n' + '='.repeat(31) + '\n====== Test file: a.yaml ======\n' + '='.repeat(31) +
      '\n=== RUN: Command Test: says hi\n--- PASS\nduration: 1.5ms\nstdout: hi <there> & "you"\n\n' +
      "=== RUN: File Existence Test: it's there\n--- FAIL\nduration: 2ms\nError: one\nError: two\ttabs\n" +
      '\n' + '='.repeat(31) + '\n' + '=========== RESULTS ===========\n' + '='.repeat(31) + '\n' +
      'Passes:      1\nFailures:    1\nDuration:    3.5ms\nTotal tests: 2\n\nFAIL\n',
  );
  assert.equal(formatReport({ Pass: 0, Fail: 0, Total: 0, Duration: 0, Results: [] }, 'text'), 'No tests run! Check config file format.\n');
});

test('Go time.Duration.String and strconv.FormatFloat(g, -1) as kiln writes them', () => {
  const d: [number, string][] = [[0, '0s'], [999, '999ns'], [1500, '1.5µs'], [12_345_678, '12.345678ms'], [2_500_000_000, '2.5s'], [90e9, '1m30s'], [7200e9, '2h0m0s']];
  for (const [ns, s] of d) assert.equal(goDuration(ns), s, String(ns));
  const f: [number, string][] = [[0, '0'], [2e-9, '2e-09'], [0.0001, '0.0001'], [0.00001234, '1.234e-05'], [1.5, '1.5'], [999999.5, '999999.5'], [1e6, '1e+06'], [1234567, '1.234567e+06']];
  for (const [x, s] of f) assert.equal(goFloat(x), s, String(x));
});

test('os.Expand: $NAME and ${NAME}, unset is empty, special one-character names, a lone or bad $', () => {
  const env = new Map([['A', 'x'], ['LONG_NAME', 'y']]);
  const cases: [string, string][] = [
    ['$A', 'x'], ['${A}b', 'xb'], ['$Ab', ''], ['$LONG_NAME/$UNSET.', 'y/.'], ['$1$@$$', ''], ['${1}', ''],
    ['cost: $', 'cost: $'], ['$-x', 'x'], ['a$ b', 'a$ b'], ['${', ''], ['${}x', 'x'], ['no dollars', 'no dollars'], ['$/', '$/'],
  ];
  for (const [s, want] of cases) assert.equal(expand(s, env), want, s);
});

test('envFile: dotenv lines, export, comments and quotes', () => {
  assert.deepEqual(parseDotenv('A=1\nexport B="two words"\n# c\n\nC=\'single\' \nD=plain # trailing\nE="a\\nb"\nbad line\n'), [
    ['A', '1'], ['B', 'two words'], ['C', 'single'], ['D', 'plain'], ['E', 'a\nb'],
  ]);
});

test('configuration: what Validate refuses becomes a failed test, not an unreadable file', () => {
  const c = parseStructureConfig('schemaVersion: 2.0.0\ncommandTests:\n- command: ls\n- name: x\n  setup: [[]]\nmetadataTest:\n  labels: [{value: v}]\n', 'c.yaml');
  assert.deepEqual(c.commandTests.map((t) => t.invalid), [
    ['Please provide a valid name for every test'],
    ['Please provide a valid command to run for test x', 'Error in setup command configuration encountered; please check formatting and remove all empty setup commands'],
  ]);
  assert.deepEqual(c.metadataTest?.invalid, ['Label key cannot be empty']);
  assert.equal(parseStructureConfig('schemaVersion: 2.0.0\nmetadataTest:\n  cmd: null\n  envVars: []\n', 'c.yaml').metadataTest, undefined, 'an empty metadata test is not run');
});

test('RE2 patterns: leading flags, POSIX classes, \\Q…\\E, \\A and \\z, named groups', () => {
  const ok: [string, string][] = [['(?i)^usage', 'Usage: x'], ['^[[:digit:]]+\\.[[:alpha:]]+$', '12.ab'], ['\\Qa.b*c\\E$', 'xa.b*c'], ['\\Aroot\\z', 'root'], ['(?P<v>\\d+)', 'v1'], ['[[:punct:]]', 'a-b'], ['(?s)a.b', 'a\nb']];
  const no: [string, string][] = [['^[[:digit:]]+$', '12a'], ['\\Qa.b\\E', 'axb'], ['\\Aroot\\z', 'root\n'], ['a.b', 'a\nb'], ['[[:space:]]', 'nospace']];
  for (const [re, s] of ok) assert.ok(goRegExp(re).test(s), `${re} matches ${JSON.stringify(s)}`);
  for (const [re, s] of no) assert.ok(!goRegExp(re).test(s), `${re} does not match ${JSON.stringify(s)}`);
});
