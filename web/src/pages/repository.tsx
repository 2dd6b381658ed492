import { useState } from 'preact/hooks';
import { api, qs, type Platform, type TagRow } from '../api.js';
import { imageHref } from '../router.js';
import { shortDigest } from '../format.js';
import { CopyButton, ErrorNote, Link, Loading, Size, Time, useLoad } from '../ui.js';
import { useKeysetPages } from './home.js';
import { TagActions } from './tag-actions.js';
import { usePermissions } from '../actions.js';

const sorts: [string, string][] = [
  ['-pushed', 'Newest push first'],
  ['pushed', 'Oldest push first'],
  ['name', 'Name (A–Z)'],
  ['-name', 'Name (Z–A)'],
];

export const platformText = (p: Partial<Platform>) => [p.os, p.architecture, p.variant].filter(Boolean).join('/');

/** A repository's tags, a page at a time, with the pull command. */
export function Repository({ name, signedIn = false }: { name: string; signedIn?: boolean }) {
  const [sort, setSort] = useState('-pushed');
  const pages = useKeysetPages();
  const last = pages.last;
  // Governance (tag-actions.tsx): the buttons the registry says the caller may use; a change reloads the page of tags.
  const perms = usePermissions({ repository: name }, signedIn).data;
  const governs = !!perms && ['delete', 'promote'].some((a) => perms.actions.includes(a));
  const [version, setVersion] = useState(0);
  const { data, error, loading } = useLoad(() => api<{ tags: TagRow[]; next?: string }>('GET', `/kiln/v1/tags${qs({ repository: name, sort, last, n: 50 })}`), [name, sort, last, version]);
  const pull = `${location.host}/${name}:${data?.tags[0]?.tag ?? 'latest'}`;
  return (
    <section>
      <h1 class="wrap">{name}</h1>
      <div class="pull">
        <label for="pull">Pull command</label>
        <input id="pull" readOnly value={`docker pull ${pull}`} onFocus={(e) => (e.target as HTMLInputElement).select()} />
        <CopyButton text={`docker pull ${pull}`} label="Copy the pull command" />
      </div>
      <div class="toolbar">
        <label for="sort">Sort tags by</label>
        <select
          id="sort"
          value={sort}
          onChange={(e) => {
            setSort((e.target as HTMLSelectElement).value);
            pages.reset();
          }}
        >
          {sorts.map(([v, text]) => (
            <option key={v} value={v}>
              {text}
            </option>
          ))}
        </select>
      </div>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="tags" />
      ) : data.tags.length === 0 ? (
        <p class="muted">No tags.</p>
      ) : (
        <>
          <div class="scroll">
            <table class="list" aria-busy={loading}>
              <thead>
                <tr>
                  <th scope="col">Tag</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Size</th>
                  <th scope="col">Pushed</th>
                  <th scope="col">Platforms</th>
                  <th scope="col">Referrers</th>
                  {governs && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {data.tags.map((t) => (
                  <tr key={t.tag}>
                    <td>
                      <Link href={imageHref(name, t.tag)}>{t.tag}</Link>
                    </td>
                    <td class="digest">
                      <code title={t.digest}>{shortDigest(t.digest)}</code> <CopyButton text={t.digest} label={`Copy the digest of ${t.tag}`} />
                    </td>
                    <td class="num">
                      <Size bytes={t.size} />
                    </td>
                    <td>
                      <Time ms={t.pushedAt} />
                      {t.pushedBy && <span class="muted"> by {t.pushedBy}</span>}
                    </td>
                    <td>{t.platforms.length ? t.platforms.map(platformText).join(', ') : <span class="muted">–</span>}</td>
                    <td>
                      {t.sbom && <span class="badge sbom">SBOM</span>}
                      {t.signed && <span class="badge signed">Signed</span>}
                    </td>
                    {governs && <td><TagActions repository={name} tag={t.tag} digest={t.digest} perms={perms} onChanged={() => setVersion(version + 1)} /></td>}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {pages.pager(data.next)}
        </>
      )}
    </section>
  );
}
