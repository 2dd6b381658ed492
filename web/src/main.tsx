import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, onUnauthorized, setCsrf, type Session } from './api.js';
import { navigate, signInHref, useRoute } from './router.js';
import { Link, Loading } from './ui.js';
import { SignIn } from './pages/sign-in.js';
import { Home } from './pages/home.js';
import { Repository } from './pages/repository.js';
import { Image } from './pages/image.js';
import { Namespace, Namespaces } from './pages/namespace.js';
import { Audit } from './pages/audit.js';
import { Gc } from './pages/gc.js';
import { GovernanceNav } from './nav.js';
import { Search } from './pages/search.js';
import { Account } from './pages/account.js';

// The kiln registry's web UI (issue 20): a client of the /kiln/v1/ API and nothing more; every
// rule (who sees what) is the registry's.

function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session>();
  const take = (s: Session) => {
    setCsrf(s.csrf);
    setSession(s);
  };
  useEffect(() => {
    api<Session>('GET', '/kiln/v1/session').then(take, () => take({ user: null }));
    onUnauthorized(() => take({ user: null }));
  }, []);
  const signOut = async () => {
    await api('DELETE', '/kiln/v1/session').catch(() => {});
    take({ user: null });
    navigate('/');
  };
  let page;
  if (!session) page = <Loading what="the session" />;
  else if (route.page === 'sign-in') page = <SignIn next={route.next} onSession={take} />;
  else if (route.page === 'account') page = <Account signedIn={!!session.user} />;
  else if (route.page === 'home') page = <Home signedIn={!!session.user} />;
  else if (route.page === 'repo') page = <Repository key={route.name} name={route.name} signedIn={!!session.user} />;
  else if (route.page === 'image') page = <Image name={route.name} reference={route.ref} />;
  else if (route.page === 'namespaces') page = <Namespaces />;
  else if (route.page === 'namespace') page = <Namespace key={route.name} name={route.name} signedIn={!!session.user} />;
  else if (route.page === 'audit') page = <Audit key={route.search} search={route.search} />;
  else if (route.page === 'gc') page = <Gc />;
  else if (route.page === 'search') page = <Search query={route.query} />;
  else
    page = (
      <div class="error" role="alert">
        <h1>Not found</h1>
        <p>There is no page at {route.path}.</p>
        <Link href="/">Back to the repositories</Link>
      </div>
    );
  return (
    <>
      <header class="top">
        <Link href="/" class="brand">
          kiln registry
        </Link>
        <GovernanceNav route={route} session={session} />
        <nav aria-label="Account">
          {session?.user ? (
            <>
              <span class="who">
                Signed in as <Link href="/ui/account"><strong>{session.user}</strong></Link>
              </span>
              <button type="button" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : session && route.page !== 'sign-in' ? (
            <Link href={signInHref(location.pathname + location.search)}>Sign in</Link>
          ) : null}
        </nav>
      </header>
      <main>{page}</main>
    </>
  );
}

// index.html's "Loading…" goes first: Preact's render() adds to a container, it does not replace what is there.
const root = document.getElementById('app')!;
root.replaceChildren();
render(<App />, root);
