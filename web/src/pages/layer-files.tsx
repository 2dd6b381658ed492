import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, qs, type LayerTree, type LayerTreeEntry } from '../api.js';
import { ErrorNote, Loading, Size } from '../ui.js';

// A layer's file tree (GET /kiln/v1/layer): what the layer adds, changes and removes, as kiln
// analyze counts it. A directory's entries are fetched when it is opened (<details>, so the keyboard
// opens it too), a page at a time.

const marks = { added: '+', changed: '~', removed: '−' } as const;
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function Entry({ e, at }: { e: LayerTreeEntry; at: Omit<DirProps, 'path'> }) {
  const label = (
    <>
      {e.kind ? (
        <span class={`badge change ${e.kind}`} title={e.kind}>
          {marks[e.kind]} {e.kind}
        </span>
      ) : null}
      <code class="wrap">
        {e.name}
        {e.dir ? '/' : ''}
      </code>{' '}
      {e.kind !== 'removed' && e.size > 0 && <Size bytes={e.size} />}
      {e.dir && e.changes > (e.kind ? 1 : 0) && <span class="muted"> {count(e.changes - (e.kind ? 1 : 0), 'change')} below</span>}
    </>
  );
  // Directories with changes below open; a removed or otherwise empty one is a leaf.
  if (e.dir && e.changes > (e.kind ? 1 : 0)) return <Folder e={e} at={at} label={label} />;
  return <li data-path={e.path}>{label}</li>;
}

function Folder({ e, at, label }: { e: LayerTreeEntry; at: Omit<DirProps, 'path'>; label: ComponentChildren }) {
  const [open, setOpen] = useState(false);
  return (
    <li data-path={e.path}>
      <details onToggle={(ev) => setOpen((ev.currentTarget as HTMLDetailsElement).open)}>
        <summary>{label}</summary>
        {open && <Directory {...at} path={e.path} />}
      </details>
    </li>
  );
}

interface DirProps {
  repository: string;
  reference: string;
  layer: number;
  path: string;
}

function Directory(props: DirProps) {
  const [pages, setPages] = useState<LayerTree[]>([]);
  const [error, setError] = useState<unknown>();
  const [last, setLast] = useState('');
  useEffect(() => {
    let live = true;
    api<LayerTree>('GET', `/kiln/v1/layer${qs({ repository: props.repository, reference: props.reference, layer: props.layer, path: props.path, last })}`).then(
      (t) => live && setPages((ps) => [...ps, t]),
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [last]);
  if (error) return <ErrorNote error={error} />;
  if (pages.length === 0) return <Loading what={`the files in ${props.path}`} />;
  const first = pages[0]!;
  const next = pages[pages.length - 1]!.next;
  return (
    <>
      {props.path === '/' && (
        <p>
          {count(first.added, 'file')} added, {first.changed} changed, {first.removed} removed.
        </p>
      )}
      {first.truncated && <p class="note">Incomplete: {first.truncated}.</p>}
      {first.entries.length === 0 && !first.truncated && <p class="muted">The layer changes no file.</p>}
      <ul class="tree">
        {pages.flatMap((p) => p.entries).map((e) => (
          <Entry key={e.path} e={e} at={props} />
        ))}
      </ul>
      {next && (
        <button type="button" onClick={() => setLast(next)}>
          More files in {props.path}
        </button>
      )}
    </>
  );
}

/** Layer `layer`'s files, fetched when the disclosure is first opened. */
export function LayerFiles({ repository, reference, layer }: { repository: string; reference: string; layer: number }) {
  const [open, setOpen] = useState(false);
  return (
    <details class="layer-files" onToggle={(ev) => setOpen((ev.currentTarget as HTMLDetailsElement).open)}>
      <summary>Files of layer {layer + 1}</summary>
      {open && <Directory repository={repository} reference={reference} layer={layer} path="/" />}
    </details>
  );
}
