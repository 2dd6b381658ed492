// The vulnerability database: one SQLite file that `kiln db import` builds from advisory files and
// `kiln scan` reads. A schema_version table (and SQLite's application_id) tells kiln's files apart
// from others and from files of another schema, which are refused rather than misread.

import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { tempPathFor } from '../store/atomic.js';
import type { DebianAdvisory, DebianStatus } from './debian-tracker.js';
import { VulnDbInvalid } from './errors.js';
import type { OsvAffected, OsvRange } from './osv.js';
import type { Severity } from './severity.js';

export const vulnDbSchemaVersion = 1;
/** "kiln" in ASCII, in the SQLite header's application ID field. */
const applicationId = 0x6b696c6e;

const schema = `
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE debian (
  source_package TEXT NOT NULL, release TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL,
  fixed_version TEXT NOT NULL, urgency TEXT NOT NULL, severity TEXT NOT NULL, description TEXT NOT NULL,
  PRIMARY KEY (release, source_package, id));
CREATE TABLE osv (
  id TEXT NOT NULL, ecosystem TEXT NOT NULL, name TEXT NOT NULL, aliases TEXT NOT NULL, summary TEXT NOT NULL,
  ranges TEXT NOT NULL, versions TEXT NOT NULL, severity TEXT NOT NULL);
CREATE INDEX osv_package ON osv (ecosystem, name);
`;

export interface VulnDbSources {
  debian?: { file: string; advisories: DebianAdvisory[] };
  osv?: { dir: string; affected: OsvAffected[] };
}

export interface VulnDbInfo {
  schemaVersion: number;
  builtAt: string;
  debianTracker?: string;
  osvDirectory?: string;
  debianEntries: number;
  osvEntries: number;
}

/** Writes the database to `path` whole or not at all: built in a temporary file, then renamed. */
export async function writeVulnDb(path: string, sources: VulnDbSources, now = new Date()): Promise<VulnDbInfo> {
  const tmp = tempPathFor(path);
  try {
    const db = new Database(tmp);
    try {
      // The file is private until the rename, so there is nothing to journal.
      db.pragma('journal_mode = OFF');
      db.pragma('synchronous = OFF');
      db.pragma(`application_id = ${applicationId}`);
      db.exec(schema);
      const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      const deb = db.prepare('INSERT OR REPLACE INTO debian VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      const osv = db.prepare('INSERT INTO osv VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      db.transaction(() => {
        db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(vulnDbSchemaVersion);
        meta.run('built_at', now.toISOString());
        if (sources.debian) meta.run('debian_tracker', sources.debian.file);
        if (sources.osv) meta.run('osv_directory', sources.osv.dir);
        for (const a of sources.debian?.advisories ?? []) {
          deb.run(a.sourcePackage, a.release, a.id, a.status, a.fixedVersion, a.urgency, a.severity, a.description);
        }
        for (const a of sources.osv?.affected ?? []) {
          osv.run(a.id, a.ecosystem, a.name, JSON.stringify(a.aliases), a.summary, JSON.stringify(a.ranges), JSON.stringify(a.versions), a.severity);
        }
      })();
    } finally {
      db.close();
    }
    const fh = await open(tmp, 'r');
    await fh.sync().finally(() => fh.close());
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const written = openVulnDb(path);
  try {
    return written.info();
  } finally {
    written.close();
  }
}

export interface VulnDb {
  info(): VulnDbInfo;
  /** The tracker's entries for a source package in a release (codename). */
  debian(release: string, sourcePackage: string): DebianAdvisory[];
  /** OSV affected[] entries for a package, by ecosystem ("npm", "Debian:12") and name. */
  osv(ecosystem: string, name: string): OsvAffected[];
  close(): void;
}

export function openVulnDb(path: string): VulnDb {
  if (!existsSync(path)) throw new VulnDbInvalid(`${path}: no such vulnerability database (build one with kiln db import)`);
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new VulnDbInvalid(`${path}: cannot open: ${(e as Error).message}`);
  }
  try {
    checkSchema(db, path);
  } catch (e) {
    db.close();
    throw e;
  }
  const debStmt = db.prepare('SELECT * FROM debian WHERE release = ? AND source_package = ? ORDER BY id');
  const osvStmt = db.prepare('SELECT * FROM osv WHERE ecosystem = ? AND name = ? ORDER BY id');
  type Row = Record<string, string>;
  return {
    info() {
      const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as Row[]).map((r) => [r.key!, r.value!]));
      const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      return {
        schemaVersion: vulnDbSchemaVersion,
        builtAt: meta.get('built_at') ?? '',
        ...(meta.has('debian_tracker') ? { debianTracker: meta.get('debian_tracker')! } : {}),
        ...(meta.has('osv_directory') ? { osvDirectory: meta.get('osv_directory')! } : {}),
        debianEntries: count('debian'),
        osvEntries: count('osv'),
      };
    },
    debian(release, sourcePackage) {
      return (debStmt.all(release, sourcePackage) as Row[]).map((r) => ({
        id: r.id!,
        sourcePackage: r.source_package!,
        release: r.release!,
        status: r.status as DebianStatus,
        fixedVersion: r.fixed_version!,
        urgency: r.urgency!,
        severity: r.severity as Severity,
        description: r.description!,
      }));
    },
    osv(ecosystem, name) {
      return (osvStmt.all(ecosystem, name) as Row[]).map((r) => ({
        id: r.id!,
        ecosystem: r.ecosystem!,
        name: r.name!,
        aliases: JSON.parse(r.aliases!) as string[],
        summary: r.summary!,
        ranges: JSON.parse(r.ranges!) as OsvRange[],
        versions: JSON.parse(r.versions!) as string[],
        severity: r.severity as Severity,
      }));
    },
    close() {
      db.close();
    },
  };
}

function checkSchema(db: Database.Database, path: string): void {
  let appId: number;
  try {
    appId = db.pragma('application_id', { simple: true }) as number;
  } catch (e) {
    throw new VulnDbInvalid(`${path}: not a kiln vulnerability database (${(e as Error).message})`);
  }
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (appId !== applicationId || !hasTable) throw new VulnDbInvalid(`${path}: not a kiln vulnerability database`);
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  if (row?.version !== vulnDbSchemaVersion) {
    throw new VulnDbInvalid(
      `${path}: vulnerability database schema version ${row?.version ?? 'missing'}, this kiln reads version ${vulnDbSchemaVersion}; rebuild it with kiln db import`,
    );
  }
}
