import { api, qs, type Referrer, type SbomPackages } from '../api.js';
import { imageHref } from '../router.js';
import { shortDigest } from '../format.js';
import { ErrorNote, Link, Loading, Size, Time, useLoad } from '../ui.js';

// What refers to a manifest (distribution-spec referrers API), by kind: SBOMs with the packages
// they list (GET /kiln/v1/sbom), signatures, attestations and anything else.

const kinds: [Referrer['kind'], string][] = [
  ['sbom', 'SBOMs'],
  ['signature', 'Signatures'],
  ['attestation', 'Attestations'],
  ['other', 'Other referrers'],
];

function Packages({ repository, digest }: { repository: string; digest: string }) {
  const { data, error } = useLoad(() => api<SbomPackages>('GET', `/kiln/v1/sbom${qs({ repository, digest })}`), [repository, digest]);
  if (error) return <ErrorNote error={error} />;
  if (!data) return <Loading what="the SBOM's packages" />;
  if (data.note) return <p class="note">{data.note}</p>;
  return (
    <details class="packages" open={data.packages.length <= 20}>
      <summary>
        {data.truncated ?? data.packages.length} package{(data.truncated ?? data.packages.length) === 1 ? '' : 's'}
      </summary>
      {data.truncated && <p class="note">Only the first {data.packages.length} of {data.truncated} packages are shown.</p>}
      <div class="scroll">
        <table class="list">
          <caption class="sr-only">Packages the SBOM {shortDigest(digest)} lists</caption>
          <thead>
            <tr>
              <th scope="col">Package</th>
              <th scope="col">Version</th>
              <th scope="col">Type</th>
            </tr>
          </thead>
          <tbody>
            {data.packages.map((p, i) => (
              <tr key={i}>
                <td>
                  <code title={p.purl}>{p.name}</code>
                </td>
                <td>
                  <code>{p.version}</code>
                </td>
                <td>{p.type}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

export function Referrers({ repository, referrers }: { repository: string; referrers: Referrer[] }) {
  return (
    <>
      <h2>Referrers</h2>
      {referrers.length === 0 && <p class="muted">No SBOMs, signatures or attestations refer to this manifest.</p>}
      {kinds.map(([kind, title]) => {
        const rs = referrers.filter((r) => r.kind === kind);
        if (rs.length === 0) return null;
        return (
          <section key={kind} aria-label={title}>
            <h3>{title}</h3>
            <ul class="plain referrers">
              {rs.map((r) => (
                <li key={r.digest}>
                  <span class={`badge ${r.kind}`}>{r.kind}</span>
                  <Link href={imageHref(repository, r.digest)}>
                    <code>{shortDigest(r.digest)}</code>
                  </Link>{' '}
                  <code class="muted">{r.artifactType ?? r.mediaType}</code> <Size bytes={r.size} /> <Time ms={r.createdAt} />
                  {kind === 'sbom' && <Packages repository={repository} digest={r.digest} />}
                </li>
              ))}
            </ul>
          </section>
        );
      })}
    </>
  );
}
