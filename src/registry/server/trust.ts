import { createHash, type KeyObject, type X509Certificate } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Descriptor, Manifest } from '../../oci/types.js';
import type { Metadata, PolicyEnforcement, SignaturePolicy } from './metadata/metadata.js';
import type { BlobService } from './blobs.js';
import { denied } from './errors.js';
import { namespaceOf } from './names.js';
import { digestTag } from '../../sign/artifact.js';
import { keyHint, readPublicKey } from '../../sign/keys.js';
import { certificatesFromPem } from '../../sign/x509.js';
import { SignatureInvalid } from '../../sign/errors.js';
import { SimpleSigningMediaType } from '../../sign/simplesigning.js';
import { MaxSignatureBlob, type FoundArtifact, type SignatureReader } from '../../sign/source.js';
import { SignatureArtifactTypes, verifySignatures, type SignatureResult } from '../../sign/verify.js';

// A namespace's signature policy, enforced (issue 19): a manifest of one of its repositories is
// served (or promoted) only when one of its signatures verifies with the policy's keys or chains to
// its certificates, by the same verification `kiln verify` runs (src/sign/verify.ts) over what this
// registry stores: the manifest's referrers and cosign's `sha256-<hex>.sig` tag. Signature
// artifacts themselves are never held back, or no one could sign an image nor a client verify one.
// A platform manifest passes when an index of the repository that lists it is signed (cosign signs
// the index a multi-platform tag names; clients then fetch its children by digest).

export interface SignatureStatus {
  repository: string;
  digest: string;
  /** The namespace's policy, with key fingerprints (sha256:<base64>, kiln verify's) and certificate subjects. */
  policy?: { namespace: string; keys: string[]; certificates: string[]; on: PolicyEnforcement[] };
  /** Whether a signature verifies with the policy's keys or certificates (false without a policy). */
  verified: boolean;
  signatures: SignatureResult[];
}

export interface SignatureRules {
  /**
   * DENIED when the namespace's policy covers pulls and the manifest is neither signed nor a
   * signature artifact. A HEAD by someone who may push passes: signing needs the digest, media
   * type and size (what HEAD tells), never the content (cosign and kiln sign resolve so).
   */
  admitPull(repository: string, reference: { tag?: string; digest?: string }, manifest: { digest: string; body: Buffer }, request: { head: boolean; mayPush(): Promise<boolean> }): Promise<void>;
  /**
   * DENIED when the policy of `destination`'s namespace covers promotion and the manifest (its
   * signatures looked up in `source`, where they were pushed) is not signed.
   */
  admitPromotion(source: string, destination: string, manifest: { digest: string; body: Buffer }): Promise<void>;
  /** Every signature of the manifest, checked against its namespace's policy, for the API. */
  status(repository: string, manifest: { digest: string; mediaType: string; body: Buffer }): Promise<SignatureStatus>;
  /** Forget policies and verification results (another process changed the database). */
  invalidate(): void;
}

/** A policy ready to verify with: its keys and certificates parsed once, and a fingerprint of them. */
interface LoadedPolicy {
  policy: SignaturePolicy;
  keys: KeyObject[];
  certificates: X509Certificate[];
  fingerprint: string;
}

interface Verdict {
  /** Policy fingerprint and the artifacts seen: a new signature or new keys make another. */
  fingerprint: string;
  results: SignatureResult[];
}

const MaxVerdicts = 10_000;

