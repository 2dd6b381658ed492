// Software bills of materials: catalogue an image's packages, write SPDX/CycloneDX/table/JSON, keep
// the SBOM beside its image in the store.

export { catalogImage, type Catalog, type CatalogProblem, type Distro, type Package } from './catalog.js';
export { parseSbomFormat, renderSbom, SBOM_FORMATS, type SbomFormat } from './format.js';
export { imageCatalog, sbomSubject, storedCatalog, storeSbom, SBOM_ARTIFACT_TYPE, CATALOG_MEDIA_TYPE } from './stored.js';
export type { SbomSubject } from './document.js';
