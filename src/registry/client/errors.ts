import { KilnError } from '../../errors.js';

// Errors of talking to a registry. Each names the registry (and repository when known) so that a
// failed pull or push says where it failed; none ever carries a credential.

/** The registry refused our credentials, or wants credentials and we have none. */
export class RegistryUnauthorized extends KilnError {}
/** Authenticated, but not allowed to do this (HTTP 403, or a token without the asked actions). */
export class RegistryDenied extends KilnError {}
/** No connection could be made, or it kept failing after the retries. */
export class RegistryUnreachable extends KilnError {}
/** The registry does not have the manifest (tag or digest) asked for. */
export class ManifestUnknown extends KilnError {}
/** Any other answer the protocol does not allow at that point. */
export class RegistryRequestFailed extends KilnError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}
/** A blob download ended early more often than we are willing to resume it. */
export class TransferTruncated extends KilnError {}
/** An index lists no image for the platform asked for. */
export class NoMatchingPlatform extends KilnError {}
/** A docker-credential-<helper> program failed. */
export class CredentialHelperFailed extends KilnError {}
/** The registries section of kiln's config file is malformed. */
export class RegistriesConfigInvalid extends KilnError {
  override exitCode = 2;
}
