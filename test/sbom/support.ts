import assert from 'node:assert/strict';
import { pushBlob, sha256, type Client, type TestImage } from '../registry/server/support.js';
import { Store } from '../../src/store/store.js';
import { MediaType } from '../../src/oci/mediatypes.js';

// SBOM documents for tests, written by the test (SPDX 2.3 and CycloneDX 1.5 JSON, the fields kiln reads),
// and pushing one to a registry as an artifact whose subject is an image.

export const SPDX = 'application/spdx+json';
export const CDX = 'application/vnd.cyclonedx+json';

export type Pkg = [name: string, version: string, purl?: string];

export function spdx(pkgs: Pkg[]): unknown {
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: 'test',
    documentNamespace: 'https://example.invalid/test',
    creationInfo: { created: '2026-01-01T00:00:00Z', creators: ['Tool: test'] },
    packages: pkgs.map(([name, versionInfo, purl], i) => ({
      SPDXID: `SPDXRef-Package-${i}`,
      name,
      versionInfo,
      downloadLocation: 'NOASSERTION',
      ...(purl ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }] } : {}),
    })),
  };
}

export function cyclonedx(pkgs: Pkg[]): unknown {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: { component: { type: 'container', name: 'the-image', version: 'sha256:00' } },
    components: pkgs.map(([name, version, purl]) => ({ type: 'library', name, version, ...(purl ? { purl } : {}) })),
  };
}

/** Push an SBOM document as an OCI artifact whose subject is `subject` (image-spec manifest.md "subject"). */
export async function pushSbom(c: Client, repo: string, subject: TestImage, doc: unknown, mediaType = SPDX): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const empty = Buffer.from('{}');
  await pushBlob(c, repo, empty);
  await pushBlob(c, repo, bytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: mediaType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType, digest: sha256(bytes), size: bytes.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.length },
    }),
  );
  const digest = sha256(manifest);
  const r = await c.req('PUT', `/v2/${repo}/manifests/${digest}`, { body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(r.status, 201, r.text());
  return digest;
}


/**
 * Keep an SBOM in a local store the way the OCI image layout allows artifacts: a manifest with the
 * image as `subject`, listed in index.json with its artifactType.
 */
export async function storeSbomDocument(root: string, subject: string, doc: unknown, mediaType = SPDX): Promise<string> {
  const store = await Store.open(root);
  const image = await store.resolveImage(subject);
  const bytes = Buffer.from(JSON.stringify(doc));
  const layer = await store.content.put(bytes);
  const config = await store.putJSON({}, MediaType.OciEmpty);
  const manifest = await store.putJSON(
    {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: mediaType,
      config,
      layers: [{ mediaType, digest: layer.digest, size: layer.size }],
      subject: { mediaType: image.manifestDescriptor.mediaType, digest: image.manifestDescriptor.digest, size: image.manifestDescriptor.size },
    },
    MediaType.OciManifest,
  );
  await store.updateIndex((index) => void index.manifests.push({ ...manifest, artifactType: mediaType }));
  return manifest.digest;
}

/** Another image with the layers of `from` (so no build is needed), told apart by an annotation; named `name`. */
export async function imageVariant(root: string, from: string, name: string, annotations: Record<string, string> = {}): Promise<string> {
  const store = await Store.open(root);
  const img = await store.resolveImage(from);
  const made = await store.writeImage(img.config, img.manifest.layers, [name], { 'org.opencontainers.image.title': name, ...annotations });
  return made.manifestDescriptor.digest;
}
