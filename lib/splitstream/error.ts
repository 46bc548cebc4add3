/**
 * The one error type of the splitstream modules.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";

/**
 * A malformed, truncated or unexpected splitstream, or a writer used wrongly. The message is
 * one line and names the stream (a path or an object id, as the caller passes it) and, where
 * it helps, the offset.
 */
export class SplitStreamError extends CfsError {
  /** Creates the error with a one-line message. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "splitstream-invalid"));
    this.name = "SplitStreamError";
  }
}
