// Screenshots of the web UI's main pages (issue 20) into docs/ui/: home, repository, image (with a
// layer's file tree open) and search results, in Debian's chromium at 1280 px, light scheme. Run by
// hand after a change to web/ (not part of the test suite); it also prints how long the layer tree
// of a real layer (busybox, from the test fixtures) takes to answer, cold and cached.
//   npx tsc -p . && node scripts/build-web.mjs && node dist/bench/ui-screenshots.js [--out docs/ui] [--dark]
// Inputs: an in-process registry with SQLite; busybox from KILN_BUSYBOX_OCI or scripts/fixtures.sh,
// an app layer on it made here (files added, one rewritten, two deleted), an SPDX SBOM referrer and
// a two-platform index.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { defaultConfig } from '../src/registry/server/config.js';
import { serve } from '../src/registry/server/server.js';
import { logger } from '../src/registry/server/log.js';
import { admin } from '../src/registry/server/admin.js';
import { encodeHeader, readTar, tarHeader, type EntryType } from '../src/archive/index.js';

const flag = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const out = resolve(flag('--out') ?? 'docs/ui');
const dark = process.argv.includes('--dark');
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const busyboxArchive = process.env.KILN_BUSYBOX_OCI || execFileSync('bash', ['scripts/fixtures.sh', 'busybox'], { encoding: 'utf8' }).trim();

