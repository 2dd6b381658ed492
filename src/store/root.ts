import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the store lives: $KILN_ROOT, else /var/lib/kiln for root, else $XDG_DATA_HOME/kiln
 * (~/.local/share/kiln) — the same split podman and buildah make between system and user storage.
 */
export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_ROOT) return env.KILN_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/kiln';
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'kiln');
}
