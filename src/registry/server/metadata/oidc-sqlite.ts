import type Database from 'better-sqlite3';
import type { OidcAccountRecord, OidcLoginRecord, OidcRows } from './metadata.js';

// OidcRows on SQLite (issue 21). A sign-in in progress is taken by DELETE … RETURNING, so that
// two callbacks with the same state cannot both find it.

type Row = Record<string, unknown>;

export const toOidcLogin = (r: Row): OidcLoginRecord => ({
  stateHash: r.state_hash as string,
  browserHash: r.browser_hash as string,
  nonce: r.nonce as string,
  verifier: r.verifier as string,
  next: r.next as string,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
});

export const toOidcAccount = (r: Row): OidcAccountRecord => ({
  user: r.user_name as string,
  subject: r.subject as string,
  groups: JSON.parse(r.groups as string) as string[],
  ...(r.refresh_token ? { refreshToken: r.refresh_token as string } : {}),
  checkedAt: Number(r.checked_at),
  ...(r.secret_hash ? { secretHash: r.secret_hash as string, secretCreatedAt: Number(r.secret_created_at) } : {}),
});

export function sqliteOidcRows(db: Database.Database, write: <T>(fn: () => T) => Promise<T>): OidcRows {
  const purge = db.prepare('DELETE FROM oidc_logins WHERE expires_at <= ?');
  const putLogin = db.prepare('INSERT INTO oidc_logins (state_hash, browser_hash, nonce, verifier, next, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const take = db.prepare('DELETE FROM oidc_logins WHERE state_hash = ? RETURNING *');
  const getAccount = db.prepare('SELECT * FROM oidc_accounts WHERE user_name = ?');
  const putAccount = db.prepare(`INSERT INTO oidc_accounts (user_name, subject, groups, refresh_token, checked_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (user_name) DO UPDATE SET subject = excluded.subject, groups = excluded.groups, refresh_token = excluded.refresh_token, checked_at = excluded.checked_at`);
  const setSecret = db.prepare('UPDATE oidc_accounts SET secret_hash = ?, secret_created_at = ? WHERE user_name = ?');
  return {
    putOidcLogin(l) {
      return write(() => {
        purge.run(l.createdAt);
        putLogin.run(l.stateHash, l.browserHash, l.nonce, l.verifier, l.next, l.createdAt, l.expiresAt);
      });
    },
    takeOidcLogin(stateHash, now) {
      return write(() => {
        const r = take.get(stateHash) as Row | undefined;
        return r && Number(r.expires_at) > now ? toOidcLogin(r) : undefined;
      });
    },
    async getOidcAccount(user) {
      const r = getAccount.get(user) as Row | undefined;
      return r ? toOidcAccount(r) : undefined;
    },
    putOidcAccount(a) {
      return write(() => void putAccount.run(a.user, a.subject, JSON.stringify(a.groups), a.refreshToken ?? null, a.checkedAt));
    },
    setCliSecret(user, hash, at) {
      return write(() => setSecret.run(hash ?? null, hash ? at : null, user).changes > 0);
    },
  };
}
