/**
 * Progress events of a build. The solver emits them; renderers in ui/ draw them. A vertex is one
 * step (or an internal action such as loading the definition); ids number them in start order.
 */
export interface ProgressSink {
  start(id: number, name: string): void;
  log(id: number, stream: 'stdout' | 'stderr', text: string): void;
  cached(id: number): void;
  done(id: number, error?: string): void;
  warn(message: string): void;
  /** The build is over; flush whatever is buffered. */
  close(): void;
}

export const silentProgress: ProgressSink = {
  start() {},
  log() {},
  cached() {},
  done() {},
  warn() {},
  close() {},
};
