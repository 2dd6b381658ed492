import type { Command } from 'commander';
import { createHash, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';
import { openStore, type GlobalOptions } from './context.js';

// kiln build --provenance and --attest-key: attestations of the built image, as docker buildx's
// --provenance and --sbom make them (BuildKit docs, "Build attestations"): an in-toto statement
// whose subject is the image, kept with it and pushed with it. buildx stores them unsigned, as
// extra manifests of the image index (platform unknown/unknown); kiln keeps them as OCI referrers
// of the image instead, which the store, kiln push and kiln save already carry for SBOMs and
// signatures, and which work for a single image as well as an index. With --attest-key they are
// signed, the form kiln attest writes (a Sigstore bundle), so kiln verify-attestation checks them;
// the SBOM of --sbom is then attested too (spdxjson).
//
// These options wrap the build command (as build-extras.ts does): registered before
// build-extras', this preAction runs first and this postAction last (commander runs postAction
// hooks in reverse), after the manifest annotations are written, so the subject is final.

interface AttestFlags {
  provenance?: boolean;
  attestKey?: string;
  sbom?: boolean;
  iidfile?: string;
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  platform?: string;
}

/** in-toto's media type; the layer annotation buildx puts on its attestation layers. */
const InTotoMediaType = 'application/vnd.in-toto+json';
const PredicateTypeAnnotation = 'in-toto.io/predicate-type';
export const BuildType = 'https://github.com/kiln-build/kiln/dockerfile@v1';

/** Build args whose names say they hold credentials stay out of the provenance (BuildKit's SecretsUsedInArgOrEnv words). */
const SecretName = /(^|_)(secret|password|passwd|pass|token|key|apikey|credentials?|auth)(_|$)/i;

export function extendBuildAttestations(program: Command, globals: () => GlobalOptions): void {
  const build = program.commands.find((c) => c.name() === 'build');
  if (!build) return;
  build
    .option('--provenance', 'record SLSA provenance v1 of the build as an attestation of the image (kept and pushed with it)')
    .option('--attest-key <file>', 'sign the --provenance and --sbom attestations with this key (cosign\'s format or plain PEM; password from $KILN_PASSWORD or $COSIGN_PASSWORD)');
  let pending: { startedOn: string; iidfile?: string } | undefined;
  build
    .hook('preAction', (_cmd, action) => {
      const o = action.opts<AttestFlags>();
      if (o.attestKey && !o.provenance && !o.sbom) throw new UsageError('--attest-key signs the attestations of --provenance or --sbom: give one of them');
      if (!o.provenance && !(o.sbom && o.attestKey)) return;
      pending = { startedOn: new Date().toISOString() };
      if (!o.iidfile) o.iidfile = pending.iidfile = join(tmpdir(), `kiln-iid-attest-${process.pid}-${Date.now()}`);
    })
    .hook('postAction', async (_cmd, action) => {
      if (!pending) return;
      const o = action.opts<AttestFlags>();
      const store = await openStore(globals());
      const id = (await readFile(o.iidfile!, 'utf8')).trim();
      if (pending.iidfile) await rm(pending.iidfile, { force: true });
      const built = o.tag.length ? await store.resolveImage(o.tag[0]!) : await store.resolveImage(id);
      const { distributableImage } = await import('../registry/client/push.js');
      // The digest that kiln push will send: the one the attestations name.
      const image = await distributableImage(store, built);
      const key = o.attestKey ? await attestKey(o.attestKey) : undefined;
      const written: string[] = [];
      if (o.provenance) {
        const predicate = await provenance(store, image, o, String(action.args[0] ?? '.'), pending.startedOn);
        written.push(await attach(store, image, 'https://slsa.dev/provenance/v1', predicate, key));
      }
      if (o.sbom && key) {
        const spdx = await storedSpdx(store, image);
        if (spdx) written.push(await attach(store, image, 'https://spdx.dev/Document', spdx, key));
      }
      for (const w of written) process.stderr.write(`${w}\n`);
    });
}

async function attestKey(file: string) {
  const { readPrivateKey } = await import('../sign/keys.js');
  const password = process.env.KILN_PASSWORD ?? process.env.COSIGN_PASSWORD;
  return readPrivateKey(await readFile(file, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`--attest-key ${file}: ${e.message}`))), file, async () => {
    if (password === undefined) throw new UsageError(`a password is needed for ${file}: set KILN_PASSWORD (or COSIGN_PASSWORD)`);
    return password;
  });
}

