import type { Registry } from '../registry.js';
import { query, sendJson, type Ctx } from '../http.js';
import { assertDigest } from '../names.js';
import { badRequest } from '../errors.js';
import { parsePackageQuery, parseVersionRange } from '../../../sbom/version-range.js';
import type { BaseSearch, PackageSearch } from '../browse-rows.js';

// kiln's search API (not part of the distribution-spec): which images contain a package, and which
// are built on an image, across the repositories the caller may pull.
//   GET /api/v1/search?package=NAME[&version=RANGE]   (also package=NAME@RANGE)
//   GET /api/v1/search?base=DIGEST
// The web UI asks the same through GET /kiln/v1/search (routes/browse.ts), signed in by its session.

export async function search(reg: Registry, ctx: Ctx): Promise<void> {
  // Like the catalog: any valid credentials; results are limited to what they may pull.
  await reg.auth.requireAuthenticated(ctx, 'registry:catalog:*');
  sendJson(ctx, 200, await searchAnswer(reg, query(ctx), await reg.auth.pullable(ctx)));
}

/** The answer to a search's query string, over the repositories `visible` allows (also GET /kiln/v1/search, for the web UI's session). */
export async function searchAnswer(reg: Registry, q: URLSearchParams, visible: (repository: string) => boolean): Promise<PackageSearch | BaseSearch> {
  const pkg = q.get('package');
  const base = q.get('base');
  if ((pkg === null) === (base === null)) throw badRequest('expected exactly one of ?package=NAME[&version=RANGE] or ?base=DIGEST');
  if (base !== null) {
    const digest = assertDigest(base.trim());
    return { base: digest, results: await reg.search.builtOn(digest, visible) };
  }
  const version = q.get('version');
  const parsed = version !== null && version.trim() !== '' ? { name: pkg!.trim(), range: parseVersionRange(version), rangeText: version } : parsePackageQuery(pkg!);
  if (!parsed.name) throw badRequest('package: expected a name');
  const results = await reg.search.packages(parsed.name, parsed.range, visible);
  return { package: parsed.name, ...(parsed.rangeText ? { version: parsed.rangeText } : {}), results };
}
