// Inline pragmas, as hadolint reads them, plus kiln's spelling of the same:
//   # hadolint ignore=DL3006,SC2086          the next instruction only
//   # hadolint global ignore=DL3008          the whole file
//   # hadolint stage ignore=DL3011           the stage whose FROM comes next
//   # hadolint shell=powershell              RUN is not POSIX shell: shell rules do not apply
//   # kiln ignore=… / # kiln global ignore=… the same
//   # kiln production                        the file builds a production image (rule KL1004)
// The Dockerfile parser drops comments, so they are read from the text, and tied to instructions by
// the lines the parser reports. A pragma may end in a comment of its own (`… ignore=DL3002 # why`);
// one that names anything but rule codes is not a pragma, as in hadolint.

export interface Pragmas {
  /** Codes ignored everywhere in the file. */
  global: Set<string>;
  /** Codes ignored per instruction start line. */
  byLine: Map<number, Set<string>>;
  /** Codes ignored from a FROM line up to the next FROM (`stage ignore=`). */
  byStage: { from: number; to: number; codes: Set<string> }[];
  /** `shell=` pragma: the shell RUN instructions use, when not POSIX. */
  shell?: string;
  production: boolean;
  /** Lines of `ignore=` pragmas for the next instruction (hadolint's DL1001 asks for none). */
  inline: number[];
}

const pragmaRe = /^\s*#\s*(?:hadolint|kiln)\s+(?:(global|stage)\s+)?ignore\s*=\s*([A-Za-z0-9,\s]+?)\s*(?:#.*)?$/;
const shellRe = /^\s*#\s*(?:hadolint|kiln)\s+shell\s*=\s*([^\s#]+)\s*(?:#.*)?$/;
const ruleCode = /^(DL|SC|KL)\d+$/;
const productionRe = /^\s*#\s*kiln\s+production\s*$/;

/** `instructionLines`: the 1-based first line of every instruction; `fromLines`, those of the FROMs. */
export function readPragmas(text: string, instructionLines: number[], fromLines: number[] = []): Pragmas {
  const out: Pragmas = { global: new Set(), byLine: new Map(), byStage: [], production: false, inline: [] };
  const lines = text.split('\n');
  const starts = [...instructionLines].sort((a, b) => a - b);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (productionRe.test(raw)) out.production = true;
    const shell = shellRe.exec(raw);
    if (shell) out.shell = shell[1];
    const m = pragmaRe.exec(raw);
    if (!m) return;
    const codes = m[2]!.split(/[\s,]+/).filter(Boolean);
    if (!codes.every((c) => ruleCode.test(c))) return;
    if (m[1] === 'global') {
      for (const c of codes) out.global.add(c);
      return;
    }
    if (m[1] === 'stage') {
      const from = fromLines.find((l) => l > line);
      if (from !== undefined) out.byStage.push({ from, to: fromLines.find((l) => l > from) ?? Infinity, codes: new Set(codes) });
      return;
    }
    out.inline.push(line);
    // The instruction right below, with nothing but comments and blank lines in between.
    const next = starts.find((s) => s > line);
    if (next === undefined) return;
    for (let k = line; k < next - 1; k++) {
      const between = lines[k]!.trim();
      if (between !== '' && !between.startsWith('#')) return;
    }
    const set = out.byLine.get(next) ?? new Set<string>();
    for (const c of codes) set.add(c);
    out.byLine.set(next, set);
  });
  return out;
}
