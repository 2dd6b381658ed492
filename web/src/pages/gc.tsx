import { useState } from 'preact/hooks';
import { api, type AuditEvent, type GcReport } from '../api.js';
import { Dialog, useAction } from '../actions.js';
import { shortDigest } from '../format.js';
import { ErrorNote, Loading, Size, Time, useLoad } from '../ui.js';

// Garbage collection, for system administrators (POST /kiln/v1/gc, GET /kiln/v1/gc): a dry run
// lists what would go; a run (after a confirmation) removes it; the last run's report is the audit
// log's last `gc` record, wherever it ran (this page, kiln registry gc, the schedule).

const shown = 100;

function Report({ r }: { r: GcReport }) {
  return (
    <section aria-label={r.dryRun ? 'Dry run report' : 'Report'}>
      <h2>{r.dryRun ? 'Dry run: what a run would remove now' : 'Removed'}</h2>
      <dl class="facts">
        <dt>Manifests</dt>
        <dd>{r.manifests.length}</dd>
        <dt>Blobs</dt>
        <dd>{r.blobs.length}</dd>
        <dt>Space</dt>
        <dd>
          <Size bytes={r.bytes} />
        </dd>
        <dt>Repository links</dt>
        <dd>{r.links}</dd>
        {!r.dryRun && (
          <>
            <dt>Orphaned objects removed</dt>
            <dd>{r.orphans}</dd>
            <dt>Rows of lost blobs removed</dt>
            <dd>{r.lost}</dd>
          </>
        )}
      </dl>
      {r.manifests.length > 0 && (
        <ul class="plain">
          {r.manifests.slice(0, shown).map((m) => (
            <li key={m.repository + m.digest} class="wrap">
              {m.repository}@<code title={m.digest}>{shortDigest(m.digest)}</code>
            </li>
          ))}
          {r.manifests.length > shown && <li class="muted">and {r.manifests.length - shown} more</li>}
        </ul>
      )}
    </section>
  );
}

export function Gc() {
  const [version, setVersion] = useState(0);
  const last = useLoad(() => api<{ last: AuditEvent | null }>('GET', '/kiln/v1/gc'), [version]);
  const [report, setReport] = useState<GcReport>();
  const [confirming, setConfirming] = useState(false);
  const { busy, error, run, clear } = useAction();
  const start = (dryRun: boolean) =>
    void run(() => api<GcReport>('POST', `/kiln/v1/gc${dryRun ? '?dryRun=true' : ''}`)).then((r) => {
      if (!r) return;
      setConfirming(false);
      setReport(r);
      if (!r.dryRun) setVersion(version + 1);
    });
  if (last.error) return <ErrorNote error={last.error} />;
  return (
    <section>
      <h1>Garbage collection</h1>
      <p class="muted">Removes manifests no tag or referrer reaches and blobs no manifest uses, once their grace period (gc.gracePeriod) has passed.</p>
      <h2>Last run</h2>
      {!last.data ? (
        <Loading what="the last report" />
      ) : last.data.last ? (
        <p>
          <Time ms={last.data.last.time} /> by {last.data.last.actor}: {last.data.last.detail ?? 'no detail'}
        </p>
      ) : (
        <p class="muted">No run recorded yet.</p>
      )}
      <div class="toolbar">
        <button type="button" disabled={busy} onClick={() => start(true)}>
          {busy && !confirming ? 'Running…' : 'Dry run'}
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => setConfirming(true)}>
          Run garbage collection…
        </button>
      </div>
      {error && !confirming && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {busy && !confirming && <Loading what="the report" />}
      {report && <Report r={report} />}
      {confirming && (
        <Dialog
          title="Run garbage collection?"
          submit="Run now"
          danger
          busy={busy}
          error={error}
          onClose={() => {
            clear();
            setConfirming(false);
          }}
          onSubmit={() => start(false)}
        >
          <p>What is unreferenced and older than the grace period is deleted from storage. A dry run first shows what that is.</p>
        </Dialog>
      )}
    </section>
  );
}
