// apk-tools' installed database, /lib/apk/db/installed: one paragraph per package of "X:value"
// lines, single-letter keys (apk-tools doc "Installed Database V2": P name, V version, A arch,
// L license, o origin).

import type { Cataloged } from './cataloger.js';

export const APK_INSTALLED = '/lib/apk/db/installed';

export function parseApkInstalled(text: string): Cataloged {
  const out: Cataloged = { packages: [], problems: [] };
  let fields = new Map<string, string>();
  let start = 1;
  const flush = () => {
    if (fields.size === 0) return;
    const name = fields.get('P');
    const version = fields.get('V');
    if (!name || !version) {
      out.problems.push(`line ${start}: package without ${name ? 'V:' : 'P:'}`);
    } else {
      const origin = fields.get('o');
      out.packages.push({
        type: 'apk',
        name,
        version,
        licenses: apkLicenses(fields.get('L') ?? ''),
        source: origin ? { name: origin, version } : undefined,
        arch: fields.get('A') || undefined,
      });
    }
    fields = new Map();
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (fields.size === 0) start = i + 1;
    if (line.length < 2 || line[1] !== ':') {
      out.problems.push(`line ${i + 1}: expected "X:value", got "${line.length > 60 ? line.slice(0, 60) + '…' : line}"`);
      continue;
    }
    // per-file lines (F:, R:, Z:…) repeat; the package's own fields come first and are kept
    if (!fields.has(line[0]!)) fields.set(line[0]!, line.slice(2));
  }
  flush();
  return out;
}

/** Alpine writes SPDX expressions ("MIT AND BSD-2-Clause") or, in older packages, names separated by spaces. */
function apkLicenses(l: string): string[] {
  const v = l.trim();
  if (!v) return [];
  if (/\s(AND|OR|WITH)\s/.test(v) || v.includes('(')) return [v];
  return v.split(/\s+/);
}
