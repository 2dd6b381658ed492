// Web UI benchmark (issue 20): server time of the home page and its API call, and of a repository
// page of 5,000 tags (first page, a page deep in the list by cursor, both orders), on an in-process
// registry with SQLite; target under 300 ms each. Time is measured around each request on loopback
// (keep-alive), so it is the server's time plus a loopback round trip. Prints a markdown table.
//   npx tsc -p . && node scripts/build-web.mjs && node dist/bench/ui.js [--tags 5000] [--repos 300] [--rounds 30]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { defaultConfig } from '../src/registry/server/config.js';
import { serve } from '../src/registry/server/server.js';
import { logger } from '../src/registry/server/log.js';
import { admin } from '../src/registry/server/admin.js';

const flag = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const tagCount = Number(flag('--tags')) || 5000;
const repoCount = Number(flag('--repos')) || 300;
const rounds = Number(flag('--rounds')) || 30;
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

const root = mkdtempSync(join(tmpdir(), 'kiln-bench-ui-'));
const config = defaultConfig(root);
config.http.addr = '127.0.0.1:0';
config.log.requests = false;
config.gc.interval = 0;
config.auth.enabled = true;
const reg = await serve(config, { log: logger('error', () => {}) });
try {
  const md = reg.registry.metadata;
  await admin(md, 'bench').addUser('dev', 'password-dev', false);
  await admin(md, 'bench').grant('dev', 'team', 'developer');
  // Rows written straight into the metadata (what pushes would leave): one image per repository,
  // and in team/big one manifest per 10 tags, each tag pushed at its own time.
  const now = Date.now();
  const image = async (repo: string, tags: string[], at: number) => {
    const layer = randomBytes(64);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] }, history: [{ created_by: 'RUN true' }] }));
    for (const b of [layer, cfg]) await md.recordBlob(sha(b), b.length, repo, `bench/${sha(b)}`, at);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }] }));
    await md.putManifest({ repository: repo, digest: sha(body), mediaType: 'application/vnd.oci.image.manifest.v1+json', body, createdAt: at }, { blobs: [{ digest: sha(cfg), size: cfg.length }, { digest: sha(layer), size: layer.length }], manifests: [] }, tags);
  };
  for (let i = 0; i < repoCount; i++) await image(`team/app${String(i).padStart(4, '0')}`, ['latest', 'v1'], now - i * 1000);
  for (let i = 0; i < tagCount; i += 10) await image('team/big', Array.from({ length: 10 }, (_, k) => `v${i + k}`), now - (tagCount - i) * 1000);

  const auth = { authorization: 'Basic ' + Buffer.from('dev:password-dev').toString('base64') };
  const time = async (path: string): Promise<{ median: number; p95: number; bytes: number }> => {
    const ms: number[] = [];
    let bytes = 0;
    for (let r = 0; r < rounds + 3; r++) {
      const t0 = performance.now();
      const res = await fetch(reg.url + path, { headers: auth });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.toString().slice(0, 200)}`);
      if (r >= 3) ms.push(performance.now() - t0);
      bytes = body.length;
    }
    ms.sort((a, b) => a - b);
    return { median: ms[Math.floor(ms.length / 2)]!, p95: ms[Math.floor(ms.length * 0.95)]!, bytes };
  };
  const deep = (await (await fetch(`${reg.url}/kiln/v1/tags?repository=team/big&n=${Math.floor(tagCount / 2)}`, { headers: auth })).json()) as { next: string };
  const rows: [string, string][] = [
    ['home page (index.html)', '/'],
    ['home: GET /kiln/v1/repositories?n=100', '/kiln/v1/repositories?n=100'],
    ['home: filter "app01"', '/kiln/v1/repositories?filter=app01'],
    [`repository of ${tagCount} tags: first page (-pushed, n=50)`, '/kiln/v1/tags?repository=team/big&n=50'],
    [`… page after tag ${tagCount / 2} by cursor`, `/kiln/v1/tags?repository=team/big&n=50&last=${encodeURIComponent(deep.next)}`],
    ['… first page by name', '/kiln/v1/tags?repository=team/big&n=50&sort=name'],
    ['… 1000 tags in one page', '/kiln/v1/tags?repository=team/big&n=1000'],
    ['image page: GET /kiln/v1/image', '/kiln/v1/image?repository=team/big&reference=v42'],
  ];
  console.log(`\nWeb UI server time, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, SQLite, ${repoCount} repositories, ${rounds} requests each\n`);
  console.log('| request | median ms | p95 ms | bytes |');
  console.log('|---|---:|---:|---:|');
  for (const [what, path] of rows) {
    const r = await time(path);
    console.log(`| ${what} | ${r.median.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.bytes} |`);
  }
} finally {
  await reg.close();
  rmSync(root, { recursive: true, force: true });
}
