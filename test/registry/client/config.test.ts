import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { kiln, kilnOk } from '../../support/env.js';
import { isLoopback, parseRegistriesConfig, pullEndpoints, pushEndpoint } from '../../../src/registry/client/index.js';
import { freePort } from '../server/support.js';
import { hostOf, makeImage, seedImage, startProxy, startRegistry, testEnv } from './support.js';

// The registries section of kiln's config file: mirrors tried in order, insecure registries, and
// plain HTTP for loopback registries by default.

test('mirrors are tried in order before the registry; a mirror that is down or lacks the image is skipped', async (t) => {
  const mirror = await startRegistry(t);
  const empty = await startRegistry(t);
  const img = makeImage();
  // The mirror keeps the upstream's repositories under a prefix, as a pull-through cache may.
  await seedImage(mirror.client(), 'cache/team/app', '1', img);
  const proxy = await startProxy(t, mirror.url);
  const e = await testEnv(t);
  const upstream = `127.0.0.1:${await freePort()}`; // nothing listens there
  // Port 1 (tcpmux) is never served here; a port found free could be taken meanwhile by another
  // test's registry, which would then answer as a mirror that lacks the image.
  const down = '127.0.0.1:1';
  await writeFile(
    e.env.KILN_CONFIG!,
    `# kiln config\nregistries:\n  ${upstream}:\n    mirrors:\n      - ${down}\n      - http://${hostOf(empty.url)}\n      - ${proxy.host}/cache\n`,
  );
  const r = await kiln(e.root, ['pull', `${upstream}/team/app:1`], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`WARNING: mirror ${down}: cannot reach registry`));
  assert.match(r.stderr, new RegExp(`WARNING: mirror ${hostOf(empty.url)}: .*manifest unknown`));
  assert.match(r.stdout, new RegExp(`^Digest: ${img.digest}$`, 'm'));
  assert.ok(proxy.log.some((l) => l.path === '/v2/cache/team/app/manifests/1'));
  // the image is recorded under the name asked for, not the mirror's
  const images = JSON.parse((await kilnOk(e.root, ['images', '--format', 'json'], { env: e.env })).trim());
  assert.equal(images.Repository, `${upstream}/team/app`);
});

test('pushes never go to a mirror', async () => {
  const upstream = `127.0.0.1:${await freePort()}`;
  const cfg = parseRegistriesConfig({ [upstream]: { mirrors: ['127.0.0.1:1'] } });
  assert.equal(pushEndpoint(upstream, cfg).url, `http://${upstream}`);
  assert.equal(pullEndpoints(upstream, cfg).length, 2);
});

test('loopback registries speak plain HTTP by default, others HTTPS unless marked insecure', () => {
  const cfg = parseRegistriesConfig({ 'registry.lan:5000': { insecure: true }, 'docker.io': { mirrors: ['https://mirror.example.com'] } });
  assert.equal(pushEndpoint('localhost:5000', cfg).url, 'http://localhost:5000');
  assert.equal(pushEndpoint('127.1.2.3:80', cfg).url, 'http://127.1.2.3:80');
  assert.equal(pushEndpoint('[::1]:5000', cfg).url, 'http://[::1]:5000');
  assert.equal(pushEndpoint('registry.lan:5000', cfg).url, 'http://registry.lan:5000');
  assert.equal(pushEndpoint('ghcr.io', cfg).url, 'https://ghcr.io');
  assert.equal(pushEndpoint('128.0.0.1:5000', cfg).url, 'https://128.0.0.1:5000');
  assert.deepEqual(
    pullEndpoints('docker.io', cfg).map((x) => x.url),
    ['https://mirror.example.com', 'https://registry-1.docker.io'],
  );
  assert.equal(isLoopback('localhost'), true);
  assert.equal(isLoopback('127.0.0.1:5000'), true);
  assert.equal(isLoopback('localhost.example.com'), false);
});

test('a malformed registries section is a usage error naming the file and the key', async (t) => {
  const e = await testEnv(t);
  await writeFile(e.env.KILN_CONFIG!, 'registries:\n  registry.lan:\n    insecure: "yes"\n');
  const r = await kiln(e.root, ['pull', 'registry.lan/a/b:1'], { env: e.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /kiln\.yaml: registries: registry\.lan: insecure must be true or false/);
  await writeFile(e.env.KILN_CONFIG!, 'registries:\n  registry.lan:\n    mirror: [a]\n');
  const r2 = await kiln(e.root, ['pull', 'registry.lan/a/b:1'], { env: e.env });
  assert.match(r2.stderr, /unknown key "mirror"/);
});
