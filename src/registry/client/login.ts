import { loadRegistriesConfig, pushEndpoint, type RegistriesConfig } from './config.js';
import { eraseCredential, hostOfServer, saveCredential } from './credentials.js';
import { RegistrySession } from './session.js';
import type { RetryPolicy } from './http.js';

// `kiln login` / `kiln logout`: check credentials against the registry as docker does (a token
// from the realm, or /v2/ with Basic), then keep them where docker keeps them.

export interface LoginOptions {
  env?: NodeJS.ProcessEnv;
  config?: RegistriesConfig;
  retry?: RetryPolicy;
}

export async function login(server: string | undefined, username: string, password: string, opts: LoginOptions = {}): Promise<{ registry: string; savedTo: string }> {
  const env = opts.env ?? process.env;
  const registry = hostOfServer(server ?? 'docker.io');
  const config = opts.config ?? (await loadRegistriesConfig(env));
  const session = new RegistrySession(pushEndpoint(registry, config), { env, retry: opts.retry, credential: { username, secret: password } });
  await session.checkLogin();
  const savedTo = await saveCredential(registry, { username, secret: password }, env);
  return { registry, savedTo };
}

/** Forget the credentials of a registry; false when none were stored. */
export async function logout(server: string | undefined, opts: Pick<LoginOptions, 'env'> = {}): Promise<{ registry: string; removed: boolean }> {
  const registry = hostOfServer(server ?? 'docker.io');
  return { registry, removed: await eraseCredential(registry, opts.env ?? process.env) };
}
