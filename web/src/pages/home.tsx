import { useEffect, useState } from 'preact/hooks';
import { api, qs, type RepositoryRow } from '../api.js';
import { repoHref } from '../router.js';
import { ErrorNote, Link, Loading, Size, Time, useLoad } from '../ui.js';
import { SearchForms } from './search.js';

/** The repositories the visitor may pull, with a filter box. */
export function Home({ signedIn }: { signedIn: boolean }) {
  const [input, setInput] = useState(new URLSearchParams(location.search).get('filter') ?? '');
  const [filter, setFilter] = useState(input);
  const pages = useKeysetPages();
  // The filter applies once typing pauses, and is kept in the address for reloads and links.
  useEffect(() => {
    const t = setTimeout(() => {
      setFilter(input.trim());
      pages.reset();
      history.replaceState(null, '', input.trim() ? `/${qs({ filter: input.trim() })}` : '/');
    }, 200);
    return () => clearTimeout(t);
  }, [input]);
  const last = pages.last;
  const { data, error, loading } = useLoad(() => api<{ repositories: RepositoryRow[]; next?: string }>('GET', `/kiln/v1/repositories${qs({ filter, last, n: 100 })}`), [filter, last]);
  return (
    <section>
      <h1>Repositories</h1>
      <div class="toolbar">
        <label for="filter">Filter repositories</label>
        <input id="filter" type="search" value={input} placeholder="name contains…" onInput={(e) => setInput((e.target as HTMLInputElement).value)} />
      </div>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="repositories" />
      ) : data.repositories.length === 0 ? (
        <p class="muted">{filter ? `No repository matches “${filter}”.` : signedIn ? 'No repository you may pull yet.' : 'No public repository. Sign in to see yours.'}</p>
      ) : (
        <>
          <div class="scroll">
            <table class="list" aria-busy={loading}>
              <thead>
                <tr>
                  <th scope="col">Repository</th>
                  <th scope="col">Namespace</th>
                  <th scope="col" class="num">Tags</th>
                  <th scope="col" class="num">Size</th>
                  <th scope="col">Last push</th>
                </tr>
              </thead>
              <tbody>
                {data.repositories.map((r) => (
                  <tr key={r.name}>
                    <td>
                      <Link href={repoHref(r.name)}>{r.name}</Link>
                    </td>
                    <td>{r.namespace}</td>
                    <td class="num">{r.tags}</td>
                    <td class="num">
                      <Size bytes={r.size} />
                    </td>
                    <td>
                      <Time ms={r.pushedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {pages.pager(data.next)}
        </>
      )}
      <h2>Search images</h2>
      <SearchForms />
    </section>
  );
}

/**
 * The pages of a keyset-paginated list: the cursors of the pages visited so far ('' the first), so
 * Previous goes back one and Next follows the answer's `next`. `reset` starts again (a new filter).
 */
export function useKeysetPages() {
  const [pages, setPages] = useState<string[]>(['']);
  return {
    last: pages[pages.length - 1]!,
    reset: () => setPages(['']),
    pager: (next: string | undefined) => <Pager back={pages.length > 1 ? () => setPages(pages.slice(0, -1)) : undefined} forward={next ? () => setPages([...pages, next]) : undefined} />,
  };
}

export function Pager({ back, forward }: { back?: () => void; forward?: () => void }) {
  if (!back && !forward) return null;
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" onClick={back} disabled={!back}>
        Previous page
      </button>
      <button type="button" onClick={forward} disabled={!forward}>
        Next page
      </button>
    </nav>
  );
}
