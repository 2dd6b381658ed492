import { useEffect, useState } from 'preact/hooks';
import { api, type CliSecretStatus } from '../api.js';
import { Link, Loading, Time } from '../ui.js';
import { signInHref } from '../router.js';

// The signed-in user's account (issue 21). Users of the OpenID Provider have no password that
// `docker login` could send, so this page makes their CLI secret: shown once when made, then only
// whether one exists; it can be made again (the old one stops working) or revoked.

export function Account({ signedIn }: { signedIn: boolean }) {
  const [status, setStatus] = useState<CliSecretStatus>();
  const [error, setError] = useState<string>();
  const [secret, setSecret] = useState<string>();
  const [busy, setBusy] = useState(false);
  const load = () => api<CliSecretStatus>('GET', '/kiln/v1/cli-secret').then(setStatus, (e: Error) => setError(e.message));
  useEffect(() => {
    if (signedIn) void load();
  }, [signedIn]);
  if (!signedIn)
    return (
      <p>
        <Link href={signInHref('/ui/account')}>Sign in</Link> to see your account.
      </p>
    );
  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (!status) return <Loading what="your account" />;
  const act = async (method: 'POST' | 'DELETE') => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await api<{ secret?: string }>(method, '/kiln/v1/cli-secret');
      setSecret(r.secret);
      await load();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="account">
      <h1>{status.user}</h1>
      <p>Signed in through {status.provider === 'local' ? 'a local account' : status.provider === 'oidc' ? 'the OpenID Provider' : status.provider}.</p>
      {status.provider === 'oidc' && (
        <section aria-labelledby="cli-secret">
          <h2 id="cli-secret">CLI secret</h2>
          <p>
            Use it as the password of <code>docker login</code>, <code>skopeo login</code> or <code>kiln login</code> with the user name <strong>{status.user}</strong>.
          </p>
          {secret && (
            <div>
              <p>Your new CLI secret, shown only now:</p>
              <p class="secret" data-testid="cli-secret">
                {secret}
              </p>
            </div>
          )}
          <p>
            {status.exists ? (
              <>
                A CLI secret exists since <Time ms={status.createdAt} />.
              </>
            ) : (
              'You have no CLI secret.'
            )}
          </p>
          <div class="actions">
            <button type="button" disabled={busy} onClick={() => void act('POST')}>
              {status.exists ? 'Regenerate CLI secret' : 'Create CLI secret'}
            </button>
            {status.exists && (
              <button type="button" disabled={busy} onClick={() => void act('DELETE')}>
                Revoke CLI secret
              </button>
            )}
          </div>
        </section>
      )}
    </section>
  );
}
