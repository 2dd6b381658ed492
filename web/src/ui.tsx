import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { navigate, signInHref } from './router.js';
import { humanSize, relativeTime } from './format.js';
import { ApiError } from './api.js';

// Small pieces every page uses. Text only ever goes in as JSX children or attributes, which Preact
// escapes; nothing here sets innerHTML.

/** An in-page link: the History API for plain clicks, the browser's own handling for new tabs. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; title?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      title={props.title}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

export function Size({ bytes }: { bytes: number | undefined }) {
  if (bytes === undefined || bytes === null) return <span>–</span>;
  return <span title={`${bytes.toLocaleString('en')} bytes`}>{humanSize(bytes)}</span>;
}

export function Time({ ms }: { ms: number | undefined }) {
  if (ms === undefined || ms === null) return <span>–</span>;
  const iso = new Date(ms).toISOString();
  return (
    <time dateTime={iso} title={iso}>
      {relativeTime(ms)}
    </time>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function ErrorNote({ error, back }: { error: unknown; back?: { href: string; text: string } }) {
  const notFound = error instanceof ApiError && error.status === 404;
  // Not signed in (or the session expired): to the sign-in page, which comes back here after.
  const signIn = error instanceof ApiError && error.status === 401;
  useEffect(() => {
    if (signIn) navigate(signInHref(location.pathname + location.search), true);
  }, [signIn]);
  return (
    <div class="error" role="alert">
      <h2>{notFound ? 'Not found' : signIn ? 'Sign in to see this page' : 'Something went wrong'}</h2>
      <p>{error instanceof Error ? error.message : String(error)}</p>
      <p>
        {notFound && back && (
          <>
            <Link href={back.href}>{back.text}</Link> ·{' '}
          </>
        )}
        <Link href="/">Back to the repositories</Link>
      </p>
    </div>
  );
}

/** A button that copies `text` to the clipboard and says so. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (!done) return;
    const t = setTimeout(() => setDone(false), 1500);
    return () => clearTimeout(t);
  }, [done]);
  return (
    <button
      type="button"
      class="copy"
      aria-label={label}
      title={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
        } catch {
          /* the clipboard needs a secure context; the text stays selectable */
        }
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

/** A two-column table of a string map (labels, annotations, environment), or a dash when empty. */
export function KeyValues({ map, caption }: { map: Record<string, string> | undefined; caption: string }) {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return <p class="muted">No {caption.toLowerCase()}.</p>;
  return (
    <table class="kv">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Key</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">
              <code>{k}</code>
            </th>
            <td>
              <code class="wrap">{v}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Load something when `deps` change; a stale answer (the user moved on) is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data?: T; error?: unknown; loading: boolean } {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, deps);
  return state;
}
