import { readFileSync } from 'node:fs';
import { Client, FilterParser, InvalidCredentialsError, ResultCodeError, SizeLimitExceededError, type Entry } from 'ldapts';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { UsageError } from '../../../errors.js';
import { ProviderUnavailable, type Identity, type IdentityProvider } from './identity.js';

// Sign-in against an LDAP directory (OpenLDAP, Active Directory), the usual "search then bind":
// a service account searches the user's entry by the user filter, the password is checked by a
// simple bind as that entry's DN (RFC 4513 section 5.1.3), and the groups are the entries the
// group filter finds with the user's DN or name in it. Searches share a few connections bound as
// the service account; each password check binds on a connection of its own, which is closed
// right after, so a user's bind never changes who the shared connections are.

export interface LdapOptions {
  /** ldap://host:port or ldaps://host:port. */
  url: string;
  /** Upgrade ldap:// connections with the StartTLS extended operation (RFC 4511 section 4.14). */
  startTLS: boolean;
  /** PEM CA bundle the server's certificate must chain to (ldaps:// and StartTLS). */
  ca?: string;
  bindDN: string;
  bindPassword: string;
  userBase: string;
  /** With {username}: "(uid={username})". */
  userFilter: string;
  /** The attribute that names the user (its value becomes the registry user name). */
  usernameAttribute: string;
  groupBase?: string;
  /** With {dn} and/or {username}: "(member={dn})". */
  groupFilter?: string;
  groupNameAttribute: string;
  /** Seconds for connecting and for each operation. */
  timeout: number;
  /** Connections bound as the service account. */
  poolSize: number;
}

/**
 * RFC 4515 section 3: in a filter's assertion value, `*`, `(`, `)`, `\` and NUL are written as
 * `\` and two hex digits. Other characters stay as they are (UTF-8 is allowed there), so that a
 * name such as jürgen reaches the server as the UTF-8 it is.
 */
export function escapeFilterValue(v: string): string {
  return v.replace(/[*()\\\0]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

/** Put escaped values in a filter template: {username}, {dn}. */
export function fillFilter(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? escapeFilterValue(values[k]!) : m));
}

/** Refuse a filter template the server could not take, or one without any of its placeholders (a config error, found at start). */
export function checkFilter(template: string, what: string, placeholders: string[]): void {
  if (!placeholders.some((p) => template.includes(`{${p}}`))) throw new UsageError(`${what}: "${template}" has no ${placeholders.map((p) => `{${p}}`).join(' or ')}`);
  try {
    FilterParser.parseString(fillFilter(template, Object.fromEntries(placeholders.map((p) => [p, 'x']))));
  } catch (e) {
    throw new UsageError(`${what}: "${template}" is not an LDAP filter (RFC 4515): ${(e as Error).message}`);
  }
}

