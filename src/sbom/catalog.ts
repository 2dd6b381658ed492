// The packages installed in an image, read from the package managers' own metadata files, each
// attributed to the layer that introduced it.
//
// The layers are walked bottom-up through the layer reader (inspect/layers.ts), reading only the
// metadata files catalogers want. After each layer the set of metadata files as that layer leaves
// them (whiteouts applied: OCI image-spec layer.md, "Whiteouts") is re-catalogued, and a package
// (name@version at a location) is attributed to the lowest layer from which it stays present up to
// the top: a package upgraded in layer 3 belongs to layer 3, one untouched since the base to layer 0.

import { posix } from 'node:path';
import { PackageURL } from 'packageurl-js';
import { isWithin, walkLayers, type LayerEntry, type ReadContent } from '../inspect/layers.js';
import type { Store, StoredImage } from '../store/store.js';
import { APK_INSTALLED, parseApkInstalled } from './catalogers/apk.js';
import type { Cataloged, CatalogedPackage } from './catalogers/cataloger.js';
import { copyrightLicenses, copyrightPackage, isDpkgDatabase, parseDpkgDatabase } from './catalogers/dpkg.js';
import { isNpmManifest, parseNpmManifest } from './catalogers/npm.js';
import { isPythonMetadata, parsePythonMetadata } from './catalogers/python.js';
import { OS_RELEASE_PATHS, parseOsRelease, type Distro } from './os-release.js';

export type { Distro } from './os-release.js';

export interface Package {
  type: 'deb' | 'apk' | 'python' | 'npm';
  name: string;
  version: string;
  /** package-url spec, e.g. pkg:deb/debian/bash@5.2.15-2?arch=amd64&distro=debian-12 */
  purl: string;
  /** SPDX ids, expressions or names, where the metadata has them. */
  licenses: string[];
  /** dpkg Source: (name and version); apk origin. */
  source?: { name: string; version: string };
  arch?: string;
  /** The layer that introduced this package (version). */
  layer: { index: number; digest: string; diffId: string };
  /** The metadata file it was read from, e.g. /var/lib/dpkg/status. */
  location: string;
}

export interface CatalogProblem {
  path: string;
  message: string;
}

export interface Catalog {
  packages: Package[];
  distro?: Distro;
  problems: CatalogProblem[];
}

type Kind = 'dpkg' | 'apk' | 'python' | 'npm' | 'copyright' | 'os-release';

/** A metadata file as one layer left it: what was read out of it, not its text (copyright files and METADATA can be large). */
interface MetadataFile {
  kind: Kind;
  /** os-release only: its text, or where its symlink points. */
  text?: string;
  linkname?: string;
  /** Package databases: what the file's cataloger found. */
  cataloged?: Cataloged;
  /** Debian copyright files: the license names they declare. */
  licenses?: string[];
}

/** Package databases are read whole; a file past this is reported rather than read. */
const MAX_DATABASE = 256 * 1024 * 1024;
/** Other metadata files: Python's METADATA only matters up to its headers, so a prefix is enough. */
const MAX_SMALL = 4 * 1024 * 1024;

function kindOf(entry: LayerEntry): Kind | undefined {
  const p = entry.path;
  if (entry.type === 'symlink') return OS_RELEASE_PATHS.includes(p) ? 'os-release' : undefined;
  if (entry.type !== 'file' && entry.type !== 'hardlink') return undefined;
  if (OS_RELEASE_PATHS.includes(p)) return 'os-release';
  if (isDpkgDatabase(p)) return 'dpkg';
  if (p === APK_INSTALLED) return 'apk';
  if (isNpmManifest(p)) return 'npm';
  if (isPythonMetadata(p, true)) return 'python';
  if (copyrightPackage(p) !== undefined) return 'copyright';
  return undefined;
}

function catalogFile(kind: Kind, path: string, text: string): Cataloged | undefined {
  switch (kind) {
    case 'dpkg':
      return parseDpkgDatabase(path, text);
    case 'apk':
      return parseApkInstalled(text);
    case 'python':
      return parsePythonMetadata(text);
    case 'npm':
      return parseNpmManifest(text);
    default:
      return undefined;
  }
}

const keyOf = (p: CatalogedPackage, location: string) => `${p.type}\0${p.name}\0${p.version}\0${location}`;