export function signatureRules(parts: { metadata: Metadata; blobs: BlobService }): SignatureRules {
  const { metadata, blobs } = parts;
  // namespace -> its policy (null: none), loaded on first use.
  let policies: Map<string, LoadedPolicy | null> = new Map();
  // repository \0 digest -> the last verification of the manifest's signatures.
  const verdicts = new Map<string, Verdict>();

  const policyOf = async (namespace: string): Promise<LoadedPolicy | undefined> => {
    const known = policies.get(namespace);
    if (known !== undefined) return known ?? undefined;
    const map = policies;
    const p = (await metadata.signaturePolicies(namespace))[0];
    const loaded = p ? loadPolicy(p) : null;
    map.set(namespace, loaded);
    return loaded ?? undefined;
  };

  const reader = async (repository: string, digest: string): Promise<SignatureReader & { seen: string }> => {
    const found: FoundArtifact[] = [];
    for (const r of await metadata.referrers(repository, digest)) {
      if (!SignatureArtifactTypes.includes(r.artifactType ?? '')) continue;
      found.push({ descriptor: { mediaType: r.mediaType, digest: r.digest, size: r.body.length, artifactType: r.artifactType }, manifest: JSON.parse(r.body.toString('utf8')) as Manifest, from: 'referrers API' });
    }
    const sig = await metadata.resolveTag(repository, digestTag(digest, '.sig'));
    const legacy = sig ? await metadata.getManifest(repository, sig) : undefined;
    if (legacy) found.push({ descriptor: { mediaType: legacy.mediaType, digest: legacy.digest, size: legacy.body.length }, manifest: JSON.parse(legacy.body.toString('utf8')) as Manifest, from: 'sig tag' });
    return {
      seen: found.map((f) => f.descriptor.digest).join(','),
      subject: { mediaType: '', digest, size: 0 },
      artifacts: async () => found,
      blob: (desc, where, max) => readSignatureBlob(blobs, repository, desc, where, max),
    };
  };

  const verify = async (repository: string, digest: string, p: LoadedPolicy): Promise<SignatureResult[]> => {
    const source = await reader(repository, digest);
    const fingerprint = `${p.fingerprint}|${source.seen}`;
    const k = repository + '\0' + digest;
    const cached = verdicts.get(k);
    if (cached?.fingerprint === fingerprint) return cached.results;
    const results = await verifySignatures(source, { keys: p.keys, certificates: p.certificates, annotations: {} });
    if (verdicts.size >= MaxVerdicts) verdicts.clear();
    verdicts.set(k, { fingerprint, results });
    return results;
  };

  /** Signed itself, or listed by a signed index of the repository. */
  const signed = async (repository: string, digest: string, p: LoadedPolicy): Promise<{ ok: boolean; found: number }> => {
    const own = await verify(repository, digest, p);
    if (own.some((r) => r.verified)) return { ok: true, found: own.length };
    for (const index of await metadata.indexesListing(repository, digest)) {
      if ((await verify(repository, index, p)).some((r) => r.verified)) return { ok: true, found: own.length };
    }
    return { ok: false, found: own.length };
  };

  const refuse = (what: string, p: LoadedPolicy, found: number): never => {
    throw denied(`${what}: refused by the signature policy of namespace ${p.policy.namespace}: ${describePolicy(p)}; ${found ? `none of its ${found} signatures verifies` : 'it has no signature'}`);
  };

  return {
    async admitPull(repository, reference, manifest, request) {
      const p = await policyOf(namespaceOf(repository));
      if (!p || !p.policy.on.includes('pull')) return;
      if (reference.tag !== undefined && FallbackTag.test(reference.tag)) return;
      if (isSignatureArtifact(manifest.body)) return;
      if (request.head && (await request.mayPush())) return;
      const r = await signed(repository, manifest.digest, p);
      if (!r.ok) refuse(`pull of ${repository}@${manifest.digest}`, p, r.found);
    },

    async admitPromotion(source, destination, manifest) {
      const p = await policyOf(namespaceOf(destination));
      if (!p || !p.policy.on.includes('promote')) return;
      if (isSignatureArtifact(manifest.body)) return;
      const r = await signed(source, manifest.digest, p);
      if (!r.ok) refuse(`promotion of ${source}@${manifest.digest} to ${destination}`, p, r.found);
    },

    async status(repository, manifest) {
      const p = await policyOf(namespaceOf(repository));
      const results = p ? await verify(repository, manifest.digest, p) : await verifySignatures(await reader(repository, manifest.digest), { keys: [], certificates: [], annotations: {} });
      return {
        repository,
        digest: manifest.digest,
        ...(p ? { policy: { namespace: p.policy.namespace, keys: p.keys.map((k) => `sha256:${keyHint(k)}`), certificates: p.certificates.map((c) => c.subject.replace(/\n/g, ', ')), on: p.policy.on } } : {}),
        verified: results.some((r) => r.verified),
        signatures: results,
      };
    },

    invalidate() {
      // A fresh map: a lookup in flight fills the old one, not this.
      policies = new Map();
      verdicts.clear();
    },
  };
}

