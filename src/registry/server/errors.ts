import { KilnError } from '../../errors.js';

// Registry errors as domain values. Each carries a reason; http.ts turns the reason into the
// spec's error code and HTTP status (OCI distribution-spec "Error Codes"), in that one place.

/** Why a request failed, in the registry's words. */
export type Reason =
  | 'blob-unknown'
  | 'blob-upload-invalid'
  | 'blob-upload-unknown'
  | 'digest-invalid'
  | 'manifest-blob-unknown'
  | 'manifest-invalid'
  | 'manifest-unknown'
  | 'manifest-too-large'
  | 'name-invalid'
  | 'name-unknown'
  | 'tag-invalid'
  | 'size-invalid'
  | 'chunk-out-of-order'
  | 'range-not-satisfiable'
  | 'unauthorized'
  | 'denied'
  | 'unsupported'
  | 'method-not-allowed'
  | 'not-found'
  | 'too-many-requests'
  | 'headers-too-large'
  | 'bad-request'
  | 'unavailable'
  | 'upstream-failed'
  | 'internal';

export class RegistryError extends KilnError {
  constructor(
    readonly reason: Reason,
    message: string,
    readonly detail?: unknown,
    /** Extra response headers the client needs to act on the error (WWW-Authenticate, Range, Retry-After). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const blobUnknown = (digest: string) => new RegistryError('blob-unknown', 'blob unknown to registry', { digest });
export const blobUploadUnknown = (id?: string) => new RegistryError('blob-upload-unknown', 'blob upload unknown to registry', id ? { uuid: id } : undefined);
export const blobUploadInvalid = (why: string) => new RegistryError('blob-upload-invalid', `blob upload invalid: ${why}`);
export const digestInvalid = (why: string, detail?: unknown) => new RegistryError('digest-invalid', why, detail);
export const manifestUnknown = (reference: string, why = 'manifest unknown') => new RegistryError('manifest-unknown', why, { reference });
export const manifestInvalid = (why: string, detail?: unknown) => new RegistryError('manifest-invalid', `manifest invalid: ${why}`, detail);
export const nameInvalid = (name: string, why = 'invalid repository name') => new RegistryError('name-invalid', why, { name });
export const nameUnknown = (name: string) => new RegistryError('name-unknown', 'repository name not known to registry', { name });
export const tagInvalid = (tag: string) => new RegistryError('tag-invalid', 'invalid tag: letters, digits, _ . - (at most 128, not starting with . or -)', { tag });
export const sizeInvalid = (why: string) => new RegistryError('size-invalid', why);
export const unsupported = (why: string) => new RegistryError('unsupported', why);
export const denied = (why = 'requested access to the resource is denied') => new RegistryError('denied', why);
export const badRequest = (why: string) => new RegistryError('bad-request', why);
/** PostgreSQL or the S3 store cannot be reached now (see unavailable.ts): the client should retry shortly. */
export const unavailable = () => new RegistryError('unavailable', 'service unavailable: a backend of the registry cannot be reached; try again', undefined, { 'Retry-After': '1' });
/** The upstream of a pull-through cache namespace failed, refused us or answered what the protocol does not allow (proxy.ts). */
export const upstreamFailed = (why: string) => new RegistryError('upstream-failed', why);