export async function catalogImage(store: Store, image: StoredImage): Promise<Catalog> {
  const layers = image.manifest.layers;
  /** Metadata files as the layers walked so far leave them. */
  const files = new Map<string, MetadataFile>();
  /** Package key → the lowest layer from which it has stayed present. */
  const since = new Map<string, number>();
  /** Every directory above a path in `files`: only entries at these paths can replace a metadata file. */
  const dirs = new Set<string>();

  // What the layer being read does, applied once it has been read whole: its whiteouts act on the
  // layers below only, so they must not remove what the layer itself adds.
  let current = -1;
  let adds = new Map<string, MetadataFile>();
  let removed: { path: string; subtree: boolean }[] = [];

  const finishLayer = (index: number) => {
    for (const r of removed) {
      for (const p of [...files.keys()]) if (r.subtree ? isWithin(p, r.path) : p === r.path) files.delete(p);
    }
    for (const [p, f] of adds) {
      files.set(p, f);
      for (let d = posix.dirname(p); d !== '/' && !dirs.has(d); d = posix.dirname(d)) dirs.add(d);
    }
    const present = new Set<string>();
    for (const [path, f] of files) for (const pkg of f.cataloged?.packages ?? []) present.add(keyOf(pkg, path));
    for (const k of [...since.keys()]) if (!present.has(k)) since.delete(k);
    for (const k of present) if (!since.has(k)) since.set(k, index);
    adds = new Map();
    removed = [];
  };

  const onEntry = async (index: number, entry: LayerEntry, read: ReadContent) => {
    if (index !== current) {
      if (current >= 0) finishLayer(current);
      current = index;
    }
    if (entry.whiteout) {
      removed.push({ path: entry.path, subtree: true });
      return;
    }
    // A non-directory replaces whatever lower layers had at (and, for a directory, under) its path.
    if (entry.type !== 'directory' && (files.has(entry.path) || dirs.has(entry.path))) removed.push({ path: entry.path, subtree: true });
    const kind = kindOf(entry);
    if (!kind) return;
    if (entry.type === 'symlink') {
      adds.set(entry.path, { kind, linkname: entry.linkname });
      return;
    }
    if (entry.type === 'hardlink') {
      // the same content under another name: what was read from the target holds for this path too
      const target = adds.get(posix.normalize('/' + entry.linkname)) ?? files.get(posix.normalize('/' + entry.linkname));
      if (target?.kind === kind) adds.set(entry.path, target);
      return;
    }
    const limit = kind === 'dpkg' || kind === 'apk' ? MAX_DATABASE : MAX_SMALL;
    if (entry.size > limit && kind !== 'python') {
      adds.set(entry.path, { kind, cataloged: { packages: [], problems: [`larger than ${limit} bytes; not read`] } });
      return;
    }
    const text = (await read(Math.min(entry.size, limit))).toString('utf8');
    if (kind === 'os-release') adds.set(entry.path, { kind, text });
    else if (kind === 'copyright') adds.set(entry.path, { kind, licenses: copyrightLicenses(text) });
    else adds.set(entry.path, { kind, cataloged: catalogFile(kind, entry.path, text) });
  };

  await walkLayers(store, layers, onEntry);
  if (current >= 0) finishLayer(current);

  const distro = findDistro(files);
  const licensesByDeb = new Map<string, string[]>();
  for (const [path, f] of files) {
    const pkg = copyrightPackage(path);
    if (pkg && f.licenses) licensesByDeb.set(pkg, f.licenses);
  }

  const packages: Package[] = [];
  const problems: CatalogProblem[] = [];
  for (const [path, f] of files) {
    for (const message of f.cataloged?.problems ?? []) problems.push({ path, message });
    for (const pkg of f.cataloged?.packages ?? []) {
      const index = since.get(keyOf(pkg, path)) ?? layers.length - 1;
      const licenses = pkg.type === 'deb' && pkg.licenses.length === 0 ? (licensesByDeb.get(pkg.name) ?? []) : pkg.licenses;
      packages.push({
        ...pkg,
        licenses,
        purl: purlOf(pkg, distro),
        layer: { index, digest: layers[index]!.digest, diffId: image.config.rootfs.diff_ids[index] ?? '' },
        location: path,
      });
    }
  }
  packages.sort((a, b) => cmp(a.type, b.type) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.location, b.location));
  problems.sort((a, b) => cmp(a.path, b.path));
  return { packages: packages.map(dropUndefined), distro, problems };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function dropUndefined(p: Package): Package {
  if (p.source === undefined) delete p.source;
  if (p.arch === undefined) delete p.arch;
  return p;
}

/** os-release(5): /etc/os-release wins, and is often a symlink to /usr/lib/os-release. */
function findDistro(files: Map<string, MetadataFile>): Distro | undefined {
  for (const path of OS_RELEASE_PATHS) {
    let f = files.get(path);
    if (f?.linkname !== undefined) f = files.get(posix.resolve(posix.dirname(path), f.linkname));
    if (f?.text !== undefined) return parseOsRelease(f.text);
  }
  return undefined;
}

/** package-url spec, PURL-TYPES.rst: deb and apk are namespaced by distro, pypi names are normalised by the library. */
function purlOf(p: CatalogedPackage, distro: Distro | undefined): string {
  const qualifiers: Record<string, string> = {};
  if (p.arch) qualifiers.arch = p.arch;
  if (distro) qualifiers.distro = distro.versionId ? `${distro.id}-${distro.versionId}` : distro.id;
  switch (p.type) {
    case 'deb':
      // The source package as syft and trivy record it, so that a search by source (openssl) finds
      // the binaries built from it (libssl3): "upstream=NAME", "@VERSION" when the versions differ.
      if (p.source) qualifiers.upstream = p.source.version && p.source.version !== p.version ? `${p.source.name}@${p.source.version}` : p.source.name;
      return new PackageURL('deb', distro?.id ?? 'debian', p.name, p.version, qualifiers, undefined).toString();
    case 'apk':
      return new PackageURL('apk', distro?.id ?? 'alpine', p.name, p.version, qualifiers, undefined).toString();
    case 'python':
      return new PackageURL('pypi', undefined, p.name, p.version, undefined, undefined).toString();
    case 'npm': {
      const slash = p.name.startsWith('@') ? p.name.indexOf('/') : -1;
      const ns = slash > 0 ? p.name.slice(0, slash) : undefined;
      return new PackageURL('npm', ns, slash > 0 ? p.name.slice(slash + 1) : p.name, p.version, undefined, undefined).toString();
    }
  }
}
