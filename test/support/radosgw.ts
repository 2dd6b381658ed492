// A throwaway S3 endpoint for tests: Ceph's radosgw (Debian bookworm: 16.2 "pacific") on a
// single-node cluster in a temporary directory, everything on loopback.
//
// One ceph-mon from a fresh monmap, one ceph-osd on memstore (objects live in the OSD's memory;
// nothing is written to a disk), pools of one placement group and one replica, and radosgw with the
// beast frontend on a free port, with one S3 user whose keys are known. No mgr: nothing here needs
// one (pools are created and served by mon and OSD alone; only statistics and health are missing).
// Authentication is off (`auth … required = none`); then radosgw's msgr2 connection to the monitor
// must use crc mode, because the default "secure" mode needs cephx session keys.
//
// Every daemon runs in the foreground (-f) so the PID we hold is its own, writes its log and its
// output to files under log/ (a pipe nobody reads would stall it), and is stopped by that PID.
// The CLI steps wait on the daemons themselves instead of being polled: `ceph osd new` blocks until
// the monitor answers, `radosgw-admin user create` until the OSD serves the pools it creates.

import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, requireBinary, runToLog, startDaemon, waitUntil, type Daemon, type TestContextLike } from './daemon.js';

export interface Radosgw {
  /** http://127.0.0.1:PORT; use path-style addressing (there is no DNS for bucket hosts). */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  /** Any region signs correctly; this is the one the tests use. */
  readonly region: string;
  /** The cluster's directory: ceph.conf, and log/ with every daemon's log and output. */
  readonly dir: string;
  /** Stops radosgw, the OSD and the monitor; the objects are gone (memstore). */
  stop(): Promise<void>;
  /**
   * Restarts radosgw only, on the same port, after `downMs` with no gateway (for tests of what
   * clients see meanwhile); the objects stay, they are in the OSD.
   */
  restart(downMs?: number): Promise<void>;
}

const accessKey = 'KILNTESTACCESSKEY000';
const secretKey = 'kiln-test-secret-key-0000000000000000000';
const region = 'us-east-1';

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# with auth none the default "secure crc" fails for clients of the monitor (radosgw, the CLI)
ms mon client mode = crc
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
# the monitor's cluster and audit logs and crash reports default to /var/log/ceph and /var/lib/ceph
mon cluster log file = ${dir}/log/$cluster.$channel.log
crash dir = ${dir}/crash
pid file =
keyring = ${dir}/keyring
mon data = ${dir}/mon/$cluster-$id
# one OSD: pools of one replica and one placement group, no autoscaler (it lives in the mgr)
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# the initial CRUSH rule places replicas across OSDs, not hosts
osd crush chooseleaf type = 0
# commit monitor changes (pool creation, OSD boot) in ~10 ms instead of ~1 s
paxos propose interval = 0.01
paxos min wait = 0.01

[osd]
osd data = ${dir}/osd/$cluster-$id
osd objectstore = memstore
# capacity the OSD reports; the memory is only used as objects arrive
memstore device bytes = 536870912
osd op num shards = 1
osd op num threads per shard = 2