/** The values of an attribute of a search entry, as strings. */
function values(e: Entry, attribute: string): string[] {
  const key = Object.keys(e).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const v = key === undefined ? undefined : e[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

export function ldapProvider(o: LdapOptions): IdentityProvider {
  let ca: string | undefined;
  if (o.ca) {
    try {
      ca = readFileSync(o.ca, 'utf8');
    } catch (e) {
      throw new Error(`auth.ldap.ca ${o.ca}: ${(e as Error).message}`);
    }
  }
  const host = new URL(o.url).hostname;
  // The certificate must name the URL's host. SNI takes host names only (RFC 6066 section 3), and
  // StartTLS upgrades a socket Node does not know the host of, so an IP address is checked by hand.
  const tls: ConnectionOptions = {
    ...(ca ? { ca } : {}),
    ...(isIP(host) ? { checkServerIdentity: (_: string, cert: PeerCertificate) => checkServerIdentity(host, cert) } : { servername: host }),
  };
  const ms = Math.max(1, Math.round(o.timeout * 1000));
  const where = o.url;

  const unavailable = (e: unknown, doing: string): ProviderUnavailable => {
    if (e instanceof ProviderUnavailable) return e;
    if (e instanceof ResultCodeError) return new ProviderUnavailable('ldap', `${doing} at ${where} failed: ${e.message} (LDAP result ${e.code})`);
    // Socket errors (ECONNREFUSED, ETIMEDOUT…), ldapts's timeouts and closed connections: the server is not there.
    const msg = (e instanceof Error ? e.message : String(e)).split('\n').filter(Boolean).pop() ?? 'unknown error';
    const code = String((e as { code?: unknown }).code ?? '');
    if (/CERT|TLS|SSL/.test(code) || /certificate/i.test(msg)) return new ProviderUnavailable('ldap', `TLS with ${where} failed: ${msg} (auth.ldap.ca)`);
    return new ProviderUnavailable('ldap', `cannot reach ${where}: ${msg}`);
  };

  /** A connected client (StartTLS done when asked for); connecting failures are ProviderUnavailable. */
  const connect = async (): Promise<Client> => {
    // ldapts speaks TLS from the start whenever tlsOptions are given, so only ldaps:// gets them.
    const c = new Client({ url: o.url, timeout: ms, connectTimeout: ms, ...(o.url.startsWith('ldaps:') ? { tlsOptions: tls } : {}) });
    try {
      if (o.startTLS) await c.startTLS(tls);
      return c;
    } catch (e) {
      await c.unbind().catch(() => {});
      throw unavailable(e, 'connecting');
    }
  };

  // The shared connections, bound as the service account. ldapts reconnects by itself when a
  // connection was closed, but unbound and without StartTLS, so a slot whose client lost its
  // connection gets a new client, set up again, before its next use.
  const slots: { client?: Client; ready?: Promise<Client>; settled?: boolean }[] = Array.from({ length: Math.max(1, o.poolSize) }, () => ({}));
  let next = 0;
  const serviceClient = (): Promise<Client> => {
    const slot = slots[next++ % slots.length]!;
    if (slot.ready && (!slot.settled || slot.client?.isConnected)) return slot.ready;
    const old = slot.client;
    if (old) void old.unbind().catch(() => {});
    slot.client = undefined;
    slot.settled = false;
    slot.ready = (async () => {
      const c = await connect();
      slot.client = c;
      try {
        await c.bind(o.bindDN, o.bindPassword);
        slot.settled = true;
        return c;
      } catch (e) {
        await c.unbind().catch(() => {});
        throw e instanceof InvalidCredentialsError ? new ProviderUnavailable('ldap', `the service account ${o.bindDN} may not bind at ${where}: invalid credentials (auth.ldap.bindDN, bindPassword)`) : unavailable(e, 'binding as the service account');
      }
    })();
    slot.ready.catch(() => {
      slot.client = undefined;
      slot.ready = undefined;
    });
    return slot.ready;
  };

  const search = async (base: string, filter: string, attributes: string[], sizeLimit = 0): Promise<Entry[]> => {
    const c = await serviceClient();
    try {
      return (await c.search(base, { scope: 'sub', filter, attributes, sizeLimit })).searchEntries;
    } catch (e) {
      if (e instanceof SizeLimitExceededError) throw e;
      throw unavailable(e, `searching ${base} for ${filter}`);
    }
  };

  /** The user's entry (DN and name) found by the user filter; undefined when none or several match. */
  const findUser = async (name: string): Promise<{ dn: string; user: string } | { refused: string }> => {
    let entries: Entry[];
    try {
      entries = await search(o.userBase, fillFilter(o.userFilter, { username: name }), [o.usernameAttribute], 2);
    } catch (e) {
      if (e instanceof SizeLimitExceededError) return { refused: 'the user filter matches several entries' };
      throw e;
    }
    if (entries.length === 0) return { refused: 'no such user' };
    if (entries.length > 1) return { refused: 'the user filter matches several entries' };
    const e = entries[0]!;
    const names = values(e, o.usernameAttribute);
    // The directory's spelling of the name (uid matches case-insensitively), so "ALICE" and
    // "alice" are one registry user.
    const user = names.find((n) => n.normalize('NFC').toLowerCase() === name.normalize('NFC').toLowerCase()) ?? names[0];
    if (!user) return { refused: `the entry ${e.dn} has no ${o.usernameAttribute}` };
    return { dn: e.dn, user };
  };

  const groupsOf = async (dn: string, user: string): Promise<string[]> => {
    if (!o.groupBase || !o.groupFilter) return [];
    const entries = await search(o.groupBase, fillFilter(o.groupFilter, { dn, username: user }), [o.groupNameAttribute]);
    return [...new Set(entries.flatMap((e) => values(e, o.groupNameAttribute)))].sort();
  };

  /** A simple bind as `dn` on a connection of its own: true when the password is right. */
  const passwordMatches = async (dn: string, password: string): Promise<boolean> => {
    const c = await connect();
    try {
      await c.bind(dn, password);
      return true;
    } catch (e) {
      if (e instanceof InvalidCredentialsError) return false;
      throw unavailable(e, `binding as ${dn}`);
    } finally {
      await c.unbind().catch(() => {});
    }
  };

  return {
    name: 'ldap',
    async authenticate(name, password): Promise<Identity | { refused: string }> {
      // RFC 4513 section 5.1.2: a simple bind with a DN and an empty password is an
      // "unauthenticated" bind that servers may accept; it must never count as a password check.
      if (password === '') return { refused: 'empty password' };
      if (name === '' || name.length > 256 || /[\0-\x1f\x7f]/.test(name)) return { refused: 'not a user name' };
      const found = await findUser(name);
      if ('refused' in found) return found;
      if (!(await passwordMatches(found.dn, password))) return { refused: 'wrong password' };
      return { user: found.user, groups: await groupsOf(found.dn, found.user), provider: 'ldap' };
    },
    async lookup(name) {
      const found = await findUser(name);
      if ('refused' in found) return undefined;
      return { user: found.user, groups: await groupsOf(found.dn, found.user), provider: 'ldap' };
    },
    async close() {
      await Promise.all(slots.map(async (s) => s.client?.unbind().catch(() => {})));
    },
  };
}
