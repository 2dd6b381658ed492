import type { Readable } from 'node:stream';
import type { Registry } from './registry.js';
import type { Principal } from './auth/access.js';
import type { TagOrder } from './metadata/metadata.js';
import { RegistryError, badRequest, manifestUnknown } from './errors.js';
import { isName, isTag, namespaceOf, parseManifestReference } from './names.js';
import { isSbomMediaType } from '../../sbom/sbom-document.js';
import { NotationArtifactType } from '../../sign/notation.js';
import { SimpleSigningMediaType } from '../../sign/simplesigning.js';
import { isIndex } from '../../oci/mediatypes.js';
import { BaseDigestAnnotation, BaseNameAnnotation } from '../../oci/types.js';
import { isDigest } from '../../oci/digest.js';
import { readSbomPackages } from '../../sbom/sbom-document.js';
import { sbomLayer } from './search.js';
import { SbomUnreadable } from '../../sbom/errors.js';
import { parseManifest } from './manifests.js';
import type { BaseLink, ImageConfig, ImageView, Lineage, Platform, ReferrerKind, RepositoryRow, SbomPackages, TagRow } from './browse-rows.js';

export type * from './browse-rows.js';

// What the web UI and scripts read through /kiln/v1/ (issue 20): the repositories a principal may
// pull, pages of a repository's tags, and one image taken apart. Read-only; who may see what is
// Auth's (actionsFor, pullableBy), as for /v2/. Everything here is a bounded number of queries
// whatever the repository's size (metadata BrowseRows).

export const MaxPage = 1000;
export const DefaultPage = 50;
/** Config blobs larger than this are not parsed (a note says so); image configs are a few KiB. */
export const MaxConfigBytes = 4 * 1024 * 1024;
/** History entries and layers shown at most; the answer says when more were left out. */
export const MaxEntries = 1000;

/** What a referrer is, by its artifactType: SBOM documents, signatures (cosign, Sigstore bundles, Notation), in-toto attestations. */
export function referrerKind(artifactType: string | undefined): ReferrerKind {
  if (!artifactType) return 'other';
  if (isSbomMediaType(artifactType)) return 'sbom';
  if (artifactType === NotationArtifactType || artifactType === SimpleSigningMediaType || artifactType.startsWith('application/vnd.dev.sigstore.bundle') || artifactType === 'application/vnd.dev.cosign.artifact.sig.v1+json') return 'signature';
  if (artifactType.startsWith('application/vnd.in-toto')) return 'attestation';
  return 'other';
}

