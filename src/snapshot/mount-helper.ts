import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { compiledProgram } from '../cprogram.js';

// mount(2) and umount2(2) for this process through one long-lived helper, instead of a mount(8) or
// umount(8) process per call. Node.js forks the whole process for every child, and each RUN mounts
// and unmounts its snapshot: with 30 RUNs, the 62 spawns cost a build some 0.37 s of its 2.4 s
// (6 ms each), where a request to the helper takes a fraction of a millisecond.
//
// The helper is started from this process, so it lives in the same user and mount namespaces (a
// rootless build's mounts land where mount(8)'s would). It ignores SIGINT, SIGTERM and SIGHUP, so
// that a Ctrl-C, which reaches the whole process group, leaves it alive for the unmounts of the
// clean-up; it exits at the end of its input, when this process closes the pipe or dies.

const source = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/*
 * Requests on stdin, each a sequence of NUL-terminated fields:
 *   "m" CWD TYPE OPTIONS TARGET  mount TYPE (also the source) on TARGET; relative paths in OPTIONS
 *                                are taken from CWD; "ro" among OPTIONS is the read-only flag, as
 *                                mount(8) makes it, the rest is the filesystem's data
 *   "u" TARGET                   unmount, and if that fails detach lazily (umount -l)
 * One answer line per request, in order: "0", or "E<errno> <message>"; before them, "ready".
 */

static char *field[5];
static size_t size[5];

static int next(int i) { return getdelim(&field[i], &size[i], '\0', stdin) > 0; }

static int do_mount(void) {
  char *data = malloc(strlen(field[3]) + 1);
  unsigned long flags = 0;
  int rc;
  if (!data) return -1;
  data[0] = '\0';
  for (char *tok = strtok(field[3], ","); tok; tok = strtok(NULL, ",")) {
    if (strcmp(tok, "ro") == 0) { flags |= MS_RDONLY; continue; }
    if (data[0]) strcat(data, ",");
    strcat(data, tok);
  }
  rc = chdir(field[1]) == 0 ? mount(field[2], field[4], field[2], flags, data) : -1;
  free(data);
  return rc;
}

int main(void) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  printf("ready\n"); /* the signals above are now ignored */
  fflush(stdout);
  while (next(0)) {
    int rc, fields = field[0][0] == 'm' ? 4 : 1;
    for (int i = 1; i <= fields; i++) if (!next(i)) return 1;
    if (strcmp(field[0], "m") == 0) rc = do_mount();
    else if (strcmp(field[0], "u") == 0) {
      rc = umount2(field[1], 0);
      if (rc != 0) rc = umount2(field[1], MNT_DETACH);
    } else {
      errno = EINVAL;
      rc = -1;
    }
    if (rc == 0) printf("0\n");
    else printf("E%d %s\n", errno, strerror(errno));
    fflush(stdout);
  }
  return 0;
}
`;

export const mountProgram = { name: 'kiln-mount', source };

type Child = ChildProcessByStdio<Writable, Readable, null>;

/** The helper of this process, once started; requests are answered in the order they were sent. */
export class MountHelper {
  private readonly waiting: { resolve: (answer: string) => void; reject: (e: Error) => void }[] = [];
  private buffered = '';
  private gone: Error | undefined;

  /** The helper's first line: it has set its signals and takes requests. */
  private readonly ready: Promise<string>;

  private constructor(private readonly child: Child) {
    this.ready = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      this.buffered += text;
      for (let nl; (nl = this.buffered.indexOf('\n')) >= 0; ) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.waiting.shift()?.resolve(line);
      }
      this.holdLoop();
    });
    const end = (e: Error) => {
      this.gone ??= e;
      for (const w of this.waiting.splice(0)) w.reject(this.gone);
    };
    child.on('error', end);
    child.on('exit', (code, signal) => end(new Error(`the mount helper exited (${signal ?? `code ${code}`})`)));
    child.stdin.on('error', () => {}); // reported by 'exit'
    this.holdLoop();
  }

  /** Starts the helper, compiling it on first use; rejects when it cannot be built or run. */
  static async start(cacheDir?: string): Promise<MountHelper> {
    const path = await compiledProgram(mountProgram, cacheDir);
    const helper = new MountHelper(spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] }));
    if ((await helper.ready) !== 'ready') throw new Error('the mount helper did not start');
    return helper;
  }

  /** Whether the helper can still take requests. */
  get alive(): boolean {
    return this.gone === undefined;
  }

  /** mount(2) of `type` on `target`; rejects with the system's message. */
  async mount(type: string, options: string, target: string, cwd: string): Promise<void> {
    const answer = await this.request(['m', cwd, type, options, target]);
    if (answer !== '0') throw new Error(answer.replace(/^E\d+ /, ''));
  }

  /** umount2(2), lazily detached if it is busy; never fails (as `umount || umount -l`). */
  async unmount(target: string): Promise<void> {
    await this.request(['u', target]);
  }

  /** Ends the helper (it exits at the end of its input). */
  close(): void {
    this.child.stdin.end();
  }

  private request(fields: string[]): Promise<string> {
    if (this.gone) return Promise.reject(this.gone);
    if (fields.some((f) => f.includes('\0'))) return Promise.reject(new Error('a path with a NUL byte'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.holdLoop();
      this.child.stdin.write(fields.map((f) => f + '\0').join(''));
    });
  }

  /**
   * An idle helper must not keep this process alive (its exit closes the pipe, which ends the
   * helper); one with requests under way must, or a build awaiting only a mount would end early.
   */
  private holdLoop(): void {
    const busy = this.waiting.length > 0;
    for (const h of [this.child, this.child.stdin, this.child.stdout] as { ref(): void; unref(): void }[]) {
      if (busy) h.ref();
      else h.unref();
    }
  }
}
