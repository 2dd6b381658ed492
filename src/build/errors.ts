import { KilnError } from '../errors.js';

/** A step failed: the message leads with `Dockerfile:LINE:` so the user sees where. */
export class BuildStepError extends KilnError {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** The build was interrupted (Ctrl-C, SIGTERM): nothing was tagged. */
export class BuildCancelled extends KilnError {
  override exitCode = 130;
}
