// `--change` instructions (docker commit -c, docker import -c): Dockerfile instructions applied to
// an image config outside any build. They are parsed as the body of a synthetic `FROM scratch`
// Dockerfile; errors are reported against the --change value that caused them, not a line number.

import { UsageError } from '../errors.js';
import { parseDockerfile, type Dockerfile } from './dockerfile.js';
import { DockerfileError } from './errors.js';

export interface ParsedChanges {
  /** `FROM scratch` followed by the changes. */
  dockerfile: Dockerfile;
  /** Run `fn`, turning a frontend error into one that quotes the offending change. */
  explain<T>(fn: () => T): T;
}

/** Parse `changes`, refusing any instruction whose kind is not in `allowed` (lower-case). */
export function parseChanges(changes: string[], allowed: ReadonlySet<string>): ParsedChanges {
  const firstLines: number[] = [];
  let line = 2; // line 1 is the synthetic FROM
  for (const c of changes) {
    firstLines.push(line);
    line += c.split('\n').length;
  }
  const changeAt = (l: number | undefined): string => {
    if (l === undefined) return changes.join(' ');
    let i = firstLines.length - 1;
    while (i > 0 && firstLines[i]! > l) i--;
    return changes[i]!;
  };
  const explain = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof DockerfileError) throw new UsageError(`invalid change "${changeAt(err.line)}": ${err.detail}`);
      throw err;
    }
  };
  const dockerfile = explain(() => parseDockerfile(`FROM scratch\n${changes.join('\n')}\n`, { file: '--change' }));
  for (const instr of dockerfile.instructions.slice(1)) {
    if (!allowed.has(instr.kind)) {
      throw new UsageError(`invalid change "${changeAt(instr.line)}": ${instr.keyword.toUpperCase()} is not a valid change command (use one of ${[...allowed].map((k) => k.toUpperCase()).join(', ')})`);
    }
  }
  return { dockerfile, explain };
}
