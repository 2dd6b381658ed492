// A throwaway PostgreSQL 15 cluster for tests (Debian's postgresql-15): its own data directory in a
// temporary directory, a unix socket there and a free loopback TCP port, trust authentication,
// durability off (fsync, synchronous_commit, full_page_writes: a test never survives a crash).
//
// initdb and postgres refuse to run as root, so both run as the `postgres` system user that the
// Debian package creates, in directories chowned to it. initdb takes ~1.5 s here, so it runs once
// into a template kept in the temporary directory that every cluster copies (cp -a, ~0.1 s); the
// server itself is ready in ~0.3 s. postgres runs in the foreground (not pg_ctl, which daemonises) so the PID is the
// postmaster's, and it is stopped by that PID with SIGINT, PostgreSQL's "fast" shutdown.

import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, requireBinary, runToLog, startDaemon, waitUntil, type Daemon, type TestContextLike } from './daemon.js';

const bin = '/usr/lib/postgresql/15/bin';
const user = 'kiln';
const database = 'kiln';

export interface Postgres {
  /** postgres://kiln@127.0.0.1:PORT/kiln (trust authentication, no password). */
  readonly url: string;
  readonly port: number;
  /** Directory of the unix socket (.s.PGSQL.PORT), for clients that prefer it. */
  readonly socketDir: string;
  readonly logFile: string;
  /** Fast shutdown: open connections are ended, the data stays. */
  stop(): Promise<void>;
  /** Stops, waits `downMs` (for tests of what clients see meanwhile), starts again on the same port with the same data. */
  restart(downMs?: number): Promise<void>;
  /** A new database on the server (a copy of `template` when given), so a test shares no rows with others; its URL. */
  createDatabase(name: string, template?: string): Promise<string>;
}

interface SystemUser {
  uid: number;
  gid: number;
}

function postgresUser(): SystemUser {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('no `postgres` system user: install the Debian package postgresql-15 (scripts/setup.sh does, as root)');
  }
}

let template: Promise<string> | undefined;

/**
 * A data directory made by initdb, with the kiln role and database in it, kept in the temporary
 * directory under a name given by the server's version and the recipe, and shared by every test
 * process: made in a directory of its own, then renamed into place, so that a template that exists
 * is complete (a process that loses the race uses the winner's).
 */
function templateDataDir(owner: SystemUser): Promise<string> {
  // 1 MiB WAL segments instead of 16: the template, copied for every cluster, is 30 MB instead of 46
  const initdbArgs = ['-U', user, '--auth=trust', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C.UTF-8', '--wal-segsize=1'];
  template ??= (async () => {
    const version = execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
    const key = createHash('sha256').update(JSON.stringify([version, initdbArgs, database])).digest('hex').slice(0, 12);
    const final = join(tmpdir(), `kiln-pg-template-${key}`);
    if (existsSync(final)) return join(final, 'data');
    const dir = await mkdtemp(`${final}.tmp-`);
    try {
      await chown(dir, owner.uid, owner.gid);
      const data = join(dir, 'data');
      const log = join(dir, 'initdb.log');
      const env = { ...process.env, HOME: dir, LC_ALL: 'C.UTF-8' };
      await runToLog(join(bin, 'initdb'), ['-D', data, ...initdbArgs], { logFile: log, ...owner, env, cwd: dir });
      // single-user mode makes the database without starting a server
      await runToLog(join(bin, 'postgres'), ['--single', '-D', data, '-c', 'fsync=off', 'postgres'], { logFile: log, ...owner, env, cwd: dir, input: `CREATE DATABASE ${database};\n` });
      await rename(dir, final).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST' && err.code !== 'ENOTEMPTY') throw err;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return join(final, 'data');
  })();
  return template;
}

/**
 * Starts a PostgreSQL 15 cluster that is stopped and deleted when the test ends; for one cluster
 * shared by a describe(), pass suiteScope() from ./daemon.js.
 */
export async function startPostgres(t: TestContextLike): Promise<Postgres> {
  requireBinary(join(bin, 'postgres'), 'postgresql-15');
  const owner = postgresUser();
  const dir = await mkdtemp(join(tmpdir(), 'kiln-pg-'));
  let server: Daemon | undefined;
  t.after(async () => {
    await server?.stop('SIGINT');
    await rm(dir, { recursive: true, force: true });
  });
  await chown(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  await runToLog('cp', ['-a', await templateDataDir(owner), data], { logFile });

  let port = 0;
  const start = async (): Promise<Daemon> => {
    const d = startDaemon('postgres', join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
    ], { logFile, ...owner, env: { ...process.env, HOME: dir, LC_ALL: 'C.UTF-8' }, cwd: dir });
    // postmaster.pid names the postmaster on its first line and says "ready" on its eighth once
    // connections are accepted (PostgreSQL 10+)
    const ready = async () => {
      const lines = (await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n');
      return lines[0] === String(d.pid) && lines[7]?.trim() === 'ready';
    };
    try {
      await waitUntil(d, 'ready', ready);
    } catch (err) {
      await d.stop('SIGKILL');
      throw err;
    }
    return d;
  };
  // another process may take the free port before postgres binds it: try a new one
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      server = await start();
      break;
    } catch (err) {
      const lostRace = /could not (bind|create listen socket)/.test(await logTail(logFile, 10));
      if (!lostRace || attempt === 3) throw err;
    }
  }

  const url = `postgres://${user}@127.0.0.1:${port}/${database}`;
  return {
    url,
    port,
    socketDir: dir,
    logFile,
    stop: async () => {
      await server?.stop('SIGINT');
    },
    restart: async (downMs = 0) => {
      await server?.stop('SIGINT');
      await new Promise((resolve) => setTimeout(resolve, downMs));
      server = await start();
    },
    createDatabase: async (name, template) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
      } finally {
        await client.end();
      }
      return url.replace(new RegExp(`/${database}$`), `/${name}`);
    },
  };
}
