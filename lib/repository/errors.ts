/**
 * The repository's error type. Every message names the path or the name concerned and says
 * what to do where there is something to do.
 *
 * @module
 */

/** Anything wrong with a repository or a request to it. */
export class RepositoryError extends Error {
  /** Creates the error; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RepositoryError";
  }
}
