// The Debian Security Tracker's JSON export (https://security-tracker.debian.org/tracker/data/json):
// { "<source package>": { "<issue id>": { "description", "releases": { "<codename>": { "status",
// "fixed_version", "urgency", "repositories", "nodsa", … } } } } }. fixed_version is a version of the
// SOURCE package; "0" means the release was never affected.

import { VersionSyntax } from './errors.js';
import { jsonPath, JsonShape, readJsonFile } from './json-input.js';
import { severityOfUrgency, type Severity } from './severity.js';
import { parseDpkgVersion } from './version-dpkg.js';

export type DebianStatus = 'open' | 'resolved' | 'undetermined';

export interface DebianAdvisory {
  id: string;
  sourcePackage: string;
  /** The release codename: bookworm, trixie, sid… */
  release: string;
  status: DebianStatus;
  /** '' while the issue is unfixed in the release. */
  fixedVersion: string;
  urgency: string;
  severity: Severity;
  description: string;
}

export async function readDebianTracker(file: string): Promise<DebianAdvisory[]> {
  const shape = new JsonShape(file);
  const root = shape.object(await readJsonFile(file), '$');
  const out: DebianAdvisory[] = [];
  for (const [pkg, issues] of Object.entries(root)) {
    const pkgPath = jsonPath('$', pkg);
    for (const [id, issueValue] of Object.entries(shape.object(issues, pkgPath))) {
      const issuePath = jsonPath(pkgPath, id);
      const issue = shape.object(issueValue, issuePath);
      const description = shape.optionalString(issue.description, jsonPath(issuePath, 'description')) ?? '';
      const releases = shape.optionalObject(issue.releases, jsonPath(issuePath, 'releases')) ?? {};
      for (const [release, infoValue] of Object.entries(releases)) {
        const path = jsonPath(jsonPath(issuePath, 'releases'), release);
        const info = shape.object(infoValue, path);
        const status = shape.string(info.status, jsonPath(path, 'status'));
        if (status !== 'open' && status !== 'resolved' && status !== 'undetermined') {
          shape.fail(jsonPath(path, 'status'), `"${status}" is not open, resolved or undetermined`);
        }
        const fixed = (shape.optionalString(info.fixed_version, jsonPath(path, 'fixed_version')) ?? '').trim();
        const urgency = shape.optionalString(info.urgency, jsonPath(path, 'urgency')) ?? '';
        // "0": the version in this release never had the flaw. A resolved issue without a version
        // says nothing kiln could compare against, so it cannot make a match either.
        if (status === 'resolved' && (fixed === '0' || fixed === '')) continue;
        if (status === 'resolved') checkVersion(shape, fixed, jsonPath(path, 'fixed_version'));
        out.push({
          id,
          sourcePackage: pkg,
          release,
          status: status as DebianStatus,
          fixedVersion: status === 'resolved' ? fixed : '',
          urgency,
          severity: severityOfUrgency(urgency),
          description,
        });
      }
    }
  }
  return out;
}

function checkVersion(shape: JsonShape, v: string, path: string): void {
  try {
    parseDpkgVersion(v);
  } catch (e) {
    if (e instanceof VersionSyntax) shape.fail(path, `not a Debian version: ${e.message}`);
    throw e;
  }
}
