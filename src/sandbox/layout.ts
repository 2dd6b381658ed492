import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Mount, RunRequest } from './executor.js';

// What every sandbox looks like from inside, whichever runtime builds it: Docker's defaults for
// capabilities and masked /proc paths, the standard pseudo-filesystems, and generated /etc files.

/** Docker's default capability set (moby oci/caps/defaults.go); CapBnd 0x00000000a80425fb. */
export const defaultCapabilities = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

const capabilityNumbers: Record<(typeof defaultCapabilities)[number], number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_RAW: 13,
  CAP_SYS_CHROOT: 18,
  CAP_MKNOD: 27,
  CAP_AUDIT_WRITE: 29,
  CAP_SETFCAP: 31,
};

/** Every capability by its number (linux/capability.h), for RUN --security=insecure. */
const allCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/**
 * The capabilities kiln itself may hand on (its bounding set): what an insecure step gets, as
 * BuildKit's getAllCaps gives the daemon's (util/entitlements/security/security_linux.go:22).
 */
export function insecureCapabilities(): { names: string[]; mask: bigint } {
  let bounding = 0n;
  try {
    const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapBnd:'));
    if (line) bounding = BigInt('0x' + line.slice('CapBnd:'.length).trim());
  } catch {
    bounding = defaultCapabilityMask;
  }
  const names = allCapabilities.filter((_, i) => (bounding >> BigInt(i)) & 1n);
  return { names, mask: names.reduce((m, n) => m | (1n << BigInt(allCapabilities.indexOf(n))), 0n) };
}

/** The default set as a bit mask, as /proc/PID/status prints it. */
export const defaultCapabilityMask = defaultCapabilities.reduce((mask, cap) => mask | (1n << BigInt(capabilityNumbers[cap])), 0n);

/** Docker's default linux.maskedPaths: kernel surfaces a container must not read. */
export const maskedPaths = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Docker's default linux.readonlyPaths. */
export const readonlyPaths = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const defaultHostname = 'kiln';

/** Host files bind-mounted read-only over /etc/hosts, /etc/resolv.conf and /etc/hostname. */
export interface EtcFiles {
  hosts: string;
  resolvConf: string;
  hostname: string;
}

/** Writes the generated /etc files into `dir` (the run's bundle or work directory). */
export async function writeEtcFiles(dir: string, req: RunRequest): Promise<EtcFiles> {
  const hostname = req.hostname ?? defaultHostname;
  const files: EtcFiles = {
    hosts: path.join(dir, 'hosts'),
    resolvConf: path.join(dir, 'resolv.conf'),
    hostname: path.join(dir, 'hostname'),
  };
  await writeFile(files.hosts, `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  // 'default' and 'host' share the host's network namespace, so the host's resolver works as is
  // (even a 127.0.0.53 stub). With 'none' there is nothing to resolve through.
  await writeFile(files.resolvConf, req.network === 'none' ? '' : await hostResolvConf());
  await writeFile(files.hostname, `${hostname}\n`);
  return files;
}

async function hostResolvConf(): Promise<string> {
  try {
    return await readFile('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

/** The /etc file mounts, in OCI form, in the order they are applied (after the pseudo-filesystems). */
export function etcMounts(files: EtcFiles): Mount[] {
  return [
    { destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ['bind', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConf, options: ['bind', 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: files.hostname, options: ['bind', 'ro'] },
  ];
}

/** Top-level directories the pseudo-filesystems are mounted on; created in the rootfs when missing. */
export const pseudoFilesystemDirs = ['/proc', '/dev', '/sys'];
