import { useState } from 'preact/hooks';
import { api, Roles, type GroupBinding, type Member, type NamespaceRow, type RepositoryRow, type Robot } from '../api.js';
import { Dialog, takeDraft, useAction, usePermissions } from '../actions.js';
import { auditHref, namespaceHref } from '../router.js';
import { CopyButton, ErrorNote, Link, Loading, Size, Time, useLoad } from '../ui.js';

// Namespaces: the list, and one namespace's visibility, members and roles (users' own and groups'
// bindings, each row saying where the role comes from) and robot accounts. Each section and button
// shows only when the registry's permissions answer allows it (routes/governance.ts).

/**
 * The namespaces the caller belongs to or may pull from: those with settings (GET /kiln/v1/namespaces)
 * and those of the repositories they may pull, which need no settings to exist.
 */
async function loadNamespaces(): Promise<{ namespaces: NamespaceRow[] }> {
  const [withSettings, repos] = await Promise.all([api<{ namespaces: NamespaceRow[] }>('GET', '/kiln/v1/namespaces'), api<{ repositories: RepositoryRow[] }>('GET', '/kiln/v1/repositories?n=1000')]);
  const byName = new Map(withSettings.namespaces.map((n) => [n.name, n]));
  for (const r of repos.repositories) if (!byName.has(r.namespace)) byName.set(r.namespace, { name: r.namespace, public: false });
  return { namespaces: [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

export function Namespaces() {
  const { data, error } = useLoad(loadNamespaces, []);
  return (
    <section>
      <h1>Namespaces</h1>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="namespaces" />
      ) : data.namespaces.length === 0 ? (
        <p class="muted">No namespace yet.</p>
      ) : (
        <div class="scroll">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Namespace</th>
                <th scope="col">Visibility</th>
                <th scope="col" class="num">Used</th>
              </tr>
            </thead>
            <tbody>
              {data.namespaces.map((n) => (
                <tr key={n.name}>
                  <td>
                    <Link href={namespaceHref(n.name)}>{n.name}</Link>
                  </td>
                  <td>{n.public ? 'Public' : 'Private'}</td>
                  <td class="num">
                    <Size bytes={n.usedBytes} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function Namespace({ name, signedIn }: { name: string; signedIn: boolean }) {
  const { data: perms, error } = usePermissions({ namespace: name }, signedIn);
  const may = (p: string) => !!perms?.permissions.includes(p);
  return (
    <section>
      <p class="crumbs">
        <Link href="/ui/namespaces">Namespaces</Link>
      </p>
      <h1 class="wrap">Namespace {name}</h1>
      {!signedIn ? (
        <ErrorNote error={new Error('Sign in to see this namespace.')} />
      ) : error ? (
        <ErrorNote error={error} />
      ) : !perms ? (
        <Loading what="your permissions" />
      ) : (
        <>
          <p class="muted">
            Your role here: <strong>{perms.systemAdmin ? 'system administrator' : perms.role ?? 'none'}</strong>
            {may('audit:read') && (
              <>
                {' · '}
                <Link href={auditHref({ namespace: name })}>Audit log</Link>
              </>
            )}
          </p>
          <Visibility name={name} canChange={may('namespace:write')} />
          {may('members:read') && <Members name={name} canChange={may('members:write')} />}
          {may('robots:write') && <Robots name={name} />}
        </>
      )}
    </section>
  );
}

function Visibility({ name, canChange }: { name: string; canChange: boolean }) {
  const [version, setVersion] = useState(0);
  const { data, error } = useLoad(() => api<{ namespaces: NamespaceRow[] }>('GET', '/kiln/v1/namespaces'), [version]);
  const { busy, error: failed, run } = useAction();
  const current = data?.namespaces.find((n) => n.name === name)?.public ?? false;
  const set = (pub: boolean) => void run(() => api('PUT', `/kiln/v1/namespaces/${encodeURIComponent(name)}`, { public: pub })).then((r) => r && setVersion(version + 1));
  return (
    <>
      <h2>Visibility</h2>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="visibility" />
      ) : (
        <div class="toolbar">
          <span>
            <strong>{current ? 'Public' : 'Private'}</strong>: {current ? 'anyone may pull, without signing in.' : 'only members and robot accounts may pull.'}
          </span>
          {canChange && (
            <button type="button" disabled={busy} onClick={() => set(!current)}>
              {current ? 'Make private' : 'Make public'}
            </button>
          )}
        </div>
      )}
      {failed && (
        <p class="error" role="alert">
          {failed}
        </p>
      )}
    </>
  );
}

interface MemberDraft {
  kind: 'user' | 'group';
  who: string;
  role: string;
}

function Members({ name, canChange }: { name: string; canChange: boolean }) {
  const ns = encodeURIComponent(name);
  const [version, setVersion] = useState(0);
  const { data, error } = useLoad(
    () => Promise.all([api<{ members: Member[] }>('GET', `/kiln/v1/namespaces/${ns}/members`), api<{ groups: GroupBinding[] }>('GET', `/kiln/v1/namespaces/${ns}/groups`)]),
    [name, version],
  );
  const [draft, setDraft] = useState<MemberDraft>(() => takeDraft<MemberDraft>('member') ?? { kind: 'user', who: '', role: 'developer' });
  const [removing, setRemoving] = useState<{ kind: 'user' | 'group'; who: string }>();
  const add = useAction();
  const change = useAction();
  const remove = useAction();
  const path = (kind: 'user' | 'group', who: string) => `/kiln/v1/namespaces/${ns}/${kind === 'user' ? 'members' : 'groups'}/${encodeURIComponent(who)}`;
  const reload = (r: unknown) => r !== undefined && setVersion(version + 1);
  const rows = data ? [...data[0].members.map((m) => ({ kind: 'user' as const, who: m.user, role: m.role })), ...data[1].groups.map((g) => ({ kind: 'group' as const, who: g.group, role: g.role }))] : [];
  return (
    <>
      <h2>Members and roles</h2>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="members" />
      ) : rows.length === 0 ? (
        <p class="muted">No members.</p>
      ) : (
        <div class="scroll">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col">From</th>
                <th scope="col">Role</th>
                {canChange && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.kind}:${r.who}`}>
                  <td class="wrap">{r.who}</td>
                  <td>{r.kind === 'user' ? 'user' : `group ${r.who} (identity provider)`}</td>
                  <td>
                    {canChange ? (
                      <select aria-label={`Role of ${r.kind} ${r.who}`} value={r.role} disabled={change.busy} onChange={(e) => void change.run(() => api('PUT', path(r.kind, r.who), { role: (e.target as HTMLSelectElement).value })).then(reload)}>
                        {Roles.map((x) => (
                          <option key={x} value={x}>
                            {x}
                          </option>
                        ))}
                      </select>
                    ) : (
                      r.role
                    )}
                  </td>
                  {canChange && (
                    <td>
                      <button type="button" class="danger" aria-label={`Remove ${r.kind} ${r.who}`} onClick={() => setRemoving(r)}>
                        Remove…
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {change.error && (
        <p class="error" role="alert">
          {change.error}
        </p>
      )}
      {canChange && (
        <form
          class="toolbar"
          aria-label="Add a member"
          onSubmit={(e) => {
            e.preventDefault();
            void add.run(() => api('PUT', path(draft.kind, draft.who.trim()), { role: draft.role }), { form: 'member', values: draft }).then((r) => {
              if (r === undefined) return;
              setDraft({ ...draft, who: '' });
              reload(r);
            });
          }}
        >
          <label for="member-kind">Add</label>
          <select id="member-kind" value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: (e.target as HTMLSelectElement).value as 'user' | 'group' })}>
            <option value="user">user</option>
            <option value="group">group</option>
          </select>
          <label for="member-name">Name</label>
          <input id="member-name" required value={draft.who} onInput={(e) => setDraft({ ...draft, who: (e.target as HTMLInputElement).value })} />
          <label for="member-role">Role</label>
          <select id="member-role" value={draft.role} onChange={(e) => setDraft({ ...draft, role: (e.target as HTMLSelectElement).value })}>
            {Roles.map((x) => (
              <option key={x} value={x}>
                {x}
              </option>
            ))}
          </select>
          <button type="submit" disabled={add.busy}>
            {add.busy ? 'Adding…' : 'Add member'}
          </button>
          {add.error && (
            <p class="error" role="alert">
              {add.error}
            </p>
          )}
        </form>
      )}
      {removing && (
        <Dialog
          title={`Remove ${removing.kind} ${removing.who}?`}
          submit="Remove"
          danger
          busy={remove.busy}
          error={remove.error}
          onClose={() => {
            remove.clear();
            setRemoving(undefined);
          }}
          onSubmit={() =>
            void remove.run(() => api('DELETE', path(removing.kind, removing.who))).then((r) => {
              if (r === undefined) return;
              setRemoving(undefined);
              reload(r);
            })
          }
        >
          <p class="wrap">
            {removing.kind === 'user' ? `${removing.who} loses their own role in ${name}` : `Members of group ${removing.who} lose the role it gives them in ${name}`} (a role from elsewhere stays).
          </p>
        </Dialog>
      )}
    </>
  );
}

interface RobotDraft {
  name: string;
  actions: string[];
  expiresIn: string;
}

const robotActions = ['pull', 'push', 'delete', 'promote'];

function Robots({ name }: { name: string }) {
  const ns = encodeURIComponent(name);
  const [version, setVersion] = useState(0);
  const { data, error } = useLoad(() => api<{ robots: Robot[] }>('GET', `/kiln/v1/namespaces/${ns}/robots`), [name, version]);
  const [draft, setDraft] = useState<RobotDraft>(() => takeDraft<RobotDraft>('robot') ?? { name: '', actions: ['pull'], expiresIn: '' });
  // The secret lives only in this component's state: shown once, gone when dismissed or on leaving.
  const [created, setCreated] = useState<{ name: string; secret: string }>();
  const [deleting, setDeleting] = useState<string>();
  const create = useAction();
  const del = useAction();
  return (
    <>
      <h2>Robot accounts</h2>
      {created && (
        <div class="note secret" role="status">
          <p>
            Created <code>{created.name}</code>. Its secret is shown this once: copy it now.
          </p>
          <div class="pull">
            <label for="robot-secret">Secret</label>
            <input id="robot-secret" readOnly value={created.secret} onFocus={(e) => (e.target as HTMLInputElement).select()} />
            <CopyButton text={created.secret} label="Copy the secret" />
            <button type="button" onClick={() => setCreated(undefined)}>
              Done
            </button>
          </div>
        </div>
      )}
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="robot accounts" />
      ) : data.robots.length === 0 ? (
        <p class="muted">No robot accounts.</p>
      ) : (
        <div class="scroll">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Robot</th>
                <th scope="col">Actions</th>
                <th scope="col">Expires</th>
                <th scope="col">Created</th>
                <th scope="col">Delete</th>
              </tr>
            </thead>
            <tbody>
              {data.robots.map((r) => (
                <tr key={r.name}>
                  <td>
                    <code class="wrap">{r.name}</code>
                  </td>
                  <td>{r.actions.join(', ')}</td>
                  <td>{r.expiresAt ? <Time ms={r.expiresAt * 1000} /> : 'never'}</td>
                  <td>
                    <Time ms={r.createdAt} /> <span class="muted">by {r.createdBy}</span>
                  </td>
                  <td>
                    <button type="button" class="danger" aria-label={`Delete ${r.name}`} onClick={() => setDeleting(r.name)}>
                      Delete…
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form
        class="toolbar"
        aria-label="Create a robot account"
        onSubmit={(e) => {
          e.preventDefault();
          const body = { name: draft.name.trim(), actions: draft.actions, ...(draft.expiresIn.trim() ? { expiresIn: draft.expiresIn.trim() } : {}) };
          void create.run(() => api<{ name: string; secret: string }>('POST', `/kiln/v1/namespaces/${ns}/robots`, body), { form: 'robot', values: draft }).then((r) => {
            if (!r) return;
            setCreated({ name: r.name, secret: r.secret });
            setDraft({ name: '', actions: ['pull'], expiresIn: '' });
            setVersion(version + 1);
          });
        }}
      >
        <label for="robot-name">Robot name</label>
        <input id="robot-name" required value={draft.name} placeholder="ci" onInput={(e) => setDraft({ ...draft, name: (e.target as HTMLInputElement).value })} />
        <fieldset>
          <legend>Actions</legend>
          {robotActions.map((a) => (
            <label key={a}>
              <input
                type="checkbox"
                checked={draft.actions.includes(a)}
                onChange={(e) => setDraft({ ...draft, actions: (e.target as HTMLInputElement).checked ? [...draft.actions, a] : draft.actions.filter((x) => x !== a) })}
              />{' '}
              {a}
            </label>
          ))}
        </fieldset>
        <span class="field">
          <label for="robot-expires">Expires in</label>
          <input id="robot-expires" value={draft.expiresIn} placeholder="never, or 30d, 12h" onInput={(e) => setDraft({ ...draft, expiresIn: (e.target as HTMLInputElement).value })} />
        </span>
        <button type="submit" disabled={create.busy}>
          {create.busy ? 'Creating…' : 'Create robot'}
        </button>
        {create.error && (
          <p class="error" role="alert">
            {create.error}
          </p>
        )}
      </form>
      {deleting && (
        <Dialog
          title={`Delete ${deleting}?`}
          submit="Delete robot"
          danger
          busy={del.busy}
          error={del.error}
          onClose={() => {
            del.clear();
            setDeleting(undefined);
          }}
          onSubmit={() =>
            void del.run(() => api('DELETE', `/kiln/v1/namespaces/${ns}/robots/${encodeURIComponent(deleting)}`)).then((r) => {
              if (r === undefined) return;
              setDeleting(undefined);
              setVersion(version + 1);
            })
          }
        >
          <p class="wrap">Its secret, and the tokens issued to it, stop working at once.</p>
        </Dialog>
      )}
    </>
  );
}
