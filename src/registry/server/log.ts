/**
 * Structured logs: one JSON object per line on stdout. Lines are gathered and written together a
 * few milliseconds later, so a busy server makes one write per batch instead of one per request.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
  enabled(level: Level): boolean;
  flush(): void;
}

export function logger(level: Level, write: (s: string) => void = (s) => process.stdout.write(s)): Logger {
  const min = order[level];
  let buf: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (buf.length === 0) return;
    const s = buf.join('');
    buf = [];
    write(s);
  };
  return {
    enabled: (l) => order[l] >= min,
    log(l, msg, fields) {
      if (order[l] < min) return;
      buf.push(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields }) + '\n');
      if (buf.length >= 512) flush();
      else if (!timer) {
        timer = setTimeout(flush, 10);
        timer.unref();
      }
    },
    flush,
  };
}
