import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, qs, type Permissions } from './api.js';
import { navigate, signInHref } from './router.js';
import { useLoad } from './ui.js';

// What the governance pages share: a modal <dialog> for confirmations and small forms, a runner for
// actions that sends an expired session to sign-in keeping what the user typed (a draft in
// sessionStorage, per page and form, taken back once), and the caller's permissions as the
// registry states them (the pages hold no rule: a button shows when the registry says the caller
// may, and the API checks again).

const draftKey = (form: string) => `kiln-draft:${location.pathname}:${form}`;

/** What `form` held when the session expired on this page, once; undefined when nothing was kept. */
export function takeDraft<T>(form: string): T | undefined {
  try {
    const v = sessionStorage.getItem(draftKey(form));
    if (v === null) return undefined;
    sessionStorage.removeItem(draftKey(form));
    return JSON.parse(v) as T;
  } catch {
    return undefined;
  }
}

/** Run a change: busy while it runs, its error as text; a 401 keeps `draft` and goes to sign-in, which comes back here. */
export function useAction(): { busy: boolean; error?: string; run: <T>(fn: () => Promise<T>, draft?: { form: string; values: unknown }) => Promise<T | undefined>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async <T,>(fn: () => Promise<T>, draft?: { form: string; values: unknown }): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        if (draft) sessionStorage.setItem(draftKey(draft.form), JSON.stringify(draft.values));
        navigate(signInHref(location.pathname + location.search));
        return undefined;
      }
      setError(e instanceof Error ? e.message : String(e));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

/** The caller's permissions in a namespace (or a repository's); no data when no one is signed in. */
export function usePermissions(where: { namespace?: string; repository?: string }, signedIn: boolean): { data?: Permissions; error?: unknown; loading: boolean } {
  return useLoad(() => (signedIn ? api<Permissions>('GET', `/kiln/v1/permissions${qs(where)}`) : Promise.resolve(undefined)), [where.repository ?? where.namespace, signedIn]);
}

let dialogs = 0;

/**
 * A modal dialog (the HTML <dialog> element: focus moves into it, Escape closes it, the page
 * behind is inert). Its form submits to `onSubmit`; Cancel and Escape call `onClose`.
 */
export function Dialog(props: { title: string; submit: string; danger?: boolean; busy?: boolean; error?: string; onSubmit: () => void; onClose: () => void; children?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [id] = useState(() => `dialog-${++dialogs}`);
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    return () => d.open && d.close();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit();
        }}
      >
        <h2 id={id}>{props.title}</h2>
        {props.children}
        {props.error && (
          <p class="error" role="alert">
            {props.error}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? 'danger' : 'primary'} disabled={props.busy}>
            {props.busy ? 'Working…' : props.submit}
          </button>
        </div>
      </form>
    </dialog>
  );
}
