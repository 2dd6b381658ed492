// The "Name: value" paragraphs that dpkg's status database (deb822, Debian Policy 5.1), Python's
// core metadata (RFC 822 headers, Python packaging "Core metadata specifications") and Debian's
// machine-readable copyright files all use: a field starts at column 0, a line starting with a space
// or tab continues it, a blank line ends a paragraph.

export interface Paragraph {
  /** Field values, names as written (first occurrence first); repeated fields keep every value. */
  fields: Map<string, string[]>;
  /** 1-based line where the paragraph starts, for problems. */
  line: number;
}

export interface ParsedParagraphs {
  paragraphs: Paragraph[];
  /** Lines that are neither a field nor a continuation, with their 1-based numbers. */
  errors: { line: number; message: string }[];
}

/** Splits `text` into paragraphs; `headersOnly` stops at the first blank line (an email body follows). */
export function parseParagraphs(text: string, headersOnly = false): ParsedParagraphs {
  const paragraphs: Paragraph[] = [];
  const errors: { line: number; message: string }[] = [];
  let current: Paragraph | undefined;
  let last: { name: string; index: number } | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') {
      if (current && headersOnly) break;
      current = undefined;
      last = undefined;
      continue;
    }
    if (line[0] === ' ' || line[0] === '\t') {
      if (!current || !last) {
        errors.push({ line: i + 1, message: 'continuation line outside a field' });
        continue;
      }
      const values = current.fields.get(last.name)!;
      values[last.index] += '\n' + line.slice(1);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      errors.push({ line: i + 1, message: `expected "Field: value", got "${line.length > 60 ? line.slice(0, 60) + '…' : line}"` });
      continue;
    }
    if (!current) {
      current = { fields: new Map(), line: i + 1 };
      paragraphs.push(current);
    }
    const name = line.slice(0, colon);
    const values = current.fields.get(name) ?? [];
    values.push(line.slice(colon + 1).trim());
    current.fields.set(name, values);
    last = { name, index: values.length - 1 };
  }
  return { paragraphs, errors };
}

/** The first value of a field, or undefined. */
export function field(p: Paragraph, name: string): string | undefined {
  return p.fields.get(name)?.[0];
}
