// The registry's /kiln/v1/ API as the pages call it. Same origin, the session cookie goes along
// (HttpOnly: this code never sees it); requests that change something carry the CSRF token the
// session answer gave (docs/registry.md, "Web UI").

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | undefined;
export function setCsrf(token: string | undefined): void {
  csrf = token;
}

let unauthorized: (() => void) | undefined;
/** Called when the registry answers 401 (the session expired or is gone): the page forgets who signed in. */
export function onUnauthorized(f: () => void): void {
  unauthorized = f;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-kiln-csrf'] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await r.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(r.status, `the registry answered ${r.status} with something that is not JSON`);
  }
  if (!r.ok) {
    if (r.status === 401 && path !== '/kiln/v1/session') unauthorized?.();
    const msg = (json as { errors?: { message?: string }[] }).errors?.[0]?.message ?? `HTTP ${r.status}`;
    throw new ApiError(r.status, msg);
  }
  return json as T;
}

export const qs = (params: Record<string, string | number | undefined>): string => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};

export interface Session {
  user: string | null;
  admin?: boolean;
  auth?: boolean;
  csrf?: string;
}

// The answers' shapes are the server's own (type-only: esbuild erases the import).
export type {
  BaseLink,
  BaseSearch,
  HistoryEntry,
  ImageConfig,
  ImageView,
  LayerTree,
  LayerTreeEntry,
  Lineage,
  PackageSearch,
  Platform,
  Referrer,
  RepositoryRow,
  SbomPackages,
  TagRow,
} from '../../src/registry/server/browse-rows.js';
export type { AuditEvent, GcReport } from '../../src/registry/server/governance-rows.js';

// Governance (docs/registry.md, "Web UI"): what the caller may do, members, robots, audit, GC.

/** GET /kiln/v1/permissions: the registry's answer of what the caller may do in a namespace; pages show buttons by it. */
export interface Permissions {
  namespace: string;
  role: string | null;
  systemAdmin: boolean;
  actions: string[];
  permissions: string[];
}

export interface NamespaceRow {
  name: string;
  public: boolean;
  usedBytes?: number;
  quotaBytes?: number;
}

export interface Member {
  user: string;
  role: string;
}

export interface GroupBinding {
  group: string;
  role: string;
}

export interface Robot {
  name: string;
  actions: string[];
  expiresAt?: number;
  createdBy: string;
  createdAt: number;
}

export const Roles = ['admin', 'maintainer', 'developer', 'guest', 'limited-guest'];
/** GET /kiln/v1/oidc: whether the sign-in page offers the OpenID Provider. */
export interface OidcStatus {
  configured: boolean;
  name?: string;
  available?: boolean;
  error?: string;
}

/** GET /kiln/v1/cli-secret. */
export interface CliSecretStatus {
  user: string;
  provider: string;
  exists: boolean;
  createdAt?: number;
}

/** GET /kiln/v1/repositories/REPO/manifests/DIGEST/signatures (trust.ts SignatureStatus). */
export interface SignatureStatus {
  policy?: { namespace: string; keys: string[]; certificates: string[]; on: string[] };
  verified: boolean;
  signatures: { artifact: string; from: string; format: string; verified: boolean; signer?: string; identity?: { identities: string[]; issuer?: string }; error?: string }[];
}
