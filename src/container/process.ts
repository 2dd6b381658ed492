import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { processAlive } from '../store/content.js';
import type { ContainerState } from './record.js';

// The processes of a running container, found through /proc and not through the runtime, so that
// stop, kill and pause work the same with every executor (runc, crun, bwrap). The container's PID 1
// is the first descendant of the process running the sandbox (state.pid) that lives in a PID
// namespace of its own: /proc/PID/status lists its ids in every namespace from ours down ("NSpid:
// 4242 1"). Signalling it is what `docker kill` does; SIGKILL to it ends the whole namespace.

interface ProcStat {
  ppid: number;
  startTime: string;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), startTime: fields[19]! };
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/** Whether the process recorded as running the container is still that process. */
export function supervisorAlive(state: ContainerState): boolean {
  if (state.pid === undefined || !processAlive(state.pid)) return false;
  if (state.pidStartTime === undefined) return true;
  const now = processStartTime(state.pid);
  return now === undefined || now === state.pidStartTime;
}

function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(name));
    else children.set(st.ppid, [Number(name)]);
  }
  return children;
}

/** Depth of the PID namespace nesting of `pid` as seen from here (1 = ours), from its NSpid line. */
function namespaceDepth(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    return line ? line.trim().split(/\s+/).length - 1 : 1;
  } catch {
    return 0;
  }
}

/** The container's PID 1, as a pid of our namespace; undefined while the sandbox is not set up yet (or is gone). */
export function containerInit(supervisorPid: number): number | undefined {
  const children = childrenByParent();
  const ownDepth = namespaceDepth(supervisorPid);
  const queue = [...(children.get(supervisorPid) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (namespaceDepth(pid) > ownDepth) return pid;
    queue.push(...(children.get(pid) ?? []));
  }
  return undefined;
}

/** `init` and every process below it. */
function descendants(init: number): number[] {
  const children = childrenByParent();
  const out: number[] = [];
  const queue = [init];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Signal number of a name or number as docker accepts them: KILL, SIGKILL, 9. */
export function parseSignal(s: string): NodeJS.Signals | undefined {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    const name = Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
    return name as NodeJS.Signals | undefined;
  }
  const upper = s.toUpperCase();
  const name = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
  return name in constants.signals ? name : undefined;
}

/** Deliver `signal` to the container's PID 1. Returns false when there is no such process (yet). */
export function signalContainer(state: ContainerState, signal: NodeJS.Signals): boolean {
  if (state.pid === undefined) return false;
  const init = containerInit(state.pid);
  if (init === undefined) return false;
  try {
    process.kill(init, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stop every process of the container (SIGSTOP cannot be caught, and reaches a namespace's PID 1 from
 * its parent namespace), for a commit that must see a filesystem nobody writes to; the returned
 * function continues them. docker pauses with the cgroup freezer; kiln's sandboxes need not have a
 * cgroup of their own, so it uses job-control signals, repeated until no new process appears.
 */
export function freeze(state: ContainerState): () => void {
  const stopped = new Set<number>();
  const init = state.pid === undefined ? undefined : containerInit(state.pid);
  if (init !== undefined) {
    for (let round = 0; round < 10; round++) {
      const fresh = descendants(init).filter((p) => !stopped.has(p));
      if (fresh.length === 0) break;
      for (const pid of fresh) {
        try {
          process.kill(pid, 'SIGSTOP');
          stopped.add(pid);
        } catch {
          // exited meanwhile
        }
      }
    }
  }
  return () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
  };
}
