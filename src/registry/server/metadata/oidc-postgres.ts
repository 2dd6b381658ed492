import type pg from 'pg';
import type { OidcRows } from './metadata.js';
import { toOidcAccount, toOidcLogin } from './oidc-sqlite.js';

// OidcRows on PostgreSQL (issue 21), as on SQLite (oidc-sqlite.ts): DELETE … RETURNING takes a
// sign-in in progress once, whichever replica the callback reaches.

type Row = Record<string, any>;

export function postgresOidcRows(pool: pg.Pool): OidcRows {
  return {
    async putOidcLogin(l) {
      await pool.query('DELETE FROM oidc_logins WHERE expires_at <= $1', [l.createdAt]);
      await pool.query('INSERT INTO oidc_logins (state_hash, browser_hash, nonce, verifier, next, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        l.stateHash,
        l.browserHash,
        l.nonce,
        l.verifier,
        l.next,
        l.createdAt,
        l.expiresAt,
      ]);
    },
    async takeOidcLogin(stateHash, now) {
      const r = (await pool.query<Row>('DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING *', [stateHash])).rows[0];
      return r && Number(r.expires_at) > now ? toOidcLogin(r) : undefined;
    },
    async getOidcAccount(user) {
      const r = (await pool.query<Row>('SELECT * FROM oidc_accounts WHERE user_name = $1', [user])).rows[0];
      return r ? toOidcAccount(r) : undefined;
    },
    async putOidcAccount(a) {
      await pool.query(
        `INSERT INTO oidc_accounts (user_name, subject, groups, refresh_token, checked_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_name) DO UPDATE SET subject = excluded.subject, groups = excluded.groups, refresh_token = excluded.refresh_token, checked_at = excluded.checked_at`,
        [a.user, a.subject, JSON.stringify(a.groups), a.refreshToken ?? null, a.checkedAt],
      );
    },
    async setCliSecret(user, hash, at) {
      return ((await pool.query('UPDATE oidc_accounts SET secret_hash = $1, secret_created_at = $2 WHERE user_name = $3', [hash ?? null, hash ? at : null, user])).rowCount ?? 0) > 0;
    },
  };
}
