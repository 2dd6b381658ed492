import { useState } from 'preact/hooks';
import { api, type Permissions } from '../api.js';
import { shortDigest } from '../format.js';
import { Dialog, takeDraft, useAction } from '../actions.js';

// A tag row's governance buttons on the repository page: delete the tag, delete the manifest (and
// every tag naming it), promote the tag to another repository or tag. Each shows only when the
// registry's permissions answer lists the action; the API refuses the others anyway.

type Open = { kind: 'delete-tag' } | { kind: 'delete-manifest' } | { kind: 'promote'; repository: string; tag: string };

const enc = (repo: string) => repo.split('/').map(encodeURIComponent).join('/');

export function TagActions({ repository, tag, digest, perms, onChanged }: { repository: string; tag: string; digest: string; perms?: Permissions; onChanged: () => void }) {
  // A promotion the expired session interrupted opens again with what was typed.
  const [open, setOpen] = useState<Open | undefined>(() => takeDraft<Open>(`promote:${tag}`));
  const { busy, error, run, clear } = useAction();
  const may = (a: string) => !!perms?.actions.includes(a);
  if (!may('delete') && !may('promote')) return null;
  const close = () => {
    clear();
    setOpen(undefined);
  };
  const done = (r: unknown) => {
    if (r === undefined) return;
    setOpen(undefined);
    onChanged();
  };
  return (
    <span class="row-actions">
      {may('promote') && (
        <button type="button" aria-label={`Promote ${tag}`} onClick={() => setOpen({ kind: 'promote', repository, tag: '' })}>
          Promote…
        </button>
      )}
      {may('delete') && (
        <>
          <button type="button" class="danger" aria-label={`Delete tag ${tag}`} onClick={() => setOpen({ kind: 'delete-tag' })}>
            Delete tag…
          </button>
          <button type="button" class="danger" aria-label={`Delete the manifest of ${tag}`} onClick={() => setOpen({ kind: 'delete-manifest' })}>
            Delete manifest…
          </button>
        </>
      )}
      {open?.kind === 'delete-tag' && (
        <Dialog title={`Delete tag ${tag}?`} submit="Delete tag" danger busy={busy} error={error} onClose={close} onSubmit={() => void run(() => api('DELETE', `/kiln/v1/repositories/${enc(repository)}/tags/${encodeURIComponent(tag)}`)).then(done)}>
          <p class="wrap">
            {repository}:{tag} will no longer name <code>{shortDigest(digest)}</code>. The manifest stays, as do other tags naming it.
          </p>
        </Dialog>
      )}
      {open?.kind === 'delete-manifest' && (
        <Dialog title={`Delete manifest ${shortDigest(digest)}?`} submit="Delete manifest" danger busy={busy} error={error} onClose={close} onSubmit={() => void run(() => api('DELETE', `/kiln/v1/repositories/${enc(repository)}/manifests/${digest}`)).then(done)}>
          <p class="wrap">
            The manifest <code>{digest}</code> goes from {repository}, with every tag naming it ({tag} among them). Its blobs go at the next garbage collection.
          </p>
        </Dialog>
      )}
      {open?.kind === 'promote' && (
        <Dialog
          title={`Promote ${tag}`}
          submit="Promote"
          busy={busy}
          error={error}
          onClose={close}
          onSubmit={() =>
            void run(() => api('POST', '/kiln/v1/promote', { source: `${repository}@${digest}`, destination: `${open.repository}:${open.tag}` }), { form: `promote:${tag}`, values: open }).then(done)
          }
        >
          <p class="wrap">
            Make a tag name the manifest of {repository}:{tag} (<code>{shortDigest(digest)}</code>).
          </p>
          <label for="promote-repo">Destination repository</label>
          <input id="promote-repo" required value={open.repository} onInput={(e) => setOpen({ ...open, repository: (e.target as HTMLInputElement).value })} />
          <label for="promote-tag">Destination tag</label>
          <input id="promote-tag" required value={open.tag} onInput={(e) => setOpen({ ...open, tag: (e.target as HTMLInputElement).value })} />
        </Dialog>
      )}
    </span>
  );
}
