import type { Metadata } from '../metadata/metadata.js';
import type { AuditLog } from '../audit.js';
import { RegistryError } from '../errors.js';
import type { IdentityProvider } from './identity.js';
import type { OidcSignIn } from './oidc.js';
import { newRobotSecret, robotSecretMatches } from './passwords.js';

// CLI secrets (issue 21), as Harbor's: a user of an OpenID Provider has no password the registry
// could check, so `docker login`, `skopeo login` and Basic credentials take a secret the user makes
// on their account page instead. It is 32 random bytes and only its SHA-256 is kept: with that
// much entropy there is nothing to guess, so the slow hash passwords need (argon2id, which costs
// tens of milliseconds, on every /token request docker makes) buys nothing. Each use also asks
// the provider again once auth.oidc.recheck has passed (OidcSignIn.current), so a user disabled
// at the provider loses access within that bound.

export interface CliSecrets {
  /** Whether the user has one, and since when. */
  status(user: string): Promise<{ exists: boolean; createdAt?: number }>;
  /** Make a new secret (replacing any): the only time it is shown. */
  create(user: string, actor: string, address: string): Promise<{ secret: string; createdAt: number }>;
  revoke(user: string, actor: string, address: string): Promise<void>;
}

export function cliSecrets(metadata: Metadata, audit?: AuditLog): CliSecrets {
  return {
    async status(user) {
      const a = await metadata.getOidcAccount(user);
      return a?.secretHash ? { exists: true, createdAt: a.secretCreatedAt } : { exists: false };
    },
    async create(user, actor, address) {
      const a = await metadata.getOidcAccount(user);
      if (!a) throw new RegistryError('bad-request', `${user} is not a user of the OpenID Provider: CLI secrets are for them (others log in with their password)`);
      const { secret, hash } = newRobotSecret();
      const createdAt = Date.now();
      await metadata.setCliSecret(user, hash, createdAt);
      audit?.record({ actor, action: a.secretHash ? 'cli-secret-regenerate' : 'cli-secret-create', detail: `for ${user}`, address });
      return { secret, createdAt };
    },
    async revoke(user, actor, address) {
      const a = await metadata.getOidcAccount(user);
      if (!a?.secretHash) throw new RegistryError('bad-request', `${user} has no CLI secret`);
      await metadata.setCliSecret(user, undefined, Date.now());
      audit?.record({ actor, action: 'cli-secret-revoke', detail: `for ${user}`, address });
    },
  };
}

/** Users of the OpenID Provider, signing in with their CLI secret. */
export function cliSecretUsers(metadata: Metadata, oidc: OidcSignIn): IdentityProvider {
  const isOidcUser = async (name: string) => (await metadata.getUser(name))?.provider === 'oidc';
  return {
    name: 'oidc',
    async authenticate(name, secret) {
      if (!(await isOidcUser(name))) return undefined;
      const a = await metadata.getOidcAccount(name);
      if (!a?.secretHash) return { refused: 'no CLI secret (create one on the account page of the web UI)' };
      if (!robotSecretMatches(a.secretHash, secret)) return { refused: 'wrong CLI secret' };
      const now = await oidc.current(name);
      if ('refused' in now) return now;
      return { user: name, groups: now.groups, provider: 'oidc' };
    },
    async lookup(name) {
      if (!(await isOidcUser(name))) return undefined;
      const now = await oidc.current(name);
      return 'refused' in now ? undefined : { user: name, groups: now.groups, provider: 'oidc' };
    },
    async close() {},
  };
}
