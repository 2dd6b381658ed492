import { KilnError } from '../errors.js';

// Errors of the Dockerfile frontend. Every one names the file and, when it has one, the 1-based line
// of the instruction at fault, formatted in one line: `Dockerfile:7: unknown flag --chmode for COPY`.

export class DockerfileError extends KilnError {
  /** The Dockerfile's name as given to the parser (usually a base name such as "Dockerfile"). */
  readonly file: string;
  /** 1-based line of the instruction (its first line when continued); undefined for whole-file errors. */
  readonly line: number | undefined;
  /** The message without the location prefix. */
  readonly detail: string;
  constructor(file: string, line: number | undefined, detail: string) {
    super(line === undefined ? `${file}: ${detail}` : `${file}:${line}: ${detail}`);
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

/** The text is not a valid Dockerfile: bad directive, unknown instruction or flag, wrong arguments. */
export class DockerfileSyntaxError extends DockerfileError {}

/** The stages do not form a buildable graph: unknown target, cycle, reference to a later stage. */
export class DockerfileStageError extends DockerfileError {}

/** A value became invalid once variables were expanded (`${X:?}`, bad port, bad signal, bad platform). */
export class DockerfileExpansionError extends DockerfileError {}

/** An error without a location, raised by helpers (lexer, flag parser) and located by their caller. */
export class UnlocatedError extends Error {}
