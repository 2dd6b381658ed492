import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Index, Manifest } from '../oci/types.js';
import { parseNamed, repositoryOf } from '../reference/reference.js';
import { loadRegistriesConfig, pushEndpoint } from '../registry/client/config.js';
import { RegistrySession, pullScope, pushScope } from '../registry/client/session.js';
import { fetchManifest, ManifestAccept, putManifest } from '../registry/client/manifests.js';
import { downloadBlob, uploadBlob } from '../registry/client/blobs.js';
import { addToReferrersTag, DefaultChunkSize, DefaultMonolithicMax } from '../registry/client/push.js';
import { ManifestUnknown, RegistryDenied } from '../registry/client/errors.js';
import { discard, readBody } from '../registry/client/http.js';
import { SignatureInvalid } from './errors.js';
import { digestTag, type Artifact } from './artifact.js';
import { MaxSignatureBlob, type FoundArtifact, type Found, type SignatureSource } from './source.js';
import { SignatureArtifactTypes } from './verify.js';

// Signatures of an image in a registry. Found three ways, as cosign and notation look: the
// referrers API (distribution-spec "Listing Referrers"), the referrers tag schema's index tagged
// sha256-<hex> (for registries without the API, Debian's Distribution 2.8 among them), and
// cosign's older sha256-<hex>.sig tag. The subject is what the registry has for the reference now,
// resolved to its digest once.

/**
 * The descriptor of what `reference` names: from its content (GET), or, when a signature policy
 * holds an unsigned image back (403), from a HEAD, which such a registry answers for those who may
 * push, as cosign resolves the digest to sign.
 */
async function resolveSubject(session: RegistrySession, repo: string, reference: string): Promise<Descriptor> {
  try {
    const target = await fetchManifest(session, repo, reference);
    return { mediaType: target.mediaType, digest: target.digest, size: target.bytes.length };
  } catch (e) {
    if (!(e instanceof RegistryDenied)) throw e;
    const res = await session.request('HEAD', `/v2/${repo}/manifests/${reference}`, { scopes: [pushScope(repo)], headers: { accept: ManifestAccept } });
    discard(res);
    const digest = res.headers['docker-content-digest'];
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const size = Number(res.headers['content-length']);
    if (res.status !== 200 || typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest) || (reference.includes(':') && digest !== reference) || !mediaType || !Number.isSafeInteger(size)) throw e;
    return { mediaType, digest, size };
  }
}

