import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startDaemon, waitUntil, type TestContextLike } from './daemon.js';
import { tempDir } from './env.js';

// A real OpenID Provider on loopback for tests (oidc-op.ts, panva's oidc-provider), in a process
// of its own stopped by its PID when the scope ends.

export interface OpUser {
  password: string;
  username?: string;
  groups: string[];
}

export interface TestOp {
  readonly issuer: string;
  readonly pid: number;
  /** The account is gone at the provider (its refresh grants fail) until enable(). */
  disable(user: string): Promise<void>;
  enable(user: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startOp(scope: TestContextLike, o: { clients: { client_id: string; client_secret: string; redirect_uris: string[] }[]; users: Record<string, OpUser> }): Promise<TestOp> {
  const dir = await tempDir(scope, 'kiln-op-');
  const port = await freePort();
  const file = join(dir, 'op.json');
  await writeFile(file, JSON.stringify({ port, ...o }));
  const script = fileURLToPath(new URL('./oidc-op.js', import.meta.url));
  const daemon = startDaemon('oidc-provider', process.execPath, [script, file], { logFile: join(dir, 'op.log') });
  scope.after(() => daemon.stop());
  const issuer = `http://127.0.0.1:${port}`;
  await waitUntil(daemon, 'serving discovery', async () => (await fetch(`${issuer}/.well-known/openid-configuration`)).ok, 15_000);
  const control = async (what: string, user: string) => {
    const r = await fetch(`${issuer}/_test/${what}?user=${encodeURIComponent(user)}`, { method: 'POST' });
    if (r.status !== 204) throw new Error(`${what} ${user}: ${r.status}`);
  };
  return { issuer, pid: daemon.pid, disable: (u) => control('disable', u), enable: (u) => control('enable', u), stop: () => daemon.stop() };
}
