// The JSON the browsing half of /kiln/v1/ answers with (routes/browse.ts), as types only: the server
// (browse.ts, layer-tree.ts) builds these, and the web UI (web/src/api.ts) reads them through
// `import type`, which esbuild erases. So this module imports nothing: web/tsconfig.json type-checks
// it for the browser too.

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface RepositoryRow {
  name: string;
  namespace: string;
  tags: number;
  size: number;
  pushedAt?: number;
}

export interface TagRow {
  tag: string;
  digest: string;
  mediaType: string;
  size: number;
  createdAt: number;
  pushedAt: number;
  pushedBy?: string;
  platforms: Platform[];
  sbom: boolean;
  signed: boolean;
}

export interface HistoryEntry {
  created?: string;
  createdBy?: string;
  comment?: string;
  emptyLayer: boolean;
}

export interface ImageConfig {
  /** Set when the config could not be shown (missing, too large, not JSON). */
  note?: string;
  raw?: string;
  created?: string;
  author?: string;
  platform?: Partial<Platform>;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  user?: string;
  workingDir?: string;
  ports?: string[];
  volumes?: string[];
  stopSignal?: string;
  labels?: Record<string, string>;
  history?: HistoryEntry[];
  /** How many history entries the config has, when more than `history` holds. */
  historyTruncated?: number;
  /** How many environment variables or labels the config has, when more than shown. */
  envTruncated?: number;
  labelsTruncated?: number;
}

export type ReferrerKind = 'sbom' | 'signature' | 'attestation' | 'other';

export interface Referrer {
  digest: string;
  mediaType: string;
  artifactType?: string;
  kind: ReferrerKind;
  size: number;
  createdAt: number;
  annotations: Record<string, string>;
}

export interface Descriptor {
  digest: string;
  mediaType: string;
  size: number;
}

/** An image's base (image-spec annotations.md: org.opencontainers.image.base.digest and .name). */
export interface BaseLink {
  digest: string;
  name?: string;
  /** A repository of this registry the caller may pull that holds the base, when there is one. */
  repository?: string;
}

export interface ImageView {
  repository: string;
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  tags: string[];
  /** `unknown`: a manifest kiln cannot read, with `note` saying why and `raw` its bytes (the first 64 KiB). */
  kind: 'image' | 'index' | 'unknown';
  note?: string;
  raw?: string;
  rawTruncated?: number;
  annotations?: Record<string, string>;
  artifactType?: string;
  config?: ImageConfig;
  configDescriptor?: Descriptor;
  layers?: Descriptor[];
  layersTruncated?: number;
  manifests?: (Descriptor & { platform?: Partial<Platform>; annotations?: Record<string, string> })[];
  referrers: Referrer[];
  base?: BaseLink;
}

/** GET /kiln/v1/layer: what one layer does to the files of the layers below it, one directory at a time. */
export interface LayerTree {
  repository: string;
  digest: string;
  layer: number;
  layerDigest: string;
  /** The directory listed. */
  path: string;
  /** Over the whole layer. */
  added: number;
  changed: number;
  removed: number;
  entries: LayerTreeEntry[];
  /** The `last` of the next page of this directory, when there is one. */
  next?: string;
  /** Why the tree is incomplete (a layer too large to read, too many entries), when it is. */
  truncated?: string;
}

export interface LayerTreeEntry {
  name: string;
  path: string;
  /** What the layer does to this path; `undefined`: nothing itself, but something below it. */
  kind?: 'added' | 'changed' | 'removed';
  dir: boolean;
  size: number;
  /** Changes at or below this path. */
  changes: number;
}

export interface LineageRow {
  repository: string;
  digest: string;
  tags: string[];
  /** 1: built directly on the image; 2: on an image built on it; and so on. */
  depth: number;
}

/** GET /kiln/v1/lineage: the images of this registry the caller may pull that are built on a manifest. */
export interface Lineage {
  digest: string;
  builtOn: LineageRow[];
}

export interface PackageRow {
  name: string;
  version: string;
  type: string;
  purl?: string;
  source?: string;
}

/** GET /kiln/v1/sbom: the packages an SBOM referrer lists. */
export interface SbomPackages {
  repository: string;
  digest: string;
  packages: PackageRow[];
  /** How many packages the SBOM lists, when more than `packages` holds. */
  truncated?: number;
  note?: string;
}

/** GET /kiln/v1/search?package=NAME[&version=RANGE] (the answer of /api/v1/search). */
export interface PackageSearch {
  package: string;
  version?: string;
  results: { repository: string; digest: string; tags: string[]; packages: PackageRow[] }[];
}

/** GET /kiln/v1/search?base=DIGEST. */
export interface BaseSearch {
  base: string;
  results: { repository: string; digest: string; tags: string[]; base: { digest: string; name?: string }; depth: number }[];
}
