import { api, qs, type AuditEvent } from '../api.js';
import { auditHref, navigate } from '../router.js';
import { ErrorNote, Loading, Time, useLoad } from '../ui.js';
import { useKeysetPages } from './home.js';

// The audit log (GET /kiln/v1/audit): filters by namespace, user, action and time range, kept in
// the address so a view can be reloaded or shared; newest first, 50 a page. Namespace members
// whose role reads the audit log see their namespace's; the whole log is system administrators'.

export interface AuditFilters {
  namespace?: string;
  actor?: string;
  action?: string;
  since?: string;
  until?: string;
}

export const auditFilters = (search: string): AuditFilters => {
  const q = new URLSearchParams(search);
  const get = (k: string) => q.get(k) || undefined;
  return { namespace: get('namespace'), actor: get('actor'), action: get('action'), since: get('since'), until: get('until') };
};

const actions = ['push', 'pull', 'mount', 'delete-tag', 'delete-manifest', 'promote', 'role-grant', 'role-revoke', 'role-grant-group', 'role-revoke-group', 'robot-add', 'robot-del', 'namespace-set', 'immutable-add', 'immutable-rm', 'retention', 'gc'];

/** A datetime-local value (the browser's local time) as Unix ms for the API. */
const toMs = (v: string | undefined) => (v ? String(new Date(v).getTime()) : undefined);

export function Audit({ search }: { search: string }) {
  const f = auditFilters(search);
  const pages = useKeysetPages();
  const before = pages.last;
  const { data, error, loading } = useLoad(
    () => api<{ events: AuditEvent[]; next?: string }>('GET', `/kiln/v1/audit${qs({ namespace: f.namespace, actor: f.actor, action: f.action, since: toMs(f.since), until: toMs(f.until), before, limit: 50 })}`),
    [search, before],
  );
  const apply = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const v = (k: string) => String(form.get(k) ?? '').trim() || undefined;
    pages.reset();
    navigate(auditHref({ namespace: v('namespace'), actor: v('actor'), action: v('action'), since: v('since'), until: v('until') }), true);
  };
  return (
    <section>
      <h1>Audit log</h1>
      <form class="filters" aria-label="Filter the audit log" onSubmit={apply}>
        <label>
          Namespace <input name="namespace" defaultValue={f.namespace} placeholder="all (administrators)" />
        </label>
        <label>
          User <input name="actor" defaultValue={f.actor} />
        </label>
        <label>
          Action{' '}
          <input name="action" list="audit-actions" defaultValue={f.action} />
          <datalist id="audit-actions">
            {actions.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <label>
          From <input name="since" type="datetime-local" defaultValue={f.since} />
        </label>
        <label>
          To <input name="until" type="datetime-local" defaultValue={f.until} />
        </label>
        <button type="submit">Apply filters</button>
      </form>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="the audit log" />
      ) : data.events.length === 0 ? (
        <p class="muted">No events match.</p>
      ) : (
        <>
          <div class="scroll">
            <table class="list audit" aria-busy={loading}>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">User</th>
                  <th scope="col">Action</th>
                  <th scope="col">Where</th>
                  <th scope="col">Reference</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {data.events.map((e) => (
                  <tr key={e.id}>
                    <td>
                      <Time ms={e.time} />
                    </td>
                    <td class="wrap">{e.actor}</td>
                    <td>
                      {e.action}
                      {e.count && e.count > 1 ? <span class="muted"> ×{e.count}</span> : null}
                    </td>
                    <td class="wrap">{e.repository ?? e.namespace ?? <span class="muted">registry</span>}</td>
                    <td class="wrap">
                      <code title={e.digest}>{e.reference ?? ''}</code>
                    </td>
                    <td class="wrap">{e.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {pages.pager(data.next)}
        </>
      )}
    </section>
  );
}
