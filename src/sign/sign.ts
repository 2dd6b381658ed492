import type { KeyObject } from 'node:crypto';
import { appendLegacy, bundleArtifact, legacyArtifact } from './artifact.js';
import { makeBundle } from './bundle.js';
import { InTotoPayloadType, signEnvelope } from './dsse.js';
import { signData } from './keys.js';
import { simpleSigningPayload } from './simplesigning.js';
import { signStatement } from './statement.js';
import type { SignatureSource } from './source.js';

// Signing an image: what is signed is the digest the source (store or registry) has for it now.

export type SignFormat = 'bundle' | 'legacy';

export interface SignResult {
  digest: string;
  artifact: string;
  where: string;
}

export async function signImage(source: SignatureSource, key: KeyObject, annotations: Record<string, string>, format: SignFormat): Promise<SignResult> {
  const { subject, name } = source;
  if (format === 'legacy') {
    const payload = simpleSigningPayload(name, subject.digest, annotations);
    const payloads = appendLegacy(await source.legacyLayers(), { payload, signature: signData(key, payload) });
    const artifact = legacyArtifact(payloads, source.kind === 'store' ? subject : undefined);
    return { digest: subject.digest, artifact: artifact.descriptor.digest, where: await source.put(artifact, 'legacy') };
  }
  const statement = Buffer.from(JSON.stringify(signStatement(name, subject.digest, annotations)));
  const bundle = makeBundle(signEnvelope(key, InTotoPayloadType, statement), key);
  const artifact = bundleArtifact(subject, Buffer.from(JSON.stringify(bundle)));
  return { digest: subject.digest, artifact: artifact.descriptor.digest, where: await source.put(artifact, 'bundle') };
}
