import { UsageError } from '../../errors.js';
import { PolicyEnforcements, type Metadata, type PolicyEnforcement, type SignaturePolicy } from './metadata/metadata.js';
import { isNamespace } from './names.js';
import { keyHint, publicKeyPem, readPublicKey } from '../../sign/keys.js';
import { certificatesFromPem } from '../../sign/x509.js';
import { describePolicy } from './trust.js';

// Setting, listing and removing namespaces' signature policies (`kiln registry policy`), each
// change in the audit log. The keys and certificates are checked here, once: what the registry
// stores always parses (trust.ts reads it on every policy load).

export interface PolicyInput {
  /** Public keys as PEM texts, with the file each came from (for messages). */
  keys: { file: string; pem: string }[];
  certificates: { file: string; pem: string }[];
  on: PolicyEnforcement[];
}

/** "pull", "promote", "pull,promote" → the enforcement points; anything else is refused naming the flag. */
export function parseEnforcement(value: string, field = '--on'): PolicyEnforcement[] {
  const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = parts.filter((p) => !(PolicyEnforcements as readonly string[]).includes(p));
  if (!parts.length || bad.length) throw new UsageError(`${field} "${value}": pull, promote or pull,promote`);
  return PolicyEnforcements.filter((e) => parts.includes(e));
}

export async function setSignaturePolicy(metadata: Metadata, actor: string, namespace: string, input: PolicyInput): Promise<SignaturePolicy> {
  if (!isNamespace(namespace)) throw new UsageError(`namespace "${namespace}": lower-case letters, digits and . _ - separators (the first component of repository names)`);
  if (!input.keys.length && !input.certificates.length) throw new UsageError('give --key or --certificate: what must a signature verify with?');
  if (!input.on.length) throw new UsageError('--on: pull, promote or pull,promote');
  // Parse before anything is stored: a key of an unsupported type is refused naming its file.
  const keys = input.keys.map((k) => readPublicKey(k.pem, k.file));
  const certificates = input.certificates.map((c) => ({ file: c.file, parsed: certificatesFromPem(c.pem, c.file) }));
  const policy: SignaturePolicy = {
    namespace,
    keys: keys.map((k) => publicKeyPem(k)),
    certificates: certificates.map((c) => c.parsed.map((x) => x.toString()).join('')),
    on: input.on,
    createdBy: actor,
    createdAt: Date.now(),
  };
  await metadata.setSignaturePolicy(policy);
  await metadata.recordAudit([{ time: Date.now(), actor, action: 'policy-set', namespace, detail: `${describePolicy({ keys, certificates: certificates.flatMap((c) => c.parsed) })} on ${input.on.join(',')}` }]);
  return policy;
}

export async function removeSignaturePolicy(metadata: Metadata, actor: string, namespace: string): Promise<SignaturePolicy> {
  const removed = await metadata.removeSignaturePolicy(namespace);
  if (!removed) throw new UsageError(`namespace "${namespace}" has no signature policy`);
  await metadata.recordAudit([{ time: Date.now(), actor, action: 'policy-rm', namespace, detail: `signature policy on ${removed.on.join(',')} removed` }]);
  return removed;
}

/** A policy as `policy list` and the API show it: key fingerprints and certificate subjects. */
export function describeStoredPolicy(p: SignaturePolicy): { namespace: string; keys: string[]; certificates: string[]; on: PolicyEnforcement[]; createdBy: string; createdAt: number } {
  return {
    namespace: p.namespace,
    keys: p.keys.map((pem) => `sha256:${keyHint(readPublicKey(pem, p.namespace))}`),
    certificates: p.certificates.flatMap((pem) => certificatesFromPem(pem, p.namespace).map((c) => c.subject.replace(/\n/g, ', '))),
    on: p.on,
    createdBy: p.createdBy,
    createdAt: p.createdAt,
  };
}
