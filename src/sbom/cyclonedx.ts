// CycloneDX 1.6 JSON through the CycloneDX project's own library (@cyclonedx/cyclonedx-library): the
// image is the BOM's metadata component, each catalogued package a component with its purl,
// licenses, and kiln properties for the layer and metadata file it came from.

import { createHash } from 'node:crypto';
import * as CDX from '@cyclonedx/cyclonedx-library';
import parseSpdxExpression from 'spdx-expression-parse';
import type { Catalog } from './catalog.js';
import { createdAt, KILN_TOOL, packageId, type SbomSubject } from './document.js';

export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';
export const CYCLONEDX_SPEC = CDX.Spec.Version.v1dot6;

const licenses = new CDX.Contrib.License.Factories.LicenseFactory(parseSpdxExpression);

export function toCycloneDx(catalog: Catalog, subject: SbomSubject): string {
  const bom = new CDX.Models.Bom();
  bom.serialNumber = serialNumber(subject.digest);
  bom.metadata.timestamp = new Date(createdAt(subject));
  bom.metadata.tools.components.add(new CDX.Models.Component(CDX.Enums.ComponentType.Application, KILN_TOOL.name, { version: KILN_TOOL.version }));
  bom.metadata.component = new CDX.Models.Component(CDX.Enums.ComponentType.Container, subject.name, { version: subject.digest, bomRef: subject.digest });
  if (catalog.distro) {
    const os = new CDX.Models.Component(CDX.Enums.ComponentType.OperatingSystem, catalog.distro.id, { version: catalog.distro.versionId, bomRef: `os:${catalog.distro.id}` });
    bom.components.add(os);
  }
  for (const p of catalog.packages) {
    const c = new CDX.Models.Component(CDX.Enums.ComponentType.Library, p.name, { version: p.version, purl: p.purl, bomRef: packageId(p) });
    // CycloneDX 1.6 "licenses": one expression alone, or any number of single licenses
    if (p.licenses.length === 1) c.licenses.add(licenses.makeFromString(p.licenses[0]!));
    else for (const l of p.licenses) c.licenses.add(licenses.makeDisjunctive(l));
    const props: [string, string][] = [
      ['kiln:package:type', p.type],
      ['kiln:package:location', p.location],
      ['kiln:layer:index', String(p.layer.index)],
      ['kiln:layer:digest', p.layer.digest],
      ['kiln:layer:diffID', p.layer.diffId],
    ];
    if (p.source) props.push(['kiln:package:source', `${p.source.name}@${p.source.version}`]);
    if (p.arch) props.push(['kiln:package:arch', p.arch]);
    for (const [n, v] of props) c.properties.add(new CDX.Models.Property(n, v));
    bom.components.add(c);
  }
  const serializer = new CDX.Serialize.JsonSerializer(new CDX.Serialize.JSON.Normalize.Factory(CDX.Spec.SpecVersionDict[CYCLONEDX_SPEC]!));
  return serializer.serialize(bom, { sortLists: true, space: 2 });
}

/** A version-4-shaped UUID taken from the manifest digest: one serial number per image, always the same. */
function serialNumber(digest: string): string {
  const h = createHash('sha256').update(digest).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
