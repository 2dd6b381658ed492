// container-structure-test's report formats (pkg/output/output.go), byte for byte where a program
// reads them: json is its SummaryObject through Go's encoding/json (Pass, Fail, Total, Duration in
// nanoseconds, Results[{Name, Pass, Stdout, Stderr, Errors, Duration}], empty fields left out, <>&
// escaped); junit is its one-line XML through encoding/xml (times in seconds as Go prints floats,
// one <failure> per error, <system-out> and <system-err> always). text is its console layout
// without colours, a banner before each file's results.

import { posix } from 'node:path';
import type { StructureReport } from './run.js';

export const reportFormats = ['text', 'json', 'junit'] as const;
export type ReportFormat = (typeof reportFormats)[number];

/** output.go DefaultJunitSuiteName. */
export const defaultJunitSuiteName = 'container-structure-test.test';

export function formatReport(report: StructureReport, format: ReportFormat, opts: { junitSuiteName?: string } = {}): string {
  switch (format) {
    case 'json':
      return goJson(report) + '\n';
    case 'junit':
      return junit(report, opts.junitSuiteName || defaultJunitSuiteName);
    case 'text':
      return text(report);
  }
}

function goJson(report: StructureReport): string {
  const summary: Record<string, unknown> = { Pass: report.Pass, Fail: report.Fail, Total: report.Total, Duration: report.Duration };
  if (report.Results.length) {
    summary.Results = report.Results.map((r) => ({
      Name: r.Name,
      Pass: r.Pass,
      ...(r.Stdout ? { Stdout: r.Stdout } : {}),
      ...(r.Stderr ? { Stderr: r.Stderr } : {}),
      ...(r.Errors?.length ? { Errors: r.Errors } : {}),
      Duration: r.Duration,
    }));
  }
  // encoding/json escapes <, >, & and the line separators for HTML.
  return JSON.stringify(summary).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Go's time.Duration.String(): 0s, 850ns, 1.5µs, 12.345ms, 2.5s, 1m30s, 2h0m0s. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(Math.round(ns));
  const frac = (v: number, prec: number): [string, number] => {
    const p = 10 ** prec;
    const digits = String(v % p).padStart(prec, '0').replace(/0+$/, '');
    return [digits ? `.${digits}` : '', Math.floor(v / p)];
  };
  let out: string;
  if (u < 1e9) {
    const [unit, prec] = u < 1e3 ? ['ns', 0] : u < 1e6 ? ['µs', 3] : ['ms', 6];
    const [f, whole] = frac(u, prec);
    out = `${whole}${f}${unit}`;
  } else {
    const [f, secs] = frac(u, 9);
    u = secs;
    out = `${u % 60}${f}s`;
    u = Math.floor(u / 60);
    if (u > 0) {
      out = `${u % 60}m${out}`;
      u = Math.floor(u / 60);
      if (u > 0) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/** strconv.FormatFloat(f, 'g', -1, 64), as encoding/xml writes a float64: 1.5, 0.0123, 2e-09, 1e+06. */
export function goFloat(f: number): string {
  if (f === 0) return '0';
  const [mant, e] = f.toExponential().split('e') as [string, string];
  const exp = Number(e);
  // strconv ftoa.go: with the shortest precision, %e when the exponent is below -4 or at least 6.
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(f);
}

/** time.Duration.Seconds(). */
const seconds = (ns: number) => Math.trunc(ns / 1e9) + (ns % 1e9) / 1e9;

/** encoding/xml EscapeString, for attributes and character data alike. */
function xml(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '&#34;';
    else if (ch === "'") out += '&#39;';
    else if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '\t') out += '&#x9;';
    else if (ch === '\n') out += '&#xA;';
    else if (ch === '\r') out += '&#xD;';
    else if (c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || c === 0xfffe || c === 0xffff) out += '\ufffd';
    else out += ch;
  }
  return out;
}

function junit(report: StructureReport, suite: string): string {
  let out = `<?xml version="1.0" encoding="UTF-8"?><testsuites failures="${report.Fail}" tests="${report.Total}" time="${goFloat(seconds(report.Duration))}">`;
  out += `<testsuite name="${xml(suite)}">`;
  for (const r of report.Results) {
    out += `<testcase name="${xml(r.Name)}" time="${goFloat(seconds(r.Duration))}">`;
    for (const e of r.Errors ?? []) out += `<failure>${xml(e)}</failure>`;
    out += `<system-out>${xml(r.Stdout ?? '')}</system-out><system-err>${xml(r.Stderr ?? '')}</system-err></testcase>`;
  }
  return out + '</testsuite></testsuites>\n';
}

function text(report: StructureReport): string {
  let out = '';
  let file: string | undefined;
  let bannerLength = 27;
  for (const r of report.Results) {
    if (r.File !== file) {
      file = r.File;
      const line = `====== Test file: ${posix.basename(file)} ======`;
      bannerLength = line.length;
      out += `\n${'='.repeat(line.length)}\n${line}\n${'='.repeat(line.length)}\n`;
    }
    out += `=== RUN: ${r.Name}\n--- ${r.Pass ? 'PASS' : 'FAIL'}\nduration: ${goDuration(r.Duration)}\n`;
    if (r.Stdout) out += `stdout: ${r.Stdout}\n`;
    if (r.Stderr) out += `stderr: ${r.Stderr}\n`;
    for (const e of r.Errors ?? []) out += `Error: ${e}\n`;
  }
  if (report.Total === 0) return out + 'No tests run! Check config file format.\n';
  if (bannerLength % 2 === 0) bannerLength++;
  const half = '='.repeat((bannerLength - 9) / 2);
  out += `\n${'='.repeat(bannerLength)}\n${half} RESULTS ${half}\n${'='.repeat(bannerLength)}\n`;
  out += `Passes:      ${report.Pass}\nFailures:    ${report.Fail}\nDuration:    ${goDuration(report.Duration)}\nTotal tests: ${report.Total}\n\n`;
  return out + (report.Fail === 0 ? 'PASS\n' : 'FAIL\n');
}
