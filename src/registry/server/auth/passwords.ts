import argon2 from 'argon2';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// Passwords are hashed with argon2id (memory-hard; RFC 9106). Verifying costs tens of milliseconds
// on purpose, so a successful check is remembered briefly: docker and podman log in for every
// scope they need, and Basic auth on /v2/ sends the password with every request.

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

const remembered = new Map<string, number>();
const RememberMs = 5 * 60 * 1000;

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  const key = createHash('sha256').update(hash).update('\0').update(password).digest('base64');
  const until = remembered.get(key);
  if (until && until > Date.now()) return true;
  let ok = false;
  try {
    ok = await argon2.verify(hash, password);
  } catch {
    ok = false;
  }
  if (ok) {
    if (remembered.size > 10_000) remembered.clear();
    remembered.set(key, Date.now() + RememberMs);
  }
  return ok;
}

/** Robot secrets are 32 random bytes: a fast hash is enough, there is nothing to guess. */
export function newRobotSecret(): { secret: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, hash: hashRobotSecret(secret) };
}

export function hashRobotSecret(secret: string): string {
  return 'sha256:' + createHash('sha256').update(secret).digest('hex');
}

export function robotSecretMatches(hash: string, secret: string): boolean {
  const a = Buffer.from(hash);
  const b = Buffer.from(hashRobotSecret(secret));
  return a.length === b.length && timingSafeEqual(a, b);
}
