import { loadRegistriesConfig, pushEndpoint, type Endpoint, type RegistriesConfig } from './config.js';
import { hostOfServer } from './credentials.js';
import { RegistrySession } from './session.js';
import { readBody, type RetryPolicy } from './http.js';
import { errorSummary } from './auth.js';
import { RegistryRequestFailed } from './errors.js';

// Client of kiln's registry search API (GET /api/v1/search; kiln's own, not the distribution-spec),
// with the same credentials and token handling as pulls. Results are the server's JSON as it is.

export interface RemotePackage {
  name: string;
  version: string;
  type: string;
  purl?: string;
  source?: string;
}
export interface RemoteSearchResult {
  repository: string;
  digest: string;
  tags: string[];
  packages?: RemotePackage[];
  base?: { digest: string; name?: string };
  depth?: number;
}

export interface SearchOptions {
  env?: NodeJS.ProcessEnv;
  config?: RegistriesConfig;
  retry?: RetryPolicy;
}

/** "http://host:port" keeps its scheme; "host:port" is reached as a push would reach it (HTTPS unless loopback or insecure). */
function endpointFor(server: string, config: RegistriesConfig): Endpoint {
  const scheme = /^(https?):\/\//i.exec(server)?.[1]?.toLowerCase();
  const host = hostOfServer(server);
  if (!scheme) return pushEndpoint(host, config);
  return { registry: host, host, url: `${scheme}://${host}`, prefix: '', mirror: false };
}

/** Ask a registry which images contain a package (`package`, optional `version` range) or are built on `base`. */
export async function searchRegistry(server: string, q: { package: string; version?: string } | { base: string }, opts: SearchOptions = {}): Promise<RemoteSearchResult[]> {
  const env = opts.env ?? process.env;
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const session = new RegistrySession(endpointFor(server, config), { env, retry: opts.retry });
  const params = new URLSearchParams('base' in q ? { base: q.base } : { package: q.package, ...(q.version ? { version: q.version } : {}) });
  // The search lists repositories like the catalog does, so it asks for the catalog's scope.
  const res = await session.request('GET', `/api/v1/search?${params}`, { scopes: ['registry:catalog:*'] });
  const body = (await readBody(res, 64 << 20)).toString('utf8');
  if (res.status !== 200) {
    const what = res.status === 404 ? ': the registry has no search API (kiln registry serve has it)' : errorSummary(body);
    throw new RegistryRequestFailed(`${session.endpoint.host}: search failed with HTTP ${res.status}${what}`, res.status);
  }
  let doc: { results?: RemoteSearchResult[] };
  try {
    doc = JSON.parse(body) as { results?: RemoteSearchResult[] };
  } catch {
    throw new RegistryRequestFailed(`${session.endpoint.host}: search answered with something that is not JSON`);
  }
  if (!Array.isArray(doc.results)) throw new RegistryRequestFailed(`${session.endpoint.host}: search answer has no "results" array`);
  return doc.results;
}
