// One severity scale for every source: Debian's urgencies, OSV records' own severity words, and
// CVSS v3 vectors (scored with the CVSS v3.1 specification's base score equations, §7.1 and §5).

export const severities = ['unknown', 'negligible', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];

export function severityRank(s: Severity): number {
  return severities.indexOf(s);
}

export function isSeverity(s: string): s is Severity {
  return (severities as readonly string[]).includes(s);
}

/**
 * The Debian security tracker's urgency of an issue in a release. A trailing `*` or `**` marks an
 * urgency taken from an unverified source; it is still the best the tracker has.
 */
export function severityOfUrgency(urgency: string | undefined): Severity {
  switch ((urgency ?? '').replace(/\*+$/, '').trim()) {
    case 'unimportant':
      return 'negligible';
    case 'low':
      return 'low';
    case 'medium':
      return 'medium';
    case 'high':
      return 'high';
    default:
      return 'unknown'; // "not yet assigned", "end-of-life", absent
  }
}

/** Severity words as advisory databases write them (GitHub's MODERATE, Ubuntu's "negligible"…). */
export function severityOfWord(word: unknown): Severity | undefined {
  if (typeof word !== 'string') return undefined;
  const w = word.trim().toLowerCase();
  if (w === 'moderate' || w === 'important') return w === 'moderate' ? 'medium' : 'high';
  if (w === 'none') return 'negligible';
  return isSeverity(w) && w !== 'unknown' ? w : undefined;
}

const weights: Record<string, Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  C: { H: 0.56, L: 0.22, N: 0 },
  I: { H: 0.56, L: 0.22, N: 0 },
  A: { H: 0.56, L: 0.22, N: 0 },
};

/** CVSS v3.1 Appendix A: round up to one decimal, robust to floating-point error. */
function roundUp(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

/** The base score of a CVSS v3.0/v3.1 vector ("CVSS:3.1/AV:N/AC:L/…"), or undefined if it is not one. */
export function cvss3BaseScore(vector: string): number | undefined {
  const parts = vector.trim().split('/');
  if (!/^CVSS:3\.[01]$/.test(parts[0] ?? '')) return undefined;
  const m = new Map(parts.slice(1).map((p) => p.split(':') as [string, string]));
  const scope = m.get('S');
  const pr = m.get('PR');
  if (scope !== 'U' && scope !== 'C') return undefined;
  const w = (k: string): number | undefined => weights[k]![m.get(k) ?? ''];
  const [av, ac, ui, c, i, a] = ['AV', 'AC', 'UI', 'C', 'I', 'A'].map(w);
  const prw = pr === 'N' ? 0.85 : pr === 'L' ? (scope === 'C' ? 0.68 : 0.62) : pr === 'H' ? (scope === 'C' ? 0.5 : 0.27) : undefined;
  if ([av, ac, ui, c, i, a, prw].some((x) => x === undefined)) return undefined;
  const iss = 1 - (1 - c!) * (1 - i!) * (1 - a!);
  const impact = scope === 'U' ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15);
  const exploitability = 8.22 * av! * ac! * prw! * ui!;
  if (impact <= 0) return 0;
  return scope === 'U' ? roundUp(Math.min(impact + exploitability, 10)) : roundUp(Math.min(1.08 * (impact + exploitability), 10));
}

/** CVSS v3.1 §5 qualitative severity rating scale. */
export function severityOfScore(score: number): Severity {
  if (score === 0) return 'negligible';
  if (score < 4) return 'low';
  if (score < 7) return 'medium';
  if (score < 9) return 'high';
  return 'critical';
}
