import { useState } from 'preact/hooks';
import { api, qs, type BaseSearch, type PackageSearch } from '../api.js';
import { imageHref, navigate, repoHref } from '../router.js';
import { shortDigest } from '../format.js';
import { ErrorNote, Link, Loading, useLoad } from '../ui.js';

// The search API (GET /kiln/v1/search, the same answers as /api/v1/search) as two forms: which
// images contain a package (a version range optional), and which are built on a base image. The
// query goes in the address (/ui/search?package=…), so results can be reloaded and shared.

export type SearchQuery = { package: string; version: string } | { base: string };

export function searchHref(q: SearchQuery): string {
  return `/ui/search${'base' in q ? qs({ base: q.base.trim() }) : qs({ package: q.package.trim(), version: q.version.trim() })}`;
}

/** The two forms; submitting one goes to the results page. */
export function SearchForms({ initial }: { initial?: SearchQuery }) {
  const [name, setName] = useState(initial && 'package' in initial ? initial.package : '');
  const [version, setVersion] = useState(initial && 'package' in initial ? initial.version : '');
  const [base, setBase] = useState(initial && 'base' in initial ? initial.base : '');
  const value = (e: Event) => (e.target as HTMLInputElement).value;
  return (
    <div class="search-forms">
      <form
        role="search"
        aria-label="Images containing a package"
        onSubmit={(e) => {
          e.preventDefault();
          if (name.trim()) navigate(searchHref({ package: name, version }));
        }}
      >
        <label for="search-package">Package</label>
        <input id="search-package" type="text" value={name} required placeholder="openssl" onInput={(e) => setName(value(e))} />
        <label for="search-version">Version range</label>
        <input id="search-version" type="text" value={version} placeholder=">=3.0, <3.0.10 (optional)" onInput={(e) => setVersion(value(e))} />
        <button type="submit">Find images with the package</button>
      </form>
      <form
        role="search"
        aria-label="Images built on a base"
        onSubmit={(e) => {
          e.preventDefault();
          if (base.trim()) navigate(searchHref({ base }));
        }}
      >
        <label for="search-base">Base image digest</label>
        <input id="search-base" type="text" value={base} required placeholder="sha256:…" spellcheck={false} onInput={(e) => setBase(value(e))} />
        <button type="submit">Find images built on it</button>
      </form>
    </div>
  );
}

const tagsText = (tags: string[]) => (tags.length ? tags.join(', ') : 'untagged');

/** /ui/search?package=NAME&version=RANGE or ?base=DIGEST: the forms and the images found. */
export function Search({ query }: { query: SearchQuery }) {
  const href = searchHref(query);
  const { data, error } = useLoad(() => api<PackageSearch | BaseSearch>('GET', `/kiln/v1/search${href.slice('/ui/search'.length)}`), [href]);
  return (
    <section>
      <h1>Search</h1>
      <SearchForms key={href} initial={query} />
      <h2>{'base' in query ? `Images built on ${shortDigest(query.base)}` : `Images containing ${query.package}${query.version ? ` ${query.version}` : ''}`}</h2>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="the results" />
      ) : data.results.length === 0 ? (
        <p class="muted">No image you may pull matches.</p>
      ) : (
        <div class="scroll">
          <table class="list results">
            <thead>
              <tr>
                <th scope="col">Image</th>
                <th scope="col">Tags</th>
                <th scope="col">{'base' in data ? 'Depth' : 'Packages'}</th>
              </tr>
            </thead>
            <tbody>
              {'base' in data
                ? data.results.map((r) => (
                    <tr key={`${r.repository}@${r.digest}`}>
                      <td>
                        <Link href={imageHref(r.repository, r.digest)}>
                          {r.repository}@<code>{shortDigest(r.digest)}</code>
                        </Link>
                      </td>
                      <td>{tagsText(r.tags)}</td>
                      <td title={r.depth === 1 ? 'built directly on the base' : `built on an image ${r.depth - 1} step(s) above the base`}>{r.depth === 1 ? 'directly' : `${r.depth} levels`}</td>
                    </tr>
                  ))
                : data.results.map((r) => (
                    <tr key={`${r.repository}@${r.digest}`}>
                      <td>
                        <Link href={imageHref(r.repository, r.digest)}>
                          {r.repository}@<code>{shortDigest(r.digest)}</code>
                        </Link>
                        <div>
                          <Link href={repoHref(r.repository)} class="muted">
                            all tags of {r.repository}
                          </Link>
                        </div>
                      </td>
                      <td>{tagsText(r.tags)}</td>
                      <td>
                        <ul class="plain">
                          {r.packages.map((p) => (
                            <li key={`${p.type}/${p.name}@${p.version}`}>
                              <code>
                                {p.name} {p.version}
                              </code>{' '}
                              <span class="muted">{p.type}</span>
                            </li>
                          ))}
                        </ul>
                      </td>
                    </tr>
                  ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
