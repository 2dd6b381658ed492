// Output formats of kiln lint. tty, json and gnu match hadolint's shapes; sarif, checkstyle and junit
// are what code-scanning dashboards and CI test reports read.

import type { OutputFormat } from './config.js';
import { rules, parseRules } from './rules/index.js';
import type { Finding, Severity } from './rule.js';

export interface FormatOptions {
  color: boolean;
  /** Source text per file name, for the tty format's quoted lines. */
  sources: Map<string, string>;
  /** Files linted, so that clean files still appear in reports that list files. */
  files: string[];
}

export function formatFindings(findings: Finding[], format: OutputFormat, opts: FormatOptions): string {
  switch (format) {
    case 'json':
      return JSON.stringify(findings.map((f) => ({ code: f.code, column: f.column, file: f.file, level: f.level, line: f.line, message: f.message }))) + '\n';
    case 'gnu':
      return findings.map((f) => `kiln-lint:${f.file}:${f.line}:${f.column}: ${f.level}: ${f.code} ${f.message}\n`).join('');
    case 'checkstyle':
      return checkstyle(findings, opts.files);
    case 'junit':
      return junit(findings, opts.files);
    case 'sarif':
      return JSON.stringify(sarif(findings), null, 2) + '\n';
    case 'tty':
      return tty(findings, opts);
  }
}

const colors: Record<Severity, string> = { error: '\x1b[31m', warning: '\x1b[33m', info: '\x1b[32m', style: '\x1b[36m' };

function tty(findings: Finding[], opts: FormatOptions): string {
  const paint = (code: string, s: string) => (opts.color ? `${code}${s}\x1b[0m` : s);
  let out = '';
  for (const f of findings) {
    out += `${f.file}:${f.line} ${paint('\x1b[1m', f.code)} ${paint(colors[f.level], f.level)}: ${f.message}\n`;
    const source = opts.sources.get(f.file)?.split('\n')[f.line - 1];
    if (source !== undefined && source.trim() !== '') out += paint('\x1b[2m', `  ${String(f.line).padStart(4)} | ${source.trimEnd()}`) + '\n';
  }
  return out;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function byFile(findings: Finding[], files: string[]): Map<string, Finding[]> {
  const map = new Map<string, Finding[]>(files.map((f) => [f, []]));
  for (const f of findings) map.set(f.file, [...(map.get(f.file) ?? []), f]);
  return map;
}

function checkstyle(findings: Finding[], files: string[]): string {
  let out = '<?xml version="1.0" encoding="UTF-8"?>\n<checkstyle version="4.3">\n';
  for (const [file, list] of byFile(findings, files)) {
    out += `  <file name="${xml(file)}">\n`;
    for (const f of list) out += `    <error line="${f.line}" column="${f.column}" severity="${f.level}" message="${xml(f.message)}" source="${f.code}"/>\n`;
    out += '  </file>\n';
  }
  return out + '</checkstyle>\n';
}

function junit(findings: Finding[], files: string[]): string {
  const groups = byFile(findings, files);
  let body = '';
  let tests = 0;
  for (const [file, list] of groups) {
    const cases = list.length || 1;
    tests += cases;
    body += `  <testsuite name="kiln lint ${xml(file)}" tests="${cases}" failures="${list.length}" errors="0" skipped="0">\n`;
    if (list.length === 0) body += `    <testcase name="lint" classname="${xml(file)}"/>\n`;
    for (const f of list) {
      body += `    <testcase name="${f.code} line ${f.line}" classname="${xml(file)}">\n`;
      body += `      <failure type="${f.level}" message="${xml(f.message)}">${xml(`${f.file}:${f.line} ${f.code} ${f.level}: ${f.message}`)}</failure>\n`;
      body += '    </testcase>\n';
    }
    body += '  </testsuite>\n';
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="kiln lint" tests="${tests}" failures="${findings.length}">\n${body}</testsuites>\n`;
}

const sarifLevel: Record<Severity, string> = { error: 'error', warning: 'warning', info: 'note', style: 'note' };

function sarif(findings: Finding[]) {
  const known = new Map<string, { message: string; severity: string }>([
    ...rules.map((r) => [r.code, { message: r.message, severity: r.severity }] as const),
    ...Object.entries(parseRules).map(([code, r]) => [code, { message: r.message, severity: r.severity }] as const),
  ]);
  const used = [...new Set(findings.map((f) => f.code))].sort();
  const ruleList = used.map((code) => {
    const r = known.get(code);
    const level = r && r.severity !== 'ignore' ? sarifLevel[r.severity as Severity] : 'warning';
    return { id: code, shortDescription: { text: r?.message ?? `ShellCheck ${code}` }, defaultConfiguration: { level } };
  });
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'kiln lint', rules: ruleList } },
        results: findings.map((f) => ({
          ruleId: f.code,
          ruleIndex: used.indexOf(f.code),
          level: sarifLevel[f.level],
          message: { text: f.message },
          locations: [{ physicalLocation: { artifactLocation: { uri: f.file }, region: { startLine: f.line, startColumn: f.column } } }],
        })),
      },
    ],
  };
}
