import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable } from 'node:stream';
import { AbortError } from './errors.js';
import type { RunRequest } from './executor.js';

// Starting a runtime process with the request's stdio attached: stdin piped in when given (else
// /dev/null), stdout and stderr streamed out separately and never buffered, the caller's streams left
// open (they may be the terminal).

export interface Attached {
  child: ChildProcess;
  /** Settles when the runtime has exited and all its output has been passed on. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last few KiB of stderr, for error messages when the runtime itself fails. */
  stderrTail(): string;
}

/** Extra file descriptors beyond 0-2: 'pipe' gives a readable stream at child.stdio[n]; a number passes that fd. */
export type ExtraFd = 'pipe' | number;

/**
 * With `terminal` the runtime shares kiln's own stdio (it is the user's terminal, and the runtime puts it
 * in raw mode and relays it to the container's pty); the request's streams are not used then.
 */
export function spawnAttached(command: string, args: string[], req: RunRequest, extra: ExtraFd[] = [], terminal = false): Attached {
  if (terminal) req = { ...req, stdin: undefined, stdout: undefined, stderr: undefined };
  const stdio: StdioOptions = terminal
    ? ['inherit', 'inherit', 'inherit', ...extra]
    : [req.stdin ? 'pipe' : 'ignore', req.stdout ? 'pipe' : 'ignore', 'pipe', ...extra];
  const child = spawn(command, args, { stdio });
  let tail = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  if (req.stdin && child.stdin) {
    const stdin = child.stdin;
    // The process may exit without reading everything: EPIPE is its business, not an error of the run.
    stdin.on('error', () => {});
    req.stdin.pipe(stdin);
    void exited.finally(() => req.stdin?.unpipe(stdin)).catch(() => {});
  }
  if (req.stdout && child.stdout) child.stdout.pipe(req.stdout, { end: false });
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  });
  if (req.stderr) child.stderr?.pipe(req.stderr, { end: false });
  else child.stderr?.resume();
  return { child, exited, stderrTail: () => tail };
}

/** Collects everything a child writes on one of its extra pipes. */
export function collect(stream: Readable | null | undefined): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => (text += s));
    stream.on('error', () => resolve(text));
    stream.on('close', () => resolve(text));
  });
}

/** Calls `fn` once if `signal` aborts; returns a function that stops listening. */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    fn();
    return () => {};
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}

export function abortError(signal: AbortSignal | undefined): AbortError {
  const err = new AbortError('sandbox run aborted');
  if (signal?.reason !== undefined) err.cause = signal.reason;
  return err;
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