/** Parse a stored policy (its PEM texts were checked when it was set). */
function loadPolicy(policy: SignaturePolicy): LoadedPolicy {
  const where = `signature policy of namespace ${policy.namespace}`;
  const keys = policy.keys.map((pem, i) => readPublicKey(pem, `${where}, key ${i + 1}`));
  const certificates = policy.certificates.flatMap((pem, i) => certificatesFromPem(pem, `${where}, certificate ${i + 1}`));
  const fingerprint = createHash('sha256').update(JSON.stringify([policy.keys, policy.certificates])).digest('hex');
  return { policy, keys, certificates, fingerprint };
}

export function describePolicy(p: { keys: KeyObject[]; certificates: X509Certificate[] }): string {
  const trusted = [...p.keys.map((k) => `key sha256:${keyHint(k)}`), ...p.certificates.map((c) => `certificate "${c.subject.replace(/\n/g, ', ')}"`)];
  return `a signature by ${trusted.length > 1 ? 'one of ' : ''}${trusted.join(', ')} is required`;
}

/** cosign's and the referrers tag schema's tags: sha256-<hex>, sha256-<hex>.sig, .att, .sbom. */
const FallbackTag = /^sha256-[0-9a-f]{64}(\.[a-z]+)?$/;

/**
 * Signatures, SBOMs and attestations: manifests with a subject or an artifactType (OCI 1.1
 * artifacts), and cosign's legacy `.sig` manifests (simple-signing layers, no subject).
 */
function isSignatureArtifact(body: Buffer): boolean {
  let doc: Partial<Manifest> & { manifests?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return false;
  }
  if (doc.subject !== undefined || (typeof doc.artifactType === 'string' && doc.artifactType !== '')) return true;
  return Array.isArray(doc.layers) && doc.layers.length > 0 && doc.layers.every((l) => l?.mediaType === SimpleSigningMediaType);
}

/** A signature blob the registry holds, read whole (never past MaxSignatureBlob) and checked against its digest. */
async function readSignatureBlob(blobs: BlobService, repository: string, desc: Descriptor, where: string, max = MaxSignatureBlob): Promise<Buffer> {
  if (desc.size > max) throw new SignatureInvalid(`${where}: layer ${desc.digest} is ${desc.size} bytes; signature blobs over ${max} bytes are refused`);
  let bytes: Buffer;
  try {
    const o = await blobs.open(repository, desc.digest);
    if (o.size > max) throw new SignatureInvalid(`${where}: blob ${desc.digest} is ${o.size} bytes; signature blobs over ${max} bytes are refused`);
    if (o.buffer) bytes = o.buffer;
    else if (o.file) {
      try {
        bytes = Buffer.alloc(o.size);
        await o.file.read(bytes, 0, o.size, 0);
      } finally {
        await o.file.close();
      }
    } else bytes = await readAll(o.stream!);
  } catch (e) {
    if (e instanceof SignatureInvalid) throw e;
    throw new SignatureInvalid(`${where}: blob ${desc.digest} cannot be read: ${(e as Error).message}`);
  }
  if ('sha256:' + createHash('sha256').update(bytes).digest('hex') !== desc.digest) throw new SignatureInvalid(`${where}: blob ${desc.digest} does not match its digest`);
  return bytes;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
