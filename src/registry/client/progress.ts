// What a pull or push reports while it runs, as plain data; the CLI turns it into docker-like lines.

export type BlobState =
  | 'waiting'
  | 'exists' // pull: already in the store; push: the registry has it (HEAD)
  | 'downloading'
  | 'downloaded'
  | 'compressing'
  | 'pushing'
  | 'pushed'
  | 'mounted';

export type TransferEvent =
  | {
      type: 'blob';
      digest: string;
      kind: 'config' | 'layer';
      state: BlobState;
      current: number;
      total: number;
      /** mounted: the repository it was mounted from. */
      from?: string;
      /** The blob this one stands for: a layer's gzip variant made for a push replaces the uncompressed layer. */
      replaces?: string;
    }
  /** A transfer hit a broken connection or a 5xx and goes on (resumes with a Range request, or retries). */
  | { type: 'retry'; digest?: string; why: string }
  | { type: 'warning'; message: string };

export type ProgressListener = (event: TransferEvent) => void;
