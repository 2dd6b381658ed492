// Scan results as a table for people, JSON for programs and SARIF 2.1.0 for code-scanning services.

import { renderTable } from '../ui/table.js';
import type { MatchableDistro, MatchProblem, VulnerabilityMatch } from './match.js';
import type { Severity } from './severity.js';
import type { VulnDbInfo } from './vulndb.js';

export const scanFormats = ['table', 'json', 'sarif'] as const;
export type ScanFormat = (typeof scanFormats)[number];

export interface ScanReport {
  image: { name: string; digest: string };
  distro?: MatchableDistro;
  database: VulnDbInfo;
  matches: VulnerabilityMatch[];
  /** Packages or advisories that could not be judged (unreadable versions, catalog problems). */
  problems: MatchProblem[];
}

export function formatScan(report: ScanReport, format: ScanFormat, toolVersion: string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(report, null, 2) + '\n';
    case 'sarif':
      return JSON.stringify(toSarif(report, toolVersion), null, 2) + '\n';
    case 'table':
      return toTable(report);
  }
}

function toTable(r: ScanReport): string {
  if (r.matches.length === 0) return `No vulnerabilities found in ${r.image.name}\n`;
  const rows = r.matches.map((m) => [
    m.package,
    m.installedVersion,
    m.fixedVersion || '(unfixed)',
    m.severity,
    m.id,
    `${m.layer.index} ${m.layer.digest.replace(/^sha256:/, '').slice(0, 12)}`,
  ]);
  const counts = new Map<Severity, number>();
  for (const m of r.matches) counts.set(m.severity, (counts.get(m.severity) ?? 0) + 1);
  const summary = [...counts].map(([s, n]) => `${s}: ${n}`).join(', ');
  return renderTable(['PACKAGE', 'INSTALLED', 'FIXED', 'SEVERITY', 'VULNERABILITY', 'LAYER'], rows) + `${r.matches.length} matches (${summary})\n`;
}

/** GitHub code scanning reads `security-severity` (a CVSS-like number) to rank results. */
const securitySeverity: Partial<Record<Severity, string>> = { critical: '9.5', high: '8.0', medium: '5.5', low: '2.0', negligible: '0.0' };

/** SARIF 2.1.0 §3.27.10: error, warning, note. */
function level(s: Severity): 'error' | 'warning' | 'note' {
  return s === 'critical' || s === 'high' ? 'error' : s === 'medium' ? 'warning' : 'note';
}

function toSarif(r: ScanReport, toolVersion: string): object {
  const rules: object[] = [];
  const ruleIndex = new Map<string, number>();
  for (const m of r.matches) {
    if (ruleIndex.has(m.id)) continue;
    ruleIndex.set(m.id, rules.length);
    const sev = securitySeverity[m.severity];
    rules.push({
      id: m.id,
      shortDescription: { text: m.description ? `${m.id}: ${m.description.split('\n')[0]}` : m.id },
      ...(m.description ? { fullDescription: { text: m.description } } : {}),
      defaultConfiguration: { level: level(m.severity) },
      properties: { tags: ['security', 'vulnerability', m.severity], ...(sev ? { 'security-severity': sev } : {}) },
    });
  }
  const results = r.matches.map((m) => ({
    ruleId: m.id,
    ruleIndex: ruleIndex.get(m.id)!,
    level: level(m.severity),
    message: {
      text: `${m.package} ${m.installedVersion} is affected by ${m.id} (${m.severity}); ${m.fixedVersion ? `fixed in ${m.fixedVersion}` : 'no fix yet'}. Image ${r.image.name}, layer ${m.layer.index} (${m.layer.digest}).`,
    },
    // §3.4.3: a relative URI reference; the image's file that records the package.
    locations: [{ physicalLocation: { artifactLocation: { uri: m.location.replace(/^\/+/, '') } }, logicalLocations: [{ name: m.purl, kind: 'package' }] }],
    partialFingerprints: { packageVulnerability: `${m.purl}|${m.id}` },
    properties: { package: m.package, installedVersion: m.installedVersion, fixedVersion: m.fixedVersion, severity: m.severity, purl: m.purl, layer: m.layer },
  }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'kiln', version: toolVersion, rules } }, results }],
  };
}
