import type { Readable } from 'node:stream';
import type { Registry } from './registry.js';
import type { Principal } from './auth/access.js';
import type { TagOrder } from './metadata/metadata.js';
import { RegistryError, badRequest, manifestUnknown } from './errors.js';
import { isTag, namespaceOf, parseManifestReference } from './names.js';
import { isSbomMediaType } from '../../sbom/sbom-document.js';
import { NotationArtifactType } from '../../sign/notation.js';
import { SimpleSigningMediaType } from '../../sign/simplesigning.js';
import { isIndex } from '../../oci/mediatypes.js';

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

export type ReferrerKind = 'sbom' | 'signature' | 'attestation' | 'other';

/** What a referrer is, by its artifactType: SBOM documents, signatures (cosign, Sigstore bundles, Notation), in-toto attestations. */
export function referrerKind(artifactType: string | undefined): ReferrerKind {
  if (!artifactType) return 'other';
  if (isSbomMediaType(artifactType)) return 'sbom';
  if (artifactType === NotationArtifactType || artifactType === SimpleSigningMediaType || artifactType.startsWith('application/vnd.dev.sigstore.bundle') || artifactType === 'application/vnd.dev.cosign.artifact.sig.v1+json') return 'signature';
  if (artifactType.startsWith('application/vnd.in-toto')) return 'attestation';
  return 'other';
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
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
async function requirePull(reg: Registry, p: Principal, repository: string): Promise<void> {
  if ((await reg.auth.actionsFor(p, repository)).includes('pull')) return;
  if (p.kind === 'anonymous') throw new RegistryError('unauthorized', `sign in to see ${repository}`);
  throw new RegistryError('name-unknown', `no repository ${repository} that ${p.name} may pull`, { name: repository });
}

const intParam = (v: string | null, field: string, def: number, max: number): number => {
  if (v === null || v === '') return def;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw badRequest(`${field}: expected a positive integer, got "${v.slice(0, 20)}"`);
  return Math.min(max, Number(v));
};

export interface RepositoryRow {
  name: string;
  namespace: string;
  tags: number;
  size: number;
  pushedAt?: number;
}

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

/** The image config as the UI shows it (image-spec config.md: config, history, rootfs). */
function configView(raw: Buffer): Obj {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    return { note: 'the config is not JSON', raw: raw.toString('utf8').slice(0, 64 * 1024) };
  }
  if (!isObj(doc)) return { note: 'the config is not a JSON object' };
  const c = isObj(doc.config) ? doc.config : {};
  const history = Array.isArray(doc.history) ? doc.history.filter(isObj) : [];
  return {
    created: typeof doc.created === 'string' ? doc.created : undefined,
    author: typeof doc.author === 'string' ? doc.author : undefined,
    platform: { os: doc.os, architecture: doc.architecture, ...(doc.variant ? { variant: doc.variant } : {}) },
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    env: strings(c.Env),
    user: typeof c.User === 'string' ? c.User : undefined,
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : undefined,
    ports: isObj(c.ExposedPorts) ? Object.keys(c.ExposedPorts) : [],
    volumes: isObj(c.Volumes) ? Object.keys(c.Volumes) : [],
    stopSignal: typeof c.StopSignal === 'string' ? c.StopSignal : undefined,
    labels: stringMap(c.Labels) ?? {},
    history: history.slice(0, MaxEntries).map((h) => ({
      created: typeof h.created === 'string' ? h.created : undefined,
      createdBy: typeof h.created_by === 'string' ? h.created_by : undefined,
      comment: typeof h.comment === 'string' ? h.comment : undefined,
      emptyLayer: h.empty_layer === true,
    })),
    ...(history.length > MaxEntries ? { historyTruncated: history.length } : {}),
  };
}

/** One manifest of the repository by tag or digest: an image with its config, history, layers and referrers, or an index with its children. */
export async function image(reg: Registry, p: Principal, repository: string, reference: string): Promise<Obj> {
  await requirePull(reg, p, repository);
  const ref = parseManifestReference(reference);
  const m = await reg.manifests.get(repository, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest });
  if (!m) throw manifestUnknown(reference, `${repository} has no manifest ${reference}`);
  const [tagsOf, referrers] = await Promise.all([reg.metadata.tagsOf(repository, m.digest), reg.metadata.referrers(repository, m.digest)]);
  const out: Obj = {
    repository,
    reference,
    digest: m.digest,
    mediaType: m.mediaType,
    size: m.body.length,
    tags: tagsOf,
    referrers: referrers.map((r) => ({
      digest: r.digest,
      mediaType: r.mediaType,
      artifactType: r.artifactType,
      kind: referrerKind(r.artifactType),
      size: r.body.length,
      createdAt: r.createdAt,
      annotations: r.annotations ?? {},
    })),
  };
  let doc: unknown;
  try {
    doc = JSON.parse(m.body.toString('utf8'));
  } catch {
    /* below */
  }
  if (!isObj(doc)) return { ...out, kind: 'unknown', note: 'kiln cannot read this manifest; it is shown as stored', raw: m.body.toString('utf8').slice(0, 64 * 1024) };
  const annotations = stringMap(doc.annotations) ?? {};
  if (isIndex(m.mediaType)) {
    const manifests = (Array.isArray(doc.manifests) ? doc.manifests.filter(isObj) : []).map((d) => ({
      digest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
      platform: isObj(d.platform) ? d.platform : undefined,
      annotations: stringMap(d.annotations),
    }));
    return { ...out, kind: 'index', annotations, manifests };
  }
  const config = isObj(doc.config) ? doc.config : undefined;
  const layers = (Array.isArray(doc.layers) ? doc.layers.filter(isObj) : []).map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size }));
  let configOut: Obj | undefined;
  if (config && typeof config.digest === 'string') {
    const raw = await readBlob(reg, repository, config.digest, MaxConfigBytes).catch((e: unknown) => {
      if (e instanceof RegistryError && e.reason === 'blob-unknown') return null;
      throw e;
    });
    configOut = raw === null ? { note: 'the config blob is missing from the repository' } : raw === undefined ? { note: `the config is larger than ${MaxConfigBytes} bytes and is not shown` } : configView(raw);
  }
  return {
    ...out,
    kind: 'image',
    annotations,
    ...(doc.artifactType ? { artifactType: doc.artifactType } : {}),
    configDescriptor: config ? { digest: config.digest, mediaType: config.mediaType, size: config.size } : undefined,
    config: configOut,
    layers: layers.slice(0, MaxEntries),
    ...(layers.length > MaxEntries ? { layersTruncated: layers.length } : {}),
  };
}

