// OSV records (https://ossf.github.io/osv-schema/): reading a directory of them, and deciding whether
// a version falls in an affected[] entry's ranges — the schema's "Evaluation" section: events sorted by
// version, `introduced` opens a range, `fixed` closes it before the version, `last_affected` after.

import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { AdvisoryInvalid } from './errors.js';
import { jsonPath, JsonShape, readJsonFile, type JsonObject } from './json-input.js';
import { cvss3BaseScore, severityOfScore, severityOfWord, type Severity } from './severity.js';
import { compareSemver, ecosystemOrdering, type CompareVersions } from './version-ecosystem.js';

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface OsvRange {
  type: string;
  events: OsvEvent[];
}

/** One affected[] entry of a record, with what a match reports of the record. */
export interface OsvAffected {
  id: string;
  aliases: string[];
  summary: string;
  ecosystem: string;
  name: string;
  ranges: OsvRange[];
  versions: string[];
  severity: Severity;
}

/** PyPI names compare normalised (PEP 503); other ecosystems' names exactly. */
export function packageName(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name;
}

export async function readOsvDirectory(dir: string): Promise<OsvAffected[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { recursive: true })).filter((n) => /\.json(\.gz)?$/.test(n)).sort();
  } catch (e) {
    throw new AdvisoryInvalid(`${dir}: cannot read the OSV directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: OsvAffected[] = [];
  for (const n of names) {
    const file = join(dir, n);
    const doc = await readJsonFile(file);
    // One record per file is the schema's way; a file holding an array of records is accepted too.
    const records = Array.isArray(doc) ? doc.map((r, i) => [r, `$[${i}]`] as const) : [[doc, '$'] as const];
    for (const [r, path] of records) out.push(...readRecord(new JsonShape(file), r, path));
  }
  if (names.length === 0) throw new AdvisoryInvalid(`${dir}: holds no OSV .json files (looked in ${relative(process.cwd(), dir) || '.'} and below)`);
  return out;
}

function readRecord(shape: JsonShape, value: unknown, path: string): OsvAffected[] {
  const r = shape.object(value, path);
  const id = shape.string(r.id, jsonPath(path, 'id'));
  if (r.withdrawn !== undefined && r.withdrawn !== null) return []; // withdrawn records are no longer advisories
  const aliases = shape.optionalArray(r.aliases, jsonPath(path, 'aliases')).map((a, i) => shape.string(a, jsonPath(jsonPath(path, 'aliases'), i)));
  const summary =
    shape.optionalString(r.summary, jsonPath(path, 'summary')) ?? shape.optionalString(r.details, jsonPath(path, 'details'))?.split('\n')[0] ?? '';
  const recordSeverity = severityOf(shape, r, path);
  const out: OsvAffected[] = [];
  shape.optionalArray(r.affected, jsonPath(path, 'affected')).forEach((av, i) => {
    const apath = jsonPath(jsonPath(path, 'affected'), i);
    const a = shape.object(av, apath);
    const pkg = shape.optionalObject(a.package, jsonPath(apath, 'package'));
    if (!pkg) return; // an entry naming only a git repository has no package to match
    const ecosystem = shape.string(pkg.ecosystem, jsonPath(jsonPath(apath, 'package'), 'ecosystem'));
    const name = shape.string(pkg.name, jsonPath(jsonPath(apath, 'package'), 'name'));
    const ranges = shape.optionalArray(a.ranges, jsonPath(apath, 'ranges')).map((rv, j) => readRange(shape, rv, jsonPath(jsonPath(apath, 'ranges'), j)));
    const versions = shape.optionalArray(a.versions, jsonPath(apath, 'versions')).map((v, j) => shape.string(v, jsonPath(jsonPath(apath, 'versions'), j)));
    const entrySeverity =
      severityOfWord(shape.optionalObject(a.ecosystem_specific, jsonPath(apath, 'ecosystem_specific'))?.severity) ??
      severityOfWord(shape.optionalObject(a.database_specific, jsonPath(apath, 'database_specific'))?.severity) ??
      severityOf(shape, a, apath);
    out.push({ id, aliases, summary, ecosystem, name: packageName(ecosystem, name), ranges, versions, severity: entrySeverity ?? recordSeverity ?? 'unknown' });
  });
  return out;
}

function readRange(shape: JsonShape, value: unknown, path: string): OsvRange {
  const r = shape.object(value, path);
  const type = shape.string(r.type, jsonPath(path, 'type'));
  const events = shape.array(r.events, jsonPath(path, 'events')).map((ev, k) => {
    const epath = jsonPath(jsonPath(path, 'events'), k);
    const e = shape.object(ev, epath);
    const keys = Object.keys(e).filter((key) => ['introduced', 'fixed', 'last_affected', 'limit'].includes(key));
    if (keys.length !== 1) shape.fail(epath, 'an event has exactly one of introduced, fixed, last_affected, limit');
    return { [keys[0]!]: shape.string(e[keys[0]!], jsonPath(epath, keys[0]!)) } as OsvEvent;
  });
  return { type, events };
}

/** A record's (or an affected entry's) severity: its own word for it, else the worst CVSS v3 score. */
function severityOf(shape: JsonShape, o: JsonObject, path: string): Severity | undefined {
  const word = severityOfWord(shape.optionalObject(o.database_specific, jsonPath(path, 'database_specific'))?.severity);
  if (word) return word;
  let best: number | undefined;
  shape.optionalArray(o.severity, jsonPath(path, 'severity')).forEach((sv, i) => {
    const s = shape.object(sv, jsonPath(jsonPath(path, 'severity'), i));
    const score = typeof s.score === 'string' && /^CVSS_V3/.test(String(s.type)) ? cvss3BaseScore(s.score) : undefined;
    if (score !== undefined && (best === undefined || score > best)) best = score;
  });
  return best === undefined ? undefined : severityOfScore(best);
}

export interface OsvVerdict {
  affected: boolean;
  /** The version that fixes the range the installed version is in; '' if none is known. */
  fixedVersion: string;
}

/**
 * Whether `version` is affected by the entry. Ranges of type GIT need the repository's history and
 * are skipped; a version string the ordering cannot read throws VersionSyntax.
 */
export function evaluateAffected(a: OsvAffected, version: string): OsvVerdict {
  let affected = a.versions.includes(version);
  let fixedVersion = '';
  for (const range of a.ranges) {
    const cmp: CompareVersions | undefined =
      range.type === 'SEMVER' ? compareSemver : range.type === 'ECOSYSTEM' ? ecosystemOrdering(a.ecosystem) : undefined;
    if (!cmp) continue;
    const v = inRange(range.events, version, cmp);
    if (v.affected) {
      affected = true;
      fixedVersion ||= v.fixedVersion;
    }
  }
  return { affected, fixedVersion };
}

function inRange(events: OsvEvent[], version: string, cmp: CompareVersions): OsvVerdict {
  const valueOf = (e: OsvEvent): string => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '';
  // "0" as introduced means "from the beginning": below every version.
  const order = (x: OsvEvent, y: OsvEvent): number => {
    const xz = x.introduced === '0';
    const yz = y.introduced === '0';
    if (xz || yz) return xz && yz ? 0 : xz ? -1 : 1;
    return cmp(valueOf(x), valueOf(y));
  };
  const sorted = [...events].sort(order);
  let affected = false;
  for (const e of sorted) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || cmp(version, e.introduced) >= 0) affected = true;
    } else if (e.fixed !== undefined) {
      if (cmp(version, e.fixed) >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      if (cmp(version, e.last_affected) > 0) affected = false;
    }
  }
  if (!affected) return { affected, fixedVersion: '' };
  const fix = sorted.find((e) => e.fixed !== undefined && cmp(e.fixed, version) > 0);
  return { affected, fixedVersion: fix?.fixed ?? '' };
}
