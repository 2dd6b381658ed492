// A hardening audit of an image: what chapter 8 of the seeds asks to check before shipping. It reads
// the layers as they ship, so a secret deleted by a later layer is still found: its bytes are in the
// lower layer's blob, and anyone who pulls the image can read them.

import { parseDockerfile } from '../dockerfile/index.js';
import type { Store, StoredImage } from '../store/store.js';
import { isWithin, walkLayers, type LayerEntry } from './layers.js';
import { byCodeUnits } from '../order.js';

export const auditSeverities = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type AuditSeverity = (typeof auditSeverities)[number];

export interface AuditFinding {
  id: string;
  severity: AuditSeverity;
  title: string;
  /** The file the finding is about, when it is about one. */
  path?: string;
  /** Layer (0 = base) that holds the file. */
  layer?: number;
  /** Layer that deleted the file while it still ships in `layer`. */
  deletedIn?: number;
  owner?: string;
  mode?: string;
  detail?: string;
}

/** The checks, with ids, default severities and titles. */
export const auditChecks = {
  KA1001: { severity: 'medium', title: 'file with the SUID bit' },
  KA1002: { severity: 'low', title: 'file with the SGID bit' },
  KA1003: { severity: 'medium', title: 'image runs as root' },
  KA1004: { severity: 'medium', title: 'world-writable file outside /tmp' },
  KA1005: { severity: 'low', title: 'base image not pinned by digest' },
  KA1006: { severity: 'high', title: 'secret in the image' },
  KA1007: { severity: 'high', title: 'secret deleted by a later layer, still shipped' },
  KA1008: { severity: 'low', title: 'package-manager cache left in the image' },
  KA1009: { severity: 'info', title: 'no HEALTHCHECK' },
} as const satisfies Record<string, { severity: AuditSeverity; title: string }>;

type CheckId = keyof typeof auditChecks;