function platformsOf(indexBody: Buffer): Platform[] {
  try {
    const doc = JSON.parse(indexBody.toString('utf8')) as { manifests?: { platform?: Partial<Platform> }[] };
    return (doc.manifests ?? [])
      .map((m) => m.platform)
      .filter((p): p is Platform => !!p && typeof p.os === 'string' && typeof p.architecture === 'string' && p.os !== 'unknown')
      .map((p) => ({ os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' ? { variant: p.variant } : {}) }));
  } catch {
    return [];
  }
}

/** Pull on the repository, or 401 for anonymous callers (they may sign in) and 404 for others (existence is not told). */
export async function requirePull(reg: Registry, p: Principal, repository: string): Promise<void> {
  if ((await reg.auth.actionsFor(p, repository)).includes('pull')) return;
  if (p.kind === 'anonymous') throw new RegistryError('unauthorized', `sign in to see ${repository}`);
  throw new RegistryError('name-unknown', `no repository ${repository} that ${p.name} may pull`, { name: repository });
}

const intParam = (v: string | null, field: string, def: number, max: number): number => {
  if (v === null || v === '') return def;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw badRequest(`${field}: expected a positive integer, got "${v.slice(0, 20)}"`);
  return Math.min(max, Number(v));
};

/** Repositories `p` may pull whose name contains `filter`, by name, `n` after `last`. */
export async function repositories(reg: Registry, p: Principal, q: URLSearchParams): Promise<{ repositories: RepositoryRow[]; next?: string }> {
  const n = intParam(q.get('n'), 'n', DefaultPage, MaxPage);
  const last = q.get('last') ?? '';
  const filter = (q.get('filter') ?? '').trim();
  if (filter.length > 255) throw badRequest('filter: at most 255 characters');
  const may = await reg.auth.pullableBy(p);
  const all = (await reg.metadata.repositorySummaries(filter || undefined)).filter((r) => r.name > last && may(r.name));
  const page = all.slice(0, n).map((r) => ({ name: r.name, namespace: namespaceOf(r.name), tags: r.tags, size: r.size, ...(r.pushedAt !== undefined ? { pushedAt: r.pushedAt } : {}) }));
  return { repositories: page, ...(all.length > n ? { next: page[page.length - 1]!.name } : {}) };
}

const orders: Record<string, TagOrder> = {
  name: { by: 'name', descending: false },
  '-name': { by: 'name', descending: true },
  pushed: { by: 'pushed', descending: false },
  '-pushed': { by: 'pushed', descending: true },
};

/**
 * A page of the repository's tags: ?sort=-pushed (default) | pushed | name | -name, ?n= (at most
 * 1000), ?last= the `next` of the previous page (a tag name when sorted by name, as in /v2/…/tags/list).
 */
export async function tags(reg: Registry, p: Principal, repository: string, q: URLSearchParams): Promise<{ repository: string; sort: string; tags: TagRow[]; next?: string }> {
  await requirePull(reg, p, repository);
  const sort = q.get('sort') ?? '-pushed';
  const order = orders[sort];
  if (!order) throw badRequest(`sort: expected one of ${Object.keys(orders).join(', ')}`);
  const n = intParam(q.get('n'), 'n', DefaultPage, MaxPage);
  const last = q.get('last');
  let after: { tag: string; pushedAt: number } | undefined;
  if (last) {
    // By push time the cursor is "<pushedAt>.<tag>" (digits, then a tag, which may hold dots).
    const m = order.by === 'pushed' ? /^(\d+)\.(.+)$/.exec(last) : /^()(.+)$/.exec(last);
    if (!m || !isTag(m[2]!)) throw badRequest(`last: not a cursor of sort=${sort} ("${last.slice(0, 100)}"); pass the "next" of the previous page`);
    after = { tag: m[2]!, pushedAt: Number(m[1] || 0) };
  }
  if (!(await reg.metadata.repositoryExists(repository))) throw new RegistryError('name-unknown', `no repository ${repository}`, { name: repository });
  const rows = await reg.metadata.tagPage(repository, order, after, n + 1);
  const page = rows.slice(0, n).map((r): TagRow => ({
    tag: r.tag,
    digest: r.digest,
    mediaType: r.mediaType,
    size: r.size,
    createdAt: r.createdAt,
    pushedAt: r.pushedAt,
    ...(r.pushedBy ? { pushedBy: r.pushedBy } : {}),
    platforms: r.indexBody ? platformsOf(r.indexBody) : [],
    sbom: r.referrerTypes.some((t) => referrerKind(t) === 'sbom'),
    signed: r.referrerTypes.some((t) => referrerKind(t) === 'signature'),
  }));
  const lastRow = page[page.length - 1];
  const next = rows.length > n && lastRow ? (order.by === 'pushed' ? `${lastRow.pushedAt}.${lastRow.tag}` : lastRow.tag) : undefined;
  return { repository, sort, tags: page, ...(next ? { next } : {}) };
}

async function readBlob(reg: Registry, repository: string, digest: string, limit: number): Promise<Buffer | undefined> {
  const b = await reg.blobs.open(repository, digest);
  if (b.size > limit) {
    await b.file?.close();
    b.stream?.destroy();
    return undefined;
  }
  if (b.buffer) return b.buffer;
  if (b.file) {
    try {
      const out = Buffer.alloc(b.size);
      await b.file.read(out, 0, b.size, 0);
      return out;
    } finally {
      await b.file.close();
    }
  }
  const chunks: Buffer[] = [];
  for await (const c of b.stream as Readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
const stringMap = (v: unknown): Record<string, string> | undefined =>
  isObj(v) ? Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string')) : undefined;

/** The first `MaxEntries` of a list, and how many there were when that is fewer. */
function bounded<T>(all: T[]): { shown: T[]; total?: number } {
  return all.length > MaxEntries ? { shown: all.slice(0, MaxEntries), total: all.length } : { shown: all };
}

/** The image config as the UI shows it (image-spec config.md: config, history, rootfs). */
function configView(raw: Buffer): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    return { note: 'the config is not JSON; its first 64 KiB are shown as stored', raw: raw.toString('utf8').slice(0, RawShown) };
  }
  if (!isObj(doc)) return { note: 'the config is not a JSON object' };
  const c = isObj(doc.config) ? doc.config : {};
  const history = bounded(Array.isArray(doc.history) ? doc.history.filter(isObj) : []);
  const env = bounded(strings(c.Env) ?? []);
  const labels = bounded(Object.entries(stringMap(c.Labels) ?? {}));
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    created: str(doc.created),
    author: str(doc.author),
    platform: { os: str(doc.os), architecture: str(doc.architecture), ...(doc.variant ? { variant: str(doc.variant) } : {}) },
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    env: env.shown,
    user: str(c.User),
    workingDir: str(c.WorkingDir),
    ports: isObj(c.ExposedPorts) ? Object.keys(c.ExposedPorts).slice(0, MaxEntries) : [],
    volumes: isObj(c.Volumes) ? Object.keys(c.Volumes).slice(0, MaxEntries) : [],
    stopSignal: str(c.StopSignal),
    labels: Object.fromEntries(labels.shown),
    history: history.shown.map((h) => ({
      created: str(h.created),
      createdBy: str(h.created_by),
      comment: str(h.comment),
      emptyLayer: h.empty_layer === true,
    })),
    ...(history.total ? { historyTruncated: history.total } : {}),
    ...(env.total ? { envTruncated: env.total } : {}),
    ...(labels.total ? { labelsTruncated: labels.total } : {}),
  };
}

/** Bytes of a manifest or config kiln cannot read shown as stored, at most. */
const RawShown = 64 * 1024;

async function resolve(reg: Registry, repository: string, reference: string) {
  const ref = parseManifestReference(reference);
  const m = await reg.manifests.get(repository, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest });
  if (m) return m;
  if (!(await reg.metadata.repositoryExists(repository))) throw new RegistryError('name-unknown', `no repository ${repository}`, { name: repository });
  throw manifestUnknown(reference, `${repository} has no manifest ${ref.kind === 'tag' ? `tagged ${ref.tag}` : ref.digest}`);
}

/**
 * Where the base an image names is in this registry, for a link: the repository of its name (with
 * or without the registry host in front), or the image's own repository, when the caller may pull
 * it and it holds the base's digest.
 */
async function baseLink(reg: Registry, p: Principal, repository: string, digest: string, name: string | undefined): Promise<BaseLink> {
  const candidates: string[] = [];
  if (name) {
    const path = name.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
    const parts = path.split('/');
    candidates.push(path);
    if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) candidates.push(parts.slice(1).join('/'));
  }
  candidates.push(repository);
  for (const r of new Set(candidates)) {
    if (!isName(r) || !(await reg.auth.actionsFor(p, r)).includes('pull')) continue;
    if (await reg.metadata.getManifest(r, digest)) return { digest, ...(name ? { name } : {}), repository: r };
  }
  return { digest, ...(name ? { name } : {}) };
}

