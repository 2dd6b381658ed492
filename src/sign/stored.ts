import { createHash } from 'node:crypto';
import type { Descriptor, Manifest } from '../oci/types.js';
import type { Store, StoredImage } from '../store/store.js';
import { repositoryOf, parseReference } from '../reference/reference.js';
import { SignatureInvalid } from './errors.js';
import type { Artifact } from './artifact.js';
import { MaxSignatureBlob, type FoundArtifact, type SignatureSource } from './source.js';
import { SignatureArtifactTypes } from './verify.js';
import { SimpleSigningMediaType } from './simplesigning.js';

// Signatures of an image in the local store, kept as its referrers (index.json entries with an
// artifactType whose manifest has the image as subject), as src/sbom/stored.ts keeps an SBOM: gc
// keeps them while the image lives, `kiln push` sends them along, `kiln save --format oci` too.

export function storeSource(store: Store, image: StoredImage): SignatureSource {
  const subject = image.manifestDescriptor;
  const tagged = image.names.find((n) => !n.includes('@'));
  const name = tagged ? repositoryOf(parseReference(tagged)) : subject.digest;
  return {
    kind: 'store',
    subject,
    name,
    async artifacts() {
      const out: FoundArtifact[] = [];
      for (const d of await store.referrers(subject.digest)) {
        if (!SignatureArtifactTypes.includes(d.artifactType ?? '')) continue;
        out.push({ descriptor: d, manifest: await store.content.readJSON<Manifest>(d.digest), from: 'store' });
      }
      return out;
    },
    async blob(desc, where, max = MaxSignatureBlob) {
      if (desc.size > max) throw new SignatureInvalid(`${where}: layer ${desc.digest} is ${desc.size} bytes; signature blobs over ${max} bytes are refused`);
      const bytes = await store.content.read(desc.digest);
      if ('sha256:' + createHash('sha256').update(bytes).digest('hex') !== desc.digest) throw new SignatureInvalid(`${where}: blob ${desc.digest} does not match its digest`);
      return bytes;
    },
    async put(artifact: Artifact, format) {
      for (const b of artifact.blobs) await store.content.put(b.bytes);
      await store.content.put(artifact.bytes);
      // Bundles by several keys stand side by side; the legacy manifest holds them all, so it replaces.
      await store.addReferrer(artifact.descriptor, format === 'legacy');
      return `stored as referrer ${artifact.descriptor.digest} of ${subject.digest}`;
    },
    async legacyLayers() {
      const found = (await store.referrers(subject.digest, SimpleSigningMediaType))[0];
      if (!found) return [];
      const m = await store.content.readJSON<Manifest>(found.digest);
      return Promise.all(m.layers.map(async (descriptor: Descriptor) => ({ descriptor, bytes: await store.content.read(descriptor.digest) })));
    },
  };
}
