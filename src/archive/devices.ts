// Device nodes and fifos. Node has no mknod(2), so they are made by mknod(1), many per process:
// one shell runs the whole batch, which costs one spawn instead of one per node.

import { spawn } from 'node:child_process';
import { KilnError } from '../errors.js';

export interface DeviceNode {
  /** Absolute path; its parent directories must already be checked to lie inside the destination. */
  path: string;
  type: 'char' | 'block' | 'fifo';
  major: number;
  minor: number;
  /** Permission bits the node is created with (setuid and friends are applied later, after chown). */
  mode: number;
}

const BATCH = 200;

// Arguments come in fives: path, type letter, major, minor, octal mode. A path is never taken as
// an option because it is absolute.
const SCRIPT = `
while [ $# -gt 0 ]; do
  if [ "$2" = p ]; then mknod -m "$5" "$1" p || exit 1
  else mknod -m "$5" "$1" "$2" "$3" "$4" || exit 1
  fi
  shift 5
done`;

/** Creates the nodes, in order. Fails (and stops) at the first one that cannot be made. */
export async function makeDeviceNodes(nodes: readonly DeviceNode[]): Promise<void> {
  for (let i = 0; i < nodes.length; i += BATCH) {
    const args: string[] = [];
    for (const n of nodes.slice(i, i + BATCH)) {
      if (!n.path.startsWith('/')) throw new Error(`device node path must be absolute: ${n.path}`);
      const letter = n.type === 'char' ? 'c' : n.type === 'block' ? 'b' : 'p';
      args.push(n.path, letter, String(n.major), String(n.minor), (n.mode & 0o777).toString(8).padStart(4, '0'));
    }
    await run('sh', ['-c', SCRIPT, 'sh', ...args]);
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.on('error', (err) => reject(new KilnError(`cannot create device nodes: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new KilnError(`cannot create device node: ${stderr.trim().split('\n')[0] || `mknod exited with status ${code}`}`));
    });
  });
}
