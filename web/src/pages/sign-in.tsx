import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type OidcStatus, type Session } from '../api.js';
import { navigate } from '../router.js';

export function SignIn({ next, onSession }: { next: string; onSession: (s: Session) => void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [oidc, setOidc] = useState<OidcStatus>();
  useEffect(() => {
    api<OidcStatus>('GET', '/kiln/v1/oidc').then(setOidc, () => setOidc(undefined));
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      const s = await api<Session>('POST', '/kiln/v1/session', { username: String(form.get('username') ?? ''), password: String(form.get('password') ?? '') });
      onSession(s);
      navigate(next, true);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="sign-in">
      <h1>Sign in</h1>
      {oidc?.configured && (
        <div class="oidc">
          {oidc.available ? (
            // A navigation, not a fetch: the registry sends the browser on to the provider's own page.
            <a class="button" href={`/kiln/v1/oidc/login?next=${encodeURIComponent(next)}`}>
              Sign in with {oidc.name}
            </a>
          ) : (
            <p class="error" role="alert">
              {oidc.name} is unavailable: {oidc.error ?? 'try again shortly'}. Local accounts can still sign in below.
            </p>
          )}
        </div>
      )}
      {next !== '/' && <p class="muted">Then back to {next}.</p>}
      <form onSubmit={submit}>
        <label for="username">User name</label>
        <input id="username" name="username" type="text" autocomplete="username" required autofocus />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}