/** Store the statement beside the image: signed (a bundle, kiln attest's form) with a key, else a bare in-toto referrer. */
async function attach(store: Store, image: StoredImage, type: string, predicate: Record<string, unknown>, key: import('node:crypto').KeyObject | undefined): Promise<string> {
  const [{ attestImage, attestationStatement }, { storeSource }] = await Promise.all([import('../sign/attest.js'), import('../sign/stored.js')]);
  const source = storeSource(store, image);
  if (key) return `writing attestation ${type}: ${(await attestImage(source, key, type, predicate)).where} done`;
  const statement = await store.putJSON(attestationStatement(source.name, image.manifestDescriptor.digest, type, predicate), InTotoMediaType);
  await store.content.put(Buffer.from('{}'));
  const s = image.manifestDescriptor;
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: InTotoMediaType,
    config: { mediaType: MediaType.OciEmpty, digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 },
    layers: [{ ...statement, annotations: { [PredicateTypeAnnotation]: type } }],
    subject: { mediaType: s.mediaType, digest: s.digest, size: s.size },
    annotations: { [PredicateTypeAnnotation]: type },
  };
  const desc: Descriptor = await store.putJSON(manifest, MediaType.OciManifest);
  await store.addReferrer({ ...desc, artifactType: InTotoMediaType });
  return `writing attestation ${type} (unsigned): referrer ${desc.digest} of ${s.digest} done`;
}

/**
 * SLSA provenance v1 (slsa.dev/spec/v1.0/provenance): the build definition (the Dockerfile by
 * digest, target, platform, build args but those named like secrets) and its resolved
 * dependencies (each base image and COPY --from image by the digest the store had), and the run.
 */
async function provenance(store: Store, image: StoredImage, o: AttestFlags, contextArg: string, startedOn: string): Promise<Record<string, unknown>> {
  const contextDir = resolve(contextArg);
  const dockerfilePath = o.file && o.file !== '-' ? resolve(o.file) : join(contextDir, 'Dockerfile');
  const text = await readFile(dockerfilePath, 'utf8').catch(() => undefined);
  const args: Record<string, string> = {};
  for (const a of o.buildArg) {
    const i = a.indexOf('=');
    const k = i < 0 ? a : a.slice(0, i);
    const v = i < 0 ? process.env[a] : a.slice(i + 1);
    if (v !== undefined && !SecretName.test(k)) args[k] = v;
  }
  const dependencies: { uri: string; digest: Record<string, string>; name?: string }[] = [];
  if (text !== undefined) {
    const { parseDockerfile, planBuild, hostPlatform, parsePlatform } = await import('../dockerfile/index.js');
    const plan = planBuild(parseDockerfile(text, { file: dockerfilePath }), { buildArgs: args, target: o.target, platform: o.platform ? parsePlatform(o.platform.split(',')[0]!) : hostPlatform() });
    const refs = new Set<string>();
    for (const st of plan.stages) {
      if (!st.used) continue;
      if (st.base.kind === 'image') refs.add(st.base.ref);
      for (const i of st.images) refs.add(i);
    }
    for (const ref of refs) {
      const found = await store.resolveImage(ref).catch(() => undefined);
      if (!found) continue;
      const [alg, hex] = found.manifestDescriptor.digest.split(':') as [string, string];
      dependencies.push({ uri: `pkg:docker/${encodeURIComponent(ref)}`, digest: { [alg]: hex }, name: ref });
    }
  }
  const dockerfile = text === undefined ? undefined : { path: dockerfilePath.startsWith(contextDir + '/') ? dockerfilePath.slice(contextDir.length + 1) : dockerfilePath, digest: { sha256: createHash('sha256').update(text).digest('hex') } };
  return {
    buildDefinition: {
      buildType: BuildType,
      externalParameters: {
        ...(dockerfile ? { configSource: dockerfile } : {}),
        ...(o.target ? { target: o.target } : {}),
        ...(o.platform ? { platform: o.platform } : {}),
        buildArgs: args,
      },
      internalParameters: {},
      resolvedDependencies: dependencies,
    },
    runDetails: {
      builder: { id: 'https://github.com/kiln-build/kiln' },
      metadata: { invocationId: randomUUID(), startedOn, finishedOn: new Date().toISOString() },
    },
  };
}

/** The SPDX document of the SBOM kept beside the image (kiln build --sbom), if any. */
async function storedSpdx(store: Store, image: StoredImage): Promise<Record<string, unknown> | undefined> {
  const { SBOM_ARTIFACT_TYPE } = await import('../sbom/stored.js');
  for (const d of await store.referrers(image.manifestDescriptor.digest, SBOM_ARTIFACT_TYPE)) {
    const m = await store.content.readJSON<Manifest>(d.digest);
    const layer = m.layers.find((l) => l.mediaType === SBOM_ARTIFACT_TYPE);
    if (layer) return store.content.readJSON<Record<string, unknown>>(layer.digest);
  }
  return undefined;
}