[client]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
rgw thread pool size = 32
# radosgw otherwise asks for 8 placement groups per pool
rgw rados pool pg num min = 1
rgw init timeout = 60
`;
}

/**
 * Starts mon, OSD and radosgw, and an S3 user; all are stopped and deleted when the test ends; for one
 * cluster shared by a describe(), pass suiteScope() from ./daemon.js.
 */
export async function startRadosgw(t: TestContextLike): Promise<Radosgw> {
  for (const [b, pkg] of [['monmaptool', 'ceph-common'], ['ceph', 'ceph-common'], ['ceph-mon', 'ceph-mon'], ['ceph-osd', 'ceph-osd'], ['radosgw', 'radosgw'], ['radosgw-admin', 'radosgw']] as const) {
    requireBinary(`/usr/bin/${b}`, pkg);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ceph-'));
  const daemons: { mon?: Daemon; osd?: Daemon; rgw?: Daemon } = {};
  // radosgw first: a radosgw whose cluster is gone hangs in its shutdown
  const stopAll = async () => {
    for (const d of [daemons.rgw, daemons.osd, daemons.mon]) await d?.stop('SIGTERM', 3000);
  };
  t.after(async () => {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  });
  // ceph-mon --mkfs makes its data directory; memstore's mkfs asserts unless the OSD's exists
  for (const sub of ['run', 'log', 'mon', 'osd/ceph-0', 'rgw']) await mkdir(join(dir, sub), { recursive: true });
  const conf = join(dir, 'ceph.conf');
  const fsid = randomUUID();
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  await writeFile(conf, cephConf(dir, fsid, monPort, rgwPort));
  const log = (name: string) => join(dir, 'log', name);
  const endpoint = `http://127.0.0.1:${rgwPort}`;

  const startRgw = async (): Promise<void> => {
    const d = startDaemon('radosgw', '/usr/bin/radosgw', ['-f', '-c', conf, '-n', 'client.rgw.kiln'], { logFile: log('client.rgw.kiln.out') });
    daemons.rgw = d;
    // an anonymous GET / is answered (an empty bucket list) once radosgw serves S3
    await waitUntil(d, 'answering on ' + endpoint, async () => (await fetch(endpoint + '/', { signal: AbortSignal.timeout(2000) })).status === 200, 60_000);
  };

  // each step's duration goes to log/setup.out, to see where a slow start spends its time
  let last = Date.now();
  const step = async (what: string) => {
    await appendFile(log('setup.out'), `kiln: ${what} after ${Date.now() - last} ms\n`);
    last = Date.now();
  };
  try {
    const monmap = join(dir, 'monmap');
    await runToLog('/usr/bin/monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, monmap], { logFile: log('setup.out') });
    await runToLog('/usr/bin/ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', monmap], { logFile: log('setup.out') });
    await step('monmap and mon mkfs');
    daemons.mon = startDaemon('ceph-mon', '/usr/bin/ceph-mon', ['-f', '-c', conf, '-i', 'a'], { logFile: log('mon.a.out') });

    const osdUuid = randomUUID();
    await Promise.all([
      runToLog('/usr/bin/ceph', ['-c', conf, '--connect-timeout', '30', 'osd', 'new', osdUuid, '0'], { logFile: log('setup.out') }),
      runToLog('/usr/bin/ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid], { logFile: log('osd-mkfs.out') }),
    ]);
    await step('mon up, OSD created and its memstore made');
    daemons.osd = startDaemon('ceph-osd', '/usr/bin/ceph-osd', ['-f', '-c', conf, '-i', '0'], { logFile: log('osd.0.out') });

    await runToLog('/usr/bin/radosgw-admin', ['-c', conf, 'user', 'create', '--uid=kiln', '--display-name=kiln tests', `--access-key=${accessKey}`, `--secret-key=${secretKey}`], { logFile: log('setup.out'), timeoutMs: 60_000 });
    await step('OSD serving, S3 user and pools created');
    await startRgw();
    await step('radosgw answering');
  } catch (err) {
    // the directory goes when the test ends: the daemons' own logs go into the error
    const states = [daemons.mon, daemons.osd, daemons.rgw].map((d) => d && `${d.name} ${d.running() ? 'running' : 'ended'}`);
    await stopAll();
    const logs = await Promise.all(['mon.a', 'osd.0', 'client.rgw.kiln'].map(async (n) => `--- end of log/${n}.log:\n${await logTail(log(`${n}.log`), 8)}`));
    throw new Error(`Ceph did not start (${states.filter(Boolean).join(', ')}): ${(err as Error).message}\n${logs.join('\n')}`);
  }

  return {
    endpoint,
    accessKey,
    secretKey,
    region,
    dir,
    stop: stopAll,
    restart: async (downMs = 0) => {
      await daemons.rgw?.stop('SIGTERM', 3000);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await startRgw();
    },
  };
}
