import { CompileFailed, compiledProgram } from '../cprogram.js';
import { SandboxFailed } from './errors.js';

// The last step inside a bubblewrap sandbox, before the user's command. bwrap run by real root keeps
// the full bounding set, raises inheritable and ambient capabilities, and switches uid/gid only in a
// user namespace of its own (single-id map: files the process writes would belong to host root and
// the image's other owners turn into nobody). None of that is what a Dockerfile RUN expects, so
// bwrap only builds namespaces and mounts and then execs this small static program, passed in as an
// open file (/proc/self/fd/N) so nothing of it appears in the container's filesystem. It:
//   - drops the bounding set to Docker's default and clears inheritable and ambient capabilities;
//   - sets supplementary groups, gid and uid (a non-root uid ends up with no effective capabilities,
//     as with runc);
//   - looks the command up in $PATH like runc (Go's exec.LookPath) and execs it.
// It reports on STATUS_FD: "S" once started, "E<exit code> <message>" if it cannot exec; the fd is
// close-on-exec, so "S" alone means the command is running.
//
// usage: kiln-sandbox-init STATUS_FD UID GID GIDS(comma list or -) CAPMASK(hex) -- ARGS...

const source = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int status_fd = -1;

static void fail(int code, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  dprintf(2, "kiln: unable to start container process: %s\n", msg);
  if (status_fd >= 0) dprintf(status_fd, "E%d %s", code, msg);
  _exit(code);
}

static unsigned long parse_id(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v > 0x7fffffffUL) fail(1, "invalid %s \"%s\"", what, s);
  return v;
}

static int executable(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111);
}

int main(int argc, char **argv) {
  if (argc < 8 || strcmp(argv[6], "--") != 0) {
    dprintf(2, "usage: %s STATUS_FD UID GID GIDS CAPMASK -- ARGS...\n", argv[0]);
    return 1;
  }
  status_fd = atoi(argv[1]);
  /* Nothing kiln passed down (this program's own fd, the status fd) may reach the command. */
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (write(status_fd, "S", 1) != 1) _exit(1);

  uid_t uid = parse_id(argv[2], "uid");
  gid_t gid = parse_id(argv[3], "gid");
  unsigned long long mask = strtoull(argv[5], NULL, 16);
  gid_t groups[256];
  size_t ngroups = 0;
  if (strcmp(argv[4], "-") != 0) {
    for (char *g = strtok(argv[4], ","); g; g = strtok(NULL, ",")) {
      if (ngroups == sizeof groups / sizeof groups[0]) fail(1, "too many additional groups");
      groups[ngroups++] = parse_id(g, "gid");
    }
  }

  for (int cap = 0; cap < 64; cap++) {
    if (mask & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail(1, "dropping capability %d: %s", cap, strerror(errno));
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail(1, "clearing ambient capabilities: %s", strerror(errno));
  if (setgroups(ngroups, groups) < 0) fail(1, "setgroups: %s", strerror(errno));
  if (setresgid(gid, gid, gid) < 0) fail(1, "setresgid %u: %s", (unsigned)gid, strerror(errno));
  if (setresuid(uid, uid, uid) < 0) fail(1, "setresuid %u: %s", (unsigned)uid, strerror(errno));
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (uid == 0) {
    data[0].effective = data[0].permitted = (unsigned)(mask & 0xffffffffULL);
    data[1].effective = data[1].permitted = (unsigned)(mask >> 32);
  }
  if (syscall(SYS_capset, &hdr, data) < 0) fail(1, "capset: %s", strerror(errno));
  /* Changing credentials cleared bwrap's parent-death signal. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  char **args = argv + 7;
  const char *file = args[0];
  char path[4096];
  if (strchr(file, '/')) {
    struct stat st;
    if (stat(file, &st) < 0) fail(errno == ENOENT || errno == ENOTDIR ? 127 : 126, "exec: \"%s\": stat %s: %s", file, file, strerror(errno));
    if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111)) fail(126, "exec: \"%s\": permission denied", file);
    snprintf(path, sizeof path, "%s", file);
  } else {
    const char *dirs = getenv("PATH");
    int found = 0;
    while (dirs && !found) {
      const char *colon = strchr(dirs, ':');
      size_t len = colon ? (size_t)(colon - dirs) : strlen(dirs);
      if (len == 0) snprintf(path, sizeof path, "./%s", file);
      else snprintf(path, sizeof path, "%.*s/%s", (int)len, dirs, file);
      found = executable(path);
      dirs = colon ? colon + 1 : NULL;
    }
    if (!found) fail(127, "exec: \"%s\": executable file not found in $PATH", file);
  }
  execv(path, args);
  fail(errno == ENOENT ? 127 : 126, "exec: \"%s\": %s", file, strerror(errno));
  return 1;
}
`;

/** Docker-style defaults are a fixed mask; passing it keeps the program free of policy. */
export function initArgs(statusFd: number, uid: number, gid: number, additionalGids: number[] | undefined, capMask: bigint): string[] {
  const gids = additionalGids && additionalGids.length > 0 ? additionalGids.join(',') : '-';
  return [String(statusFd), String(uid), String(gid), gids, capMask.toString(16), '--'];
}

/**
 * Path of the compiled program, built on first use with the host's C compiler ($CC or cc), static so
 * that it runs in any rootfs (see cprogram.ts).
 */
export async function sandboxInit(cacheDir: string): Promise<string> {
  try {
    return await compiledProgram({ name: 'kiln-sandbox-init', source, static: true }, cacheDir);
  } catch (e) {
    if (e instanceof CompileFailed) throw new SandboxFailed(`the bwrap executor needs a C compiler with static libc to build its init program (${e.message})`);
    throw e;
  }
}

export { defaultProgramCacheDir as defaultInitCacheDir } from '../cprogram.js';
