// The tar format as image layers use it: POSIX ustar headers with PAX extended headers
// (POSIX.1-2001 pax, IEEE Std 1003.1 "pax" Extended Header), read leniently (GNU long names,
// old-style directories, base-256 numbers) and written strictly and deterministically.
//
// Why not tar-stream here: layers carry extended attributes as PAX records `SCHILY.xattr.NAME`
// whose values are raw bytes (security.capability is binary). tar-stream encodes and decodes every
// PAX value as UTF-8, which corrupts such values, and it cannot emit a caller-built PAX header.
// The codec is small; tests cross-check it against tar-stream and GNU tar.

import { ArchiveInvalid } from '../errors.js';

export const BLOCK_SIZE = 512;

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One tar entry's metadata. */
export interface TarHeader {
  /**
   * Path of the entry. Written: relative, '/'-separated, without a trailing '/' (the encoder adds
   * it to directories). Read: exactly as stored, so appliers can judge hostile names themselves.
   */
  path: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in seconds since the epoch (PAX may carry fractions). */
  mtime: number;
  /** Content length; 0 for everything but regular files. */
  size: number;
  /** Symlink target, or the path a hardlink points at; '' otherwise. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.*` records, raw values. */
  xattrs: Record<string, Buffer>;
}

export function tarHeader(h: Partial<TarHeader> & Pick<TarHeader, 'path' | 'type'>): TarHeader {
  return {
    mode: h.type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    size: 0,
    linkname: '',
    devmajor: 0,
    devminor: 0,
    xattrs: {},
    ...h,
  };
}

const typeflags: Record<EntryType, number> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  directory: 0x35,
  fifo: 0x36,
};

const PAX_TYPEFLAG = 0x78; // 'x'
const PAX_GLOBAL_TYPEFLAG = 0x67; // 'g'
const GNU_LONGNAME = 0x4c; // 'L'
const GNU_LONGLINK = 0x4b; // 'K'

/** Two zero blocks end an archive (POSIX ustar). */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK_SIZE);
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** Zero bytes that bring `size` bytes of content up to a block boundary. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? ZERO_BLOCK.subarray(0, 0) : ZERO_BLOCK.subarray(0, BLOCK_SIZE - rest);
}

// ---------------------------------------------------------------------------------------------
// Writing

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;
const USTAR_NAME = 100;
const USTAR_PREFIX = 155;

// ustar string fields are bytes without an encoding; anything but printable ASCII goes to PAX,
// as Go's archive/tar does, so every reader agrees on the name.
function isPortable(s: string): boolean {
  return /^[\x01-\x7f]*$/.test(s);
}

function splitUstar(name: string): [prefix: string, name: string] | undefined {
  if (name.length <= USTAR_NAME) return ['', name];
  let end = Math.min(name.length, USTAR_PREFIX + 1);
  if (end === name.length && name.endsWith('/')) end--;
  const i = name.lastIndexOf('/', end - 1);
  if (i <= 0) return undefined;
  const rest = name.length - i - 1;
  if (rest === 0 || rest > USTAR_NAME || i > USTAR_PREFIX) return undefined;
  return [name.slice(0, i), name.slice(i + 1)];
}

function writeString(buf: Buffer, off: number, len: number, s: string): void {
  buf.write(s.slice(0, len), off, len, 'latin1');
}

