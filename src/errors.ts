// Errors with a domain meaning. The CLI maps them to exit codes in one place (cli/main.ts) and the
// registry server to HTTP statuses in one place; everywhere else they are thrown and passed on.

export class KilnError extends Error {
  /** Process exit code the CLI uses for this error. */
  exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidReference extends KilnError {}
export class InvalidDigest extends KilnError {}
export class DigestMismatch extends KilnError {}
export class BlobUnknown extends KilnError {}
export class ImageUnknown extends KilnError {}
export class ManifestInvalid extends KilnError {}
export class UnsupportedMediaType extends KilnError {}
export class ArchiveInvalid extends KilnError {}
/** An archive entry tried to reach outside the directory it is applied to. */
export class UnsafeArchiveEntry extends ArchiveInvalid {}
export class ImageInUse extends KilnError {}
export class UsageError extends KilnError {
  override exitCode = 2;
}
