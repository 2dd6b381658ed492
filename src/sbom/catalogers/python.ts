// Installed Python distributions: *.dist-info/METADATA (wheels, PEP 376/627) and *.egg-info/PKG-INFO
// (setuptools; an .egg-info may also be the PKG-INFO file itself), both in the core metadata format
// (packaging.python.org "Core metadata specifications"): RFC 822 headers, then the description.

import { field, parseParagraphs } from '../fields.js';
import type { Cataloged } from './cataloger.js';

export function isPythonMetadata(path: string, isFile: boolean): boolean {
  return /\.dist-info\/METADATA$/.test(path) || /\.egg-info\/PKG-INFO$/.test(path) || (isFile && path.endsWith('.egg-info'));
}

export function parsePythonMetadata(text: string): Cataloged {
  const out: Cataloged = { packages: [], problems: [] };
  const { paragraphs, errors } = parseParagraphs(text, true);
  const headers = paragraphs[0];
  const name = headers && field(headers, 'Name');
  const version = headers && field(headers, 'Version');
  if (!headers || !name || !version) {
    const first = errors[0];
    out.problems.push(first ? `line ${first.line}: ${first.message}` : `no ${name ? 'Version' : 'Name'} header`);
    return out;
  }
  out.packages.push({ type: 'python', name, version, licenses: pythonLicenses(headers.fields) });
  return out;
}

/**
 * License-Expression (core metadata 2.4) is an SPDX expression and wins; else a one-line License
 * field (older metadata often puts the whole license text there, which is no name); else the
 * "License ::" trove classifiers' last segment.
 */
function pythonLicenses(fields: Map<string, string[]>): string[] {
  const expr = fields.get('License-Expression')?.[0]?.trim();
  if (expr) return [expr];
  const lic = fields.get('License')?.[0]?.trim();
  if (lic && !lic.includes('\n') && lic.length <= 100 && lic.toUpperCase() !== 'UNKNOWN') return [lic];
  const fromClassifiers = (fields.get('Classifier') ?? [])
    .filter((c) => c.startsWith('License ::'))
    .map((c) => c.split('::').pop()!.trim())
    .filter((c) => c && c !== 'OSI Approved');
  return [...new Set(fromClassifiers)];
}
