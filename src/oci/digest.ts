import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatch, InvalidDigest } from '../errors.js';

// OCI image-spec descriptor.md: digest = algorithm ":" encoded. kiln computes sha256 and
// accepts sha512 when verifying content written by others.
const digestPattern = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): boolean {
  return digestPattern.test(s);
}

export function assertDigest(s: string, what = 'digest'): string {
  if (!isDigest(s)) throw new InvalidDigest(`invalid ${what} "${s}": expected sha256:<64 hex>`);
  return s;
}

export function sha256(data: string | Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function algorithmOf(digest: string): 'sha256' | 'sha512' {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function encodedOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/**
 * Hashes and counts bytes handed to it. With `expect` set, update() fails as soon as there are more
 * bytes than expected and finish() fails unless both size and digest match: content is never taken
 * as verified on the way.
 */
export class Digester {
  private readonly hash: Hash;
  private readonly algorithm: 'sha256' | 'sha512';
  size = 0;
  digest = '';

  constructor(private readonly expect?: { digest?: string; size?: number; what?: string }) {
    this.algorithm = expect?.digest ? algorithmOf(expect.digest) : 'sha256';
    this.hash = createHash(this.algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    if (this.expect?.size !== undefined && this.size > this.expect.size) {
      throw new DigestMismatch(`${this.expect.what ?? 'content'}: more than the expected ${this.expect.size} bytes`);
    }
  }

  /** The digest of everything given; throws DigestMismatch if it is not what was expected. */
  finish(): string {
    this.digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    const what = this.expect?.what ?? 'content';
    if (this.expect?.size !== undefined && this.size !== this.expect.size) {
      throw new DigestMismatch(`${what}: size ${this.size}, expected ${this.expect.size}`);
    }
    if (this.expect?.digest && this.digest !== this.expect.digest) {
      throw new DigestMismatch(`${what}: digest ${this.digest}, expected ${this.expect.digest}`);
    }
    return this.digest;
  }
}

/**
 * A pass-through stream that hashes what flows through it and counts bytes. When `expect` is set
 * the stream fails with DigestMismatch at its end instead of letting unverified content through.
 */
export class DigestingStream extends Transform {
  private readonly digester: Digester;

  constructor(expect?: { digest?: string; size?: number; what?: string }) {
    super();
    this.digester = new Digester(expect);
  }

  get size(): number {
    return this.digester.size;
  }

  get digest(): string {
    return this.digester.digest;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.digester.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.digester.finish();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}

/** OCI image-spec config.md: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

export function chainId(diffIds: readonly string[]): string | undefined {
  const ids = chainIds(diffIds);
  return ids[ids.length - 1];
}

/** Short form used in tables: the first 12 hex characters, as docker prints image IDs. */
export function shortId(digest: string): string {
  return encodedOf(digest).slice(0, 12);
}
