// container-structure-test's report formats: text (its console layout), json (its JSON shape:
// Pass, Fail, Total, Duration, Results[{Name, Pass, Stdout, Stderr, Errors, Duration}]) and junit.

import type { StructureReport } from './run.js';

export const reportFormats = ['text', 'json', 'junit'] as const;
export type ReportFormat = (typeof reportFormats)[number];

export function formatReport(report: StructureReport, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify({
        Pass: report.Pass,
        Fail: report.Fail,
        Total: report.Total,
        Duration: report.Duration,
        Results: report.Results.map((r) => ({
          Name: r.Name,
          Pass: r.Pass,
          ...(r.Stdout !== undefined ? { Stdout: r.Stdout } : {}),
          ...(r.Stderr !== undefined ? { Stderr: r.Stderr } : {}),
          ...(r.Errors ? { Errors: r.Errors } : {}),
          Duration: r.Duration,
        })),
      }) + '\n';
    case 'junit':
      return junit(report);
    case 'text':
      return text(report);
  }
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(0)}ms`;

function banner(s: string): string {
  const line = '='.repeat(s.length + 14);
  return `${line}\n====== ${s} ======\n${line}\n`;
}

function text(report: StructureReport): string {
  let out = '';
  let file = '';
  for (const r of report.Results) {
    if (r.File !== file) {
      file = r.File;
      out += banner(`Test file: ${file}`);
    }
    out += `=== RUN: ${r.Kind}: ${r.Name}\n--- ${r.Pass ? 'PASS' : 'FAIL'}\nduration: ${ms(r.Duration)}\n`;
    if (r.Stdout) out += `stdout: ${r.Stdout.trimEnd()}\n`;
    if (r.Stderr) out += `stderr: ${r.Stderr.trimEnd()}\n`;
    for (const e of r.Errors ?? []) out += `Error: ${e}\n`;
    out += '\n';
  }
  out += banner('RESULTS');
  out += `Passes:      ${report.Pass}\nFailures:    ${report.Fail}\nDuration:    ${ms(report.Duration)}\nTotal tests: ${report.Total}\n\n`;
  out += report.Total === 0 ? 'FAIL: no tests ran\n' : report.Fail === 0 ? 'PASS\n' : 'FAIL\n';
  return out;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function junit(report: StructureReport): string {
  const secs = (ns: number) => (ns / 1e9).toFixed(3);
  let out = `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites failures="${report.Fail}" tests="${report.Total}" time="${secs(report.Duration)}">\n`;
  out += `  <testsuite name="container-structure-test" failures="${report.Fail}" tests="${report.Total}" time="${secs(report.Duration)}">\n`;
  for (const r of report.Results) {
    out += `    <testcase name="${xml(`${r.Kind}: ${r.Name}`)}" classname="${xml(r.File)}" time="${secs(r.Duration)}">`;
    if (!r.Pass) out += `\n      <failure message="${xml((r.Errors ?? []).join('; '))}">${xml((r.Errors ?? []).join('\n'))}</failure>\n    `;
    out += '</testcase>\n';
  }
  return out + '  </testsuite>\n</testsuites>\n';
}
