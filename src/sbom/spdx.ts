// SPDX 2.3 JSON (spdx.github.io/spdx-spec/v2.3): a document describing one package, the image, which
// contains every catalogued package. Identifiers are derived from the packages, so the same image
// gives the same document.

import parseSpdxExpression from 'spdx-expression-parse';
import type { Catalog, Package } from './catalog.js';
import { createdAt, KILN_TOOL, packageId, type SbomSubject } from './document.js';

export const SPDX_MEDIA_TYPE = 'application/spdx+json';

interface ExtractedLicense {
  licenseId: string;
  name: string;
  extractedText: string;
}

export function toSpdx(catalog: Catalog, subject: SbomSubject): object {
  const hex = subject.digest.replace(/^sha256:/, '');
  const imageId = `SPDXRef-Image-${hex.slice(0, 16)}`;
  const extracted = new Map<string, ExtractedLicense>();
  const packages: object[] = [
    {
      SPDXID: imageId,
      name: subject.name,
      versionInfo: subject.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      primaryPackagePurpose: 'CONTAINER',
      checksums: [{ algorithm: 'SHA256', checksumValue: hex }],
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
    },
  ];
  const relationships: object[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId }];
  for (const p of catalog.packages) {
    const id = `SPDXRef-Package-${packageId(p)}`;
    packages.push({
      SPDXID: id,
      name: p.name,
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      supplier: 'NOASSERTION',
      // SPDX 2.3 §7.26: where the information about the package came from
      sourceInfo: `acquired package info from ${p.location} in layer ${p.layer.digest}`,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: declaredLicense(p, extracted),
      copyrightText: 'NOASSERTION',
      // SPDX 2.3 Annex F: package-url as a PACKAGE-MANAGER external reference
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }],
    });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }
  const doc: Record<string, unknown> = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: subject.name,
    // §6.5: a unique URI per document; the manifest digest makes it unique per image, and stable
    documentNamespace: `https://kiln.invalid/spdx/${encodeURIComponent(subject.name)}-${hex}`,
    creationInfo: { created: createdAt(subject), creators: [`Tool: ${KILN_TOOL.name}-${KILN_TOOL.version}`] },
    packages,
    relationships,
  };
  if (extracted.size) doc.hasExtractedLicensingInfos = [...extracted.values()].sort((a, b) => (a.licenseId < b.licenseId ? -1 : 1));
  return doc;
}

/**
 * §7.15: an SPDX license expression. Names that are not SPDX identifiers ("GPL-3+" from a Debian
 * copyright file, "MIT License" from a classifier) become LicenseRef- identifiers declared in
 * hasExtractedLicensingInfos (§10), as the spec requires for licenses outside the SPDX list.
 */
function declaredLicense(p: Package, extracted: Map<string, ExtractedLicense>): string {
  if (p.licenses.length === 0) return 'NOASSERTION';
  const parts = p.licenses.map((l) => {
    if (isSpdxExpression(l)) return p.licenses.length > 1 && /\s/.test(l) ? `(${l})` : l;
    const licenseId = `LicenseRef-${l.replace(/\+/g, '-plus').replace(/[^A-Za-z0-9.-]+/g, '-')}`;
    extracted.set(licenseId, { licenseId, name: l, extractedText: l });
    return licenseId;
  });
  return parts.join(' AND ');
}

function isSpdxExpression(s: string): boolean {
  try {
    parseSpdxExpression(s);
    return true;
  } catch {
    return false;
  }
}
