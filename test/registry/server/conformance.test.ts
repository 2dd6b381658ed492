import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checks } from './conformance.js';
import { client, freePort, startRegistry, waitFor, type Client } from './support.js';

// The distribution-spec checks of conformance.ts against kiln (each its own test), against Debian's
// docker-registry (CNCF Distribution 2.8) to list where Distribution departs from the spec, and
// against any registry named by KILN_CONFORMANCE_URL (with KILN_CONFORMANCE_USER/PASSWORD for token auth).

describe('OCI distribution-spec conformance: kiln registry', async () => {
  let c: Client;
  test('start', async (t) => {
    const reg = await startRegistry({ after: (fn) => void after.push(fn) });
    c = reg.client();
    t.diagnostic(reg.url);
  });
  const after: (() => Promise<void> | void)[] = [];
  for (const check of checks) test(check.name, () => check.run(c, 'conformance'));
  test('stop', async () => {
    for (const fn of after) await fn();
  });
});

async function runAll(c: Client, prefix: string): Promise<{ passed: string[]; failed: { name: string; error: string }[] }> {
  const passed: string[] = [];
  const failed: { name: string; error: string }[] = [];
  for (const check of checks) {
    try {
      await check.run(c, prefix);
      passed.push(check.name);
    } catch (e) {
      failed.push({ name: check.name, error: (e as Error).message.split('\n')[0]! });
    }
  }
  return { passed, failed };
}

/** Where Distribution 2.8 (Debian's docker-registry) departs from distribution-spec v1.1. */
export const DistributionDepartures = [
  // 416 answers announce Content-Length of the whole blob and send no body.
  'Pull: Range requests on blobs (RFC 9110 section 14) give 206 with Content-Range, 416 when unsatisfiable',
  // Accepts a chunk whose Content-Range does not continue the upload (202).
  'Push: a chunk uploaded out of order is 416',
  // Answers 400 MANIFEST_INVALID instead of 413.
  'Push: a manifest larger than the limit (4 MiB) is 413',
  // Tags come in storage order, so n/last pagination skips and repeats tags.
  'Content Discovery: listing tags gives them in lexical order',
  'Content Discovery: listing tags with n and last pages through them, with a Link header to the next page',
  // Tag deletion is not implemented (400 UNSUPPORTED, which the spec allows as "disabled").
  'Content Management: deleting a tag (202) leaves other tags of the same manifest',
  'Push: mounting without from when the registry knows the blob is 201 (the registry MAY do this)',
  'Push: pushing manifests with subject answers OCI-Subject, even when the subject is missing',
  'Push: pushing a manifest by digest with ?tag= creates the tags and answers OCI-Tag',
  'Content Discovery: listing referrers gives an image index of manifests with that subject, artifactType and annotations',
  'Content Discovery: referrers filtered by artifactType answer OCI-Filters-Applied',
  'Content Discovery: referrers of a digest nothing refers to is an empty index (200, never 404)',
  'Content Discovery: referrers with an invalid digest is 400',
];

const haveDistribution = spawnSync('sh', ['-c', 'command -v docker-registry']).status === 0;

test('the same checks against Debian\'s docker-registry list only its known departures from the spec', { skip: !haveDistribution && 'docker-registry not installed', timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-distribution-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGKILL'));
  const c = client(`http://127.0.0.1:${port}`);
  await waitFor(async () => (await c.req('GET', '/v2/')).status === 200, 15_000, 'docker-registry');
  const { passed, failed } = await runAll(c, 'conformance');
  for (const f of failed) t.diagnostic(`Distribution departs: ${f.name} — ${f.error}`);
  t.diagnostic(`Distribution passed ${passed.length} of ${checks.length} checks`);
  const unexpected = failed.filter((f) => !DistributionDepartures.includes(f.name));
  assert.deepEqual(unexpected, [], 'departures not in the known list (the check or the list is wrong)');
});

test('the checks against KILN_CONFORMANCE_URL', { skip: !process.env.KILN_CONFORMANCE_URL && 'KILN_CONFORMANCE_URL not set' }, async (t) => {
  const user = process.env.KILN_CONFORMANCE_USER;
  const c = client(process.env.KILN_CONFORMANCE_URL!, user ? { user, password: process.env.KILN_CONFORMANCE_PASSWORD ?? '' } : undefined);
  const { failed } = await runAll(c, process.env.KILN_CONFORMANCE_NAMESPACE ?? 'conformance');
  for (const f of failed) t.diagnostic(`fails: ${f.name} — ${f.error}`);
  assert.deepEqual(failed, []);
});
