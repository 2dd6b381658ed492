import { createHash, createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { SignatureInvalid } from './errors.js';
import type { Envelope } from './dsse.js';

// A Rekor transparency-log entry of a Sigstore bundle, checked offline against the trusted root's
// log key: the signed entry timestamp (which vouches for the integrated time), the entry's body
// against the envelope and certificate it claims to log, the inclusion proof (RFC 9162 section
// 2.1.3.2) up to the proof's root hash, and the checkpoint (a signed note) naming that root.

export interface TlogEntry {
  logIndex: string;
  logId: { keyId: string };
  kindVersion?: { kind: string; version: string };
  integratedTime: string;
  inclusionPromise?: { signedEntryTimestamp: string };
  inclusionProof?: { logIndex: string; rootHash: string; treeSize: string; hashes: string[]; checkpoint?: { envelope: string } };
  canonicalizedBody: string;
}

export interface TlogKey {
  publicKey: { rawBytes: string };
  logId: { keyId: string };
}

/** Verify `entry`; returns the integrated time it proves. */
export function verifyTlogEntry(entry: TlogEntry, logs: TlogKey[], envelope: Envelope, leaf: X509Certificate, where: string): Date {
  const log = logs.find((l) => l.logId.keyId === entry.logId?.keyId);
  if (!log) throw new SignatureInvalid(`${where}: tlogEntries[0].logId ${entry.logId?.keyId} is not a log of the trusted root`);
  const key = createPublicKey({ key: Buffer.from(log.publicKey.rawBytes, 'base64'), format: 'der', type: 'spki' });
  checkPromise(entry, key, where);
  checkBody(entry, envelope, leaf, where);
  if (entry.inclusionProof) checkProof(entry, key, where);
  return new Date(Number(entry.integratedTime) * 1000);
}

/** Rekor's signed entry timestamp: over the canonical JSON of {body, integratedTime, logID (hex), logIndex}. */
function checkPromise(entry: TlogEntry, key: KeyObject, where: string): void {
  const set = entry.inclusionPromise?.signedEntryTimestamp;
  if (!set) throw new SignatureInvalid(`${where}: tlogEntries[0] has no inclusionPromise.signedEntryTimestamp`);
  const logID = Buffer.from(entry.logId.keyId, 'base64').toString('hex');
  const message = `{"body":${JSON.stringify(entry.canonicalizedBody)},"integratedTime":${Number(entry.integratedTime)},"logID":${JSON.stringify(logID)},"logIndex":${Number(entry.logIndex)}}`;
  if (!verify('sha256', Buffer.from(message), key, Buffer.from(set, 'base64'))) {
    throw new SignatureInvalid(`${where}: tlogEntries[0].inclusionPromise.signedEntryTimestamp does not verify with the log's key`);
  }
}

/** A dsse 0.0.1 entry logs the payload's hash, the signature and the certificate that verifies it. */
function checkBody(entry: TlogEntry, envelope: Envelope, leaf: X509Certificate, where: string): void {
  let body: { kind?: string; spec?: { payloadHash?: { algorithm: string; value: string }; signatures?: { signature: string; verifier: string }[] } };
  try {
    body = JSON.parse(Buffer.from(entry.canonicalizedBody, 'base64').toString('utf8'));
  } catch {
    throw new SignatureInvalid(`${where}: tlogEntries[0].canonicalizedBody is not base64 JSON`);
  }
  if (body.kind !== 'dsse') throw new SignatureInvalid(`${where}: tlogEntries[0] logs a "${body.kind}" entry, not the dsse envelope`);
  const payloadHash = createHash('sha256').update(Buffer.from(envelope.payload, 'base64')).digest('hex');
  if (body.spec?.payloadHash?.algorithm !== 'sha256' || body.spec.payloadHash.value !== payloadHash) throw new SignatureInvalid(`${where}: tlogEntries[0] logs another payload (payloadHash)`);
  const logged = body.spec.signatures ?? [];
  const ok = logged.some((s) => envelope.signatures.some((e) => e.sig === s.signature) && certificateOf(s.verifier)?.fingerprint256 === leaf.fingerprint256);
  if (!ok) throw new SignatureInvalid(`${where}: tlogEntries[0] logs another signature or certificate than the bundle's`);
}

function certificateOf(verifier: string): X509Certificate | undefined {
  try {
    return new X509Certificate(Buffer.from(verifier, 'base64'));
  } catch {
    return undefined;
  }
}

/** RFC 9162 2.1.3.2: the audit path from the entry's leaf hash must reach rootHash; the checkpoint must sign that root. */
function checkProof(entry: TlogEntry, key: KeyObject, where: string): void {
  const p = entry.inclusionProof!;
  const h = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
  let fn = BigInt(p.logIndex);
  let sn = BigInt(p.treeSize) - 1n;
  if (fn > sn) throw new SignatureInvalid(`${where}: inclusionProof.logIndex ${p.logIndex} is outside the tree of ${p.treeSize}`);
  let r = h(Buffer.from([0]), Buffer.from(entry.canonicalizedBody, 'base64'));
  for (const b64 of p.hashes) {
    const node = Buffer.from(b64, 'base64');
    if (sn === 0n) throw new SignatureInvalid(`${where}: inclusionProof has more hashes than the tree has levels`);
    if ((fn & 1n) === 1n || fn === sn) {
      r = h(Buffer.from([1]), node, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) ((fn >>= 1n), (sn >>= 1n));
    } else r = h(Buffer.from([1]), r, node);
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !r.equals(Buffer.from(p.rootHash, 'base64'))) throw new SignatureInvalid(`${where}: inclusionProof does not lead to rootHash ${p.rootHash}`);
  const note = p.checkpoint?.envelope;
  if (!note) return;
  // A signed note: the text up to a blank line, then "— <name> base64(4-byte key hint || signature)" lines.
  const split = note.indexOf('\n\n');
  if (split < 0) throw new SignatureInvalid(`${where}: inclusionProof.checkpoint is not a signed note`);
  const text = note.slice(0, split + 1);
  const [, size, root] = text.split('\n');
  if (size !== p.treeSize || root !== p.rootHash) throw new SignatureInvalid(`${where}: inclusionProof.checkpoint names tree ${size} with root ${root}, not the proof's`);
  const signed = note
    .slice(split + 2)
    .split('\n')
    .filter((l) => l.startsWith('— '))
    .some((l) => {
      const sig = Buffer.from(l.split(' ').pop() ?? '', 'base64').subarray(4);
      return verify('sha256', Buffer.from(text), key, sig);
    });
  if (!signed) throw new SignatureInvalid(`${where}: inclusionProof.checkpoint is not signed by the log's key`);
}
