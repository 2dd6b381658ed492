import type { Readable, Writable } from 'node:stream';

// The seam between the build engine (and working containers) and whatever actually isolates a
// process. The solver never knows whether runc, crun or a lighter launcher runs the step.

/** A mount in OCI runtime-spec form (config.md "Mounts"). */
export interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface ProcessSpec {
  args: string[];
  /** KEY=VALUE strings, exactly what the process sees. */
  env: string[];
  /** Absolute path inside the rootfs. */
  cwd: string;
  user: ProcessUser;
  terminal?: boolean;
}

export type NetworkMode = 'default' | 'host' | 'none';

/** A POSIX resource limit (config.md "POSIX process", rlimits); -1 is RLIM_INFINITY. */
export interface Rlimit {
  /** RLIMIT_NOFILE, RLIMIT_NPROC, … */
  type: string;
  soft: number;
  hard: number;
}

export interface RunRequest {
  /** Unique among running sandboxes; used for the runtime's container id and temp dirs. */
  id: string;
  /** A directory that is the container's root filesystem (prepared by a snapshotter). */
  rootfs: string;
  process: ProcessSpec;
  /** 'default' and 'host' share the host's network namespace (builds need the apt mirror); 'none' gets an empty one with lo. */
  network: NetworkMode;
  hostname?: string;
  /** Additional mounts (cache, secret, bind, tmpfs mounts of RUN --mount), applied after the standard ones. */
  mounts?: Mount[];
  readonlyRootfs?: boolean;
  /**
   * 'insecure' (RUN --security=insecure): every capability kiln has, no masked or read-only /proc
   * paths, a writable /sys and every device allowed, as BuildKit's WithInsecureSpec
   * (util/entitlements/security/security_linux.go:20-48). Default 'sandbox'.
   */
  security?: 'sandbox' | 'insecure';
  /** Size of the /dev/shm tmpfs in bytes; 64 MiB when not given (Docker's default). */
  shmSize?: number;
  /** The process's resource limits, instead of the default (RLIMIT_NOFILE 1048576). */
  rlimits?: Rlimit[];
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Aborting kills the process and cleans up; run() then rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number;
  /**
   * Paths (relative to rootfs, no leading slash) that did not exist before the run and were created only
   * as mount points (/etc/hosts, /proc, …). A snapshot diff must leave them out of the committed layer.
   */
  createdMountpoints: string[];
}

export interface Executor {
  readonly name: string;
  run(req: RunRequest): Promise<RunResult>;
}
