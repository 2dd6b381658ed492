// dpkg's database: /var/lib/dpkg/status, one deb822 paragraph per package (dpkg(1), deb-status(5)),
// and the status.d/ directory distroless images write instead, one file per package.

import { field, parseParagraphs } from '../fields.js';
import type { Cataloged } from './cataloger.js';

export const DPKG_STATUS = '/var/lib/dpkg/status';
const STATUS_D = '/var/lib/dpkg/status.d/';

export function isDpkgDatabase(path: string): boolean {
  if (path === DPKG_STATUS) return true;
  // status.d also holds <pkg>.md5sums files beside the package paragraphs
  return path.startsWith(STATUS_D) && !path.slice(STATUS_D.length).includes('/') && !path.endsWith('.md5sums');
}

export function parseDpkgDatabase(path: string, text: string): Cataloged {
  const out: Cataloged = { packages: [], problems: [] };
  const { paragraphs, errors } = parseParagraphs(text);
  for (const e of errors) out.problems.push(`line ${e.line}: ${e.message}`);
  for (const p of paragraphs) {
    // deb-status(5): Status is "want flag status"; only "installed" packages are on disk. A held
    // package ("hold ok installed") is installed too. status.d paragraphs may carry no Status.
    const status = field(p, 'Status')?.split(/\s+/);
    if (status && !(status[1] === 'ok' && status[2] === 'installed')) continue;
    const name = field(p, 'Package');
    const version = field(p, 'Version');
    if (!name || !version) {
      out.problems.push(`line ${p.line}: paragraph without ${name ? 'Version' : 'Package'}`);
      continue;
    }
    // deb-control(5): "Source: name (version)" when the source version differs from the binary's.
    const src = field(p, 'Source')?.match(/^(\S+)(?:\s+\((.+)\))?$/);
    const arch = field(p, 'Architecture');
    out.packages.push({
      type: 'deb',
      name,
      version,
      licenses: [],
      source: src ? { name: src[1]!, version: src[2]?.trim() ?? version } : undefined,
      arch: arch || undefined,
    });
  }
  return out;
}

const COPYRIGHT = /^\/usr\/share\/doc\/([^/]+)\/copyright$/;

/** The package whose copyright file this is, or undefined. */
export function copyrightPackage(path: string): string | undefined {
  return COPYRIGHT.exec(path)?.[1];
}

/**
 * License names from a machine-readable debian/copyright file (DEP-5, "Machine-readable
 * debian/copyright file" 1.0): the first line of each License field is the short name. Files in the
 * older free-form style carry no such field and give nothing.
 */
export function copyrightLicenses(text: string): string[] {
  const { paragraphs } = parseParagraphs(text);
  const first = paragraphs[0];
  if (!first || !field(first, 'Format')) return [];
  const seen = new Set<string>();
  for (const p of paragraphs) {
    for (const v of p.fields.get('License') ?? []) {
      const short = v.split('\n')[0]!.trim();
      if (short) seen.add(short);
    }
  }
  return [...seen];
}
