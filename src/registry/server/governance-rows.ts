// The JSON the governance half of /kiln/v1/ answers with that is also a server type of its own:
// the audit log's events (metadata.ts) and a GC run's report (gc.ts). Types only, importing
// nothing, so the web UI (web/src/api.ts) reads them through `import type`, which esbuild erases,
// and web/tsconfig.json type-checks this module for the browser too.

export interface AuditEvent {
  id?: number;
  /** Unix milliseconds. */
  time: number;
  actor: string;
  action: string;
  repository?: string;
  /** Set for events about a namespace itself (role changes, robots); else derived from the repository. */
  namespace?: string;
  reference?: string;
  digest?: string;
  detail?: string;
  address?: string;
  /** Identical pulls within one flush are stored once with a count. */
  count?: number;
}

export interface GcReport {
  dryRun: boolean;
  manifests: { repository: string; digest: string }[];
  links: number;
  blobs: string[];
  bytes: number;
  /** Stored objects with no row (a crash between storing and recording them) that were removed. */
  orphans: number;
  /** Rows of blobs whose bytes storage lost, removed (a push uploads them again). */
  lost: number;
}