/** The blobs of an OCI image layout archive by digest, and its first manifest's digest. */
async function readLayout(path: string): Promise<{ blobs: Map<string, Buffer>; manifest: string }> {
  const blobs = new Map<string, Buffer>();
  let index: { manifests: { digest: string }[] } | undefined;
  for await (const { header, body } of readTar(Readable.from([readFileSync(path)]))) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    const m = /^(?:\.\/)?blobs\/sha256\/([0-9a-f]{64})$/.exec(header.path);
    if (m) blobs.set(`sha256:${m[1]}`, Buffer.concat(chunks));
    else if (header.path.replace(/^\.\//, '') === 'index.json') index = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  }
  return { blobs, manifest: index!.manifests[0]!.digest };
}

function tar(entries: { path: string; type: EntryType; content?: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.content ?? '');
    parts.push(encodeHeader(tarHeader({ path: e.path, type: e.type, size: body.length, mtime: 1764590400 })), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const root = mkdtempSync(join(tmpdir(), 'kiln-screenshots-'));
const config = defaultConfig(root);
config.http.addr = '127.0.0.1:0';
config.log.requests = false;
config.gc.interval = 0;
config.auth.enabled = true;
const reg = await serve(config, { log: logger('error', () => {}) });
try {
  const ops = admin(reg.registry.metadata, 'screenshots');
  await ops.addUser('dev', 'password-dev', false);
  for (const ns of ['team', 'library']) await ops.grant('dev', ns, 'maintainer');
  const host = new URL(reg.url).host;
  const repos = ['library/busybox', 'team/app', 'team/web', 'team/worker'];
  const tr = await fetch(`${reg.url}/token?service=${config.auth.service}&${repos.map((r) => `scope=repository:${r}:push,pull`).join('&')}`, { headers: { authorization: 'Basic ' + Buffer.from('dev:password-dev').toString('base64') } });
  const auth = { authorization: `Bearer ${((await tr.json()) as { token: string }).token}` };
  const pushBlob = async (repo: string, b: Buffer) => {
    const r = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: b as unknown as BodyInit });
    if (r.status !== 201) throw new Error(`blob ${repo}: ${r.status} ${await r.text()}`);
  };
  const pushManifest = async (repo: string, ref: string, body: Buffer, mediaType: string) => {
    const r = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { ...auth, 'content-type': mediaType }, body: body as unknown as BodyInit });
    if (r.status !== 201) throw new Error(`manifest ${repo}:${ref}: ${r.status} ${await r.text()}`);
    return sha(body);
  };
  const OciManifest = 'application/vnd.oci.image.manifest.v1+json';
  const manifestOf = (cfg: Buffer, layers: { digest: string; size: number; mediaType: string }[], annotations?: Record<string, string>, extra: Record<string, unknown> = {}) =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OciManifest, ...extra, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers, ...(annotations ? { annotations } : {}) }));

  // busybox, as the fixture has it.
  const bb = await readLayout(busyboxArchive);
  const bbManifest = bb.blobs.get(bb.manifest)!;
  const bbDoc = JSON.parse(bbManifest.toString('utf8')) as { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] };
  for (const d of [bbDoc.config.digest, ...bbDoc.layers.map((l) => l.digest)]) await pushBlob('library/busybox', bb.blobs.get(d)!);
  const bbDigest = await pushManifest('library/busybox', '1.36', bbManifest, OciManifest);
  const bbConfig = JSON.parse(bb.blobs.get(bbDoc.config.digest)!.toString('utf8')) as { rootfs: { diff_ids: string[] }; history?: unknown[] };

  // team/app on busybox: a layer that adds the app, rewrites /etc/passwd and deletes /bin/ping and ping6.
  const appLayer = tar([
    { path: 'app', type: 'directory' },
    { path: 'app/server.sh', type: 'file', content: '#!/bin/sh\nexec httpd -f -p 8080 -h /app/www\n' },
    { path: 'app/www', type: 'directory' },
    { path: 'app/www/index.html', type: 'file', content: '<h1>hello</h1>\n' },
    { path: 'etc', type: 'directory' },
    { path: 'etc/passwd', type: 'file', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n' },
    { path: 'bin', type: 'directory' },
    { path: 'bin/.wh.ping', type: 'file' },
    { path: 'bin/.wh.ping6', type: 'file' },
  ]);
  const tags = ['1.4.0', '1.4.1', '1.4.2'];
  let appDigest = '';
  for (const [i, tag] of tags.entries()) {
    const cfg = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: `2026-12-0${i + 4}T10:00:00Z`,
        config: { Entrypoint: ['/app/server.sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `APP_VERSION=${tag}`], User: '1000:1000', ExposedPorts: { '8080/tcp': {} }, Labels: { 'org.opencontainers.image.title': 'app', 'org.opencontainers.image.version': tag } },
        rootfs: { type: 'layers', diff_ids: [...bbConfig.rootfs.diff_ids, sha(appLayer)] },
        history: [...(bbConfig.history ?? []), { created: `2026-12-0${i + 4}T10:00:00Z`, created_by: 'COPY app/ /app/ # buildkit' }, { created: `2026-12-0${i + 4}T10:00:00Z`, created_by: 'RUN /bin/sh -c rm /bin/ping /bin/ping6 && adduser -D -u 1000 -h /app app # buildkit' }, { created: `2026-12-0${i + 4}T10:00:00Z`, created_by: 'USER 1000:1000', empty_layer: true }],
      }),
    );
    await pushBlob('team/app', cfg);
    await pushBlob('team/app', appLayer);
    for (const l of bbDoc.layers) await pushBlob('team/app', bb.blobs.get(l.digest)!);
    const m = manifestOf(cfg, [...bbDoc.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(appLayer), size: appLayer.length }], { 'org.opencontainers.image.base.digest': bbDigest, 'org.opencontainers.image.base.name': `${host}/library/busybox:1.36`, 'org.opencontainers.image.source': 'https://git.example.com/team/app' });
    appDigest = await pushManifest('team/app', tag, m, OciManifest);
  }
  await pushManifest('team/app', 'latest', Buffer.from((await (await fetch(`${reg.url}/v2/team/app/manifests/1.4.2`, { headers: { ...auth, accept: OciManifest } })).arrayBuffer())), OciManifest);
  // Its SBOM (SPDX), as kiln sbom --attach pushes one.
  const pkgs: [string, string, string][] = [
    ['busybox', '1.36.1-r29', 'pkg:apk/alpine/busybox@1.36.1-r29'],
    ['musl', '1.2.5-r0', 'pkg:apk/alpine/musl@1.2.5-r0'],
    ['libssl3', '3.0.11-r0', 'pkg:apk/alpine/libssl3@3.0.11-r0?upstream=openssl'],
    ['zlib', '1.3.1-r0', 'pkg:apk/alpine/zlib@1.3.1-r0'],
  ];
  const sbom = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: 'team/app', documentNamespace: 'https://example.invalid/team/app', creationInfo: { created: '2026-12-06T10:00:00Z', creators: ['Tool: kiln'] }, packages: pkgs.map(([name, versionInfo, purl], i) => ({ SPDXID: `SPDXRef-Package-${i}`, name, versionInfo, downloadLocation: 'NOASSERTION', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }] })) }));
  const empty = Buffer.from('{}');
  for (const b of [empty, sbom]) await pushBlob('team/app', b);
  const appManifest = Buffer.from(await (await fetch(`${reg.url}/v2/team/app/manifests/${appDigest}`, { headers: { ...auth, accept: OciManifest } })).arrayBuffer());
  const sbomManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OciManifest, artifactType: 'application/spdx+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 }, layers: [{ mediaType: 'application/spdx+json', digest: sha(sbom), size: sbom.length }], subject: { mediaType: OciManifest, digest: appDigest, size: appManifest.length } }));
  await pushManifest('team/app', sha(sbomManifest), sbomManifest, OciManifest);
  // team/web: an index of two platforms; team/worker: another image on busybox.
  const platformImages: { digest: string; size: number; arch: string }[] = [];
  for (const arch of ['amd64', 'arm64']) {
    const cfg = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: bbConfig.rootfs.diff_ids } }));
    await pushBlob('team/web', cfg);
    for (const l of bbDoc.layers) await pushBlob('team/web', bb.blobs.get(l.digest)!);
    const m = manifestOf(cfg, bbDoc.layers);
    platformImages.push({ digest: await pushManifest('team/web', sha(m), m, OciManifest), size: m.length, arch });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: platformImages.map((p) => ({ mediaType: OciManifest, digest: p.digest, size: p.size, platform: { os: 'linux', architecture: p.arch } })) }));
  await pushManifest('team/web', '2.0', index, 'application/vnd.oci.image.index.v1+json');
  {
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: bbConfig.rootfs.diff_ids } }));
    await pushBlob('team/worker', cfg);
    for (const l of bbDoc.layers) await pushBlob('team/worker', bb.blobs.get(l.digest)!);
    await pushManifest('team/worker', '0.9', manifestOf(cfg, bbDoc.layers, { 'org.opencontainers.image.base.digest': bbDigest, 'org.opencontainers.image.base.name': `${host}/library/busybox:1.36` }), OciManifest);
  }

  // The layer tree of busybox's layer in team/app: read from storage once, then from the cache.
  const basic = { authorization: 'Basic ' + Buffer.from('dev:password-dev').toString('base64') };
  const layerTime = async (path: string) => {
    const t0 = performance.now();
    const r = await fetch(`${reg.url}/kiln/v1/layer?repository=team/app&reference=1.4.2&layer=${path}`, { headers: basic });
    const body = (await r.json()) as { added: number; entries: unknown[] };
    return { ms: performance.now() - t0, added: body.added, entries: body.entries.length };
  };
  const coldBase = await layerTime('0');
  const warmBase = await layerTime('0');
  const coldApp = await layerTime('1');
  const warmApp = await layerTime('1&path=/bin');
  console.log(`\nLayer file tree (GET /kiln/v1/layer), ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; Basic credentials, loopback`);
  console.log('| request | ms | files added | entries listed |\n|---|---:|---:|---:|');
  console.log(`| busybox layer (${bbDoc.layers[0]!.size} bytes), cold | ${coldBase.ms.toFixed(1)} | ${coldBase.added} | ${coldBase.entries} |`);
  console.log(`| … again (cached) | ${warmBase.ms.toFixed(1)} | ${warmBase.added} | ${warmBase.entries} |`);
  console.log(`| app layer on it (reads both), cold | ${coldApp.ms.toFixed(1)} | ${coldApp.added} | ${coldApp.entries} |`);
  console.log(`| … /bin of it (cached) | ${warmApp.ms.toFixed(1)} | ${warmApp.added} | ${warmApp.entries} |`);

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: dark ? 'dark' : 'light', deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(`${reg.url}/ui/sign-in`);
    await page.getByLabel('User name').fill('dev');
    await page.getByLabel('Password').fill('password-dev');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'team/app' }).waitFor();
    mkdirSync(out, { recursive: true });
    const shot = async (name: string) => {
      // Relative times ("3 minutes ago") and spinners settle first.
      await page.waitForFunction(() => !document.querySelector('.loading')).catch(async (e: unknown) => {
        throw new Error(`${name}: still loading: ${await page.evaluate(() => [...document.querySelectorAll('.loading')].map((x) => x.outerHTML).join(' '))}`, { cause: e });
      });
      await page.screenshot({ path: join(out, `${name}${dark ? '-dark' : ''}.png`), fullPage: true });
      console.log(`wrote ${join(out, `${name}${dark ? '-dark' : ''}.png`)}`);
    };
    await shot('home');
    await page.getByRole('link', { name: 'team/app' }).click();
    await page.getByRole('link', { name: '1.4.2', exact: true }).waitFor();
    await shot('repository');
    await page.getByRole('link', { name: '1.4.2', exact: true }).click();
    await page.getByText('Files of layer 2').click();
    await page.locator('li[data-path="/bin"] > details > summary').click();
    await page.locator('li[data-path="/bin/ping"]').waitFor();
    await page.locator('li[data-path="/app"] > details > summary').click();
    await page.locator('li[data-path="/app/server.sh"]').waitFor();
    await page.getByRole('region', { name: 'SBOMs' }).getByText('musl').waitFor();
    await shot('image');
    await page.goto(`${reg.url}/`);
    await page.getByLabel('Package', { exact: true }).fill('openssl');
    await page.getByLabel('Version range').fill('>=3.0, <3.0.12');
    await page.getByRole('button', { name: 'Find images with the package' }).click();
    await page.getByRole('link', { name: /^team\/app@/ }).first().waitFor();
    await shot('search');
  } finally {
    await browser.close();
  }
} finally {
  await reg.close();
  rmSync(root, { recursive: true, force: true });
}
