import { useEffect, useState } from 'preact/hooks';

// Pages by address (History API): / (repositories), /ui/sign-in, /ui/account, /ui/repo/NAME, /ui/image/NAME/REF,
// /ui/search?package=NAME&version=RANGE or ?base=DIGEST;
// governance: /ui/namespaces, /ui/namespace/NS, /ui/audit?namespace=&actor=&action=&since=&until=, /ui/gc.
// Repository names hold slashes; a tag or digest never does, so the last component is the reference.

export type Route =
  | { page: 'home' }
  | { page: 'sign-in'; next: string }
  | { page: 'account' }
  | { page: 'repo'; name: string }
  | { page: 'image'; name: string; ref: string }
  | { page: 'namespaces' }
  | { page: 'namespace'; name: string }
  | { page: 'audit'; search: string }
  | { page: 'gc' }
  | { page: 'search'; query: { package: string; version: string } | { base: string } }
  | { page: 'not-found'; path: string };

export function parseRoute(path: string, search: string): Route {
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  if (path === '/' || path === '/ui' || path === '/ui/') return { page: 'home' };
  if (path === '/ui/sign-in') {
    const next = new URLSearchParams(search).get('next') ?? '/';
    return { page: 'sign-in', next: next.startsWith('/') && !next.startsWith('//') ? next : '/' };
  }
  if (path === '/ui/namespaces') return { page: 'namespaces' };
  if (path.startsWith('/ui/namespace/') && path.length > 14) return { page: 'namespace', name: dec(path.slice(14)) };
  if (path === '/ui/audit') return { page: 'audit', search };
  if (path === '/ui/gc') return { page: 'gc' };
  if (path === '/ui/search') {
    const q = new URLSearchParams(search);
    const base = q.get('base');
    return { page: 'search', query: base !== null ? { base } : { package: q.get('package') ?? '', version: q.get('version') ?? '' } };
  }
  if (path === '/ui/account') return { page: 'account' };
  if (path.startsWith('/ui/repo/') && path.length > 9) return { page: 'repo', name: dec(path.slice(9)) };
  if (path.startsWith('/ui/image/')) {
    const rest = path.slice(10);
    const cut = rest.lastIndexOf('/');
    if (cut > 0 && cut < rest.length - 1) return { page: 'image', name: dec(rest.slice(0, cut)), ref: dec(rest.slice(cut + 1)) };
  }
  return { page: 'not-found', path };
}

export const repoHref = (name: string) => `/ui/repo/${name.split('/').map(encodeURIComponent).join('/')}`;
export const imageHref = (name: string, ref: string) => `${repoHref(name).replace('/ui/repo/', '/ui/image/')}/${encodeURIComponent(ref)}`;
export const namespaceHref = (name: string) => `/ui/namespace/${encodeURIComponent(name)}`;
export const auditHref = (filters: Record<string, string | undefined>) => {
  const q = new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => !!e[1])).toString();
  return q ? `/ui/audit?${q}` : '/ui/audit';
};
export const signInHref = (next: string) => `/ui/sign-in?next=${encodeURIComponent(next)}`;

const listeners = new Set<() => void>();

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  window.scrollTo(0, 0);
  for (const l of listeners) l();
}

/** The current route; re-renders on navigate() and the browser's back and forward. */
export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}