// Files that are credentials by their name and place.
const secretNames: [RegExp, string][] = [
  [/(^|\/)\.env(\.[\w-]+)?$/, '.env file'],
  [/(^|\/)\.aws\/credentials$/, 'AWS credentials'],
  [/(^|\/)\.docker\/config\.json$/, 'Docker registry credentials'],
  [/(^|\/)\.git-credentials$/, 'git credentials'],
  [/(^|\/)\.netrc$/, '.netrc credentials'],
  [/(^|\/)\.npmrc$/, 'npm credentials'],
  [/(^|\/)\.pypirc$/, 'PyPI credentials'],
  [/(^|\/)\.kube\/config$/, 'Kubernetes credentials'],
  [/(^|\/)application_default_credentials\.json$/, 'Google Cloud credentials'],
  [/(^|\/)\.config\/gcloud\/credentials\.db$/, 'Google Cloud credentials'],
  [/(^|\/)\.azure\/accessTokens\.json$/, 'Azure credentials'],
  [/(^|\/)id_(rsa|dsa|ecdsa|ed25519)$/, 'SSH private key'],
];
/** Names whose content decides: keys and tokens are text with a recognisable shape. */
const keyLike = /\.(pem|key|p12|pfx|jks|token)$|(^|\/)(id_[a-z0-9]+|[\w.-]*token[\w.-]*|[\w.-]*secret[\w.-]*)$/i;
const contentSecrets: [RegExp, string][] = [
  [/-----BEGIN ((RSA|DSA|EC|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----/, 'private key'],
  [/AKIA[0-9A-Z]{16}/, 'AWS access key'],
  [/\bgh[pousr]_[A-Za-z0-9]{36,}/, 'GitHub token'],
  [/\bglpat-[A-Za-z0-9_-]{20,}/, 'GitLab token'],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}/, 'Slack token'],
  [/_authToken\s*=\s*\S+/, 'npm token'],
  [/"auths"\s*:\s*\{\s*"[^"]+"\s*:\s*\{\s*"auth"\s*:\s*"[^"]+"/, 'registry password'],
];
// Public halves and placeholders that look like secrets by name.
const notSecret = /\.pub$|(^|\/)(etc\/ssl|usr\/share|usr\/lib\/python[\d.]*\/test|usr\/lib\/ssl)\//;

// Caches package managers leave behind; each directory is reported once with what it holds.
const caches: [string, string][] = [
  ['/var/cache/apt/archives', 'apt package archives'],
  ['/var/lib/apt/lists', 'apt package lists'],
  ['/var/cache/apk', 'apk cache'],
  ['/etc/apk/cache', 'apk cache'],
  ['/var/cache/yum', 'yum cache'],
  ['/var/cache/dnf', 'dnf cache'],
  ['/var/cache/zypp', 'zypper cache'],
  ['/root/.cache/pip', 'pip cache'],
  ['/root/.npm', 'npm cache'],
  ['/usr/local/share/.cache/yarn', 'yarn cache'],
  ['/root/.cache/go-build', 'Go build cache'],
];
const cacheNoise = /\/(lock|partial|auxfiles)$/;

const tmpDirs = ['/tmp', '/var/tmp', '/dev/shm', '/run/lock'];

interface FileState {
  entry: LayerEntry;
  layer: number;
  secret?: string;
}

export interface AuditOptions {
  /** The Dockerfile the image was built from, to judge its FROM lines. */
  dockerfile?: { text: string; name: string };
}

export async function auditImage(store: Store, img: StoredImage, opts: AuditOptions = {}): Promise<AuditFinding[]> {
  const findings: AuditFinding[] = [];
  const add = (id: CheckId, f: Omit<AuditFinding, 'id' | 'severity' | 'title'> = {}) => findings.push({ id, severity: auditChecks[id].severity, title: auditChecks[id].title, ...f });

  // The final tree, and the secrets each layer carries.
  const files = new Map<string, FileState>();
  const shipped: { path: string; layer: number; secret: string; deletedIn?: number }[] = [];
  const gone = (layer: number, covers: (p: string) => boolean) => {
    for (const s of shipped) if (s.deletedIn === undefined && s.layer < layer && covers(s.path)) s.deletedIn = layer;
  };
  await walkLayers(store, img.manifest.layers, async (layer, e, read) => {
    if (e.whiteout === 'file') {
      for (const p of [...files.keys()]) if (isWithin(p, e.path)) files.delete(p);
      gone(layer, (p) => isWithin(p, e.path));
      return;
    }
    if (e.whiteout === 'opaque') {
      for (const [p, f] of [...files]) if (p !== e.path && isWithin(p, e.path) && f.layer < layer) files.delete(p);
      gone(layer, (p) => p !== e.path && isWithin(p, e.path));
      return;
    }
    gone(layer, (p) => p === e.path);
    const state: FileState = { entry: e, layer };
    if (e.type === 'file' && !notSecret.test(e.path)) {
      const byName = secretNames.find(([re]) => re.test(e.path))?.[1];
      let kind: string | undefined;
      if (byName || keyLike.test(e.path)) {
        const text = e.size > 0 ? (await read(64 * 1024)).toString('latin1') : '';
        const byContent = contentSecrets.find(([re]) => re.test(text))?.[1];
        // .npmrc and docker's config.json are only secrets when they hold credentials.
        if (byName && !/npm credentials|Docker registry credentials/.test(byName)) kind = byName;
        else if (byContent) kind = byContent;
        if (kind && e.size === 0) kind = undefined;
      }
      if (kind) {
        state.secret = kind;
        shipped.push({ path: e.path, layer, secret: kind });
      }
    }
    files.set(e.path, state);
  });

  for (const s of shipped) {
    if (s.deletedIn === undefined) add('KA1006', { path: s.path, layer: s.layer, detail: s.secret });
    // Deleted or replaced later: the bytes are still in layer s.layer's blob.
    else add('KA1007', { path: s.path, layer: s.layer, deletedIn: s.deletedIn, detail: s.secret });
  }

  const sorted = [...files.values()].sort((a, b) => byCodeUnits(a.entry.path, b.entry.path));
  for (const { entry: e, layer } of sorted) {
    const mode = (e.mode & 0o7777).toString(8).padStart(4, '0');
    const owner = `${e.uid}:${e.gid}`;
    if (e.type === 'file' && e.mode & 0o4000) add('KA1001', { path: e.path, layer, owner, mode });
    if (e.type === 'file' && e.mode & 0o2000) add('KA1002', { path: e.path, layer, owner, mode });
    if (e.type !== 'symlink' && e.mode & 0o002 && !tmpDirs.some((t) => isWithin(e.path, t)) && e.type !== 'char' && e.type !== 'block') {
      add('KA1004', { path: e.path, layer, owner, mode });
    }
  }

  for (const [dir, what] of caches) {
    let bytes = 0;
    let count = 0;
    for (const { entry: e } of sorted) {
      if (e.type === 'directory' || e.path === dir || !isWithin(e.path, dir) || cacheNoise.test(e.path)) continue;
      bytes += e.size;
      count++;
    }
    if (count > 0) add('KA1008', { path: dir, detail: `${what}: ${count} files, ${bytes} bytes` });
  }

  const c = img.config.config ?? {};
  const user = (c.User ?? '').trim();
  if (user === '' || /^(root|0)(:.*)?$/.test(user)) add('KA1003', { detail: user === '' ? 'no USER: the image runs as root' : `USER ${user}` });
  if (!c.Healthcheck?.Test || c.Healthcheck.Test[0] === 'NONE') add('KA1009', { detail: 'the image declares no HEALTHCHECK' });

  for (const unpinned of baseImagesNotPinned(img, opts)) add('KA1005', { detail: unpinned });

  const order = (f: AuditFinding) => auditSeverities.indexOf(f.severity);
  return findings.sort((a, b) => order(a) - order(b) || byCodeUnits(a.id, b.id) || byCodeUnits(a.path ?? '', b.path ?? ''));
}

/**
 * Base images not pinned by digest: from the Dockerfile when given, else from the OCI annotations
 * (org.opencontainers.image.base.name / base.digest) the image carries.
 */
function baseImagesNotPinned(img: StoredImage, opts: AuditOptions): string[] {
  if (opts.dockerfile) {
    const df = parseDockerfile(opts.dockerfile.text, { file: opts.dockerfile.name });
    const out: string[] = [];
    const names = new Set<string>();
    for (const s of df.stages) {
      const image = s.from.image;
      if (image.toLowerCase() !== 'scratch' && !names.has(image.toLowerCase()) && !image.includes('@sha256:')) {
        out.push(`${opts.dockerfile.name}:${s.from.line}: FROM ${image} is not pinned by digest`);
      }
      if (s.name) names.add(s.name);
    }
    return out;
  }
  const a = img.manifest.annotations ?? {};
  const base = a['org.opencontainers.image.base.name'];
  if (base !== undefined && !base.includes('@sha256:') && !a['org.opencontainers.image.base.digest']) return [`base image ${base} is recorded without a digest`];
  return [];
}

export function formatAudit(findings: AuditFinding[]): string {
  if (findings.length === 0) return 'No findings.\n';
  let out = '';
  for (const f of findings) {
    out += `${f.severity.toUpperCase().padEnd(8)} ${f.id}  ${f.title}`;
    if (f.path) out += `: ${f.path}`;
    const extra = [f.owner && `owner ${f.owner}`, f.mode && `mode ${f.mode}`, f.layer !== undefined && `layer ${f.layer}`, f.deletedIn !== undefined && `deleted in layer ${f.deletedIn}`, f.detail]
      .filter(Boolean)
      .join(', ');
    if (extra) out += ` (${extra})`;
    out += '\n';
  }
  const counts = auditSeverities.map((s) => [s, findings.filter((f) => f.severity === s).length] as const).filter(([, n]) => n > 0);
  return out + `\n${findings.length} findings: ${counts.map(([s, n]) => `${n} ${s}`).join(', ')}\n`;
}
