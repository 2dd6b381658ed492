// Human sizes and times; the exact value goes in the element's title (see Size and Time in ui.tsx).

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB" (binary units, as kiln's CLI prints them). */
export function humanSize(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

const steps: [number, Intl.RelativeTimeFormatUnit][] = [
  [60, 'second'],
  [60, 'minute'],
  [24, 'hour'],
  [30, 'day'],
  [12, 'month'],
  [Infinity, 'year'],
];
const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** A time (Unix ms) relative to now: "3 minutes ago". */
export function relativeTime(ms: number, now = Date.now()): string {
  let v = (ms - now) / 1000;
  for (const [size, unit] of steps) {
    if (Math.abs(v) < size) return rtf.format(Math.round(v), unit);
    v /= size;
  }
  return new Date(ms).toISOString();
}

/** sha256:0123456789ab… → "sha256:0123456789ab" (12 hex digits, as docker shows image ids). */
export function shortDigest(d: string): string {
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 12) : d.slice(0, i + 13);
}
