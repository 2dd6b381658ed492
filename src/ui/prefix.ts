/** A stream that writes each non-empty line to `out` behind `prefix`, so that parallel builds stay readable. */
export function prefixedLines(prefix: string, out: NodeJS.WritableStream): NodeJS.WritableStream {
  let atStart = true;
  return {
    write(chunk: string | Uint8Array) {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      let s = '';
      for (const piece of text.split(/(?<=\n)/)) {
        if (atStart && piece !== '' && piece !== '\n') s += prefix;
        s += piece;
        atStart = piece.endsWith('\n');
      }
      return out.write(s);
    },
  } as NodeJS.WritableStream;
}
