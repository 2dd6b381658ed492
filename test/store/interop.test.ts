import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, kilnOk } from '../support/env.js';
import { fileDir, readArchive, run, sha256hex, treeOfDir, treeOfTar } from './support.js';

// skopeo and umoci (Debian's) as independent peers: what they write kiln loads with the same digests,
// what kiln writes they accept, and they read kiln's store directly as an OCI image layout.

const root = fileDir('kiln-interop-root-');
const work = fileDir('kiln-interop-work-');

interface Inspected {
  Id: string;
  Digest: string;
  RepoTags: string[];
}

async function inspect(storeRoot: string, ref: string): Promise<Inspected> {
  return (JSON.parse(await kilnOk(storeRoot, ['inspect', ref])) as Inspected[])[0]!;
}

before(async () => {
  await kilnOk(root, ['load', '-i', fixture('busybox', 'oci')]);
});

test('an OCI layout skopeo writes loads with the same manifest and config digests', async () => {
  const layout = join(work, 'skopeo-layout');
  run('skopeo', ['copy', '-q', `oci-archive:${fixture('busybox', 'oci')}`, `oci:${layout}:docker.io/library/peer:oci`]);
  const archive = join(work, 'skopeo-layout.tar');
  run('tar', ['-C', layout, '-cf', archive, '.']);
  const store = fileDir('kiln-interop-oci-');
  assert.equal(await kilnOk(store, ['load', '-i', archive]), 'Loaded image: peer:oci\n');

  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]!.digest;
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as { config: { digest: string } };
  const img = await inspect(store, 'peer:oci');
  assert.equal(img.Digest, manifestDigest);
  assert.equal(img.Id, manifest.config.digest);
});

test('a docker-archive skopeo writes loads with the same config digest', async () => {
  const archive = join(work, 'skopeo-docker.tar');
  run('skopeo', ['copy', '-q', `oci-archive:${fixture('busybox', 'oci')}`, `docker-archive:${archive}:peer:docker`]);
  const files = await readArchive(archive);
  const [entry] = JSON.parse(files.get('manifest.json')!.toString()) as { Config: string }[];
  const configDigest = `sha256:${sha256hex(files.get(entry!.Config)!)}`;
  const store = fileDir('kiln-interop-docker-');
  assert.equal(await kilnOk(store, ['load', '-i', archive]), 'Loaded image: peer:docker\n');
  assert.equal((await inspect(store, 'peer:docker')).Id, configDigest);
  assert.equal(configDigest, (await inspect(root, 'busybox')).Id, 'the same image as the OCI fixture');
});

test('what kiln saves in both formats skopeo inspects and copies, and umoci unpacks to the tree kiln export gives', async () => {
  const img = await inspect(root, 'busybox');
  const flat = join(work, 'busybox-flat.tar');
  await kilnOk(root, ['export', '-o', flat, 'busybox']);
  const exported = await treeOfTar(readFileSync(flat));
  assert.ok(Object.keys(exported.tree).length > 100, 'busybox has a symlink per applet');

  for (const format of ['oci', 'docker'] as const) {
    const archive = join(work, `kiln-saved.${format}.tar`);
    await kilnOk(root, ['save', '--format', format, '-o', archive, 'busybox']);
    const transport = format === 'oci' ? 'oci-archive' : 'docker-archive';
    const inspected = JSON.parse(run('skopeo', ['inspect', `${transport}:${archive}`])) as { Digest: string; Layers: string[]; Os: string };
    assert.equal(inspected.Os, 'linux');
    assert.equal(inspected.Layers.length, 1);
    if (format === 'oci') assert.equal(inspected.Digest, img.Digest, 'skopeo sees the manifest kiln stored');
    const config = run('skopeo', ['inspect', '--config', '--raw', `${transport}:${archive}`]);
    assert.equal(`sha256:${sha256hex(Buffer.from(config))}`, img.Id, 'skopeo reads the config kiln stored, byte for byte');

    const layout = join(work, `copied-${format}`);
    run('skopeo', ['copy', '-q', `${transport}:${archive}`, `oci:${layout}:bb`]);
    const bundle = join(work, `bundle-${format}`);
    run('umoci', ['unpack', '--image', `${layout}:bb`, bundle]);
    assert.deepEqual(exported.tree, treeOfDir(join(bundle, 'rootfs')), `umoci's tree of the ${format} archive differs from kiln export`);
  }
});

test('skopeo reads the store directly as an OCI layout', async () => {
  const img = await inspect(root, 'busybox');
  const out = join(work, 'from-store.tar');
  run('skopeo', ['copy', '-q', `oci:${root}:docker.io/library/busybox:latest`, `oci-archive:${out}`]);
  const files = await readArchive(out);
  const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: { digest: string }[] };
  assert.equal(index.manifests[0]!.digest, img.Digest);
  const inspected = JSON.parse(run('skopeo', ['inspect', `oci:${root}:docker.io/library/busybox:latest`])) as { Digest: string };
  assert.equal(inspected.Digest, img.Digest);
});

test('archives podman save writes, docker-archive and oci-archive, load with the config they carry', async () => {
  // podman with a private store, so the test touches nothing of the machine's.
  const storage = ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs'];
  run('podman', [...storage, 'load', '-q', '-i', fixture('busybox', 'docker')]);
  const podmanId = run('podman', [...storage, 'image', 'inspect', '--format', '{{.Id}}', 'docker.io/library/busybox:latest']).trim();
  for (const format of ['docker-archive', 'oci-archive'] as const) {
    const archive = join(work, `podman-${format}.tar`);
    run('podman', [...storage, 'save', '-q', '--format', format, '-o', archive, 'docker.io/library/busybox:latest']);
    const store = fileDir(`kiln-interop-podman-${format}-`);
    assert.match(await kilnOk(store, ['load', '-i', archive]), /^Loaded image: busybox:latest\n$/, format);
    // podman converts the config to OCI's form for an oci-archive, so the ID is the digest of the
    // config the archive carries; a docker-archive keeps podman's own image ID.
    const files = await readArchive(archive);
    let configDigest = `sha256:${podmanId}`;
    if (format === 'oci-archive') {
      const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(files.get(`blobs/sha256/${index.manifests[0]!.digest.slice(7)}`)!.toString()) as { config: { digest: string } };
      configDigest = manifest.config.digest;
    }
    assert.equal((await inspect(store, 'busybox')).Id, configDigest, format);
  }
});
