import { CompileFailed, compiledProgram } from '../cprogram.js';
import { StartFailed } from './errors.js';

// `run --init`: a minimal init as the container's PID 1, as docker's (tini) is. A process that is PID 1
// of its namespace gets no default signal handling (SIGTERM does nothing to a shell there) and
// inherits every orphan; this program runs the command as its child, passes on every signal it
// receives, reaps whatever exits, and exits as the command did (128+N when killed by signal N).
// It is bound read-only into the container at /dev/init (inside the /dev tmpfs, so nothing of it
// reaches the container's filesystem), like the sandbox's own init helper built with the host's cc.

const source = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  /* Orphans of nested namespaces come here too if we are not PID 1 (docker run --init in a pid ns of its own is). */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  pid_t child = fork();
  if (child < 0) {
    perror("kiln-init: fork");
    return 1;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    execvp(argv[1], argv + 1);
    int e = errno;
    fprintf(stderr, "kiln-init: exec %s failed: %s\n", argv[1], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  for (;;) {
    struct timespec wait = { 1, 0 };
    siginfo_t info;
    int sig = sigtimedwait(&all, &info, &wait);
    if (sig > 0 && sig != SIGCHLD) kill(child, sig);
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != child) continue;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
  }
}
`;

/** Where the init is seen inside the container. */
export const initPath = '/dev/init';

/** Path of the compiled init on the host, built on first use (static, so it runs in any image). */
export async function containerInit(cacheDir?: string): Promise<string> {
  try {
    return await compiledProgram({ name: 'kiln-init', source, static: true }, cacheDir);
  } catch (e) {
    if (e instanceof CompileFailed) throw new StartFailed(`--init needs a C compiler with static libc to build kiln's init (${e.message})`);
    throw e;
  }
}
