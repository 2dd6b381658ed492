import { readFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';

/** Set in the re-executed process so it does not try again. */
const Marker = 'KILN_USERNS';

/** Whether this process runs in a user namespace other than the initial one (rootless mode). */
export function inUserNamespace(): boolean {
  try {
    const map = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return !(map[0] === '0' && map[1] === '0' && map[2] === '4294967295');
  } catch {
    return false;
  }
}

/** Whether the user has subordinate id ranges, so images with several owners can be represented. */
function hasSubordinateIds(): boolean {
  const name = userInfo().username;
  const uid = String(process.getuid?.());
  try {
    return ['/etc/subuid', '/etc/subgid'].every((f) =>
      existsSync(f) && readFileSync(f, 'utf8').split('\n').some((l) => l.split(':')[0] === name || l.split(':')[0] === uid),
    ) && existsSync('/usr/bin/newuidmap');
  } catch {
    return false;
  }
}

/**
 * Rootless mode, as buildah and podman do it: a non-root user re-runs kiln inside a new user and mount
 * namespace where it is root, with the user's /etc/subuid and /etc/subgid ranges mapped through
 * newuidmap/newgidmap when present, or only its own id otherwise. Returns the child's exit code, or
 * undefined when no re-exec is needed (already root, or already inside).
 */
export async function reexecInUserNamespace(argv: string[] = process.argv): Promise<number | undefined> {
  if (process.getuid?.() === 0 || process.env[Marker] === '1') return undefined;
  const mapping = hasSubordinateIds() ? ['--map-root-user', '--map-auto'] : ['--map-root-user'];
  if (mapping.length === 1) {
    process.stderr.write(
      `kiln: no /etc/subuid and /etc/subgid range for ${userInfo().username}: only your own id is mapped, ` +
        'so files owned by other users in images cannot be represented (chown to them fails)\n',
    );
  }
  const child = spawn('unshare', [...mapping, '--mount', '--propagation', 'private', '--', argv[0]!, ...process.execArgv, ...argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [Marker]: '1' },
  });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`rootless mode needs unshare (util-linux): ${e.message}`)));
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
  });
}
