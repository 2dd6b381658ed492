import type { KeyObject } from 'node:crypto';
import { signData, verifyData } from './keys.js';
import { SignatureInvalid } from './errors.js';

// Dead Simple Signing Envelope (secure-systems-lab/dsse, envelope.md and protocol.md): the
// signature covers PAE(payloadType, payload), never the bare payload, so a payload cannot be
// reinterpreted under another type.

export interface Envelope {
  payload: string; // base64
  payloadType: string;
  signatures: { sig: string; keyid?: string }[];
}

export const InTotoPayloadType = 'application/vnd.in-toto+json';

/** protocol.md: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal bytes. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function signEnvelope(key: KeyObject, payloadType: string, payload: Buffer): Envelope {
  return { payload: payload.toString('base64'), payloadType, signatures: [{ sig: signData(key, pae(payloadType, payload)).toString('base64') }] };
}

/** Check the envelope's shape (naming `where`) and return its payload bytes. */
export function envelopePayload(env: unknown, where: string): Buffer {
  const e = env as Partial<Envelope> | undefined;
  if (!e || typeof e !== 'object') throw new SignatureInvalid(`${where}: dsseEnvelope is not an object`);
  if (typeof e.payloadType !== 'string') throw new SignatureInvalid(`${where}: dsseEnvelope.payloadType is missing`);
  if (typeof e.payload !== 'string') throw new SignatureInvalid(`${where}: dsseEnvelope.payload is missing`);
  if (!Array.isArray(e.signatures) || e.signatures.length === 0) throw new SignatureInvalid(`${where}: dsseEnvelope.signatures is empty`);
  return Buffer.from(e.payload, 'base64');
}

/** Does any of the envelope's signatures verify with `key`? */
export function verifyEnvelope(env: Envelope, key: KeyObject, where: string): boolean {
  const message = pae(env.payloadType, envelopePayload(env, where));
  return env.signatures.some((s) => typeof s.sig === 'string' && verifyData(key, message, Buffer.from(s.sig, 'base64')));
}