function writeOctal(buf: Buffer, off: number, len: number, value: number): void {
  // len-1 zero-padded octal digits and a NUL.
  buf.write(value.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
  buf[off + len - 1] = 0;
}

function ustarBlock(f: {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  writeString(b, 0, 100, f.name);
  writeOctal(b, 100, 8, f.mode & 0o7777);
  writeOctal(b, 108, 8, f.uid);
  writeOctal(b, 116, 8, f.gid);
  writeOctal(b, 124, 12, f.size);
  writeOctal(b, 136, 12, f.mtime);
  b.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  b[156] = f.typeflag;
  writeString(b, 157, 100, f.linkname);
  b.write('ustar\x0000', 257, 8, 'latin1');
  // uname and gname stay empty: ownership is numeric in images.
  writeOctal(b, 329, 8, f.devmajor);
  writeOctal(b, 337, 8, f.devminor);
  writeString(b, 345, 155, f.prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 8, 'latin1');
  return b;
}

// POSIX pax: each record is "LEN KEY=VALUE\n", LEN counting the whole record including itself.
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

/** The header block(s) of one entry: a PAX extended header first when ustar cannot hold it. */
export function encodeHeader(h: TarHeader): Buffer {
  const pax: Buffer[] = [];
  const name = h.type === 'directory' ? h.path + '/' : h.path;
  let ustarName = name;
  let prefix = '';
  const split = isPortable(name) ? splitUstar(name) : undefined;
  if (split) [prefix, ustarName] = split;
  else {
    pax.push(paxRecord('path', Buffer.from(name)));
    ustarName = name.replace(/[^\x01-\x7f]/g, '_').slice(0, USTAR_NAME);
  }
  let linkname = h.linkname;
  if (linkname.length > USTAR_NAME || !isPortable(linkname)) {
    pax.push(paxRecord('linkpath', Buffer.from(linkname)));
    linkname = linkname.replace(/[^\x01-\x7f]/g, '_').slice(0, USTAR_NAME);
  }
  const size = h.type === 'file' ? h.size : 0;
  const numeric = (key: string, value: number, max: number): number => {
    if (Number.isInteger(value) && value >= 0 && value <= max) return value;
    pax.push(paxRecord(key, Buffer.from(String(value))));
    return 0;
  };
  const mtime = Math.floor(h.mtime);
  const fields = {
    name: ustarName,
    prefix,
    mode: h.mode,
    uid: numeric('uid', h.uid, MAX_OCTAL_7),
    gid: numeric('gid', h.gid, MAX_OCTAL_7),
    size: numeric('size', size, MAX_OCTAL_11),
    mtime: numeric('mtime', mtime, MAX_OCTAL_11),
    typeflag: typeflags[h.type],
    linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
  };
  if (h.devmajor > MAX_OCTAL_7 || h.devminor > MAX_OCTAL_7) {
    throw new ArchiveInvalid(`${h.path}: device number ${h.devmajor}:${h.devminor} does not fit a tar header`);
  }
  // Sorted so the same attributes always produce the same bytes.
  for (const key of Object.keys(h.xattrs).sort()) pax.push(paxRecord(`SCHILY.xattr.${key}`, h.xattrs[key]));
  const main = ustarBlock(fields);
  if (pax.length === 0) return main;
  const records = Buffer.concat(pax);
  const paxHeader = ustarBlock({
    name: 'PaxHeader',
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: records.length,
    mtime: 0,
    typeflag: PAX_TYPEFLAG,
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, records, padding(records.length), main]);
}

// ---------------------------------------------------------------------------------------------
// Reading

/** One entry as read: its header and its content, which must be consumed (or abandoned) before the next entry is asked for. */
export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
}

class Truncated extends Error {}

/** Pulls exact byte counts out of an async source of chunks without copying more than needed. */
class ByteSource {
  private chunks: Buffer[] = [];
  private first = 0; // offset into chunks[0]
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far: the offset in the stream of what comes next. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<unknown>) {}

  private async pull(): Promise<boolean> {
    while (!this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const v = r.value;
      const b = Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v) : Buffer.from(v as Uint8Array);
      if (b.length === 0) continue;
      this.chunks.push(b);
      this.buffered += b.length;
      return true;
    }
    return false;
  }

  /** Up to `max` bytes, as few copies as possible; null at the end of the stream. */
  async next(max: number): Promise<Buffer | null> {
    if (this.buffered === 0 && !(await this.pull())) return null;
    const head = this.chunks[0];
    const n = Math.min(max, head.length - this.first);
    const out = head.subarray(this.first, this.first + n);
    this.first += n;
    if (this.first === head.length) {
      this.chunks.shift();
      this.first = 0;
    }
    this.buffered -= n;
    this.offset += n;
    return out;
  }

  /** Exactly n bytes; null when the stream ends before the first of them; Truncated when it ends in between. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buffered < n) {
      if (!(await this.pull())) {
        if (this.buffered === 0) return null;
        throw new Truncated();
      }
    }
    const first = await this.next(n);
    if (first === null || first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const c = (await this.next(n - got))!;
      parts.push(c);
      got += c.length;
    }
    return Buffer.concat(parts, n);
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      const c = await this.next(n);
      if (c === null) throw new Truncated();
      n -= c.length;
    }
  }

  /** Consumes the rest of the stream (the end-of-archive blocks and any record padding). */
  async drain(): Promise<void> {
    while ((await this.next(Number.MAX_SAFE_INTEGER)) !== null);
  }
}

