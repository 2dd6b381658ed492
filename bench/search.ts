// Registry search benchmark: push N images, each with an SPDX SBOM of P packages and a base annotation
// (a chain of images in groups), then time SBOM pushes (reading and indexing the document) and
// searches by package and by base. Makes its own inputs; prints a markdown table with date and machine.
//   npx tsc -p . && node dist/bench/search.js [--images 200] [--packages 400]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultConfig } from '../src/registry/server/config.js';
import { serve } from '../src/registry/server/server.js';
import { logger } from '../src/registry/server/log.js';

const arg = (name: string, def: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || def;
const images = arg('images', 200);
const packagesPer = arg('packages', 400);
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const OciManifest = 'application/vnd.oci.image.manifest.v1+json';

const root = mkdtempSync(join(tmpdir(), 'kiln-bench-search-'));
const config = defaultConfig(root);
config.http.addr = '127.0.0.1:0';
config.log.requests = false;
config.gc.interval = 0;
const reg = await serve(config, { log: logger('error', () => {}) });

async function blob(repo: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  const post = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
  if (post.status !== 201) throw new Error(`blob upload: ${post.status}`);
  return { digest, size: data.length };
}
/** PUT by tag, or by its digest when `ref` is empty. */
async function manifest(repo: string, ref: string, m: object): Promise<{ digest: string; size: number; ms: number }> {
  const body = Buffer.from(JSON.stringify(m));
  const t0 = performance.now();
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/${ref || sha256(body)}`, { method: 'PUT', body: body as unknown as BodyInit, headers: { 'content-type': OciManifest } });
  const ms = performance.now() - t0;
  if (r.status !== 201) throw new Error(`manifest: ${r.status} ${await r.text()}`);
  return { digest: sha256(body), size: body.length, ms };
}

const pool = Array.from({ length: 2000 }, (_, i) => `pkg${i}`);
const empty = Buffer.from('{}');
const sbomMs: number[] = [];
let previous: string | undefined;
for (let i = 0; i < images; i++) {
  const repo = `ns${i % 10}/app${i}`;
  const cfg = await blob(repo, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: i })));
  const layer = await blob(repo, randomBytes(256));
  // Chains of 10: each image built on the one before it.
  const annotations = i % 10 && previous ? { 'org.opencontainers.image.base.digest': previous } : undefined;
  const img = await manifest(repo, 'v1', { schemaVersion: 2, mediaType: OciManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }], ...(annotations ? { annotations } : {}) });
  previous = img.digest;
  const pkgs = Array.from({ length: packagesPer }, (_, k) => {
    const name = pool[(i * 7 + k * 13) % pool.length]!;
    const version = `${1 + (i % 5)}.${k % 10}.${i % 3}-1`;
    return { SPDXID: `SPDXRef-${k}`, name, versionInfo: version, downloadLocation: 'NOASSERTION', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:deb/debian/${name}@${version}` }] };
  });
  const doc = await blob(repo, Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', packages: pkgs })));
  await blob(repo, empty);
  const sbom = await manifest(repo, '', {
    schemaVersion: 2,
    mediaType: OciManifest,
    artifactType: 'application/spdx+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
    layers: [{ mediaType: 'application/spdx+json', ...doc }],
    subject: { mediaType: OciManifest, digest: img.digest, size: img.size },
  });
  sbomMs.push(sbom.ms);
}

async function timed(q: string, n: number): Promise<{ p50: number; results: number }> {
  const ms: number[] = [];
  let results = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = (await (await fetch(`${reg.url}/api/v1/search?${q}`)).json()) as { results: unknown[] };
    ms.push(performance.now() - t0);
    results = r.results.length;
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length / 2)]!, results };
}
const byName = await timed('package=pkg13', 50);
const byRange = await timed(`package=pkg13&version=${encodeURIComponent('>=2.0,<4')}`, 50);
const firstBase = (await (await fetch(`${reg.url}/v2/ns0/app0/manifests/v1`, { headers: { accept: OciManifest } })).headers.get('docker-content-digest'))!;
const byBase = await timed(`base=${firstBase}`, 50);
sbomMs.sort((a, b) => a - b);

console.log(`Registry search, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}; ${images} images, ${packagesPer} packages per SBOM\n`);
console.log('| operation | p50 (ms) | results |');
console.log('| --- | --- | --- |');
console.log(`| push SBOM manifest (read + index ${packagesPer} packages) | ${sbomMs[Math.floor(sbomMs.length / 2)]!.toFixed(1)} | |`);
console.log(`| search ?package=NAME | ${byName.p50.toFixed(1)} | ${byName.results} |`);
console.log(`| search ?package=NAME&version=RANGE | ${byRange.p50.toFixed(1)} | ${byRange.results} |`);
console.log(`| search ?base=DIGEST (chain of 9) | ${byBase.p50.toFixed(1)} | ${byBase.results} |`);
await reg.close();
rmSync(root, { recursive: true, force: true });
