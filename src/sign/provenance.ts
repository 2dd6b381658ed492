import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';

// The attestations of a build (BuildKit docs, "Build attestations"): SLSA provenance of how the
// image was built, and the SBOM kept beside it, as in-toto statements whose subject is the image,
// kept as OCI referrers of it (signed with a key, else bare). `kiln build --provenance` (cli/build-attest.ts)
// and `kiln bake`'s `attest: [type=provenance]` both write them here.

/** in-toto's media type; the layer annotation buildx puts on its attestation layers. */
const InTotoMediaType = 'application/vnd.in-toto+json';
const PredicateTypeAnnotation = 'in-toto.io/predicate-type';
export const BuildType = 'https://github.com/kiln-build/kiln/dockerfile@v1';
export const ProvenanceType = 'https://slsa.dev/provenance/v1';
export const SpdxType = 'https://spdx.dev/Document';

/** Build args whose names say they hold credentials stay out of the provenance (BuildKit's SecretsUsedInArgOrEnv words). */
const SecretName = /(^|_)(secret|password|passwd|pass|token|key|apikey|credentials?|auth)(_|$)/i;

/** What the provenance records of a build's definition. */
export interface BuildDefinition {
  contextDir: string;
  /** Absolute path of the Dockerfile. */
  dockerfile: string;
  buildArgs: Record<string, string>;
  target?: string;
  /** The platforms as given (comma-separated); the first one's plan lists the dependencies. */
  platform?: string;
  startedOn: string;
}

/** Store the statement beside the image: signed (a bundle, kiln attest's form) with a key, else a bare in-toto referrer. */
export async function attach(store: Store, image: StoredImage, type: string, predicate: Record<string, unknown>, key: KeyObject | undefined): Promise<string> {
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
export async function provenance(store: Store, o: BuildDefinition): Promise<Record<string, unknown>> {
  const { contextDir, dockerfile: dockerfilePath } = o;
  const text = await readFile(dockerfilePath, 'utf8').catch(() => undefined);
  const args: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.buildArgs)) if (!SecretName.test(k)) args[k] = v;
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
      metadata: { invocationId: randomUUID(), startedOn: o.startedOn, finishedOn: new Date().toISOString() },
    },
  };
}

/** The SPDX document of the SBOM kept beside the image (kiln build --sbom), if any. */
export async function storedSpdx(store: Store, image: StoredImage): Promise<Record<string, unknown> | undefined> {
  const { SBOM_ARTIFACT_TYPE } = await import('../sbom/stored.js');
  for (const d of await store.referrers(image.manifestDescriptor.digest, SBOM_ARTIFACT_TYPE)) {
    const m = await store.content.readJSON<Manifest>(d.digest);
    const layer = m.layers.find((l) => l.mediaType === SBOM_ARTIFACT_TYPE);
    if (layer) return store.content.readJSON<Record<string, unknown>>(layer.digest);
  }
  return undefined;
}
