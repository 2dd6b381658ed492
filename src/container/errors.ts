import { KilnError } from '../errors.js';

// Errors of working containers. Exit codes follow docker's CLI: 125 when the container could not be
// created or started (the command never ran), 1 for the other commands' failures.

/** No container has this ID, ID prefix or name. */
export class ContainerUnknown extends KilnError {}

/** A container already carries the name asked for. */
export class NameInUse extends KilnError {
  override exitCode = 125;
}

/** The operation does not fit the container's state (removing a running container, killing a stopped one). */
export class ContainerStateError extends KilnError {}

/** `run`/`create`/`start` could not get the process going: bad options, unknown image or user, a sandbox failure. */
export class StartFailed extends KilnError {
  override exitCode = 125;
}

/** A `cp` path that leads outside the container's root, or does not exist in it. */
export class CopyPathError extends KilnError {}
