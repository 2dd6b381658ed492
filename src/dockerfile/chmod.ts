import { parseGoUint32 } from './gocompat.js';

// COPY and ADD --chmod as BuildKit reads it (frontend/dockerfile/dockerfile2llb/convert_copy.go,
// dispatchCopy): a base-8 number (strconv.ParseUint(s, 8, 32), so "0", "000" and "00755" too) up to
// 07777 is the exact mode of every copied file and directory; anything else must be a chmod(1)
// symbolic mode, applied to each copied entry's own mode with a umask of 0 (fsutil copy:
// mode.ParseWithUmask(ModeStr, 0), then Set.Apply in copyFileInfo). Symbolic modes left the labs
// channel in Dockerfile frontend 1.14 (buildkit 165f8b441), so no syntax directive is needed.

/** A parsed --chmod. */
export type Chmod = { kind: 'octal'; mode: number } | { kind: 'symbolic'; ops: ModeOp[] };

/**
 * One step of a symbolic mode, applied in order (BSD setmode(3)'s commands):
 * set or clear bits; set bits only for a directory or an entry that had an execute bit before the
 * whole change (X); or copy the u, g or o permission triple into the classes of `to`.
 */
type ModeOp =
  | { op: 'set' | 'clear' | 'setIfExecutable'; bits: number }
  | { op: 'copy'; from: 'u' | 'g' | 'o'; to: number; clear: boolean; set: boolean };

/** A --chmod BuildKit refuses; the message is BuildKit's. */
export class InvalidChmod extends Error {
  override name = 'InvalidChmod';
}

const setuid = 0o4000;
const setgid = 0o2000;
const sticky = 0o1000;
/** Every class's bits a `who` of "a" (or none) touches: not the sticky bit (setmode.c STANDARD_BITS). */
const standardBits = setuid | setgid | 0o777;
const whoBits: Record<string, number> = { a: standardBits, u: setuid | 0o700, g: setgid | 0o070, o: 0o007 };
const shift = { u: 6, g: 3, o: 0 } as const;

export function parseChmod(s: string): Chmod {
  const nonOctal = new InvalidChmod(`invalid chmod parameter: '${s}'. it should be octal string and between 0 and 07777`);
  const n = parseGoUint32(s, 8);
  if (n !== undefined) {
    if (n > 0o7777) throw nonOctal;
    return { kind: 'octal', mode: n };
  }
  // mode.Parse reads anything that starts with a digit as a number: its strconv error becomes the
  // octal message "for compatibility if the value looks numeric".
  if (/^[0-9]/.test(s)) throw nonOctal;
  const ops = parseSymbolic(s);
  if (!ops) throw new InvalidChmod(`invalid chmod parameter: '${s}'`);
  return { kind: 'symbolic', ops };
}

/** The mode (permission, setuid/setgid and sticky bits) a copied entry gets from its source's mode. */
export function applyChmod(chmod: Chmod, mode: number, isDirectory: boolean): number {
  if (chmod.kind === 'octal') return chmod.mode;
  const before = mode & 0o7777;
  let m = before;
  for (const o of chmod.ops) {
    if (o.op === 'copy') {
      const triple = (m >> shift[o.from]) & 0o7;
      for (const cls of ['u', 'g', 'o'] as const) {
        if (!(o.to & (0o4 << shift[cls]))) continue;
        if (o.clear) m &= ~((o.set ? 0o7 : triple) << shift[cls]);
        if (o.set) m |= triple << shift[cls];
      }
    } else if (o.op === 'set') m |= o.bits;
    else if (o.op === 'clear') m &= ~o.bits;
    else if (isDirectory || before & 0o111) m |= o.bits;
  }
  return m;
}

/**
 * chmod(1)'s symbolic grammar: clauses separated by commas, each `[ugoa]*` then one or more actions,
 * an action being an operator (+, - or =) and either permission letters (rwxXst) or one class (u, g, o)
 * to copy from. No `who` means every class with a umask of 0. Returns undefined on a syntax error.
 */
function parseSymbolic(s: string): ModeOp[] | undefined {
  const ops: ModeOp[] = [];
  let i = 0;
  for (;;) {
    let who = 0;
    while (i < s.length && s[i]! in whoBits) who |= whoBits[s[i++]!]!;
    if (i === s.length) return undefined;
    do {
      const op = s[i++];
      if (op !== '+' && op !== '-' && op !== '=') return undefined;
      // "=" clears the classes named (or all but the sticky bit) before it sets; an "=" with letters
      // after a class to copy from clears again, dropping the copy (setmode.c does the same).
      let whoNow = who;
      const assign = (bits: number) => {
        if (op === '=') ops.push({ op: 'clear', bits: whoNow || standardBits });
        if (bits) ops.push({ op: op === '-' ? 'clear' : 'set', bits: whoNow ? whoNow & bits : bits });
      };
      let cleared = false;
      let perm = 0;
      let ifExecutable = 0;
      for (; i < s.length; i++) {
        const c = s[i]!;
        if (c === 'r') perm |= 0o444;
        else if (c === 'w') perm |= 0o222;
        else if (c === 'x') perm |= 0o111;
        else if (c === 'X') {
          if (op === '-') perm |= 0o111;
          else ifExecutable = 0o111;
        } else if (c === 's') {
          // setuid/setgid mean nothing for "o" alone.
          if (who === 0 || who & ~0o007) perm |= setuid | setgid;
        } else if (c === 't') {
          if (who === 0 || who & ~0o007) {
            whoNow |= sticky;
            perm |= sticky;
          }
        } else if (c === 'u' || c === 'g' || c === 'o') {
          if (perm) assign(perm);
          // "=u" copies with its own clearing: no separate clear of the classes first.
          if (op === '=') cleared = true;
          perm = 0;
          if (ifExecutable) ops.push({ op: 'setIfExecutable', bits: whoNow ? whoNow & ifExecutable : ifExecutable });
          ifExecutable = 0;
          ops.push({ op: 'copy', from: c, to: whoNow ? whoNow : 0o777, clear: op !== '+', set: op !== '-' });
        } else break;
      }
      if (perm || (op === '=' && !cleared)) assign(perm);
      if (ifExecutable) ops.push({ op: 'setIfExecutable', bits: whoNow ? whoNow & ifExecutable : ifExecutable });
    } while (i < s.length && s[i] !== ',');
    if (i === s.length) return ops;
    i++;
  }
}
