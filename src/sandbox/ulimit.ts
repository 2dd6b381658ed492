import type { Rlimit } from './executor.js';

// docker's `--ulimit NAME=SOFT[:HARD]` (docker/go-units ulimit.go, ParseUlimit), the form docker
// build and buildx take and BuildKit's `ulimit` frontend attribute carries (dockerui/attr.go:77-98).

const names = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

export class InvalidUlimit extends Error {}

/** `nofile=1024:2048` → { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }; HARD defaults to SOFT; -1 is unlimited. */
export function parseUlimit(spec: string): Rlimit {
  const eq = spec.indexOf('=');
  if (eq < 0) throw new InvalidUlimit(`invalid ulimit argument: ${spec}`);
  const name = spec.slice(0, eq);
  if (!names.includes(name)) throw new InvalidUlimit(`invalid ulimit type: ${name}`);
  const parts = spec.slice(eq + 1).split(':');
  if (parts.length > 2) throw new InvalidUlimit(`too many limit value arguments - ${spec.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
  const [soft, hard] = parts.map((p) => {
    if (!/^-?\d+$/.test(p) || !Number.isSafeInteger(Number(p))) throw new InvalidUlimit(`invalid ulimit value: ${p}`);
    return Number(p);
  }) as [number, number | undefined];
  const h = hard ?? soft;
  // go-units compares them as signed numbers; -1 (unlimited) only as both or as the hard limit.
  if (soft > h && h !== -1) throw new InvalidUlimit(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${h}`);
  if (soft === -1 && h !== -1) throw new InvalidUlimit(`ulimit soft limit must be less than or equal to hard limit: unlimited > ${h}`);
  return { type: `RLIMIT_${name.toUpperCase()}`, soft, hard: h };
}
