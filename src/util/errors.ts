/**
 * Errors are values with a place: a code, a message a user can act on, and where the problem is
 * (a Dockerfile position, an image reference, a path). The CLI prints them in one line.
 */
export type ErrorCode =
  | 'USAGE' // bad command-line usage: exit 2
  | 'PARSE' // Dockerfile syntax
  | 'PLAN' // stage graph / variables
  | 'NOT_FOUND' // image, file, stage that does not exist
  | 'INVALID' // malformed input (JSON documents, references, archives, tars)
  | 'UNSAFE' // hostile input refused (tar escaping its root, ...)
  | 'DIGEST' // content does not match its digest or size
  | 'REGISTRY' // registry protocol / HTTP failure
  | 'AUTH' // authentication failure
  | 'SANDBOX' // cannot set up or run a process
  | 'BUILD' // a build step failed
  | 'STORE' // store state / locking
  | 'UNSUPPORTED' // a feature kiln does not do (yet)
  | 'INTERNAL';

/** Where an error happened. All fields optional; the CLI prints what is there. */
export interface ErrorPlace {
  file?: string;
  line?: number; // 1-based
  column?: number; // 1-based
  /** The offending source line, shown under the message. */
  source?: string;
  image?: string;
  path?: string;
}

export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly place: ErrorPlace;
  /** A hint on what to do, printed after the message. */
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, place: ErrorPlace = {}, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KilnError';
    this.code = code;
    this.place = place;
    this.hint = opts.hint;
  }

  /** Exit code for the CLI: 2 for usage errors, 1 otherwise. */
  get exitCode(): number {
    return this.code === 'USAGE' ? 2 : 1;
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** "file:line:col: " (or "image: " / "path: ") prefix for one-line error output. */
export function formatPlace(p: ErrorPlace): string {
  if (p.file !== undefined) {
    let s = p.file;
    if (p.line !== undefined) s += `:${p.line}`;
    if (p.line !== undefined && p.column !== undefined) s += `:${p.column}`;
    return s;
  }
  return p.image ?? p.path ?? '';
}

/** One-line (plus optional source line and hint) rendering used by the CLI. */
export function formatError(e: KilnError): string {
  const where = formatPlace(e.place);
  let s = (where ? `${where}: ` : '') + e.message;
  if (e.place.source !== undefined) s += `\n    ${e.place.source.trimEnd()}`;
  if (e.hint) s += `\n  hint: ${e.hint}`;
  return s;
}
