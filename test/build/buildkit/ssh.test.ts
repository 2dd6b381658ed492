// BuildKit's frontend/dockerfile/dockerfile_ssh_test.go, behaviour by behaviour: each test names
// the BuildKit test function it mirrors. busybox has no ssh client, so the steps speak the agent
// protocol with a small static C program built here (SSH_AGENTC_REQUEST_IDENTITIES, three
// connections one after the other), against a real OpenSSH ssh-agent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openBuilder, type Builder } from './builder.js';

const run = promisify(execFile);

const agentClient = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
static int readn(int fd, unsigned char *b, size_t n) {
  size_t got = 0;
  while (got < n) { ssize_t r = read(fd, b + got, n - got); if (r <= 0) return -1; got += r; }
  return 0;
}
int main(void) {
  const char *path = getenv("SSH_AUTH_SOCK");
  if (!path) { fprintf(stderr, "SSH_AUTH_SOCK not set\\n"); return 2; }
  for (int i = 0; i < 3; i++) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    unsigned char req[5] = { 0, 0, 0, 1, 11 };
    if (write(fd, req, 5) != 5) { perror("write"); return 1; }
    unsigned char h[9];
    if (readn(fd, h, 9) != 0 || h[4] != 12) { fprintf(stderr, "no identities answer\\n"); return 1; }
    printf("identities %u\\n", (unsigned)(h[5] << 24 | h[6] << 16 | h[7] << 8 | h[8]));
    close(fd);
    struct timespec ts = { 0, 100000000 };
    nanosleep(&ts, 0);
  }
  return 0;
}
`;

let b: Builder;
let key: string;
let client: Buffer;
before(async () => {
  b = await openBuilder('ssh');
  key = join(b.work, 'key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await writeFile(join(b.work, 'agentc.c'), agentClient);
  await run(process.env.CC ?? 'cc', ['-static', '-O2', '-o', join(b.work, 'agentc'), join(b.work, 'agentc.c')]);
  client = await readFile(join(b.work, 'agentc'));
});
after(() => b.close());

/** `ssh-agent -d -a SOCK`: in the foreground, its debug log (one line per message it handles) kept. */
async function startAgent(name: string): Promise<{ socket: string; log: () => string; stop: () => Promise<void> }> {
  const socket = join(b.work, name);
  const agent: ChildProcess = spawn('ssh-agent', ['-d', '-a', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise((resolve) => agent.once('close', resolve));
  for (let i = 0; i < 200 && !(await stat(socket).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 20));
  return { socket, log: () => log, stop: async () => { agent.kill(); await exited; } };
}

test('testSSHSocketParams: a key file is served by an agent; the socket has the mount\'s mode, uid and gid and is SSH_AUTH_SOCK', async () => {
  // c1e1: a socket with mode 0741 (BuildKit dockerfile_ssh_test.go:40)
  const dir = await b.context({
    Dockerfile:
      'FROM busybox\n' +
      'RUN --mount=type=ssh,mode=741,uid=100,gid=102 [ "$(stat -c "%u %g %f" $SSH_AUTH_SOCK)" = "100 102 c1e1" ]\n' +
      // The defaults: /run/buildkit/ssh_agent.0, 0600 (c180), root; and an agent that answers with the one key.
      'RUN --mount=type=ssh --mount=type=bind,source=agentc,target=/agentc [ "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 ] && [ "$(stat -c "%u %g %f" /run/buildkit/ssh_agent.0)" = "0 0 c180" ] && /agentc > /out && grep -qx "identities 1" /out\n' +
      // Nothing of the socket is left in the layers.
      'RUN [ ! -e /run/buildkit/ssh_agent.0 ]\n',
    agentc: { content: client, mode: 0o755 },
  });
  const r = await b.build(dir, ['--ssh', `default=${key}`]);
  assert.equal(r.code, 0, r.stderr);
});

test('testSSHFileDescriptorsClosed: each connection of the step is closed at the agent when the step closes it', async () => {
  const agent = await startAgent('fd.sock');
  try {
    const dir = await b.context({
      Dockerfile: 'FROM busybox\nRUN --mount=type=ssh --mount=type=bind,source=agentc,target=/agentc /agentc\n',
      agentc: { content: client, mode: 0o755 },
    });
    // A socket as `--ssh default=PATH`, and the same through $SSH_AUTH_SOCK with `--ssh default`.
    const r = await b.build(dir, ['--ssh', `default=${agent.socket}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /identities 0/);
    const r2 = await b.build(dir, ['--no-cache', '--ssh', 'default'], { env: { ...process.env, SSH_AUTH_SOCK: agent.socket } });
    assert.equal(r2.code, 0, r2.stderr);
  } finally {
    await agent.stop();
  }
  // Six connections, one after the other: always the agent's socket 1 (BuildKit dockerfile_ssh_test.go:145-147).
  assert.equal(agent.log().match(/process_message: socket 1 /g)?.length, 6, agent.log());
  assert.doesNotMatch(agent.log(), /process_message: socket [2-9]/);
});

test('ssh: required=true without --ssh fails naming the id; optional without --ssh runs with no socket', async () => {
  const failed = await b.build(await b.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,id=deploy,required=true true\n' }));
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /no SSH key "deploy" forwarded from the client/);
  const optional = await b.build(await b.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,id=deploy,target=/ssh.sock [ ! -e /ssh.sock ] && [ "$SSH_AUTH_SOCK" = /ssh.sock ]\n' }));
  assert.equal(optional.code, 0, optional.stderr);
});
