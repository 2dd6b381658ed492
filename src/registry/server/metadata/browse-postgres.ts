import type pg from 'pg';
import type { BrowseRows, SessionRows, TagSummary } from './metadata.js';
import { IndexMediaTypes, tagOrderSql } from './browse-sql.js';
import { toSession } from './browse-sqlite.js';

// BrowseRows and SessionRows on PostgreSQL (issue 20): the same three statements per page of tags
// as on SQLite (browse-sqlite.ts), with arrays (= ANY) for the page's digests.

type Row = Record<string, any>;

export function postgresBrowseRows(pool: pg.Pool): BrowseRows & SessionRows {
  const read = async (sql: string, params: unknown[]): Promise<Row[]> => (await pool.query<Row>(sql, params)).rows;
  return {
    async repositorySummaries(filter) {
      const rows = await read(
        `SELECT r.name,
           (SELECT COUNT(*) FROM tags t WHERE t.repo = r.name) AS tags,
           (SELECT MAX(t.updated_at) FROM tags t WHERE t.repo = r.name) AS pushed_at,
           (SELECT COALESCE(SUM(b.size), 0)::bigint FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = r.name) AS size
         FROM repositories r
         WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.name) AND ($1::text IS NULL OR strpos(lower(r.name), lower($1::text)) > 0)
         ORDER BY r.name`,
        [filter || null],
      );
      return rows.map((r) => ({ name: r.name, tags: Number(r.tags), size: Number(r.size), ...(r.pushed_at !== null ? { pushedAt: Number(r.pushed_at) } : {}) }));
    },
    async tagPage(repo, order, after, n) {
      let i = 1;
      const o = tagOrderSql(order, () => `$${++i}`);
      const params: unknown[] = [repo];
      if (after) params.push(...(order.by === 'pushed' ? [after.pushedAt, after.tag] : [after.tag]));
      params.push(n);
      const rows = await read(
        `SELECT t.tag, t.digest, t.updated_at, m.media_type, m.created_at,
           (octet_length(m.body) + (SELECT COALESCE(SUM(r.size), 0) FROM manifest_refs r WHERE r.repo = t.repo AND r.digest = t.digest AND r.kind = 'blob')
             + (SELECT COALESCE(SUM(cr.size), 0) FROM manifest_refs cr WHERE cr.repo = t.repo AND cr.kind = 'blob'
               AND cr.digest IN (SELECT c.child FROM manifest_refs c WHERE c.repo = t.repo AND c.digest = t.digest AND c.kind = 'manifest')))::bigint AS size,
           CASE WHEN m.media_type IN (${IndexMediaTypes.map((x) => `'${x}'`).join(', ')}) THEN m.body END AS index_body
         FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
         WHERE t.repo = $1 ${after ? `AND ${o.after}` : ''} ORDER BY ${o.orderBy} LIMIT $${after ? i + 1 : 2}`,
        params,
      );
      const digests = [...new Set(rows.map((r) => r.digest as string))];
      const [pushers, referrers] = await Promise.all([
        read("SELECT digest, actor FROM audit WHERE repository = $1 AND action IN ('push', 'promote') AND digest = ANY($2) ORDER BY id", [repo, digests]),
        read('SELECT subject, artifact_type FROM manifests WHERE repo = $1 AND subject = ANY($2) AND artifact_type IS NOT NULL', [repo, digests]),
      ]);
      const by = new Map<string, string>(pushers.map((p) => [p.digest, p.actor]));
      const types = new Map<string, string[]>();
      for (const r of referrers) types.set(r.subject, [...(types.get(r.subject) ?? []), r.artifact_type]);
      return rows.map((r): TagSummary => ({
        tag: r.tag,
        digest: r.digest,
        mediaType: r.media_type,
        pushedAt: Number(r.updated_at),
        createdAt: Number(r.created_at),
        size: Number(r.size),
        ...(by.has(r.digest) ? { pushedBy: by.get(r.digest) } : {}),
        referrerTypes: types.get(r.digest) ?? [],
        ...(r.index_body ? { indexBody: r.index_body as Buffer } : {}),
      }));
    },

    async putSession(x) {
      await pool.query('INSERT INTO ui_sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [x.idHash, x.user, x.csrf, x.createdAt, x.expiresAt]);
    },
    async getSession(idHash, now) {
      const r = (await read('SELECT * FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2', [idHash, now]))[0];
      return r ? toSession(r) : undefined;
    },
    async deleteSession(idHash) {
      await pool.query('DELETE FROM ui_sessions WHERE id_hash = $1', [idHash]);
    },
    async purgeSessions(now) {
      return (await pool.query('DELETE FROM ui_sessions WHERE expires_at <= $1', [now])).rowCount ?? 0;
    },
  };
}
