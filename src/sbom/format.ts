// The SBOM formats `kiln sbom` writes: the two standards, kiln's own JSON (the catalog as it is) and
// a table for people.

import { UsageError } from '../errors.js';
import { renderTable } from '../ui/table.js';
import type { Catalog } from './catalog.js';
import { toCycloneDx } from './cyclonedx.js';
import type { SbomSubject } from './document.js';
import { toSpdx } from './spdx.js';

export const SBOM_FORMATS = ['table', 'json', 'spdx-json', 'cyclonedx-json'] as const;
export type SbomFormat = (typeof SBOM_FORMATS)[number];

export function parseSbomFormat(s: string): SbomFormat {
  if ((SBOM_FORMATS as readonly string[]).includes(s)) return s as SbomFormat;
  throw new UsageError(`--format: unknown SBOM format "${s}" (use ${SBOM_FORMATS.join(', ')})`);
}

export function renderSbom(catalog: Catalog, subject: SbomSubject, format: SbomFormat): string {
  switch (format) {
    case 'spdx-json':
      return JSON.stringify(toSpdx(catalog, subject), null, 2) + '\n';
    case 'cyclonedx-json':
      return toCycloneDx(catalog, subject) + '\n';
    case 'json':
      return JSON.stringify({ image: { name: subject.name, digest: subject.digest }, ...catalog }, null, 2) + '\n';
    case 'table':
      if (catalog.packages.length === 0) return 'No packages found\n';
      return renderTable(
        ['NAME', 'VERSION', 'TYPE', 'LAYER', 'LICENSES'],
        catalog.packages.map((p) => [p.name, p.version, p.type, String(p.layer.index), p.licenses.join(', ')]),
      );
  }
}
