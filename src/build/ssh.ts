import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';

// SSH agent forwarding for RUN --mount=type=ssh, as BuildKit's session does it: the client names
// an agent per id (a socket, or key files that an agent of its own then holds), and each mount is a
// socket of its own, with the mount's mode and owner, bind-mounted into the sandbox and relaying
// every connection to the agent (BuildKit session/sshforward: MountSSHSocket, a listener per mount,
// and solver/llbsolver/mounts/mount.go:197-240, the socket bind-mounted with rbind).

/** `--ssh` specs resolved: an agent socket on the host per id, and what to stop when the build ends. */
export interface SshAgents {
  sockets: Map<string, string>;
  close(): Promise<void>;
}

/**
 * Parses docker build's `--ssh default|ID[=SOCKET|KEY[,KEY…]]` and starts an agent for ids given key
 * files. As BuildKit's sshprovider (agentprovider.go:26-48, :119-180): no path is $SSH_AUTH_SOCK; one
 * socket path is used as is; otherwise every path must be a private key.
 */
export async function openSshAgents(specs: string[]): Promise<SshAgents> {
  const sockets = new Map<string, string>();
  const stops: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    for (const spec of specs) {
      const i = spec.indexOf('=');
      const id = (i < 0 ? spec : spec.slice(0, i)) || 'default';
      if (sockets.has(id)) throw new UsageError(`--ssh ${spec}: duplicate agent ID "${id}"`);
      let paths = i < 0 ? [] : spec.slice(i + 1).split(',').filter((p) => p !== '');
      if (paths.length === 0) {
        const env = process.env.SSH_AUTH_SOCK;
        if (!env) throw new UsageError(`--ssh ${spec}: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set`);
        paths = [env];
      }
      const kinds = await Promise.all(paths.map(async (p) => (await stat(p).catch(() => undefined)) ?? p));
      const missing = kinds.find((k) => typeof k === 'string');
      if (missing !== undefined) throw new UsageError(`--ssh ${spec}: ${missing as string} does not exist`);
      const sockCount = kinds.filter((k) => typeof k !== 'string' && k.isSocket()).length;
      if (sockCount > 1) throw new UsageError(`--ssh ${spec}: only single socket allowed`);
      if (sockCount === 1) {
        if (paths.length > 1) throw new UsageError(`--ssh ${spec}: invalid combination of keys and sockets`);
        sockets.set(id, paths[0]!);
        continue;
      }
      const agent = await startAgent(paths, spec);
      stops.push(agent.stop);
      sockets.set(id, agent.socket);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { sockets, close };
}

/**
 * An agent holding the given keys: OpenSSH's ssh-agent (Debian's openssh-client) and ssh-add, which
 * read every key format OpenSSH writes. BuildKit holds keys in an in-process keyring instead
 * (golang.org/x/crypto/ssh/agent); Node.js has no agent of its own.
 */
async function startAgent(keys: string[], spec: string): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => agent.once('close', () => resolve()));
  const stop = async () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const started = await new Promise<boolean>((resolve) => {
      agent.once('error', () => resolve(false));
      const poll = async (n: number) => {
        if (agent.exitCode !== null) return resolve(false);
        if (await stat(socket).then((s) => s.isSocket(), () => false)) return resolve(true);
        if (n === 0) return resolve(false);
        setTimeout(() => void poll(n - 1), 20);
      };
      void poll(250);
    });
    if (!started) throw new UsageError(`--ssh ${spec}: cannot start ssh-agent (from openssh-client)${stderr ? ': ' + stderr.trim() : ''}`);
    const added = await new Promise<{ code: number | null; out: string }>((resolve) => {
      // No terminal and no askpass: a key with a passphrase fails instead of prompting.
      const add = spawn('ssh-add', ['-q', ...keys], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: socket, SSH_ASKPASS_REQUIRE: 'never', DISPLAY: '' } });
      let out = '';
      add.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      add.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      add.once('error', (e) => resolve({ code: -1, out: e.message }));
      add.once('close', (code) => resolve({ code, out }));
    });
    if (added.code !== 0) throw new UsageError(`--ssh ${spec}: failed to add the keys to an agent: ${added.out.trim()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { socket, stop };
}

/** A socket for one RUN's ssh mount: owned uid:gid with the given mode, relaying to the agent. */
export interface ForwardedSocket {
  path: string;
  close(): Promise<void>;
}

export async function forwardAgent(agentSocket: string, opts: { uid: number; gid: number; mode: number }): Promise<ForwardedSocket> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
  const path = join(dir, 'agent.sock');
  const open = new Set<Socket>();
  const server: Server = createServer((inside) => {
    const agent = createConnection(agentSocket);
    open.add(inside).add(agent);
    // Either side closing closes the other, so the agent never holds a connection the step let go
    // (BuildKit testSSHFileDescriptorsClosed: each client's connection is the agent's socket 1).
    const end = () => {
      inside.destroy();
      agent.destroy();
      open.delete(inside);
      open.delete(agent);
    };
    inside.on('error', end).on('close', end);
    agent.on('error', end).on('close', end);
    inside.pipe(agent);
    agent.pipe(inside);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    await chmod(path, opts.mode & 0o777);
    await chown(path, opts.uid, opts.gid);
  } catch (e) {
    server.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    path,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
