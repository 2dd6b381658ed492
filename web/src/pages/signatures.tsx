import { api, type SignatureStatus } from '../api.js';
import { shortDigest } from '../format.js';
import { ErrorNote, Loading, useLoad } from '../ui.js';

// Who signed this manifest and whether it verifies against the namespace's signature policy
// (kiln registry policy set): the registry's own verdict, the one its pulls are admitted by.

export function Signatures({ repository, digest }: { repository: string; digest: string }) {
  const path = `/kiln/v1/repositories/${repository.split('/').map(encodeURIComponent).join('/')}/manifests/${encodeURIComponent(digest)}/signatures`;
  const { data, error } = useLoad(() => api<SignatureStatus>('GET', path), [path]);
  if (error) return <ErrorNote error={error} />;
  if (!data) return <Loading what="the signatures" />;
  const policy = data.policy;
  return (
    <section aria-label="Signature status">
      <h3>Signature status</h3>
      <p>
        {policy ? (
          <>
            Namespace <strong>{policy.namespace}</strong> requires a signature by {[...policy.keys.map((k) => `key ${k}`), ...policy.certificates.map((c) => `certificate "${c}"`)].join(', ')}
            {policy.on.length ? ` (on ${policy.on.join(', ')})` : ''}:{' '}
            {data.verified ? <span class="badge signed">verified</span> : <span class="badge unverified">not verified</span>}
          </>
        ) : (
          <span class="muted">No signature policy covers this namespace{data.signatures.length ? '; the signatures below are not checked against any key' : ''}.</span>
        )}
      </p>
      {data.signatures.length === 0 ? (
        <p class="muted">Not signed.</p>
      ) : (
        <div class="scroll">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Signature</th>
                <th scope="col">Format</th>
                <th scope="col">Signer</th>
                <th scope="col">Verified</th>
              </tr>
            </thead>
            <tbody>
              {data.signatures.map((s) => (
                <tr key={s.artifact}>
                  <td>
                    <code title={s.artifact}>{shortDigest(s.artifact)}</code> <span class="muted">({s.from})</span>
                  </td>
                  <td>{s.format}</td>
                  <td>{s.identity ? `${s.identity.identities.join(', ')}${s.identity.issuer ? ` (${s.identity.issuer})` : ''}` : s.signer ?? <span class="muted">–</span>}</td>
                  <td>{s.verified ? 'yes' : <span title={s.error}>no{s.error ? `: ${s.error}` : ''}</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