/** One manifest of the repository by tag or digest: an image with its config, history, layers and referrers, or an index with its children. */
export async function image(reg: Registry, p: Principal, repository: string, reference: string): Promise<ImageView> {
  await requirePull(reg, p, repository);
  const m = await resolve(reg, repository, reference);
  const [tagsOf, referrers] = await Promise.all([reg.metadata.tagsOf(repository, m.digest), reg.metadata.referrers(repository, m.digest)]);
  const out: ImageView = {
    repository,
    reference,
    digest: m.digest,
    mediaType: m.mediaType,
    size: m.body.length,
    tags: tagsOf,
    kind: 'unknown',
    referrers: referrers.map((r) => ({
      digest: r.digest,
      mediaType: r.mediaType,
      ...(r.artifactType ? { artifactType: r.artifactType } : {}),
      kind: referrerKind(r.artifactType),
      size: r.body.length,
      createdAt: r.createdAt,
      annotations: r.annotations ?? {},
    })),
  };
  // What the registry accepts on push (manifests.ts); one stored otherwise (by an older kiln, a
  // migration or a proxy) is shown as its bytes with the reason.
  let doc: Obj;
  try {
    parseManifest(m.body, m.mediaType);
    doc = JSON.parse(m.body.toString('utf8')) as Obj;
  } catch (e) {
    const why = e instanceof RegistryError ? e.message.replace(/^manifest invalid: /, '') : String(e);
    return {
      ...out,
      note: `kiln cannot read this manifest (${why}); it is shown as stored`,
      raw: m.body.subarray(0, RawShown).toString('utf8'),
      ...(m.body.length > RawShown ? { rawTruncated: m.body.length } : {}),
    };
  }
  const annotations = stringMap(doc.annotations) ?? {};
  const baseDigest = annotations[BaseDigestAnnotation];
  const base = baseDigest && isDigest(baseDigest) ? await baseLink(reg, p, repository, baseDigest, annotations[BaseNameAnnotation]) : undefined;
  if (isIndex(m.mediaType)) {
    const manifests = (Array.isArray(doc.manifests) ? doc.manifests.filter(isObj) : []).map((d) => ({
      digest: String(d.digest),
      mediaType: String(d.mediaType),
      size: Number(d.size),
      ...(isObj(d.platform) ? { platform: d.platform as Partial<Platform> } : {}),
      ...(isObj(d.annotations) ? { annotations: stringMap(d.annotations) } : {}),
    }));
    return { ...out, kind: 'index', annotations, manifests, ...(base ? { base } : {}) };
  }
  const config = isObj(doc.config) ? doc.config : undefined;
  const layers = bounded((Array.isArray(doc.layers) ? doc.layers.filter(isObj) : []).map((l) => ({ digest: String(l.digest), mediaType: String(l.mediaType), size: Number(l.size) })));
  let configOut: ImageConfig | undefined;
  if (config && typeof config.digest === 'string') {
    const raw = await readBlob(reg, repository, config.digest, MaxConfigBytes).catch((e: unknown) => {
      if (e instanceof RegistryError && e.reason === 'blob-unknown') return null;
      throw e;
    });
    configOut = raw === null ? { note: 'the config blob is missing from the repository' } : raw === undefined ? { note: `the config is ${config.size} bytes, larger than the ${MaxConfigBytes} the web UI reads, and is not shown` } : configView(raw);
  }
  return {
    ...out,
    kind: 'image',
    annotations,
    ...(typeof doc.artifactType === 'string' ? { artifactType: doc.artifactType } : {}),
    ...(config ? { configDescriptor: { digest: String(config.digest), mediaType: String(config.mediaType), size: Number(config.size) } } : {}),
    ...(configOut ? { config: configOut } : {}),
    layers: layers.shown,
    ...(layers.total ? { layersTruncated: layers.total } : {}),
    ...(base ? { base } : {}),
  };
}

