import type Database from 'better-sqlite3';
import type { BrowseRows, SessionRecord, SessionRows, TagOrder, TagSummary } from './metadata.js';
import { IndexMediaTypes, tagOrderSql } from './browse-sql.js';

// BrowseRows and SessionRows on SQLite (issue 20). A page of tags is three statements whatever its
// length: the tags with their manifests and sizes (an index range scan on tags_pushed or the
// primary key, LIMIT n), then the pushers and the referrers of the page's digests (IN lists).

type Row = Record<string, unknown>;

export function sqliteBrowseRows(db: Database.Database, write: <T>(fn: () => T) => Promise<T>): BrowseRows & SessionRows {
  const summaries = db.prepare(`SELECT r.name,
      (SELECT COUNT(*) FROM tags t WHERE t.repo = r.name) AS tags,
      (SELECT MAX(t.updated_at) FROM tags t WHERE t.repo = r.name) AS pushed_at,
      (SELECT COALESCE(SUM(b.size), 0) FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = r.name) AS size
    FROM repositories r
    WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.name) AND (@filter IS NULL OR instr(lower(r.name), lower(@filter)) > 0)
    ORDER BY r.name`);
  const pages = new Map<string, Database.Statement>();
  const page = (order: TagOrder, after: boolean): Database.Statement => {
    const key = `${order.by}:${order.descending}:${after}`;
    let st = pages.get(key);
    if (!st) {
      const o = tagOrderSql(order, () => '?');
      st = db.prepare(`SELECT t.tag, t.digest, t.updated_at, m.media_type, m.created_at,
          length(m.body) + (SELECT COALESCE(SUM(r.size), 0) FROM manifest_refs r WHERE r.repo = t.repo AND r.digest = t.digest AND r.kind = 'blob')
            + (SELECT COALESCE(SUM(cr.size), 0) FROM manifest_refs cr WHERE cr.repo = t.repo AND cr.kind = 'blob'
               AND cr.digest IN (SELECT c.child FROM manifest_refs c WHERE c.repo = t.repo AND c.digest = t.digest AND c.kind = 'manifest')) AS size,
          CASE WHEN m.media_type IN (${IndexMediaTypes.map((x) => `'${x}'`).join(', ')}) THEN m.body END AS index_body
        FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
        WHERE t.repo = ? ${after ? `AND ${o.after}` : ''} ORDER BY ${o.orderBy} LIMIT ?`);
      pages.set(key, st);
    }
    return st;
  };
  const pushers = db.prepare("SELECT digest, actor FROM audit WHERE repository = ? AND action IN ('push', 'promote') AND digest IN (SELECT value FROM json_each(?)) ORDER BY id");
  const referrers = db.prepare('SELECT subject, artifact_type FROM manifests WHERE repo = ? AND subject IN (SELECT value FROM json_each(?)) AND artifact_type IS NOT NULL');
  const putSession = db.prepare('INSERT INTO ui_sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)');
  const getSession = db.prepare('SELECT * FROM ui_sessions WHERE id_hash = ? AND expires_at > ?');
  const deleteSession = db.prepare('DELETE FROM ui_sessions WHERE id_hash = ?');
  const purge = db.prepare('DELETE FROM ui_sessions WHERE expires_at <= ?');

  return {
    async repositorySummaries(filter) {
      return (summaries.all({ filter: filter || null }) as Row[]).map((r) => ({
        name: r.name as string,
        tags: r.tags as number,
        size: r.size as number,
        ...(r.pushed_at !== null ? { pushedAt: r.pushed_at as number } : {}),
      }));
    },
    async tagPage(repo, order, after, n) {
      const st = page(order, after !== undefined);
      const params: unknown[] = [repo];
      if (after) params.push(...(order.by === 'pushed' ? [after.pushedAt, after.tag] : [after.tag]));
      const rows = st.all(...params, n) as Row[];
      const digests = JSON.stringify([...new Set(rows.map((r) => r.digest as string))]);
      const by = new Map<string, string>();
      for (const p of pushers.all(repo, digests) as Row[]) by.set(p.digest as string, p.actor as string);
      const types = new Map<string, string[]>();
      for (const r of referrers.all(repo, digests) as Row[]) {
        const list = types.get(r.subject as string) ?? [];
        list.push(r.artifact_type as string);
        types.set(r.subject as string, list);
      }
      return rows.map((r): TagSummary => ({
        tag: r.tag as string,
        digest: r.digest as string,
        mediaType: r.media_type as string,
        pushedAt: r.updated_at as number,
        createdAt: r.created_at as number,
        size: r.size as number,
        ...(by.has(r.digest as string) ? { pushedBy: by.get(r.digest as string) } : {}),
        referrerTypes: types.get(r.digest as string) ?? [],
        ...(r.index_body ? { indexBody: r.index_body as Buffer } : {}),
      }));
    },

    putSession(x) {
      return write(() => void putSession.run(x.idHash, x.user, x.csrf, x.createdAt, x.expiresAt));
    },
    async getSession(idHash, now) {
      const r = getSession.get(idHash, now) as Row | undefined;
      return r ? toSession(r) : undefined;
    },
    deleteSession(idHash) {
      return write(() => void deleteSession.run(idHash));
    },
    purgeSessions(now) {
      return write(() => purge.run(now).changes);
    },
  };
}

export const toSession = (r: Row): SessionRecord => ({
  idHash: r.id_hash as string,
  user: r.user_name as string,
  csrf: r.csrf as string,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
});