export async function registrySource(reference: string, env: NodeJS.ProcessEnv = process.env): Promise<SignatureSource> {
  const ref = parseNamed(reference);
  const config = await loadRegistriesConfig(env);
  const session = new RegistrySession(pushEndpoint(ref.domain, config), { env });
  const repo = ref.path;
  const where = `${session.endpoint.host}/${repo}`;
  const subject = await resolveSubject(session, repo, ref.digest ?? ref.tag ?? 'latest');
  const pull = [pullScope(repo)];

  const manifestOf = async (desc: Descriptor, from: Found): Promise<FoundArtifact | undefined> => {
    try {
      const m = await fetchManifest(session, repo, desc.digest, desc.size ? desc : undefined);
      return { descriptor: { ...desc, mediaType: m.mediaType }, manifest: m.doc as Manifest, from };
    } catch (e) {
      if (e instanceof ManifestUnknown) return undefined;
      throw e;
    }
  };
  const tagged = async (tag: string): Promise<{ digest: string; doc: Manifest & Index } | undefined> => {
    try {
      const m = await fetchManifest(session, repo, tag);
      return { digest: m.digest, doc: m.doc as Manifest & Index };
    } catch (e) {
      if (e instanceof ManifestUnknown) return undefined;
      throw e;
    }
  };
  const upload = async (bytes: Buffer, desc: Descriptor, scopes: string[]) => {
    await uploadBlob(session, repo, desc, (start, end) => Readable.from([bytes.subarray(start ?? 0, end === undefined ? undefined : end + 1)]), {
      scopes,
      mountFrom: [],
      monolithicMax: DefaultMonolithicMax,
      chunkSize: DefaultChunkSize,
      onBytes: () => {},
      onRetry: () => {},
    });
  };

  const source: SignatureSource = {
    kind: 'registry',
    subject,
    name: repositoryOf(ref),
    async artifacts() {
      const listed = new Map<string, { desc: Descriptor; from: Found }>();
      const res = await session.request('GET', `/v2/${repo}/referrers/${subject.digest}`, { scopes: pull, headers: { accept: MediaType.OciIndex } });
      if (res.status === 200) {
        const text = (await readBody(res, 4 << 20)).toString('utf8');
        let index: Partial<Index>;
        try {
          index = JSON.parse(text) as Partial<Index>;
        } catch {
          throw new SignatureInvalid(`${where}: the referrers API answered for ${subject.digest} with something that is not a JSON index`);
        }
        for (const d of Array.isArray(index.manifests) ? index.manifests : []) if (typeof d?.digest === 'string') listed.set(d.digest, { desc: d, from: 'referrers API' });
      } else discard(res);
      const fallback = await tagged(digestTag(subject.digest));
      for (const d of Array.isArray(fallback?.doc.manifests) ? fallback.doc.manifests : []) if (typeof d?.digest === 'string' && !listed.has(d.digest)) listed.set(d.digest, { desc: d, from: 'referrers tag' });
      const out: FoundArtifact[] = [];
      for (const { desc, from } of listed.values()) {
        if (!SignatureArtifactTypes.includes(desc.artifactType ?? '')) continue;
        const found = await manifestOf(desc, from);
        if (found) out.push(found);
      }
      const sig = await tagged(digestTag(subject.digest, '.sig'));
      if (sig?.doc.layers) out.push({ descriptor: { mediaType: sig.doc.mediaType ?? MediaType.OciManifest, digest: sig.digest, size: 0 }, manifest: sig.doc, from: 'sig tag' });
      return out;
    },
    async blob(desc, what, max = MaxSignatureBlob) {
      if (desc.size > max) throw new SignatureInvalid(`${what}: layer ${desc.digest} is ${desc.size} bytes; signature blobs over ${max} bytes are refused`);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of downloadBlob(session, repo, desc, () => {}, () => {})) {
        n += (c as Buffer).length;
        if (n > desc.size) throw new SignatureInvalid(`${what}: blob ${desc.digest} is longer than its descriptor's ${desc.size} bytes`);
        chunks.push(c as Buffer);
      }
      const bytes = Buffer.concat(chunks);
      if ('sha256:' + createHash('sha256').update(bytes).digest('hex') !== desc.digest) throw new SignatureInvalid(`${what}: blob ${desc.digest} from ${where} does not match its digest`);
      return bytes;
    },
    async put(artifact: Artifact, format) {
      const scopes = [pushScope(repo)];
      for (const b of artifact.blobs) await upload(b.bytes, b.descriptor, scopes);
      if (format === 'legacy') {
        const tag = digestTag(subject.digest, '.sig');
        await putManifest(session, repo, tag, artifact.bytes, MediaType.OciManifest, scopes);
        return `pushed ${where}:${tag}`;
      }
      const put = await putManifest(session, repo, artifact.descriptor.digest, artifact.bytes, MediaType.OciManifest, scopes);
      if (put.subject === subject.digest) return `pushed referrer ${where}@${artifact.descriptor.digest}`;
      // distribution-spec "Pushing Manifests with Subject": no OCI-Subject answer, so the client
      // keeps the referrers tag itself.
      const { artifactType, ...rest } = artifact.descriptor;
      await addToReferrersTag(session, repo, scopes, subject.digest, { ...rest, artifactType, ...(artifact.manifest.annotations ? { annotations: artifact.manifest.annotations } : {}) });
      return `pushed referrer ${where}@${artifact.descriptor.digest} and referrers tag ${where}:${digestTag(subject.digest)}`;
    },
    async legacyLayers() {
      const sig = await tagged(digestTag(subject.digest, '.sig'));
      const out: { descriptor: Descriptor; bytes: Buffer }[] = [];
      for (const l of sig?.doc.layers ?? []) out.push({ descriptor: l, bytes: await source.blob(l, `${where}:${digestTag(subject.digest, '.sig')}`) });
      return out;
    },
  };
  return source;
}
