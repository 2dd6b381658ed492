// Media types kiln reads and writes. OCI is written by default; Docker schema 2 is read everywhere
// (OCI image-spec media-types.md; Docker "Image Manifest V2, Schema 2").
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

export function isManifest(mt: string | undefined): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndex(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isConfig(mt: string | undefined): boolean {
  return mt === MediaType.OciConfig || mt === MediaType.DockerConfig;
}

/** The compression a layer media type declares, or undefined when it is not a layer type kiln knows. */
export function layerCompression(mt: string): Compression | undefined {
  switch (mt) {
    case MediaType.OciLayer:
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.OciLayerNondistributableGzip:
    case MediaType.DockerLayerGzip:
    case MediaType.DockerLayerForeignGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

export function ociLayerMediaType(c: Compression): string {
  return c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

/** Docker-archive and docker registries only know gzip layers under Docker media types. */
export function toDockerMediaType(mt: string): string {
  if (mt === MediaType.OciManifest) return MediaType.DockerManifest;
  if (mt === MediaType.OciIndex) return MediaType.DockerManifestList;
  if (mt === MediaType.OciConfig) return MediaType.DockerConfig;
  if (mt === MediaType.OciLayerGzip) return MediaType.DockerLayerGzip;
  return mt;
}
