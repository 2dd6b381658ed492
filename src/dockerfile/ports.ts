// EXPOSE port specifications ("80", "80/tcp", "53/udp", "8000-8010", even "[ip:]host:container/proto")
// and STOPSIGNAL signal names, validated as BuildKit's convert_expose.go and moby/sys/signal do.

import { isIP } from 'node:net';
import { UnlocatedError } from './errors.js';
import { goQuote } from './gocompat.js';

export interface ParsedPorts {
  /** "port/proto" entries, ranges expanded, protocol lower-cased. */
  ports: string[];
  /** Raw specs whose protocol was not lower case (ExposeProtoCasing). */
  protoCasing: string[];
  /** Raw specs with an IP or host port (ExposeInvalidFormat). */
  invalidFormat: string[];
}

function parsePortNumber(raw: string): number {
  if (raw === '') throw new UnlocatedError('value is empty');
  if (!/^[+-]?[0-9]+$/.test(raw)) throw new UnlocatedError('invalid syntax');
  const port = parseInt(raw, 10);
  if (port < 0 || port > 65535) throw new UnlocatedError('value out of range (0–65535)');
  return port;
}

function parsePortRange(ports: string): [number, number] {
  if (ports === '') throw new UnlocatedError('empty string specified for ports');
  const dash = ports.indexOf('-');
  const start = dash < 0 ? ports : ports.slice(0, dash);
  const end = dash < 0 ? '' : ports.slice(dash + 1);
  let startPort: number;
  try {
    startPort = parsePortNumber(start);
  } catch (err) {
    throw new UnlocatedError(`invalid start port '${start}': ${(err as Error).message}`);
  }
  if (dash < 0 || start === end) return [startPort, startPort];
  let endPort: number;
  try {
    endPort = parsePortNumber(end);
  } catch (err) {
    throw new UnlocatedError(`invalid end port '${end}': ${(err as Error).message}`);
  }
  if (endPort < startPort) throw new UnlocatedError('invalid port range: ' + ports);
  return [startPort, endPort];
}

function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  switch (parts.length) {
    case 1:
      return ['', '', parts[0]!];
    case 2:
      return ['', parts[0]!, parts[1]!];
    case 3:
      return [parts[0]!, parts[1]!, parts[2]!];
    default: {
      const n = parts.length;
      return [parts.slice(0, n - 2).join(':'), parts[n - 2]!, parts[n - 1]!];
    }
  }
}

export function parsePorts(specs: string[]): ParsedPorts {
  const out: ParsedPorts = { ports: [], protoCasing: [], invalidFormat: [] };
  for (const raw of specs) {
    let [ip, hostPort, containerPort] = splitParts(raw);
    const slash = containerPort.indexOf('/');
    const port = slash < 0 ? containerPort : containerPort.slice(0, slash);
    let proto = slash < 0 ? '' : containerPort.slice(slash + 1);
    if (port === '') throw new UnlocatedError(`invalid port: ${goQuote(raw)}: no port specified`);
    const lower = proto.toLowerCase();
    if (lower === '') proto = 'tcp';
    else if (lower !== 'tcp' && lower !== 'udp' && lower !== 'sctp') throw new UnlocatedError(`invalid port: ${goQuote(raw)}: invalid proto: ${proto}`);
    containerPort = port;
    if (proto !== proto.toLowerCase()) out.protoCasing.push(raw);
    if (ip !== '' || hostPort !== '') out.invalidFormat.push(raw);
    if (ip !== '' && ip[0] === '[') {
      const m = /^\[([^\]]*)\]$/.exec(ip);
      if (!m) throw new UnlocatedError(`invalid IP address ${ip}`);
      ip = m[1]!;
    }
    if (ip !== '' && isIP(ip) === 0) throw new UnlocatedError('invalid IP address: ' + ip);
    let start: number;
    let end: number;
    try {
      [start, end] = parsePortRange(containerPort);
    } catch {
      throw new UnlocatedError('invalid containerPort: ' + containerPort);
    }
    if (hostPort !== '') {
      let hs: number;
      let he: number;
      try {
        [hs, he] = parsePortRange(hostPort);
      } catch {
        throw new UnlocatedError('invalid hostPort: ' + hostPort);
      }
      if (end - start !== he - hs && end !== start) {
        throw new UnlocatedError(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
      }
    }
    for (let p = start; p <= end; p++) out.ports.push(`${p}/${proto.toLowerCase()}`);
  }
  return out;
}

const signalNames = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR', 'QUIT',
  'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ',
  'RTMIN', 'RTMAX',
  ...Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`),
  ...Array.from({ length: 14 }, (_, i) => `RTMAX-${i + 1}`),
]);

/** moby/sys/signal.ParseSignal on Linux: a non-zero number or a name with or without SIG. */
export function validateSignal(raw: string): void {
  if (/^[+-]?[0-9]+$/.test(raw)) {
    if (parseInt(raw, 10) === 0) throw new UnlocatedError(`invalid signal: ${raw}`);
    return;
  }
  const name = raw.toUpperCase().replace(/^SIG/, '');
  if (!signalNames.has(name)) throw new UnlocatedError(`invalid signal: ${raw}`);
}
