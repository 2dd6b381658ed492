// Installed npm packages: the package.json at the root of each node_modules/<name> or
// node_modules/@scope/<name> directory (npm docs "package.json"). Nested package.json files inside
// a package (a "type" marker in lib/, test fixtures) are not packages and are not read.

import type { Cataloged } from './cataloger.js';

const PACKAGE_ROOT = /\/node_modules\/(?:@[^/]+\/)?[^/@.][^/]*\/package\.json$/;

export function isNpmManifest(path: string): boolean {
  return PACKAGE_ROOT.test(path);
}

export function parseNpmManifest(text: string): Cataloged {
  const out: Cataloged = { packages: [], problems: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    out.problems.push(`invalid JSON: ${(e as Error).message}`);
    return out;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    out.problems.push('expected a JSON object');
    return out;
  }
  const { name, version } = doc as Record<string, unknown>;
  // package.json without both is no installable package (npm requires them to publish)
  if (typeof name !== 'string' || typeof version !== 'string' || !name || !version) return out;
  out.packages.push({ type: 'npm', name, version, licenses: npmLicenses(doc as Record<string, unknown>) });
  return out;
}

/** "license": "MIT" (an SPDX expression), or the deprecated {type} object and "licenses": [{type}] array. */
function npmLicenses(doc: Record<string, unknown>): string[] {
  const one = (v: unknown): string | undefined =>
    typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' ? (v as { type: string }).type : undefined;
  const l = one(doc.license);
  if (l) return [l];
  if (Array.isArray(doc.licenses)) return doc.licenses.map(one).filter((x): x is string => !!x);
  return [];
}
