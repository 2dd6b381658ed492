import { KilnError } from '../errors.js';

// Errors of the sandbox. They extend KilnError so the CLI maps them to exit codes in its one place.

/** run() was cancelled through its AbortSignal; the process is dead and its runtime state is gone. */
export class AbortError extends KilnError {
  override exitCode = 130;
}

/**
 * The runtime could not start the process (bad configuration, missing runtime, failed mount…). Distinct
 * from the process starting and exiting non-zero, which is a RunResult, not an error.
 */
export class SandboxFailed extends KilnError {}

/** A USER or --chown names a user or group the image's /etc/passwd or /etc/group does not have. */
export class UnknownUser extends KilnError {}

/** A user or group id outside what runc accepts (0 … 2^31-1), or an otherwise unusable user spec. */
export class InvalidUserSpec extends KilnError {}
