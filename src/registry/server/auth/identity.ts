import { KilnError } from '../../../errors.js';
import type { Metadata } from '../metadata/metadata.js';
import { verifyPassword } from './passwords.js';

// Who vouches for a user name and password. The registry's own users are one identity provider;
// a directory (LDAP, ldap.ts) is another, and an OpenID Provider can be a third: each answers with
// the user and the groups it says the user is in, or refuses. Groups map to roles in namespaces
// (group bindings, groups.ts), so a provider never needs to know about namespaces.

export interface Identity {
  /** The user's name as the provider spells it (a directory may match "ALICE" to uid alice). */
  user: string;
  /** Groups the provider says the user is in, read at this sign-in. */
  groups: string[];
  /** The provider's name: "local", "ldap". */
  provider: string;
}

/** A provider's no: the password is wrong, the user unknown or not allowed. `why` is for the log, not the client. */
export interface Refusal {
  refused: string;
}

export interface IdentityProvider {
  readonly name: string;
  /**
   * Check a user name and password. undefined: the name is not one this provider answers for
   * (the next provider is asked). Throws ProviderUnavailable when it cannot tell, so that an
   * outage refuses the sign-in instead of passing it.
   */
  authenticate(name: string, password: string): Promise<Identity | Refusal | undefined>;
  /** The user and groups as they are now, without a password (token refresh, role listings); undefined when unknown. */
  lookup(name: string): Promise<Identity | undefined>;
  close(): Promise<void>;
}

/** The provider could not answer (a directory down or misconfigured); the message says why. */
export class ProviderUnavailable extends KilnError {
  constructor(
    readonly provider: string,
    why: string,
  ) {
    super(`${provider}: ${why}`);
  }
}

export const isRefusal = (v: Identity | Refusal | undefined): v is Refusal => !!v && 'refused' in v;

/**
 * The registry's own users (kiln registry user add): argon2id hashes in the metadata. A record
 * another provider made at a first sign-in (it has `provider` set) is not a local user.
 */
export function localUsers(metadata: Metadata): IdentityProvider {
  return {
    name: 'local',
    async authenticate(name, password) {
      const u = await metadata.getUser(name);
      if (!u || u.provider) return undefined;
      if (!(await verifyPassword(u.passwordHash, password))) return { refused: 'wrong password' };
      return { user: u.name, groups: [], provider: 'local' };
    },
    async lookup(name) {
      const u = await metadata.getUser(name);
      return u && !u.provider ? { user: u.name, groups: [], provider: 'local' } : undefined;
    },
    async close() {},
  };
}
