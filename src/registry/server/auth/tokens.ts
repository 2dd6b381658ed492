import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SignJWT, jwtVerify, exportJWK, calculateJwkThumbprint } from 'jose';

// Bearer tokens as the Docker registry token specification describes them (distribution's
// docs/spec/auth/jwt.md): a JWT signed by the token service, with iss, sub, aud (the service),
// exp, nbf, iat, jti and an `access` claim listing the granted actions per resource.

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  sub: string;
  access: AccessEntry[];
  /** Unix seconds. */
  exp: number;
  refresh: boolean;
  /** The identity provider's groups of the user that have a role somewhere (kiln_groups), read when the token was issued. */
  groups?: string[];
}

export class TokenInvalid extends Error {}

export interface TokenAuthority {
  issue(subject: string, access: AccessEntry[], ttlSeconds: number, refresh?: boolean, groups?: readonly string[]): Promise<{ token: string; expiresIn: number; issuedAt: string }>;
  /** Verify signature, issuer, audience and time; throws TokenInvalid. Verified tokens are remembered until they expire. */
  verify(token: string): Promise<TokenClaims>;
  readonly publicKey: KeyObject;
}

/** Read the signing key, or create an EC P-256 key (ES256) the first time. */
export async function loadSigningKey(path: string): Promise<KeyObject> {
  try {
    return createPrivateKey(await readFile(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await mkdir(dirname(path), { recursive: true });
  try {
    await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { flag: 'wx', mode: 0o600 });
    return privateKey;
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return createPrivateKey(await readFile(path, 'utf8'));
    throw e;
  }
}

export async function tokenAuthority(opts: { key: KeyObject; issuer: string; audience: string }): Promise<TokenAuthority> {
  const publicKey = createPublicKey(opts.key);
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  const verified = new Map<string, TokenClaims>();

  return {
    publicKey,
    async issue(subject, access, ttl, refresh = false, groups) {
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ access, ...(refresh ? { kiln_refresh: true } : {}), ...(groups?.length ? { kiln_groups: [...groups] } : {}) })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
        .setIssuer(opts.issuer)
        .setSubject(subject)
        .setAudience(opts.audience)
        .setIssuedAt(now)
        .setNotBefore(now - 10)
        .setExpirationTime(now + ttl)
        .setJti(randomUUID());
      return { token: await jwt.sign(opts.key), expiresIn: ttl, issuedAt: new Date(now * 1000).toISOString() };
    },

    async verify(token) {
      const hit = verified.get(token);
      if (hit) {
        if (hit.exp * 1000 > Date.now()) return hit;
        verified.delete(token);
        throw new TokenInvalid('token expired');
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(token, publicKey, { issuer: opts.issuer, audience: opts.audience, algorithms: ['ES256'], clockTolerance: 5 }));
      } catch (e) {
        throw new TokenInvalid(`invalid token: ${(e as Error).message}`);
      }
      const access = Array.isArray(payload.access) ? (payload.access as unknown[]) : [];
      const claims: TokenClaims = {
        sub: typeof payload.sub === 'string' ? payload.sub : '',
        exp: payload.exp ?? 0,
        refresh: payload.kiln_refresh === true,
        ...(Array.isArray(payload.kiln_groups) ? { groups: payload.kiln_groups.filter((g): g is string => typeof g === 'string') } : {}),
        access: access
          .filter((a): a is AccessEntry => typeof a === 'object' && a !== null && typeof (a as AccessEntry).name === 'string' && Array.isArray((a as AccessEntry).actions))
          .map((a) => ({ type: String(a.type), name: a.name, actions: a.actions.map(String) })),
      };
      if (verified.size > 10_000) verified.clear();
      verified.set(token, claims);
      return claims;
    },
  };
}
