import type { ProgressSink } from '../build/progress.js';

/**
 * BuildKit's plain progress: one line per event, "#N" numbering, step output prefixed with its
 * vertex and the elapsed seconds, CACHED markers and DONE durations.
 */
export function plainProgress(out: NodeJS.WritableStream = process.stderr): ProgressSink {
  const started = new Map<number, number>();
  const partial = new Map<number, string>();
  const write = (s: string) => out.write(s);
  const flushLine = (id: number, line: string) => {
    const t = ((Date.now() - (started.get(id) ?? Date.now())) / 1000).toFixed(3);
    write(`#${id} ${t} ${line}\n`);
  };
  return {
    start(id, name) {
      started.set(id, Date.now());
      write(`#${id} ${name}\n`);
    },
    log(id, _stream, text) {
      const buf = (partial.get(id) ?? '') + text;
      const lines = buf.split('\n');
      partial.set(id, lines.pop()!);
      for (const l of lines) flushLine(id, l);
    },
    cached(id) {
      write(`#${id} CACHED\n\n`);
    },
    done(id, error) {
      const rest = partial.get(id);
      if (rest) flushLine(id, rest);
      partial.delete(id);
      const secs = ((Date.now() - (started.get(id) ?? Date.now())) / 1000).toFixed(1);
      write(error ? `#${id} ERROR: ${error}\n\n` : `#${id} DONE ${secs}s\n\n`);
    },
    warn(message) {
      write(`WARNING: ${message}\n`);
    },
    close() {},
  };
}

/**
 * A live view for terminals, like BuildKit's tty mode: running steps with their durations are redrawn
 * in place, finished steps collapse to one line each, and the last lines of output of a running step
 * show beneath it.
 */
export function ttyProgress(out: NodeJS.WriteStream = process.stderr): ProgressSink {
  type V = { name: string; start: number; end?: number; cached?: boolean; error?: string; tail: string[] };
  const vertices = new Map<number, V>();
  const warnings: string[] = [];
  let drawn = 0;
  const t0 = Date.now();
  const render = () => {
    const width = out.columns || 100;
    const lines: string[] = [];
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    lines.push(`[+] Building ${secs}s (${[...vertices.values()].filter((v) => v.end).length}/${vertices.size})`);
    for (const [id, v] of vertices) {
      const d = (((v.end ?? Date.now()) - v.start) / 1000).toFixed(1);
      const state = v.error ? 'ERROR' : v.cached ? 'CACHED' : v.end ? `${d}s` : `${d}s`;
      const prefix = ` => ${v.end ? '' : '=> '}#${id} ${v.name}`;
      const line = prefix.length + state.length + 1 > width ? prefix.slice(0, width - state.length - 2) + ' ' + state : prefix.padEnd(width - state.length - 1) + state;
      lines.push(line);
      if (!v.end) for (const t of v.tail.slice(-5)) lines.push(`    ${t}`.slice(0, width - 1));
    }
    let s = drawn > 0 ? `\x1b[${drawn}A` : '';
    s += lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n';
    out.write(s);
    drawn = lines.length;
  };
  const timer = setInterval(render, 150);
  timer.unref();
  return {
    start(id, name) {
      vertices.set(id, { name, start: Date.now(), tail: [] });
    },
    log(id, _s, text) {
      const v = vertices.get(id);
      if (v) v.tail.push(...text.split('\n').filter(Boolean));
      if (v && v.tail.length > 20) v.tail.splice(0, v.tail.length - 20);
    },
    cached(id) {
      const v = vertices.get(id);
      if (v) Object.assign(v, { cached: true, end: Date.now() });
    },
    done(id, error) {
      const v = vertices.get(id);
      if (v) Object.assign(v, { end: Date.now(), error });
      if (error && v) warnings.push(`#${id} ${v.name}:\n${v.tail.slice(-10).join('\n')}\nERROR: ${error}`);
    },
    warn(message) {
      warnings.push(`WARNING: ${message}`);
    },
    close() {
      clearInterval(timer);
      render();
      for (const w of warnings) out.write(w + '\n');
    },
  };
}