function readString(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

function readNumber(b: Buffer, off: number, len: number): number {
  // GNU base-256: high bit of the first byte set (used for sizes over 8 GiB and large ids).
  if (b[off] & 0x80) {
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new ArchiveInvalid(`invalid tar header: bad numeric field "${s}"`);
  return parseInt(s, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = readNumber(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  // Some old tars summed signed chars; accept either, as GNU tar and Go do.
  return stored === unsigned || stored === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (b[i] !== 0) return false;
  return true;
}

type PaxRecords = Map<string, Buffer>;

function parsePax(buf: Buffer): PaxRecords {
  const out: PaxRecords = new Map();
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // NUL padding after the last record
    const space = buf.indexOf(0x20, pos);
    const len = space === -1 ? NaN : Number(buf.toString('latin1', pos, space));
    if (!Number.isInteger(len) || len <= space - pos || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) {
      throw new ArchiveInvalid('invalid tar: malformed PAX extended header');
    }
    const rec = buf.subarray(space + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new ArchiveInvalid('invalid tar: malformed PAX extended header');
    // Values stay raw bytes: xattr values are binary.
    out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

function paxNumber(v: Buffer, key: string): number {
  const n = Number(v.toString('latin1'));
  if (!Number.isFinite(n)) throw new ArchiveInvalid(`invalid tar: PAX ${key} "${v.toString('latin1')}"`);
  return n;
}

const MAX_META_SIZE = 16 * 1024 * 1024;
const XATTR_KEY = 'SCHILY.xattr.';

/**
 * Reads a tar stream entry by entry. Each entry's body must be read or abandoned before asking for
 * the next entry; what is left of it is skipped. The whole source is consumed, end-of-archive
 * blocks included, so a digest over the source covers every byte. Malformed or truncated input
 * fails with ArchiveInvalid.
 */
export async function* readTar(source: AsyncIterable<unknown>): AsyncGenerator<TarEntry, void, undefined> {
  const input = new ByteSource(source[Symbol.asyncIterator]());
  let globalPax: PaxRecords = new Map();
  let pax: PaxRecords | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let current = '';
  try {
    for (;;) {
      const at = input.offset;
      const block = await input.read(BLOCK_SIZE);
      // A stream ending on a block boundary without end-of-archive blocks is accepted, as Go's
      // archive/tar accepts it; a stream ending inside a block or an entry is not.
      if (block === null) return;
      if (isZeroBlock(block)) {
        await input.drain();
        return;
      }
      if (!checksumOk(block)) throw new ArchiveInvalid(`invalid tar header at offset ${at}: checksum mismatch`);
      const typeflag = block[156];
      const headerSize = readNumber(block, 124, 12);
      current = readString(block, 0, 100);

      if (typeflag === PAX_TYPEFLAG || typeflag === PAX_GLOBAL_TYPEFLAG || typeflag === GNU_LONGNAME || typeflag === GNU_LONGLINK) {
        if (headerSize > MAX_META_SIZE) throw new ArchiveInvalid(`invalid tar: extended header of ${headerSize} bytes at offset ${at}`);
        const data = (await input.read(headerSize)) ?? Buffer.alloc(0);
        if (data.length < headerSize) throw new Truncated();
        await input.skip(padding(headerSize).length);
        if (typeflag === PAX_TYPEFLAG) pax = parsePax(data);
        else if (typeflag === PAX_GLOBAL_TYPEFLAG) globalPax = new Map([...globalPax, ...parsePax(data)]);
        else if (typeflag === GNU_LONGNAME) longName = readString(data, 0, data.length);
        else longLink = readString(data, 0, data.length);
        continue;
      }

      const records: PaxRecords = pax ? new Map([...globalPax, ...pax]) : globalPax;
      pax = undefined;
      let path = current;
      // ustar (magic "ustar\0") splits long names into prefix + name; GNU's "ustar  " does not.
      if (block.toString('latin1', 257, 263) === 'ustar\0' && block[345] !== 0) path = readString(block, 345, 155) + '/' + path;
      let linkname = readString(block, 157, 100);
      if (longName !== undefined) path = longName;
      if (longLink !== undefined) linkname = longLink;
      longName = longLink = undefined;

      const header: TarHeader = {
        path,
        type: 'file',
        mode: readNumber(block, 100, 8) & 0o7777,
        uid: readNumber(block, 108, 8),
        gid: readNumber(block, 116, 8),
        mtime: readNumber(block, 136, 12),
        size: headerSize,
        linkname,
        devmajor: readNumber(block, 329, 8),
        devminor: readNumber(block, 337, 8),
        xattrs: {},
      };
      for (const [key, value] of records) {
        if (key === 'path') header.path = value.toString('utf8');
        else if (key === 'linkpath') header.linkname = value.toString('utf8');
        else if (key === 'size') header.size = paxNumber(value, key);
        else if (key === 'uid') header.uid = paxNumber(value, key);
        else if (key === 'gid') header.gid = paxNumber(value, key);
        else if (key === 'mtime') header.mtime = paxNumber(value, key);
        else if (key.startsWith(XATTR_KEY)) header.xattrs[key.slice(XATTR_KEY.length)] = value;
        else if (key.startsWith('GNU.sparse.')) throw new ArchiveInvalid(`unsupported tar entry "${header.path}": GNU sparse file`);
      }
      current = header.path;

      switch (typeflag) {
        case 0x30:
        case 0x00:
        case 0x37: // contiguous file: a regular file everywhere that matters
          header.type = header.path.endsWith('/') ? 'directory' : 'file';
          break;
        case 0x31: header.type = 'hardlink'; break;
        case 0x32: header.type = 'symlink'; break;
        case 0x33: header.type = 'char'; break;
        case 0x34: header.type = 'block'; break;
        case 0x35: header.type = 'directory'; break;
        case 0x36: header.type = 'fifo'; break;
        default:
          throw new ArchiveInvalid(`unsupported tar entry type '${String.fromCharCode(typeflag)}' for "${header.path}"`);
      }
      if (header.type === 'directory' && header.path.length > 1) header.path = header.path.replace(/\/+$/, '');
      // Only regular files have content; other types' size fields are ignored, as Go's reader does.
      const dataSize = header.type === 'file' ? header.size : 0;
      if (!Number.isSafeInteger(dataSize) || dataSize < 0) throw new ArchiveInvalid(`invalid tar: entry "${header.path}" has size ${dataSize}`);
      if (header.type !== 'file') header.size = 0;

      let remaining = dataSize;
      const body: AsyncIterable<Buffer> = {
        async *[Symbol.asyncIterator]() {
          while (remaining > 0) {
            const c = await input.next(remaining);
            if (c === null) throw new ArchiveInvalid(`truncated tar: unexpected end of data in entry "${header.path}"`);
            remaining -= c.length;
            yield c;
          }
        },
      };
      yield { header, body };
      await input.skip(remaining);
      remaining = 0;
      await input.skip(padding(dataSize).length);
    }
  } catch (err) {
    if (err instanceof Truncated) throw new ArchiveInvalid(`truncated tar: unexpected end of data${current ? ` in entry "${current}"` : ''}`);
    throw err;
  }
}