/** The images of this registry the caller may pull built on the manifest (its lineage downwards; the base is in image()). */
export async function lineage(reg: Registry, p: Principal, repository: string, reference: string): Promise<Lineage> {
  await requirePull(reg, p, repository);
  const m = await resolve(reg, repository, reference);
  const may = await reg.auth.pullableBy(p);
  const hits = await reg.search.builtOn(m.digest, may);
  return { digest: m.digest, builtOn: hits.slice(0, MaxEntries).map((h) => ({ repository: h.repository, digest: h.digest, tags: h.tags, depth: h.depth })) };
}

/** The packages an SBOM referrer of the repository lists (the first MaxEntries), read from its layer. */
export async function sbomPackages(reg: Registry, p: Principal, repository: string, digest: string): Promise<SbomPackages> {
  await requirePull(reg, p, repository);
  const m = await reg.metadata.getManifest(repository, digest);
  if (!m) throw manifestUnknown(digest, `${repository} has no manifest ${digest}`);
  const out = { repository, digest };
  const layer = sbomLayer(m.body, m.artifactType);
  if (!layer) return { ...out, packages: [], note: 'this manifest holds no SBOM document kiln reads (SPDX or CycloneDX JSON)' };
  const body = await readBlob(reg, repository, layer.digest, reg.config.limits.sbomSize).catch((e: unknown) => {
    if (e instanceof RegistryError && e.reason === 'blob-unknown') return null;
    throw e;
  });
  if (body === null) return { ...out, packages: [], note: `its document ${layer.digest} is missing from the repository` };
  if (body === undefined) return { ...out, packages: [], note: `its document is ${layer.size} bytes, more than limits.sbomSize (${reg.config.limits.sbomSize})` };
  try {
    const all = bounded(readSbomPackages(body, `${repository}@${digest}`));
    return { ...out, packages: all.shown.map((x) => ({ name: x.name, version: x.version, type: x.type, ...(x.purl ? { purl: x.purl } : {}), ...(x.source ? { source: x.source } : {}) })), ...(all.total ? { truncated: all.total } : {}) };
  } catch (e) {
    if (!(e instanceof SbomUnreadable)) throw e;
    return { ...out, packages: [], note: e.message };
  }
}
