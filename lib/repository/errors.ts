/**
 * The repository's error type. Every message names the path or the name concerned and says
 * what to do where there is something to do.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";

/** Anything wrong with a repository or a request to it. */
export class RepositoryError extends CfsError {
  /**
   * Creates the error; `options.cause` keeps the underlying error, `options.code` says which
   * failure it is (default `repository-error`; see lib/errors.ts).
   */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "repository-error"));
    this.name = "RepositoryError";
  }
}
