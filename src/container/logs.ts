import { closeSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

// The container's output, kept for `kiln logs` in docker's json-file format: one JSON object per line
// of output, {"log":"text\n","stream":"stdout","time":"RFC 3339 with nanoseconds"}. A line longer than
// 16 KiB is split as docker splits it; a last line without a newline is written when the stream ends.

export type LogStream = 'stdout' | 'stderr';

export interface LogEntry {
  log: string;
  stream: LogStream;
  time: string;
}

export const logPath = (dir: string) => join(dir, 'container.log');

const maxLine = 16 * 1024;

/** Opens the log for appending; `sink(stream)` gives a Writable per stream, `close()` flushes and closes. */
export function openLog(dir: string): { sink(stream: LogStream): Writable; close(): void } {
  const fd = openSync(logPath(dir), 'a', 0o600);
  const pending: Record<LogStream, string> = { stdout: '', stderr: '' };
  const write = (stream: LogStream, log: string) => {
    writeSync(fd, JSON.stringify({ log, stream, time: new Date().toISOString() } satisfies LogEntry) + '\n');
  };
  const take = (stream: LogStream, text: string) => {
    let buf = pending[stream] + text;
    for (;;) {
      const nl = buf.indexOf('\n');
      if (nl < 0 || nl >= maxLine) break;
      write(stream, buf.slice(0, nl + 1));
      buf = buf.slice(nl + 1);
    }
    while (buf.length >= maxLine) {
      write(stream, buf.slice(0, maxLine));
      buf = buf.slice(maxLine);
    }
    pending[stream] = buf;
  };
  let closed = false;
  return {
    sink: (stream) => {
      // A character split between two chunks must not become two replacement characters.
      const decoder = new StringDecoder('utf8');
      return new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (!closed) take(stream, decoder.write(chunk));
          cb();
        },
      });
    },
    close: () => {
      if (closed) return;
      for (const stream of ['stdout', 'stderr'] as const) if (pending[stream]) write(stream, pending[stream]);
      closed = true;
      closeSync(fd);
    },
  };
}

/** Entries appended to the log from byte `offset` on; returns them and the offset after the last complete line. */
export async function readLog(dir: string, offset = 0): Promise<{ entries: LogEntry[]; offset: number }> {
  let fh;
  try {
    fh = await open(logPath(dir), 'r');
  } catch {
    return { entries: [], offset };
  }
  try {
    const size = (await fh.stat()).size;
    if (size <= offset) return { entries: [], offset };
    const buf = Buffer.alloc(size - offset);
    await fh.read(buf, 0, buf.length, offset);
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n') + 1;
    const entries: LogEntry[] = [];
    for (const line of text.slice(0, end).split('\n')) {
      if (!line) continue;
      try {
        entries.push(JSON.parse(line) as LogEntry);
      } catch {
        // a damaged line: skip it rather than lose the rest
      }
    }
    return { entries, offset: offset + Buffer.byteLength(text.slice(0, end)) };
  } finally {
    await fh.close();
  }
}
