// A real load balancer for tests of registry replicas (Debian's haproxy): round robin without
// affinity over the given backends, on a free loopback port, with its configuration and its log
// in a temporary directory.
//
// What it does is what a production balancer in front of kiln replicas would: health checks
// (GET /v2/ every 200 ms, down after two failures) take a dead replica out within about a second,
// and until then a request that could not reach a replica (refused connection, connection closed
// without an answer, no answer in time) goes to another one: `retries 3` with `option redispatch`
// and `retry-on`. haproxy itself retries only where that is safe: a request that never reached a
// server, or an idempotent one whose server answered nothing. Timeouts are generous, uploads are slow.
// It runs in the foreground (-db) so the PID we hold is haproxy's own, and is stopped by that PID.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './env.js';
import { freePort, logTail, requireBinary, startDaemon, waitUntil, type Daemon, type TestContextLike } from './daemon.js';

const bin = '/usr/sbin/haproxy';

export interface Haproxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

function config(port: number, backends: string[]): string {
  return `global
  # request log lines and haproxy's own messages go to its standard output, the log file
  log stdout format raw local0
  maxconn 4096

defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  timeout http-request 30s
  timeout check 1s
  # a request that could not be delivered goes to another replica, three times at most
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout

frontend registry
  bind 127.0.0.1:${port}
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk GET /v2/
  http-check expect status 200
  # checked every 200 ms, down after 2 failures, up again after 2 successes
  default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2
${backends.map((b, i) => `  server replica${i} ${b} check`).join('\n')}
`;
}

/** Starts haproxy in front of `backends` (host:port each); stopped when the test ends. */
export async function startHaproxy(t: TestContextLike, backends: string[]): Promise<Haproxy> {
  requireBinary(bin, 'haproxy');
  const dir = await tempDir(t, 'kiln-haproxy-');
  const logFile = join(dir, 'haproxy.log');
  const cfg = join(dir, 'haproxy.cfg');
  let d: Daemon | undefined;
  t.after(async () => {
    await d?.stop('SIGTERM', 3000);
  });
  // another process may take the free port before haproxy binds it: try a new one
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await writeFile(cfg, config(port, backends));
    d = startDaemon('haproxy', bin, ['-db', '-f', cfg], { logFile, cwd: dir });
    const url = `http://127.0.0.1:${port}`;
    try {
      // through haproxy to a replica: both are up
      await waitUntil(d, `answering on ${url}`, async () => (await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) })).status === 200, 15_000);
    } catch (err) {
      await d.stop('SIGKILL');
      const lostRace = /cannot bind socket/.test(await logTail(logFile, 10));
      if (!lostRace || attempt === 3) throw err;
      continue;
    }
    const running = d;
    return { url, logFile, stop: () => running.stop('SIGTERM', 3000) };
  }
}
